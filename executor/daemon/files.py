"""Workspace paths from clients, and the runner's file listings checked on the way out.

Clients name a workspace file either relative to the workspace ("data.csv") or
the way snippets see it ("/workspace/data.csv"): both are accepted and turned
into one clean relative path before anything reaches the runner (which checks
again, against symlinks, with the real filesystem). Listings come out of the
container, so every entry is type- and size-checked before it becomes a proto.
"""

from __future__ import annotations

import posixpath

from executor.daemon.errors import InvalidArgument

WORKSPACE = "/workspace"  # where snippets see the session's files
MAX_PATH_CHARS = 1024
MAX_ENTRIES = 10_000  # entries accepted from one listing (the runner sends at most this)


def workspace_path(path: str, *, allow_root: bool = False) -> str:
    """A clean path relative to /workspace ("." for the root when allowed), or InvalidArgument."""
    if len(path) > MAX_PATH_CHARS or "\x00" in path:
        raise InvalidArgument(f"path must be at most {MAX_PATH_CHARS} characters without NUL")
    shown = path[:100]
    if path == WORKSPACE or path.startswith(WORKSPACE + "/"):
        path = path[len(WORKSPACE) :].lstrip("/")
    elif path.startswith("/"):
        raise InvalidArgument(
            f"path {shown!r} is outside the workspace; give it relative to it ('data.csv') "
            f"or under {WORKSPACE} ('{WORKSPACE}/data.csv')"
        )
    if ".." in path.split("/"):
        raise InvalidArgument(f"path {shown!r} contains '..'; paths must stay in {WORKSPACE}")
    norm = posixpath.normpath(path) if path else "."
    if norm == ".":
        if allow_root:
            return "."
        raise InvalidArgument(
            f"path {shown!r} names the workspace itself, not a file; give a file's path "
            "(e.g. 'data.csv'), or list the workspace with ListFiles (session.files())"
        )
    return norm
