"""Runtime guards: the few checks that compile time cannot decide.

The policy rewrites snippet code to call these by reserved names (see
policy.py). Each guard is a small closure built per interpreter by
`build_guards`, so the snippet's hot paths pay one plain function call and
no attribute lookups on a guard object.

Standard library only: this module is copied into the sandbox image.
"""

from __future__ import annotations

import math
import string
import sys
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache, partial
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Any, Literal

from .errors import ControlFlow, PolicyViolation, ResourceLimit
from .policy import FORMAT_ATTRIBUTES, attribute_refusal
from .rules import SNIPPET_MODULE, snippet_number

# ------------------------------------------------------------------ names


def check_attribute_name(name: object, *, reading: bool) -> str:
    """A computed attribute name (getattr family, format fields) must pass the static rule."""
    if type(name) is not str:
        if not isinstance(name, str):
            raise TypeError(f"attribute name must be string, not '{type(name).__name__}'")
        name = str.__str__(name)  # exact str: a subclass cannot lie in __eq__/__hash__
    refusal = attribute_refusal(name, reading=reading)
    if refusal:
        raise PolicyViolation(refusal)
    return name


# ------------------------------------------------------------------ format strings


@lru_cache(maxsize=512)
def _format_refusal(fmt: str) -> str | None:
    """Why a format string is refused (an attribute in a field path), or None."""
    return _walk_format(fmt, 0)


def _walk_format(fmt: str, depth: int) -> str | None:
    if depth > 2:
        return None  # str.format itself refuses deeper nesting
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return None  # str.format will raise the same ValueError
    for _literal, field, spec, _conv in parsed:
        if field:
            try:
                _first, rest = _field_name_split(field)
                parts = list(rest)
            except ValueError:
                parts = []
            for is_attr, key in parts:
                if is_attr:
                    refusal = attribute_refusal(str(key), reading=True)
                    if refusal:
                        return f"Format field '{{{field}}}': {refusal}"
        if spec and "{" in spec:
            refusal = _walk_format(spec, depth + 1)
            if refusal:
                return refusal
    return None


def _field_name_split(field: str) -> tuple[Any, Any]:
    import _string  # the C helper behind string.Formatter

    return _string.formatter_field_name_split(field)  # type: ignore[no-any-return]


def check_format_string(fmt: str) -> None:
    """Refuse field paths with '_' or introspection attributes (`{0.__class__}`)."""
    if "." not in fmt:
        return  # attributes in a field path are always spelled with '.'
    refusal = _format_refusal(str.__str__(fmt))
    if refusal:
        raise PolicyViolation(refusal)


def checked_format(fmt: str, /, *args: Any, **kwargs: Any) -> str:
    """`str.format` with checked field paths."""
    check_format_string(fmt)
    return str.format(fmt, *args, **kwargs)


def checked_format_map(fmt: str, mapping: Any, /) -> str:
    """`str.format_map` with checked field paths."""
    check_format_string(fmt)
    return str.format_map(fmt, mapping)


def guarded_format(obj: Any, name: str) -> Any:
    """`obj.format` / `obj.format_map`: a checked formatter for str, the real attribute otherwise."""
    checked = checked_format if name == "format" else checked_format_map
    if type(obj) is str:
        return partial(checked, obj)
    if isinstance(obj, str):
        if getattr(type(obj), name) is getattr(str, name):
            return partial(checked, obj)
        return getattr(obj, name)  # a snippet subclass's own method
    if isinstance(obj, type) and issubclass(obj, str) and getattr(obj, name) is getattr(str, name):
        return checked  # the unbound `str.format`
    return getattr(obj, name)


def _checked_get_field(self: Any, field_name: str, args: Any, kwargs: Any) -> Any:
    """string.Formatter.get_field with each attribute name checked."""
    first, rest = _field_name_split(field_name)
    obj = self.get_value(first, args, kwargs)
    for is_attr, key in rest:
        if is_attr:
            obj = getattr(obj, check_attribute_name(key, reading=True))
        else:
            obj = obj[key]
    return obj, first


def _make_safe_formatter() -> type:
    """`string.Formatter` as snippets see it: the same methods, a checked get_field.

    Deliberately NOT a subclass of string.Formatter: with a subclass,
    `super(string.Formatter, f).get_field(...)` in a snippet would reach the
    unchecked original. The class is built from string.Formatter's own method
    objects (they call `self.get_field`, so they use ours).
    """
    namespace = {
        name: value
        for name, value in vars(string.Formatter).items()
        if name not in ("__dict__", "__weakref__", "get_field")
    }
    namespace["get_field"] = _checked_get_field
    namespace["__module__"] = "string"
    namespace["__qualname__"] = "Formatter"
    return type("Formatter", (), namespace)


SafeFormatter = _make_safe_formatter()


# ------------------------------------------------------------------ control flow


def reraise_control() -> None:
    """First statement of every `except` body: let interpreter control flow through."""
    exc = sys.exception()
    if isinstance(exc, ControlFlow):
        raise exc


class ControlFlowSafeContext:
    """Wraps a snippet's context manager so `__exit__` cannot swallow control flow."""

    __slots__ = ("cm", "enter", "exit")

    def __init__(self, cm: Any) -> None:
        kind = type(cm)
        try:
            self.enter = kind.__enter__
            self.exit = kind.__exit__
        except AttributeError:
            raise TypeError(
                f"'{kind.__name__}' object does not support the context manager protocol"
            ) from None
        self.cm = cm

    def __enter__(self) -> Any:
        return self.enter(self.cm)

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        if isinstance(ev, ControlFlow):
            try:
                self.exit(self.cm, et, ev, tb)
            except BaseException:
                raise ev from None  # an __exit__ that raises cannot replace control flow
            return False
        return bool(self.exit(self.cm, et, ev, tb))


class FinallyGuard:
    """Wraps every `finally` body: if it raises while control flow is in flight,
    the control flow wins (`finally: raise ValueError()` cannot replace final_answer)."""

    __slots__ = ("in_flight",)

    def __enter__(self) -> None:
        exc = sys.exception()
        self.in_flight = exc if isinstance(exc, ControlFlow) else None

    def __exit__(self, et: Any, ev: Any, tb: Any) -> Literal[False]:
        flight = self.in_flight
        if flight is not None and ev is not None and ev is not flight:
            raise flight from None
        return False


# ------------------------------------------------------------------ size guards


def _too_big(what: str, bits: float, limit: int) -> ResourceLimit:
    return ResourceLimit(
        f"{what} would produce an integer of about {int(bits):,} bits, over the "
        f"{limit:,}-bit limit: reduce the exponent or work with floats/modular arithmetic"
    )


def make_size_guards(limit: list[int]) -> dict[str, Callable[..., Any]]:
    """The `**` and `<<` guards for one interpreter.

    `limit[0]` is the interpreter's current Limits.int_bits (a cell, so the
    runner can change limits per snippet).
    """

    def pow_bits(a: Any, b: Any) -> float:
        if isinstance(b, int) and b > 1:
            if isinstance(a, int):
                base = abs(a)
                return b * math.log2(base) if base > 1 else 0.0
            if isinstance(a, Fraction):
                top = max(abs(a.numerator), a.denominator)
                return b * math.log2(top) if top > 1 else 0.0
        return 0.0

    def guarded_pow(a: Any, b: Any) -> Any:
        bits = pow_bits(a, b)
        if bits > limit[0]:
            raise _too_big("This '**'", bits, limit[0])
        return a**b

    def guarded_ipow(a: Any, b: Any) -> Any:
        bits = pow_bits(a, b)
        if bits > limit[0]:
            raise _too_big("This '**='", bits, limit[0])
        a **= b
        return a

    def shift_bits(a: Any, b: Any) -> int:
        if isinstance(a, int) and isinstance(b, int) and a and b > 0:
            return int(a.bit_length()) + int(b)
        return 0

    def guarded_lshift(a: Any, b: Any) -> Any:
        bits = shift_bits(a, b)
        if bits > limit[0]:
            raise _too_big("This '<<'", bits, limit[0])
        return a << b

    def guarded_ilshift(a: Any, b: Any) -> Any:
        bits = shift_bits(a, b)
        if bits > limit[0]:
            raise _too_big("This '<<='", bits, limit[0])
        a <<= b
        return a

    def safe_pow(base: Any, exp: Any, mod: Any = None) -> Any:
        if mod is None:
            return guarded_pow(base, exp)
        return pow(base, exp, mod)

    return {
        "pow": guarded_pow,
        "ipow": guarded_ipow,
        "lshift": guarded_lshift,
        "ilshift": guarded_ilshift,
        "builtin_pow": safe_pow,
    }


# ------------------------------------------------------------------ attribute writes


def _describe(obj: Any) -> str:
    if isinstance(obj, ModuleType) or type(obj).__name__ == "module":
        return "a module"
    if isinstance(obj, type):
        return f"the class '{obj.__name__}', which the snippet did not define"
    if isinstance(obj, BuiltinFunctionType):
        return "a builtin"
    return f"a '{type(obj).__name__}' object, which the snippet did not create"


def make_write_guard(
    writable_types: set[type], writable_instance_packages: frozenset[str]
) -> Callable[[Any], Any]:
    """`_corral_write_(obj)`: returns obj when the snippet may set/delete its attributes.

    Allowed: classes the snippet defined and their instances, functions the
    snippet defined, a reviewed allowlist of host types (`writable_types`
    starts with it), and instances of types from explicitly authorized
    third-party packages (`df.columns = [...]` on a pandas DataFrame).
    Refused: modules, tools, builtins, host classes and host objects.
    """

    def refuse(obj: Any) -> PolicyViolation:
        return PolicyViolation(
            f"Cannot set or delete attributes of {_describe(obj)}: only the snippet's own "
            "classes, their instances and its functions can be changed"
        )

    def slow(obj: Any, kind: type) -> Any:
        if kind is FunctionType:
            if snippet_number(obj.__code__.co_filename) is not None:
                return obj
            raise refuse(obj)
        if isinstance(obj, type):
            if issubclass(obj, type):
                raise refuse(obj)
            if obj in writable_types or obj.__module__ == SNIPPET_MODULE:
                return obj
            raise refuse(obj)
        if isinstance(obj, ModuleType):
            raise refuse(obj)
        module = getattr(kind, "__module__", None)
        if module == SNIPPET_MODULE:
            writable_types.add(kind)
            return obj
        if (
            isinstance(module, str)
            and module.split(".")[0] in writable_instance_packages
            and not callable(obj)
        ):
            writable_types.add(kind)
            return obj
        raise refuse(obj)

    def guarded_write(obj: Any) -> Any:
        kind = type(obj)
        if kind in writable_types:
            return obj
        return slow(obj, kind)

    return guarded_write


# ------------------------------------------------------------------ getattr family


def make_attribute_builtins(guarded_write: Callable[[Any], Any]) -> dict[str, Callable[..., Any]]:
    """getattr/hasattr/setattr/delattr whose computed names follow the static rules."""
    missing = object()

    def safe_getattr(obj: Any, name: Any, default: Any = missing) -> Any:
        name = check_attribute_name(name, reading=True)
        try:
            if name in FORMAT_ATTRIBUTES:
                return guarded_format(obj, name)
            return getattr(obj, name)
        except AttributeError:
            if default is missing:
                raise
            return default

    def safe_hasattr(obj: Any, name: Any) -> bool:
        name = check_attribute_name(name, reading=True)
        return hasattr(obj, name)

    def safe_setattr(obj: Any, name: Any, value: Any) -> None:
        name = check_attribute_name(name, reading=False)
        setattr(guarded_write(obj), name, value)

    def safe_delattr(obj: Any, name: Any) -> None:
        name = check_attribute_name(name, reading=False)
        delattr(guarded_write(obj), name)

    safe_getattr.__name__ = "getattr"
    safe_hasattr.__name__ = "hasattr"
    safe_setattr.__name__ = "setattr"
    safe_delattr.__name__ = "delattr"
    return {
        "getattr": safe_getattr,
        "hasattr": safe_hasattr,
        "setattr": safe_setattr,
        "delattr": safe_delattr,
    }
