"""Facades: what snippets get for `sys`, `io` and `pathlib`, which stay on the never-list.

The `sys` snippets can import: read-only facts and the snippet's own streams.

`import sys` in model-written code is nearly always for `sys.stderr`,
`sys.stdout`, `sys.maxsize` or a version check. The real module reaches the
process (modules, frames, the path, exit, settrace), so snippets get this
facade instead: every attribute is a copy or an immutable fact, `stdout` and
`stderr` write to the snippet's captured streams, and nothing here leads to a
module, a frame, a file or the interpreter's state. Attributes not listed do
not exist (AttributeError names the ones that do).

Standard library only: this module is copied into the sandbox image.
"""

from __future__ import annotations

import io
import pathlib
import sys
import types
from typing import Any

from .errors import PolicyViolation

# Immutable facts, copied once. Each is a str, int, float, tuple or a
# structseq of numbers (read-only, no methods reaching the process).
FACTS: dict[str, Any] = {
    "version": sys.version,
    "version_info": sys.version_info,
    "hexversion": sys.hexversion,
    "api_version": sys.api_version,
    "maxsize": sys.maxsize,
    "maxunicode": sys.maxunicode,
    "byteorder": sys.byteorder,
    "platform": sys.platform,
    "float_info": sys.float_info,
    "int_info": sys.int_info,
    "hash_info": sys.hash_info,
    "float_repr_style": sys.float_repr_style,
    "implementation": types.SimpleNamespace(
        name=sys.implementation.name, version=sys.implementation.version
    ),
    "argv": (),  # snippets have no command line
}
# Considered and left out: modules, path, meta_path (the import system);
# _getframe, settrace, setprofile, exc_info, exception (frames); exit (the
# runner, not the snippet, decides when the process ends); getrefcount,
# getsizeof (host object internals); set_int_max_str_digits, setrecursionlimit
# (limits the interpreter enforces); stdin (snippets have no input);
# executable, prefix, base_prefix, flags, orig_argv (host layout).


# `io` reaches files (open, FileIO); snippets get its in-memory streams only.
IO_VALUES: dict[str, Any] = {
    "StringIO": io.StringIO,
    "BytesIO": io.BytesIO,
    "SEEK_SET": io.SEEK_SET,
    "SEEK_CUR": io.SEEK_CUR,
    "SEEK_END": io.SEEK_END,
    "UnsupportedOperation": io.UnsupportedOperation,
}
# `pathlib.Path` reads and writes files; the pure classes only compute with names.
PATHLIB_VALUES: dict[str, Any] = {
    "PurePath": pathlib.PurePosixPath,
    "PurePosixPath": pathlib.PurePosixPath,
}


def make_sys_facade(stdout: Any, stderr: Any) -> Any:
    """A fresh `sys` facade whose stdout/stderr are the given writers."""
    return make_facade("sys", {**FACTS, "stdout": stdout, "stderr": stderr})


def make_facade(module: str, values: dict[str, Any]) -> Any:
    """A module-like object with exactly `values` as read-only attributes."""
    values = dict(values)
    names = ", ".join(sorted(values))

    class Facade:
        """A module as snippets see it: a reviewed subset, read-only."""

        __slots__ = ()

        def __getattr__(self, name: str) -> Any:
            if name == "__name__":  # `from sys import x` names the module in its error
                return module
            try:
                return values[name]
            except KeyError:
                raise AttributeError(
                    f"{module}.{name} is not available in snippets; available: {names}"
                ) from None

        def __setattr__(self, name: str, value: Any) -> None:
            raise PolicyViolation(f"Cannot set attributes of the module '{module}'")

        def __delattr__(self, name: str) -> None:
            raise PolicyViolation(f"Cannot delete attributes of the module '{module}'")

        def __repr__(self) -> str:
            return f"<module '{module}'>"

        def __dir__(self) -> list[str]:
            return sorted(values)

    Facade.__name__ = Facade.__qualname__ = "module"
    Facade.__module__ = "builtins"
    return Facade()
