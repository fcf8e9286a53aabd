"""Tools: client-side functions a snippet (or a tool-calling model) may call.

A tool is declared once, by name, description, typed inputs and output type,
and that declaration is exported three ways: to the sandbox as a `ToolSpec`
(the daemon builds a stub with that signature; calls come back to the client),
to a function-calling model as an OpenAI JSON schema, and to a code-writing
model as a Python signature with a docstring. Arguments are validated against
the same declaration before `forward` runs, so a model's mistake becomes a
clear message instead of a crash deep inside the tool.
"""

from __future__ import annotations

import inspect
import json
import keyword
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from agent.errors import ToolError
from proto.tools import TYPE_TO_PY, TYPES

_PY_TO_TYPE: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    tuple: "array",
    set: "array",
    dict: "object",
    # bytes cross as tagged base64 inside the JSON (proto/values.py); JSON schema has
    # no bytes type, so they are declared "any".
    bytes: "any",
    bytearray: "any",
    Any: "any",
    object: "any",
    type(None): "null",
    None: "null",
}


def _check_name(name: str) -> None:
    if not (name.isidentifier() and not name.startswith("_") and not keyword.iskeyword(name)):
        raise ToolError(
            f"tool name {name!r} is not usable: it must be a Python identifier that does not "
            "start with '_' and is not a keyword"
        )


def _type_matches(kind: str, value: Any) -> bool:
    if kind == "any":
        return True
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list | tuple)
    if kind == "object":
        return isinstance(value, dict)
    return False


class Tool:
    """Base class of a tool. Subclass it (set the class attributes, define
    `forward`) or build one from a typed function with `@tool`.

    `inputs` maps each argument, in order, to {"type", "description",
    "nullable"?}; a nullable argument may be omitted or None.
    """

    name: str = ""
    description: str = ""
    inputs: dict[str, dict[str, Any]] = {}
    output_type: str = "any"

    def __init__(self) -> None:
        self.validate_definition()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"tool {self.name!r} does not define forward()")

    # -- definition -------------------------------------------------------

    def validate_definition(self) -> None:
        """Refuse a definition the sandbox or a model could not use."""
        _check_name(self.name)
        if not isinstance(self.inputs, dict):
            raise ToolError(
                f"tool {self.name!r}: inputs must be a dict {{arg: {{type, description}}}}"
            )
        for arg, spec in self.inputs.items():
            if not isinstance(arg, str) or not arg.isidentifier() or keyword.iskeyword(arg):
                raise ToolError(f"tool {self.name!r}: argument name {arg!r} is not an identifier")
            if not isinstance(spec, dict) or spec.get("type") not in TYPES:
                raise ToolError(
                    f"tool {self.name!r}: argument {arg!r} needs a 'type' among {sorted(TYPES)}, "
                    f"got {spec!r}"
                )
            if not isinstance(spec.get("description", ""), str):
                raise ToolError(f"tool {self.name!r}: argument {arg!r} description must be text")
        if self.output_type not in TYPES:
            raise ToolError(
                f"tool {self.name!r}: output_type {self.output_type!r} is not among {sorted(TYPES)}"
            )

    def required_inputs(self) -> list[str]:
        return [a for a, s in self.inputs.items() if not s.get("nullable")]

    # -- calling ----------------------------------------------------------

    def bind_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Map positional arguments onto input names (in declaration order)."""
        names = list(self.inputs)
        if len(args) > len(names):
            raise ToolError(
                f"{self.name}() takes {len(names)} argument(s) ({', '.join(names) or 'none'}) "
                f"but {len(args)} were given"
            )
        bound = dict(zip(names, args))
        for k, v in kwargs.items():
            if k in bound:
                raise ToolError(f"{self.name}() got multiple values for argument {k!r}")
            bound[k] = v
        return bound

    def validate_arguments(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Check arguments against `inputs`; returns them, or raises ToolError saying what to fix."""
        if not isinstance(kwargs, dict):
            raise ToolError(
                f"arguments of tool {self.name!r} must be an object {{name: value}}, "
                f"got {type(kwargs).__name__}"
            )
        unknown = [k for k in kwargs if k not in self.inputs]
        if unknown:
            raise ToolError(
                f"tool {self.name!r} has no argument(s) {', '.join(map(repr, unknown))}; "
                f"it takes: {', '.join(self.inputs) or 'no arguments'}"
            )
        missing = [a for a in self.required_inputs() if a not in kwargs]
        if missing:
            raise ToolError(
                f"tool {self.name!r} is missing required argument(s) "
                f"{', '.join(map(repr, missing))}"
            )
        for arg, value in kwargs.items():
            spec = self.inputs[arg]
            if value is None and spec.get("nullable"):
                continue
            if not _type_matches(spec["type"], value):
                raise ToolError(
                    f"tool {self.name!r}: argument {arg!r} must be of type {spec['type']}, "
                    f"got {type(value).__name__} {_short_repr(value)}"
                )
        return kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Validate, then run `forward` with keyword arguments."""
        return self.forward(**self.validate_arguments(self.bind_arguments(args, kwargs)))

    # -- exports ----------------------------------------------------------

    def to_openai_schema(self) -> dict[str, Any]:
        """The OpenAI function-calling declaration of this tool."""
        props: dict[str, Any] = {}
        for arg, spec in self.inputs.items():
            prop: dict[str, Any] = {"description": spec.get("description", "")}
            kind = spec["type"]
            if kind != "any":  # JSON schema has no "any": no type constraint
                prop["type"] = [kind, "null"] if spec.get("nullable") and kind != "null" else kind
            props[arg] = prop
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": props,
                    "required": self.required_inputs(),
                },
            },
        }

    def to_spec(self) -> Any:
        """The `corral.v1.ToolSpec` sent when a session opens."""
        from proto import executor_pb2

        return executor_pb2.ToolSpec(
            name=self.name,
            description=self.description,
            inputs_json=json.dumps(self.inputs),
            output_type=self.output_type,
        )

    def python_signature(self) -> str:
        """`def name(arg: type, ...) -> type:` plus a docstring, for a code-writing model."""
        params = []
        for arg, spec in self.inputs.items():
            py = TYPE_TO_PY[spec["type"]]
            params.append(f"{arg}: {py} | None = None" if spec.get("nullable") else f"{arg}: {py}")
        lines = [f"def {self.name}({', '.join(params)}) -> {TYPE_TO_PY[self.output_type]}:"]
        # A triple quote inside a description would end the docstring early.
        desc_lines = (self.description.strip() or self.name).replace('"""', "'''").splitlines()
        doc = ['"""' + desc_lines[0], *desc_lines[1:]]
        if self.inputs:
            doc += ["", "Args:"]
            doc += [
                f"    {a}: {s.get('description', '')}".replace('"""', "'''").rstrip()
                for a, s in self.inputs.items()
            ]
        lines += ["    " + line if line else "" for line in doc]
        lines.append('    """')
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Tool {self.name}({', '.join(self.inputs)}) -> {self.output_type}>"


class FunctionTool(Tool):
    """A tool whose `forward` is a plain function (what `@tool` builds)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        description: str,
        inputs: dict[str, dict[str, Any]],
        output_type: str,
    ) -> None:
        self.fn = fn
        self.name = name
        self.description = description
        self.inputs = inputs
        self.output_type = output_type
        self.__doc__ = fn.__doc__
        super().__init__()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(annotation: Any, where: str) -> tuple[str, bool]:
    """(type, nullable) for a Python annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(annotation))
        if len(members) == 1:
            kind, inner_nullable = _json_type(members[0], where)
            return kind, nullable or inner_nullable
        return "any", nullable
    if origin is typing.Literal:
        kinds = {_PY_TO_TYPE.get(type(a), "any") for a in typing.get_args(annotation)}
        return (kinds.pop() if len(kinds) == 1 else "any"), False
    if origin is not None:
        annotation = origin
    if annotation in _PY_TO_TYPE:
        return _PY_TO_TYPE[annotation], False
    raise ToolError(
        f"{where}: type {annotation!r} has no JSON equivalent; use str, int, float, bool, "
        "list, dict, Any or an Optional of these"
    )


_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|Notes?)\s*:\s*$"
)


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {arg: description})."""
    lines = inspect.cleandoc(doc or "").splitlines()
    description: list[str] = []
    args: dict[str, str] = {}
    section = None
    current: str | None = None
    arg_indent = None
    for line in lines:
        m = _SECTION.match(line)
        if m and not line.startswith((" ", "\t")):
            section = m.group(1).lower()
            current = None
            arg_indent = None
            continue
        if section is None:
            description.append(line)
        elif section in ("args", "arguments", "parameters"):
            if not line.strip():
                continue
            indent = len(line) - len(line.lstrip())
            am = _ARG_LINE.match(line)
            if am and (arg_indent is None or indent <= arg_indent):
                arg_indent = indent
                current = am.group(1).lstrip("*")
                args[current] = am.group(3).strip()
            elif current is not None:
                args[current] = (args[current] + " " + line.strip()).strip()
    return "\n".join(description).strip(), args


def build_tool(
    fn: Callable[..., Any], *, name: str | None = None, strict: bool = True
) -> FunctionTool:
    """A Tool from a function's signature, type hints and docstring.

    strict: every argument needs a type hint and a description in the Args:
    section (what `@tool` requires, because a model only knows a tool from
    them). Non-strict (plain callables handed to a session) fills gaps with
    "any" and empty descriptions.
    """
    tool_name = str(name or getattr(fn, "__name__", ""))
    _check_name(tool_name)
    description, arg_docs = parse_docstring(fn.__doc__ or "")
    if strict and not description:
        raise ToolError(
            f"tool {tool_name!r} needs a docstring: a description, then an Args: section "
            "with one line per argument"
        )
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: fall back to none
        hints = {}
    inputs: dict[str, dict[str, Any]] = {}
    for pname, param in inspect.signature(fn).parameters.items():
        where = f"tool {tool_name!r}, argument {pname!r}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolError(f"{where}: *args/**kwargs cannot be declared to a model; name each one")
        if pname in hints:
            kind, nullable = _json_type(hints[pname], where)
        elif strict:
            raise ToolError(f"{where} needs a type hint (str, int, float, bool, list, dict, Any)")
        else:
            kind, nullable = "any", False
        if param.default is not param.empty:
            nullable = True
        if strict and pname not in arg_docs:
            raise ToolError(f"{where} needs a description in the docstring's Args: section")
        spec: dict[str, Any] = {"type": kind, "description": arg_docs.get(pname, "")}
        if nullable:
            spec["nullable"] = True
        inputs[pname] = spec
    if "return" in hints:
        output_type, _ = _json_type(hints["return"], f"tool {tool_name!r}, return type")
    elif strict:
        raise ToolError(f"tool {tool_name!r} needs a return type hint (use -> Any if it varies)")
    else:
        output_type = "any"
    return FunctionTool(
        fn, name=tool_name, description=description, inputs=inputs, output_type=output_type
    )


@typing.overload
def tool(fn: Callable[..., Any], /) -> FunctionTool: ...
@typing.overload
def tool(*, name: str | None = None) -> Callable[[Callable[..., Any]], FunctionTool]: ...
def tool(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Decorator: turn a typed function with a Google-style docstring into a Tool.

    @tool
    def get_weather(city: str) -> str:
        \"\"\"Current weather in a city.

        Args:
            city: The city's name, e.g. "Paris".
        \"\"\"
    """
    if fn is None:
        return lambda f: build_tool(f, name=name)
    return build_tool(fn, name=name)


def as_tool(obj: Any) -> Tool:
    """A Tool from a Tool or any callable (leniently: missing hints mean "any")."""
    if isinstance(obj, Tool):
        return obj
    if callable(obj):
        return build_tool(obj, strict=False)
    raise ToolError(f"{obj!r} is not a Tool or a callable")


class FinalAnswerTool(Tool):
    """Ends a ToolCallingAgent's run with the given answer."""

    name = "final_answer"
    description = "Give the final answer to the task. Calling it ends the run."
    inputs = {"answer": {"type": "any", "description": "The final answer to the task."}}
    output_type = "any"

    def forward(self, answer: Any) -> Any:  # type: ignore[override]
        return answer
