"""The builtins dict a snippet runs with.

Plain builtins from `rules.PLAIN_BUILTINS` and `rules.EXCEPTION_BUILTINS` pass
through unchanged; `print`, `type`, `pow`, the getattr family, `__import__`
and `__build_class__` are replaced by guarded versions; the policy's reserved
guard names (`_corral_*`) are added. A snippet cannot reach this dict: it has
no name for it (`__builtins__` and every "_" name are refused) and no
`globals()`/`vars()`.

Standard library only: this module is copied into the sandbox image.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from .errors import PolicyViolation
from .rules import EXCEPTION_BUILTINS, PLAIN_BUILTINS


class _TypeMeta(type):
    """Metaclass of the snippet's `type`: one-argument calls only."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs:
            kind = type(args[0])
            # Metaclasses never reach snippets: they would build classes with
            # arbitrary namespaces (type(C)('X', (), {'__del__': f})).
            return SafeType if issubclass(kind, type) else kind
        raise PolicyViolation(
            "type() with three arguments (dynamic class creation) is not allowed: "
            "use a class statement"
        )

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, type)

    def __subclasscheck__(cls, sub: Any) -> bool:
        return isinstance(sub, type) and issubclass(sub, type)

    def __repr__(cls) -> str:
        return "<class 'type'>"


class SafeType(metaclass=_TypeMeta):
    """`type` as snippets see it: `type(x)` works, `isinstance(C, type)` works, no class creation."""


SafeType.__name__ = SafeType.__qualname__ = "type"
SafeType.__module__ = "builtins"


def make_print(sink: Callable[[str], None]) -> Callable[..., None]:
    """`print` writing to the interpreter's capped output, or to `file`'s write().

    `file` is whatever the snippet holds: `sys.stderr` (the facade's stream), a
    file it opened in its workspace, an `io.StringIO`. Calling its `write` is
    what the snippet could do itself, so it grants nothing new.
    """

    def print(
        *args: Any, sep: Any = " ", end: Any = "\n", file: Any = None, flush: bool = False
    ) -> None:
        if sep is None:
            sep = " "
        if end is None:
            end = "\n"
        if not isinstance(sep, str):
            raise TypeError(f"sep must be None or a string, not {type(sep).__name__}")
        if not isinstance(end, str):
            raise TypeError(f"end must be None or a string, not {type(end).__name__}")
        text = sep.join([str(a) for a in args]) + end
        if file is None:
            sink(text)
        else:
            file.write(text)

    return print


def make_build_class(writable_types: set[type]) -> Callable[..., Any]:
    """`__build_class__`: no class keywords, no metaclass bases; registers snippet classes."""
    real = builtins.__build_class__

    def build_class(func: Any, name: str, *bases: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise PolicyViolation("Class keywords (such as metaclass=) are not allowed")
        for base in bases:
            if isinstance(base, type) and issubclass(base, type):
                raise PolicyViolation(
                    f"Class '{name}' cannot derive from a metaclass: metaclasses are not allowed"
                )
        cls = real(func, name, *bases)
        writable_types.add(cls)
        return cls

    return build_class


def _named(fn: Callable[..., Any], name: str, doc: str) -> Callable[..., Any]:
    def wrapper(obj: Any, format: Any = None) -> None:
        fn(obj, format)

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = doc
    return wrapper


def build_builtins(
    *,
    guards: dict[str, Any],
    sink: Callable[[str], None],
    display: Callable[[Any, Any], None],
    importer: Callable[..., Any],
    writable_types: set[type],
    tools: dict[str, Any],
) -> dict[str, Any]:
    """Assemble the snippet's builtins dict (tools and final_answer included)."""
    table: dict[str, Any] = {name: getattr(builtins, name) for name in PLAIN_BUILTINS}
    table.update(
        {name: getattr(builtins, name) for name in EXCEPTION_BUILTINS if hasattr(builtins, name)}
    )
    table.update(
        {
            "print": make_print(sink),
            "display": _named(
                display,
                "display",
                "Show an image or figure to the agent (format='svg' for a figure as SVG).",
            ),
            "type": SafeType,
            "pow": guards["builtin_pow"],
            "getattr": guards["getattr"],
            "hasattr": guards["hasattr"],
            "setattr": guards["setattr"],
            "delattr": guards["delattr"],
            "__import__": importer,
            "__build_class__": make_build_class(writable_types),
            "__name__": "builtins",
        }
    )
    table.update({key: value for key, value in guards.items() if key.startswith("_corral_")})
    table.update(tools)
    return table
