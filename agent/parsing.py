"""Reading actions out of model text: code blocks and JSON tool calls.

Models are sloppy; the parsers accept the common shapes (```py / ```python
fences, <code> tags, an unclosed fence cut by a stop sequence, JSON tool calls
in fences or inline) and otherwise raise `FormatError` with a message that is
sent back to the model, telling it exactly what shape to use.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agent.models import ToolCallRequest

_FENCE = re.compile(
    r"```(?:py|python|python3)[ \t]*\n(.*?)(?:\n?```|\Z)", re.DOTALL | re.IGNORECASE
)
_CODE_TAG = re.compile(r"<code>(.*?)(?:</code>|\Z)", re.DOTALL)
_JSON_FENCE = re.compile(r"```(?:json)?[ \t]*\n(.*?)\n?```", re.DOTALL)

CODE_FORMAT_HELP = """Your answer has no code block, so nothing was run.
Answer in this format:
Thought: your reasoning
```py
# your code
```
End with final_answer(...) once you have the answer."""

TOOL_FORMAT_HELP = """Your answer has no tool call, so nothing was run.
Call exactly one tool per answer, as JSON:
Action:
{"name": "tool_name", "arguments": {"arg": "value"}}
Call the final_answer tool with the answer when you have it."""


class FormatError(ValueError):
    """The model's answer has no usable action; the message is for the model."""


def extract_code(text: str) -> str:
    """The code of every ```py block (or <code> tag) in `text`, joined; else FormatError."""
    blocks = [b.strip("\n") for b in _FENCE.findall(text)]
    if not blocks:
        blocks = [b.strip("\n") for b in _CODE_TAG.findall(text)]
    blocks = [b for b in blocks if b.strip()]
    if not blocks:
        raise FormatError(CODE_FORMAT_HELP)
    return "\n\n".join(blocks)


def _as_call(obj: Any) -> ToolCallRequest | None:
    if not isinstance(obj, dict):
        return None
    name = obj.get("name", obj.get("tool", obj.get("tool_name")))
    if isinstance(obj.get("function"), dict):  # OpenAI's own shape
        return _as_call(obj["function"])
    if not isinstance(name, str) or not name:
        return None
    args = obj.get("arguments", obj.get("args", obj.get("parameters", obj.get("input", {}))))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            pass
    return ToolCallRequest(
        name=name, arguments=args if args is not None else {}, id=str(obj.get("id", ""))
    )


def _calls_from(obj: Any) -> list[ToolCallRequest]:
    items = obj if isinstance(obj, list) else [obj]
    calls = [c for c in (_as_call(i) for i in items) if c is not None]
    return calls if len(calls) == len(items) else []


def parse_tool_calls(text: str) -> list[ToolCallRequest]:
    """Tool calls written as JSON in model text; FormatError when there are none."""
    for block in _JSON_FENCE.findall(text):
        try:
            calls = _calls_from(json.loads(block))
        except ValueError:
            continue
        if calls:
            return calls
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        calls = _calls_from(obj)
        if calls:
            return calls
    raise FormatError(TOOL_FORMAT_HELP)


def truncate(text: str, max_chars: int) -> str:
    """Keep the head and tail of long text, saying how much was cut."""
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n... [{cut} characters cut] ...\n{text[-half:]}"
