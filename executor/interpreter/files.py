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
