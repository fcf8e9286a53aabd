"""Hostile client-side tools for the tool-abuse class.

Tools live on the client (DESIGN.md, "Tools"): the sandbox calls a stub, the
daemon forwards a ToolCall, and the client answers. These tools are the
client half, written to hurt: they return results that are deep, huge,
malformed or named like dunders, and raise errors whose type names are
BaseExceptions or code. Answers are raw JSON text so that malformed JSON can
be sent on purpose.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MiB = 1 << 20


@dataclass(frozen=True)
class ToolAnswer:
    ok: bool
    value_json: str = "null"
    error_type: str = ""
    error_message: str = ""


@dataclass(frozen=True)
class FuzzTool:
    name: str
    description: str
    inputs: dict[str, dict[str, Any]]
    output_type: str
    call: Callable[[list[Any], dict[str, Any]], ToolAnswer]

    def inputs_json(self) -> str:
        return json.dumps(self.inputs)


def _arg(
    args: list[Any], kwargs: dict[str, Any], index: int, name: str, default: Any = None
) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _echo(args: list[Any], kwargs: dict[str, Any]) -> ToolAnswer:
    return ToolAnswer(ok=True, value_json=json.dumps(_arg(args, kwargs, 0, "value")))


HOSTILE_VALUES: dict[str, Callable[[], str]] = {
    # JSON text built by hand: json.dumps itself would recurse too deep.
    "deep": lambda: "[" * 100_000 + "]" * 100_000,
    "huge_int": lambda: "9" * 200_000,
    "bad_json": lambda: '{"unterminated": [1, 2',
    "nan": lambda: "[NaN, Infinity, -Infinity]",
    "huge_str": lambda: json.dumps("z" * (12 * MiB)),
    "dunder_keys": lambda: json.dumps(
        {"__builtins__": {"eval": "x"}, "__class__": "dict", "__reduce__": [1], "_getattr_": None}
    ),
    "code": lambda: json.dumps("__import__('os').system('id')"),
}


def _hostile(args: list[Any], kwargs: dict[str, Any]) -> ToolAnswer:
    kind = str(_arg(args, kwargs, 0, "kind", ""))
    make = HOSTILE_VALUES.get(kind)
    if make is None:
        return ToolAnswer(ok=False, error_type="ValueError", error_message=f"unknown kind {kind!r}")
    return ToolAnswer(ok=True, value_json=make())


def _fail(args: list[Any], kwargs: dict[str, Any]) -> ToolAnswer:
    return ToolAnswer(
        ok=False,
        error_type=str(_arg(args, kwargs, 0, "error_type", "RuntimeError")),
        error_message=str(_arg(args, kwargs, 1, "message", "")),
    )


def _slow(args: list[Any], kwargs: dict[str, Any]) -> ToolAnswer:
    seconds = _arg(args, kwargs, 0, "seconds", 1.0)
    time.sleep(min(float(seconds) if isinstance(seconds, int | float) else 1.0, 30.0))
    return ToolAnswer(ok=True, value_json="true")


TOOLBOX: dict[str, FuzzTool] = {
    t.name: t
    for t in (
        FuzzTool(
            "echo",
            "Return the value it is given.",
            {"value": {"type": "any", "description": "anything"}},
            "any",
            _echo,
        ),
        FuzzTool(
            "hostile",
            "Return a hostile result of the given kind.",
            {"kind": {"type": "string", "description": ", ".join(HOSTILE_VALUES)}},
            "any",
            _hostile,
        ),
        FuzzTool(
            "fail",
            "Fail with the given error type name and message.",
            {
                "error_type": {"type": "string", "description": "exception type name"},
                "message": {"type": "string", "description": "error message"},
            },
            "null",
            _fail,
        ),
        FuzzTool(
            "slow",
            "Sleep for the given seconds (at most 30), then return true.",
            {"seconds": {"type": "number", "description": "seconds"}},
            "boolean",
            _slow,
        ),
    )
}


def answer(name: str, args_json: str, kwargs_json: str) -> ToolAnswer:
    """Run the named tool on JSON arguments from the sandbox (hostile input: validated)."""
    tool = TOOLBOX.get(name)
    if tool is None:
        return ToolAnswer(ok=False, error_type="NameError", error_message=f"no tool {name!r}")
    try:
        args = json.loads(args_json or "[]")
        kwargs = json.loads(kwargs_json or "{}")
    except (ValueError, RecursionError) as exc:
        return ToolAnswer(ok=False, error_type="ValueError", error_message=f"bad arguments: {exc}")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return ToolAnswer(ok=False, error_type="TypeError", error_message="bad argument shapes")
    return tool.call(args, kwargs)
