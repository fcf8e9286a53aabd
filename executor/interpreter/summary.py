"""Describing snippet values for the host: bounded reprs and JSON.

Everything here runs inside a guarded window (timeout, recursion limit) because
a repr of a snippet object runs snippet code. Exact builtin types are walked by
our own bounded walker, never by their (possibly huge) reprs, and become JSON
only when they are exactly int/float/str/bool/None/list/tuple/dict-with-str-keys
and small. Other objects get `repr()` truncated, or a type-name description
when that fails.

Standard library only: this module is copied into the sandbox image.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from proto.results import Value, Variable
from proto.values import BYTES_KEY, to_wire

from .errors import ControlFlow
from .limits import Limits

_SCALARS = (int, float, complex, bool, type(None))
_MAX_DEPTH = 20
# Most elements (all levels together) a value may hold to get a JSON form. The
# state is described after every run, so this bounds the cost of a big list
# in the namespace to a fixed, small walk (it is then described by repr only).
JSON_MAX_ITEMS = 1000


def clean_text(text: str) -> str:
    """`text` as valid UTF-8: lone surrogates (which frames and protobuf reject) become U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _has_surrogates(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def type_name(obj: Any) -> str:
    name = type(obj).__name__
    return clean_text(name) if type(name) is str else "object"


class _Budget(Exception):
    """The repr reached its length budget."""


_EMPTY: dict[type, str] = {list: "[]", tuple: "()", set: "set()", frozenset: "frozenset()"}
_CYCLE: dict[type, str] = {list: "[...]", dict: "{...}"}
_BRACKETS: dict[type, tuple[str, str]] = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
}


def bounded_repr(obj: Any, limit: int) -> str:
    """repr(obj), at most `limit` characters (plus '...'); never builds huge strings."""
    out: list[str] = []
    left = [limit]

    def emit(text: str) -> None:
        if len(text) >= left[0]:
            out.append(text[: left[0]])
            left[0] = 0
            raise _Budget
        out.append(text)
        left[0] -= len(text)

    seen: set[int] = set()

    def walk(x: Any, depth: int) -> None:
        kind = type(x)
        if kind in _SCALARS:
            if kind is int and x.bit_length() > 40_000:
                emit(f"<int with {x.bit_length()} bits>")
            else:
                try:
                    emit(repr(x))
                except ValueError:  # int too large for the int->str limit
                    emit(f"<int with {x.bit_length()} bits>")
            return
        if kind is str or kind is bytes or kind is bytearray:
            cut = x[: left[0] + 2]
            text = repr(cut)
            if len(cut) < len(x) and kind is not bytearray:
                text = text[:-1]  # drop the closing quote of a cut string
            emit(text)
            return
        if (kind is list or kind is tuple or kind is dict) and len(x) > left[0] // 3:
            # Long container: CPython's repr of a prefix long enough to fill the
            # budget, when that prefix is plain JSON-shaped data (no snippet code).
            k = left[0] // 3 + 1
            prefix = dict(islice(x.items(), k)) if kind is dict else x[:k]
            if to_json(prefix, 1 << 20)[0]:
                emit(repr(prefix))
        if kind in (list, tuple, set, frozenset, dict):
            if depth > _MAX_DEPTH:
                emit("...")
                return
            if id(x) in seen:
                emit(_CYCLE.get(kind, "(...)"))
                return
            seen.add(id(x))
            try:
                if kind is dict:
                    emit("{")
                    for i, (k, v) in enumerate(x.items()):
                        if i:
                            emit(", ")
                        walk(k, depth + 1)
                        emit(": ")
                        walk(v, depth + 1)
                    emit("}")
                    return
                if not x:
                    emit(_EMPTY[kind])
                    return
                opening, closing = _BRACKETS[kind]
                emit(opening)
                for i, item in enumerate(x):
                    if i:
                        emit(", ")
                    walk(item, depth + 1)
                if kind is tuple and len(x) == 1:
                    emit(",")
                emit(closing)
            finally:
                seen.discard(id(x))
            return
        emit(other_repr(x, left[0] + 1))

    try:
        walk(obj, 0)
    except _Budget:
        return "".join(out) + "..."
    return "".join(out)


def other_repr(obj: Any, limit: int) -> str:
    """repr of a non-builtin object: runs its __repr__ (inside the window), errors described."""
    try:
        text = repr(obj)
    except ControlFlow:
        raise
    except BaseException as exc:  # a snippet __repr__ may raise anything
        return f"<{type_name(obj)} object (repr failed: {type_name(exc)})>"
    if type(text) is not str:
        return f"<{type_name(obj)} object>"
    return text[:limit]


_BIG_INT = 1 << 63


def to_json(obj: Any, max_bytes: int) -> tuple[bool, Any]:
    """(True, value) when obj is exactly JSON-shaped and its JSON is under max_bytes.

    Exact types only (a subclass could run code or lie about its contents),
    finite floats, str dict keys, at most JSON_MAX_ITEMS elements in all.
    Scalars inside containers take an inline fast path: the state is
    described after every run, so this walk is on the hot path.
    """
    left = [max_bytes, JSON_MAX_ITEMS]

    def scalar_size(x: Any, kind: type) -> int:
        if kind is str:
            if _has_surrogates(x):
                raise _Budget
            return len(x) + 2
        if kind is int:
            if -_BIG_INT <= x < _BIG_INT:
                return 12
            if x.bit_length() > 512:
                raise _Budget
            return x.bit_length() // 3 + 2
        if kind is float:
            if x - x != 0:  # inf or nan
                raise _Budget
            return 24
        if kind is bool or x is None:
            return 5
        raise _Budget

    def conv(x: Any, depth: int) -> Any:
        kind = type(x)
        if kind is list or kind is tuple:
            if depth > _MAX_DEPTH:
                raise _Budget
            left[1] -= len(x)
            if left[1] < 0:
                raise _Budget
            out = []
            size = 2
            for v in x:
                t = type(v)
                if t is str or t is int or t is float or t is bool or v is None:
                    size += scalar_size(v, t) + 1
                    out.append(v)
                else:
                    out.append(conv(v, depth + 1))
            left[0] -= size
            if left[0] < 0:
                raise _Budget
            return out
        if kind is dict:
            if depth > _MAX_DEPTH:
                raise _Budget
            left[1] -= len(x)
            if left[1] < 0:
                raise _Budget
            res = {}
            size = 2
            for k, v in x.items():
                if type(k) is not str or _has_surrogates(k):
                    raise _Budget
                t = type(v)
                if t is str or t is int or t is float or t is bool or v is None:
                    size += scalar_size(v, t) + len(k) + 4
                    res[k] = v
                else:
                    size += len(k) + 4
                    res[k] = conv(v, depth + 1)
            left[0] -= size
            if left[0] < 0:
                raise _Budget
            return res
        if kind is bytes or kind is bytearray:
            # Crosses as tagged base64 (proto/values.py); the client gets bytes back.
            left[0] -= len(x) * 4 // 3 + len(BYTES_KEY) + 8
            if left[0] < 0:
                raise _Budget
            return to_wire(bytes(x))
        left[0] -= scalar_size(x, kind)
        if left[0] < 0:
            raise _Budget
        return x

    try:
        return True, conv(obj, 0)
    except (_Budget, RecursionError):
        return False, None


def describe(obj: Any, limits: Limits, *, table: bool = False) -> Value:
    """A `Value` for a snippet object (call inside the guarded window).

    With `table`, a pandas DataFrame or Series is described as a bounded
    Markdown table (its repr) with a JSON records preview of its first rows.
    """
    if table:
        tabled = _pandas_table(obj, limits)
        if tabled is not None:
            return tabled
    has_json, data = to_json(obj, limits.json_bytes)
    if has_json:
        # Exact builtins of bounded size: CPython's own repr runs no snippet code.
        text = repr(obj)
        if len(text) > limits.repr_chars:
            text = text[: limits.repr_chars] + "..."
    else:
        text = bounded_repr(obj, limits.repr_chars)
    return Value(
        type=type_name(obj),
        repr=clean_text(text),
        json=data,
        has_json=has_json,
    )


def describe_by_type(obj: Any) -> Value:
    """Fallback when the window ran out: no snippet code runs."""
    name = clean_text(type_name(obj))
    return Value(type=name, repr=f"<{name} object>")


def variable(name: str, value: Value) -> Variable:
    return Variable(
        name=name, type=value.type, repr=value.repr, json=value.json, has_json=value.has_json
    )


def _pandas_table(obj: Any, limits: Limits) -> Value | None:
    """A DataFrame/Series as a Markdown table plus records; None for anything else."""
    kind = type(obj)
    module = getattr(kind, "__module__", "")
    if type(module) is not str or module.split(".")[0] != "pandas":
        return None
    if kind.__name__ == "Series":
        obj = obj.to_frame()
    elif kind.__name__ != "DataFrame":
        return None
    import json

    rows, cols = obj.shape
    head = obj.iloc[: limits.table_rows, :MAX_TABLE_COLUMNS]
    header = ["", *(clean_text(str(c))[:MAX_CELL_CHARS] for c in head.columns)]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for index, row in zip(head.index, head.itertuples(index=False), strict=False):
        cells = [str(index), *(str(v) for v in row)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    shown = f"{min(rows, limits.table_rows)} of {rows} rows"
    if cols > MAX_TABLE_COLUMNS:
        shown += f", {MAX_TABLE_COLUMNS} of {cols} columns"
    text = "\n".join(lines) + f"\n\n({shown})"
    if len(text) > limits.table_chars:
        text = text[: limits.table_chars] + "\n... (table cut)"
    data: Any = None
    has_json = False
    try:
        records = json.loads(head.to_json(orient="records", date_format="iso"))
        has_json, data = to_json(records, limits.json_bytes)
    except (ValueError, TypeError, OverflowError):
        pass
    return Value(
        type=type_name(obj) if kind.__name__ == "DataFrame" else "Series",
        repr=clean_text(text),
        json=data,
        has_json=has_json,
    )


MAX_TABLE_COLUMNS = 20
MAX_CELL_CHARS = 60


def _cell(text: str) -> str:
    text = clean_text(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"
