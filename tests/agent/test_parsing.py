"""Reading actions out of model text: code blocks and JSON tool calls."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.parsing import (
    CODE_FORMAT_HELP,
    TOOL_FORMAT_HELP,
    FormatError,
    extract_code,
    parse_tool_calls,
    truncate,
)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Thought: go\n```py\nx = 1\nprint(x)\n```", "x = 1\nprint(x)"),
        ("Thought: go\n```python\nx = 1\n```\n", "x = 1"),
        ("```Python3\ny = 2\n```<end_code>", "y = 2"),
        ("Thought: tags\n<code>\nz = 3\n</code>", "z = 3"),
        ("two blocks\n```py\na = 1\n```\nthen\n```py\nb = a\n```", "a = 1\n\nb = a"),
        # a stop sequence cut the closing fence off
        ("Thought: cut\n```py\nfinal_answer(4)\n", "final_answer(4)"),
        ("fences win over tags\n```py\nq = 1\n```\n<code>r = 2</code>", "q = 1"),
    ],
)
def test_extract_code_variants(text: str, code: str) -> None:
    assert extract_code(text) == code


@pytest.mark.parametrize(
    "text",
    [
        "I think the answer is 4.",
        '```json\n{"a": 1}\n```',
        "```py\n\n```",
        "",
    ],
)
def test_extract_code_format_error_tells_model_the_format(text: str) -> None:
    with pytest.raises(FormatError) as info:
        extract_code(text)
    assert str(info.value) == CODE_FORMAT_HELP
    assert "```py" in str(info.value)


def test_parse_tool_calls_shapes() -> None:
    calls = parse_tool_calls('Action:\n{"name": "add", "arguments": {"a": 1, "b": 2}}')
    assert [(c.name, c.arguments) for c in calls] == [("add", {"a": 1, "b": 2})]

    fenced = parse_tool_calls('Action:\n```json\n{"tool": "echo", "args": {"x": "hi"}}\n```')
    assert [(c.name, c.arguments) for c in fenced] == [("echo", {"x": "hi"})]

    openai_shape = parse_tool_calls(
        '{"id": "c1", "function": {"name": "f", "arguments": "{\\"k\\": 3}"}}'
    )
    assert [(c.name, c.arguments) for c in openai_shape] == [("f", {"k": 3})]

    several = parse_tool_calls('[{"name": "a", "arguments": {}}, {"name": "b"}]')
    assert [c.name for c in several] == ["a", "b"]
    assert several[1].arguments == {}

    # JSON that is not a tool call is skipped in favour of the one that is
    skipped = parse_tool_calls('Note {"x": 1} then {"name": "g", "arguments": {"y": 2}}')
    assert [(c.name, c.arguments) for c in skipped] == [("g", {"y": 2})]


def test_parse_tool_calls_format_error() -> None:
    with pytest.raises(FormatError) as info:
        parse_tool_calls("The answer is 4")
    assert str(info.value) == TOOL_FORMAT_HELP


def test_truncate_keeps_head_and_tail() -> None:
    assert truncate("short", 10) == "short"
    text = "a" * 50 + "b" * 50
    out = truncate(text, 20)
    assert out.startswith("a" * 10) and out.endswith("b" * 10)
    assert "[80 characters cut]" in out


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('`py{}[]":,<>/code\n an1'))))
def test_parsers_only_ever_raise_format_error(text: str) -> None:
    """Model output is untrusted text: the parsers never crash on it."""
    for parse in (extract_code, parse_tool_calls):
        try:
            parse(text)
        except FormatError:
            pass


@given(st.text(min_size=1).filter(lambda s: s.strip() and "```" not in s))
def test_fenced_code_round_trips(code: str) -> None:
    assert extract_code(f"Thought: x\n```py\n{code}\n```") == code.strip("\n")
