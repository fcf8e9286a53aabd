"""`open()` confined to the session's workspace directory.

Snippets get `open` only when the interpreter is given a workspace (the runner
passes `/workspace`, the session's size-capped tmpfs, so files uploaded
through the API can be read and results written for download). Without a
workspace, `open` does not exist, as before.

Why this is safe on its own (the interpreter layer must hold without the
container): every path is resolved with `os.path.realpath` relative to the
workspace and must stay inside it, so `..`, absolute paths elsewhere and
symlinks pointing out are refused before anything is opened; the final
component is opened with O_NOFOLLOW, so a symlink swapped in after the check
is refused too. No `opener` callable and no `closefd` are accepted, and integer
file descriptors are refused (they could name any open descriptor of the
host process). The returned object is an ordinary file object: its public
attributes expose no modules, frames or code.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import IO, Any

_MODE_CHARS = frozenset("rwaxbt+")


def make_workspace_open(root: str) -> Callable[..., IO[Any]]:
    """Build the snippet's `open`, confined to `root` (which must exist)."""
    base = os.path.realpath(root)

    def open(
        file: str,
        mode: str = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> IO[Any]:
        """Open a file in the session's workspace (paths are relative to it)."""
        if type(file) is not str:
            raise TypeError("open() takes a path string relative to the workspace")
        if type(mode) is not str or not mode or set(mode) - _MODE_CHARS:
            raise ValueError(f"invalid mode: {mode!r}")
        if "\x00" in file:
            raise ValueError("embedded null character in path")
        path = os.path.realpath(os.path.join(base, file))
        if path != base and not path.startswith(base + os.sep):
            raise PermissionError(
                f"open(): {file!r} is outside the workspace; "
                f"use a path inside {root} (relative paths start there)"
            )
        flags = _flags(mode) | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o600)
        try:
            return os.fdopen(
                fd, mode, buffering=buffering, encoding=encoding, errors=errors, newline=newline
            )
        except BaseException:
            os.close(fd)
            raise

    return open


def _flags(mode: str) -> int:
    """os.open flags for a Python open() mode (validated by fdopen afterwards too)."""
    plus = "+" in mode
    if "r" in mode:
        return os.O_RDWR if plus else os.O_RDONLY
    access = os.O_RDWR if plus else os.O_WRONLY
    if "w" in mode:
        return access | os.O_CREAT | os.O_TRUNC
    if "a" in mode:
        return access | os.O_CREAT | os.O_APPEND
    if "x" in mode:
        return access | os.O_CREAT | os.O_EXCL
    raise ValueError(f"invalid mode: {mode!r}")


# -- directory helpers -------------------------------------------------------
# os and os.path are never importable in a snippet; these are the few of their
# functions model-written code reaches for, with every path confined as open()
# confines it. Symlinks are never followed (lstat, O_NOFOLLOW) and never listed
# as files: only a raw snippet could have planted one.


def make_workspace_helpers(root: str) -> dict[str, Callable[..., Any]]:
    """The snippet's `listdir`, `exists`, `isfile`, `isdir`, `getsize`, `remove`, `makedirs`."""
    base = os.path.realpath(root)

    def confine(path: object, what: str) -> str:
        if type(path) is not str:
            raise TypeError(f"{what}() takes a path string relative to the workspace")
        if "\x00" in path:
            raise ValueError("embedded null character in path")
        full = os.path.realpath(os.path.join(base, path))
        if full != base and not full.startswith(base + os.sep):
            raise PermissionError(
                f"{what}(): {path!r} is outside the workspace; "
                f"use a path inside {root} (relative paths start there)"
            )
        return full

    def lstat(path: object, what: str) -> os.stat_result | None:
        full = confine(path, what)
        try:
            return os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def listdir(path: str = ".") -> list[str]:
        """Names in a workspace directory (like os.listdir), sorted."""
        full = confine(path, "listdir")
        fd = os.open(
            full, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        )
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def exists(path: str) -> bool:
        """True when the workspace path names a file or directory (like os.path.exists)."""
        st = lstat(path, "exists")
        return st is not None and (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode))

    def isfile(path: str) -> bool:
        """True for a regular file in the workspace (like os.path.isfile)."""
        st = lstat(path, "isfile")
        return st is not None and stat.S_ISREG(st.st_mode)

    def isdir(path: str) -> bool:
        """True for a directory in the workspace (like os.path.isdir)."""
        st = lstat(path, "isdir")
        return st is not None and stat.S_ISDIR(st.st_mode)

    def getsize(path: str) -> int:
        """Size in bytes of a workspace file (like os.path.getsize)."""
        st = lstat(path, "getsize")
        if st is None:
            raise FileNotFoundError(f"getsize(): no such file in the workspace: {path!r}")
        return st.st_size

    def remove(path: str) -> None:
        """Delete a workspace file or empty directory (like os.remove / os.rmdir)."""
        full = confine(path, "remove")
        if full == base:
            raise PermissionError("remove(): the workspace itself cannot be removed")
        st = os.lstat(full)
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(full)
        else:
            os.unlink(full)

    def makedirs(path: str, exist_ok: bool = True) -> None:
        """Create a workspace directory and its parents (like os.makedirs; exist_ok by default)."""
        full = confine(path, "makedirs")
        os.makedirs(full, exist_ok=bool(exist_ok))
        confine(path, "makedirs")  # a symlink raced into the path must not have redirected it

    return {f.__name__: f for f in (listdir, exists, isfile, isdir, getsize, remove, makedirs)}
