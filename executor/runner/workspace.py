"""File transfer into and out of the session's workspace, confined to it.

Paths in `write_file`/`read_file` frames are relative to the workspace
(`/workspace` in the container, a tmpfs). Refused: absolute paths, `..`
components, NUL bytes, empty paths, and any path whose resolved location is
outside the workspace (a symlink planted by a raw snippet, for instance). The
final component is opened with O_NOFOLLOW, so a symlink swapped in between
the check and the open is refused too. Sizes are capped so that the file,
base64-encoded, fits in one frame. Writes are atomic: a temporary file in the
same directory, renamed over the target once complete (see `Workspace.write`).

Standard library only: this module runs inside the sandbox image.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat

from proto.frames import DEFAULT_MAX_FRAME

# base64 grows data by 4/3; keep room for the frame's other fields. The daemon
# sends its own (smaller) max_file_bytes with each read, so a refusal names
# the cap the user configured, not this ceiling.
MAX_FILE_BYTES = (DEFAULT_MAX_FRAME - 4096) // 4 * 3
# Entries returned by one list_dir (the answer must fit one frame).
MAX_LIST_ENTRIES = 10_000
TMP_SUFFIX = ".corral-upload"  # temporary files of uploads in progress end with this


class WorkspaceError(Exception):
    """A file operation was refused or failed; the message says why."""


class Workspace:
    def __init__(self, root: str, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.root = os.path.realpath(root)
        self.max_file_bytes = max_file_bytes

    def resolve(self, path: object) -> str:
        """Absolute location of a workspace-relative path, or WorkspaceError."""
        if not isinstance(path, str) or not path:
            raise WorkspaceError("path must be a non-empty string relative to the workspace")
        if "\x00" in path:
            raise WorkspaceError("path must not contain NUL bytes")
        if path.startswith("/") or os.path.isabs(path):
            raise WorkspaceError(
                f"path {path!r} is absolute: give it relative to the workspace, e.g. 'data.csv'"
            )
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if not parts:
            raise WorkspaceError(f"path {path!r} names the workspace itself, not a file")
        if ".." in parts:
            raise WorkspaceError(f"path {path!r} contains '..': paths must stay in the workspace")
        full = os.path.join(self.root, *parts)
        parent = os.path.realpath(os.path.dirname(full))
        if parent != self.root and not parent.startswith(self.root + os.sep):
            raise WorkspaceError(f"path {path!r} leads outside the workspace (through a symlink)")
        return os.path.join(parent, parts[-1])

    def write(self, path: object, data: bytes) -> None:
        """Replace (or create) the file atomically: all of `data`, or the old file untouched.

        The bytes go to a fresh temporary file in the same directory, which is
        renamed over the target only once fully written: rename(2) within one
        filesystem is atomic, so a reader sees the old file or the new one, never
        a mix. A failure (the workspace runs out of space, say) removes the
        temporary file and leaves any previous file exactly as it was.
        """
        if len(data) > self.max_file_bytes:
            raise WorkspaceError(
                f"file of {len(data)} bytes exceeds the {self.max_file_bytes}-byte maximum"
            )
        target = self.resolve(path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        # Re-check after creating directories: a racing symlink must not redirect us.
        target = self.resolve(path)
        if os.path.islink(target):
            raise WorkspaceError(f"cannot write {path!r}: it is a symbolic link")
        if os.path.isdir(target):
            raise WorkspaceError(f"cannot write {path!r}: it is a directory")
        directory, name = os.path.split(target)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        tmp, fd = "", -1
        for _ in range(16):  # O_EXCL: a name planted by a snippet is never reused
            tmp = os.path.join(directory, f".{name[:200]}.{secrets.token_hex(8)}{TMP_SUFFIX}")
            try:
                fd = os.open(tmp, flags, 0o644)
                break
            except FileExistsError:
                continue
            except OSError as exc:
                raise WorkspaceError(f"cannot write {path!r}: {exc.strerror}") from None
        if fd < 0:
            raise WorkspaceError(f"cannot write {path!r}: no free temporary name")
        try:
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            finally:
                os.close(fd)
            # The parent is re-resolved; a symlink swapped in at the target meanwhile
            # is replaced by rename(2), which never follows it.
            if os.path.dirname(self.resolve(path)) != directory:
                raise WorkspaceError(f"cannot write {path!r}: its directory changed meanwhile")
            os.rename(tmp, target)
        except OSError as exc:
            _unlink_quietly(tmp)
            raise WorkspaceError(f"cannot write {path!r}: {exc.strerror}") from None
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def read(self, path: object, max_bytes: int | None = None) -> bytes:
        cap = self.max_file_bytes if not max_bytes else min(max_bytes, self.max_file_bytes)
        return self._read(path, cap)

    def _read(self, path: object, cap: int) -> bytes:
        target = self.resolve(path)
        try:
            fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            raise WorkspaceError(f"cannot read {path!r}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise WorkspaceError(f"cannot read {path!r}: not a regular file")
            if st.st_size > cap:
                raise WorkspaceError(too_large(path, st.st_size, cap))
            chunks: list[bytes] = []
            got = 0
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                got += len(chunk)
                if got > cap:
                    raise WorkspaceError(too_large(path, got, cap))
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError as exc:
            raise WorkspaceError(f"cannot read {path!r}: {exc.strerror}") from None
        finally:
            os.close(fd)

    # -- directory operations (ListFiles, RemoveFile, MakeDirectory) -------

    def resolve_dir(self, path: object) -> str:
        """Like `resolve`, but "" and "." name the workspace root itself."""
        if isinstance(path, str) and not [p for p in path.split("/") if p not in ("", ".")]:
            if path.startswith("/"):
                raise WorkspaceError(
                    f"path {path!r} is absolute: give it relative to the workspace"
                )
            return self.root
        return self.resolve(path)

    def list_dir(self, path: object) -> list[dict[str, object]]:
        """Entries of a workspace directory: path (workspace-relative), size, is_dir, mtime_ms.

        Symlinks and special files (which only a raw snippet could plant) are left out.
        """
        target = self.resolve_dir(path)
        try:
            fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise WorkspaceError(f"cannot list {path!r}: {exc.strerror}") from None
        entries: list[dict[str, object]] = []
        prefix = os.path.relpath(target, self.root)
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    if len(entries) >= MAX_LIST_ENTRIES:
                        break
                    st = entry.stat(follow_symlinks=False)
                    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                        continue
                    if not _utf8(entry.name):
                        continue  # a name no client could send back (not UTF-8)
                    if entry.name.endswith(TMP_SUFFIX):
                        continue  # an upload in progress, not a file yet
                    is_dir = stat.S_ISDIR(st.st_mode)
                    rel = entry.name if prefix == "." else f"{prefix}/{entry.name}"
                    entries.append(
                        {
                            "path": rel,
                            "size": 0 if is_dir else st.st_size,
                            "is_dir": is_dir,
                            "mtime_ms": int(st.st_mtime * 1000),
                        }
                    )
        except OSError as exc:
            raise WorkspaceError(f"cannot list {path!r}: {exc.strerror}") from None
        finally:
            os.close(fd)
        entries.sort(key=lambda e: str(e["path"]))
        return entries

    def remove(self, path: object) -> None:
        """Remove a file or an empty directory (never follows a symlink: it removes the link)."""
        target = self.resolve(path)
        try:
            st = os.lstat(target)
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(target)
            else:
                os.unlink(target)
        except OSError as exc:
            hint = "; remove its files first" if exc.errno == errno.ENOTEMPTY else ""
            raise WorkspaceError(f"cannot remove {path!r}: {exc.strerror}{hint}") from None

    def make_dir(self, path: object) -> None:
        """Create a directory and its missing parents; an existing directory is fine."""
        target = self.resolve(path)
        try:
            os.makedirs(target, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(f"cannot make directory {path!r}: {exc.strerror}") from None
        # A symlink raced in by a raw snippet must not have redirected the creation.
        self.resolve(path)


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def too_large(path: object, size: int, cap: int) -> str:
    """The one wording of the file-size cap (the daemon's TooLarge says the same)."""
    return f"the file {path!r} is {size} bytes; the server accepts at most {cap} bytes (config: max_file_bytes)"


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
