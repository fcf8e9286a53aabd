"""Tools: @tool from typed functions, schema exports, argument validation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from agent import Tool, ToolError, tool
from agent.tools import as_tool, parse_docstring
from proto import executor_pb2


@tool
def get_weather(city: str, days: int = 1, metric: bool | None = None) -> str:
    """Weather forecast for a city.

    Looks the city up in the forecast service.

    Args:
        city: The city's name, e.g. "Paris".
        days (int): How many days to forecast,
            counted from today.
        metric: Use metric units.

    Returns:
        The forecast as text.
    """
    return f"{city}:{days}:{metric}"


class Adder(Tool):
    name = "add"
    description = "Add two numbers."
    inputs = {
        "a": {"type": "number", "description": "first"},
        "b": {"type": "number", "description": "second"},
    }
    output_type = "number"

    def forward(self, a: float, b: float) -> float:  # type: ignore[override]
        return a + b


def test_tool_decorator_builds_inputs_from_hints_and_docstring() -> None:
    assert get_weather.name == "get_weather"
    assert get_weather.description == (
        "Weather forecast for a city.\n\nLooks the city up in the forecast service."
    )
    assert get_weather.inputs == {
        "city": {"type": "string", "description": 'The city\'s name, e.g. "Paris".'},
        "days": {
            "type": "integer",
            "description": "How many days to forecast, counted from today.",
            "nullable": True,
        },
        "metric": {"type": "boolean", "description": "Use metric units.", "nullable": True},
    }
    assert get_weather.output_type == "string"
    assert get_weather("Paris", days=3) == "Paris:3:None"


def test_openai_schema_is_function_calling_format() -> None:
    schema = get_weather.to_openai_schema()
    assert schema == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": get_weather.description,
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"description": 'The city\'s name, e.g. "Paris".', "type": "string"},
                    "days": {
                        "description": "How many days to forecast, counted from today.",
                        "type": ["integer", "null"],
                    },
                    "metric": {"description": "Use metric units.", "type": ["boolean", "null"]},
                },
                "required": ["city"],
            },
        },
    }
    json.dumps(schema)  # serialisable as sent to an endpoint


def test_to_spec_is_the_proto_tool_spec() -> None:
    spec = Adder().to_spec()
    assert isinstance(spec, executor_pb2.ToolSpec)
    assert spec.name == "add"
    assert spec.output_type == "number"
    assert json.loads(spec.inputs_json) == Adder.inputs
    assert list(json.loads(spec.inputs_json)) == ["a", "b"]  # order kept


def test_python_signature_for_code_agent_prompt() -> None:
    assert get_weather.python_signature() == (
        "def get_weather(city: str, days: int | None = None, metric: bool | None = None) -> str:\n"
        '    """Weather forecast for a city.\n'
        "\n"
        "    Looks the city up in the forecast service.\n"
        "\n"
        "    Args:\n"
        '        city: The city\'s name, e.g. "Paris".\n'
        "        days: How many days to forecast, counted from today.\n"
        "        metric: Use metric units.\n"
        '    """'
    )
    compile(get_weather.python_signature() + "\n    pass", "<sig>", "exec")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "tool 'get_weather' is missing required argument(s) 'city'"),
        ({"city": 3}, "tool 'get_weather': argument 'city' must be of type string, got int 3"),
        (
            {"city": "x", "days": True},
            "tool 'get_weather': argument 'days' must be of type integer, got bool True",
        ),
        (
            {"city": "x", "where": 1},
            "tool 'get_weather' has no argument(s) 'where'; it takes: city, days, metric",
        ),
    ],
)
def test_validate_arguments_errors_say_what_to_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ToolError) as info:
        get_weather.validate_arguments(kwargs)
    assert str(info.value) == message


def test_validate_arguments_accepts_valid_and_null_for_nullable() -> None:
    assert get_weather.validate_arguments({"city": "x", "metric": None}) == {
        "city": "x",
        "metric": None,
    }
    assert Adder().validate_arguments({"a": 1, "b": 2.5}) == {"a": 1, "b": 2.5}
    with pytest.raises(ToolError, match="must be of type number, got str"):
        Adder()(1, "2")
    assert Adder()(1, b=2) == 3
    with pytest.raises(ToolError, match="multiple values for argument 'a'"):
        Adder()(1, a=2)
    with pytest.raises(ToolError, match=r"takes 2 argument\(s\) \(a, b\) but 3 were given"):
        Adder()(1, 2, 3)


def test_tool_decorator_refuses_undocumented_or_untyped_functions() -> None:
    def no_doc(x: int) -> int:
        return x

    def no_hint(x) -> int:  # type: ignore[no-untyped-def]
        """Doc.

        Args:
            x: a number
        """
        return 1

    def undocumented_arg(x: int, y: int) -> int:
        """Doc.

        Args:
            x: a number
        """
        return x

    def no_return(x: int):  # type: ignore[no-untyped-def]
        """Doc.

        Args:
            x: a number
        """

    def star(*xs: int) -> int:
        """Doc."""
        return 0

    cases: list[tuple[Callable[..., Any], str]] = [
        (no_doc, "needs a docstring"),
        (no_hint, "argument 'x' needs a type hint"),
        (undocumented_arg, "argument 'y' needs a description in the docstring's Args: section"),
        (no_return, "needs a return type hint"),
        (star, r"\*args/\*\*kwargs cannot be declared"),
    ]
    for fn, message in cases:
        with pytest.raises(ToolError, match=message):
            tool(fn)


def test_tool_names_must_be_public_identifiers() -> None:
    class Bad(Adder):
        name = "_private"

    with pytest.raises(ToolError, match="must be a Python identifier that does not start with '_'"):
        Bad()
    with pytest.raises(ToolError, match="output_type 'image'"):

        class Img(Adder):
            output_type = "image"

        Img()


def test_as_tool_accepts_plain_callables_leniently() -> None:
    def shout(text):  # type: ignore[no-untyped-def]
        return text.upper()

    t = as_tool(shout)
    assert t.name == "shout"
    assert t.inputs == {"text": {"type": "any", "description": ""}}
    assert t("hi") == "HI"
    assert as_tool(get_weather) is get_weather
    with pytest.raises(ToolError, match="is not a Tool or a callable"):
        as_tool(42)


def test_tool_with_custom_name_and_optional_union() -> None:
    @tool(name="lookup")
    def _impl(key: str, default: int | str | None = None) -> Any:
        """Look a key up.

        Args:
            key: the key
            default: returned when the key is missing
        """
        return default

    assert _impl.name == "lookup"
    assert _impl.inputs["default"] == {
        "type": "any",
        "description": "returned when the key is missing",
        "nullable": True,
    }
    assert _impl.output_type == "any"


def test_parse_docstring_sections() -> None:
    desc, args = parse_docstring(
        """Summary line.

        Args:
            a (str): first
                continued
            b: second
        Raises:
            ValueError: never an argument
        """
    )
    assert desc == "Summary line."
    assert args == {"a": "first continued", "b": "second"}
