"""Language models an agent talks to.

`Model.generate(messages, stop_sequences=, tools=)` takes OpenAI-style chat
messages ({"role", "content"}) and returns a `ChatMessage` with the text, any
native tool calls and the token usage. Two implementations:

- `OpenAICompatibleModel` for any `/v1/chat/completions` endpoint (OpenAI,
  vLLM, Ollama, TGI, llama.cpp server); standard library HTTP only.
- `ScriptedModel` replays given responses and records what it was sent: the
  offline model for tests and demos.
"""

from __future__ import annotations

import copy
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.errors import ModelError

Message = dict[str, Any]  # {"role": "system"|"user"|"assistant", "content": str}

# A chat-completions answer larger than this is refused (a runaway endpoint).
MAX_RESPONSE_BYTES = 16 << 20


@dataclass
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@dataclass
class ToolCallRequest:
    """A tool call a model asked for. `arguments` is a dict, or the raw text
    when the model produced arguments that are not a JSON object."""

    name: str
    arguments: Any
    id: str = ""


@dataclass
class ChatMessage:
    content: str = ""
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    token_usage: TokenUsage | None = None
    role: str = "assistant"
    raw: Any = None  # the endpoint's decoded answer, for debugging


class Model:
    """Base class: subclasses implement `_generate`; usage is totalled here."""

    model_id: str = "model"
    # True when the endpoint accepts a `tools` list (OpenAI function calling).
    supports_native_tools: bool = False

    def __init__(self) -> None:
        self.total_usage = TokenUsage()
        self.calls = 0

    def generate(
        self,
        messages: list[Message],
        *,
        stop_sequences: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> ChatMessage:
        message = self._generate(messages, stop_sequences=stop_sequences, tools=tools)
        self.calls += 1
        if message.token_usage is not None:
            self.total_usage = self.total_usage + message.token_usage
        return message

    def _generate(
        self,
        messages: list[Message],
        *,
        stop_sequences: list[str] | None,
        tools: list[dict[str, Any]] | None,
    ) -> ChatMessage:
        raise NotImplementedError


def apply_stop_sequences(text: str, stop_sequences: list[str] | None) -> str:
    """Cut text at the first stop sequence, as an endpoint does."""
    cut = len(text)
    for stop in stop_sequences or ():
        if stop:
            i = text.find(stop)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


def estimate_tokens(text: str) -> int:
    """Rough token count (about 4 characters per token) for models that report none."""
    return (len(text) + 3) // 4


class ScriptedModel(Model):
    """Replays `responses` in order; each is a str or a ChatMessage.

    `calls_log` records every request (messages, stop sequences, tools), so a
    test can assert what the agent showed the model. Stop sequences are applied
    to scripted text, like a real endpoint would. Token usage is estimated.
    """

    supports_native_tools = True

    def __init__(self, responses: Iterable[str | ChatMessage], model_id: str = "scripted") -> None:
        super().__init__()
        self.responses = list(responses)
        self.model_id = model_id
        self.calls_log: list[dict[str, Any]] = []

    @property
    def remaining(self) -> int:
        return len(self.responses) - len(self.calls_log)

    def _generate(
        self,
        messages: list[Message],
        *,
        stop_sequences: list[str] | None,
        tools: list[dict[str, Any]] | None,
    ) -> ChatMessage:
        index = len(self.calls_log)
        self.calls_log.append(
            {
                "messages": copy.deepcopy(messages),
                "stop_sequences": list(stop_sequences or ()),
                "tools": copy.deepcopy(tools),
            }
        )
        if index >= len(self.responses):
            raise ModelError(
                f"ScriptedModel ran out of responses: it was called {index + 1} times "
                f"but has {len(self.responses)}; add responses to the script"
            )
        item = self.responses[index]
        prompt_tokens = sum(estimate_tokens(str(m.get("content") or "")) for m in messages)
        if isinstance(item, ChatMessage):
            message = copy.deepcopy(item)
            message.content = apply_stop_sequences(message.content, stop_sequences)
        else:
            message = ChatMessage(content=apply_stop_sequences(item, stop_sequences))
        if message.token_usage is None:
            message.token_usage = TokenUsage(prompt_tokens, estimate_tokens(message.content))
        return message


class OpenAICompatibleModel(Model):
    """A model behind an OpenAI-compatible `/chat/completions` endpoint.

    base_url: the API root, e.g. "https://api.openai.com/v1" or
    "http://localhost:11434/v1" (Ollama). The API key comes from `api_key`,
    else the environment variable `api_key_env` (default OPENAI_API_KEY);
    local servers usually need none. `native_tools`: send tool schemas in the
    request's `tools` field (set False for endpoints without function calling;
    the ToolCallingAgent then parses tool calls from the text).
    """

    def __init__(
        self,
        model_id: str,
        base_url: str = "https://api.openai.com/v1",
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        temperature: float | None = None,
        max_tokens: int | None = None,
        native_tools: bool = True,
        extra_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.model_id = model_id
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.timeout = timeout
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.supports_native_tools = native_tools
        self.extra_body = dict(extra_body or {})
        self.headers = dict(headers or {})

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def request_body(
        self,
        messages: list[Message],
        stop_sequences: list[str] | None,
        tools: list[dict[str, Any]] | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model_id, "messages": messages}
        if stop_sequences:
            body["stop"] = list(stop_sequences)[:4]  # the API accepts at most 4
        if tools and self.supports_native_tools:
            body["tools"] = tools
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        body.update(self.extra_body)
        return body

    def _generate(
        self,
        messages: list[Message],
        *,
        stop_sequences: list[str] | None,
        tools: list[dict[str, Any]] | None,
    ) -> ChatMessage:
        data = json.dumps(self.request_body(messages, stop_sequences, tools)).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        headers.update(self.headers)
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode("utf-8", "replace")
            raise ModelError(f"{self.url} answered HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ModelError(
                f"cannot reach the model endpoint {self.url}: {exc}; check --base-url"
            ) from exc
        if len(raw) > MAX_RESPONSE_BYTES:
            raise ModelError(f"{self.url} answered more than {MAX_RESPONSE_BYTES} bytes")
        return self.parse_response(raw)

    def parse_response(self, raw: bytes) -> ChatMessage:
        """A ChatMessage from a chat-completions JSON answer (checked, not trusted)."""
        try:
            payload = json.loads(raw)
            message = payload["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelError(
                f"{self.url} did not answer in the chat-completions format: {raw[:300]!r}"
            ) from exc
        if not isinstance(message, dict):
            raise ModelError(f"{self.url}: choices[0].message is not an object")
        calls = []
        for i, call in enumerate(message.get("tool_calls") or ()):
            if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
                raise ModelError(
                    f"{self.url}: a tool call is not {{id, function: {{name, arguments}}}}"
                )
            fn = call["function"]
            args: Any = fn.get("arguments", {})
            if isinstance(args, str):
                try:
                    args = json.loads(args) if args.strip() else {}
                except ValueError:
                    pass  # left as text: the agent reports it to the model
            calls.append(
                ToolCallRequest(
                    name=str(fn.get("name", "")),
                    arguments=args,
                    id=str(call.get("id") or f"call_{i}"),
                )
            )
        usage = payload.get("usage") or {}
        token_usage = TokenUsage(
            int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        )
        return ChatMessage(
            content=message.get("content") or "",
            tool_calls=calls,
            token_usage=token_usage,
            raw=payload,
        )
