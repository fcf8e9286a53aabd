"""Language models an agent talks to.

`Model.generate(messages, stop_sequences=, tools=)` takes OpenAI-style chat
messages ({"role", "content"}) and returns a `ChatMessage` with the text, any
native tool calls and the token usage. Two implementations:

- `OpenAICompatibleModel` for any `/v1/chat/completions` endpoint (OpenAI,
  vLLM, Ollama, TGI, llama.cpp server), on the official `openai` package
  (an optional extra: the base client stays grpcio + protobuf).
- `ScriptedModel` replays given responses and records what it was sent: the
  offline model for tests and demos.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterable
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


class ModelHTTPError(ModelError):
    """The endpoint answered an HTTP error (after retries, for 429 and 5xx)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class ModelRateLimited(ModelHTTPError):
    """HTTP 429 after every retry: slow down, or raise the endpoint's quota."""


class ModelAuthError(ModelHTTPError):
    """HTTP 401/403: the API key is missing, wrong or lacks access."""


class ModelTimeout(ModelError):
    """No answer within the timeout (after retries)."""


class ModelUnavailable(ModelError):
    """The endpoint could not be reached (after retries)."""


class OpenAICompatibleModel(Model):
    """A model behind an OpenAI-compatible `/chat/completions` endpoint.

    Built on the official `openai` package (`pip install 'corral[openai]'`),
    which retries 408/409/429/5xx answers and connection failures with
    exponential backoff (honouring Retry-After) up to `max_retries` times,
    and bounds each request by `timeout` seconds. Failures are typed:
    ModelRateLimited, ModelAuthError, ModelHTTPError, ModelTimeout,
    ModelUnavailable (all ModelError).

    base_url: the API root, e.g. "https://api.openai.com/v1" or
    "http://localhost:11434/v1" (Ollama). The API key comes from `api_key`,
    else the environment variable `api_key_env` (default OPENAI_API_KEY);
    local servers usually need none (then no Authorization header is sent).
    `native_tools`: send tool schemas in the request's `tools` field (set
    False for endpoints without function calling; the ToolCallingAgent then
    parses tool calls from the text). `stream_to`: a callable that receives
    the model's text as it is generated (the request then streams).
    """

    def __init__(
        self,
        model_id: str,
        base_url: str = "https://api.openai.com/v1",
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 3,
        temperature: float | None = None,
        max_tokens: int | None = None,
        native_tools: bool = True,
        extra_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        stream_to: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        try:
            import openai
        except ImportError as exc:
            raise ModelError(
                f"OpenAICompatibleModel needs the openai package: pip install 'corral[openai]' "
                f"({exc})"
            ) from exc
        self._openai = openai
        self.model_id = model_id
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.timeout = timeout
        self.max_retries = max_retries
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.supports_native_tools = native_tools
        self.extra_body = dict(extra_body or {})
        self.headers = dict(headers or {})
        self.stream_to = stream_to
        self._client: Any = openai.OpenAI(
            api_key=self.api_key or "no-key",  # never sent: see _request_headers
            base_url=self.base_url,
            timeout=timeout,
            max_retries=max_retries,
            default_headers=self.headers or None,
        )

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

    def _request_headers(self) -> dict[str, Any]:
        return {} if self.api_key else {"Authorization": self._openai.Omit()}

    def _generate(
        self,
        messages: list[Message],
        *,
        stop_sequences: list[str] | None,
        tools: list[dict[str, Any]] | None,
    ) -> ChatMessage:
        body = self.request_body(messages, stop_sequences, tools)
        model = body.pop("model")
        messages_ = body.pop("messages")
        try:
            if self.stream_to is not None:
                return self._generate_streaming(model, messages_, body)
            raw = self._client.chat.completions.with_raw_response.create(
                model=model,
                messages=messages_,
                extra_body=body,
                extra_headers=self._request_headers(),
            )
            data = raw.http_response.read()
        except self._openai.OpenAIError as exc:
            raise self._typed_error(exc) from exc
        if len(data) > MAX_RESPONSE_BYTES:
            raise ModelError(f"{self.url} answered more than {MAX_RESPONSE_BYTES} bytes")
        return self.parse_response(data)

    def _generate_streaming(
        self, model: str, messages: list[Message], body: dict[str, Any]
    ) -> ChatMessage:
        """Stream the answer: text deltas go to `stream_to` as they arrive."""
        assert self.stream_to is not None
        stream = self._client.chat.completions.create(
            model=model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=body,
            extra_headers=self._request_headers(),
        )
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage = TokenUsage()
        size = 0
        for chunk in stream:
            if chunk.usage is not None:
                usage = TokenUsage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            for choice in chunk.choices or ():
                delta = choice.delta
                if delta.content:
                    size += len(delta.content)
                    if size > MAX_RESPONSE_BYTES:
                        stream.close()
                        raise ModelError(
                            f"{self.url} streamed more than {MAX_RESPONSE_BYTES} bytes"
                        )
                    text.append(delta.content)
                    self.stream_to(delta.content)
                for call in delta.tool_calls or ():
                    entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                    entry["id"] = call.id or entry["id"]
                    if call.function is not None:
                        entry["name"] += call.function.name or ""
                        entry["arguments"] += call.function.arguments or ""
        requests = [
            ToolCallRequest(c["name"], _decode_arguments(c["arguments"]), c["id"] or f"call_{i}")
            for i, c in sorted(calls.items())
        ]
        return ChatMessage(content="".join(text), tool_calls=requests, token_usage=usage)

    def _typed_error(self, exc: Exception) -> ModelError:
        openai = self._openai
        if isinstance(exc, openai.APITimeoutError):
            return ModelTimeout(
                f"{self.url} did not answer within {self.timeout:g} s "
                f"({self.max_retries} retries); raise timeout= or check the endpoint"
            )
        if isinstance(exc, openai.APIConnectionError):
            return ModelUnavailable(
                f"cannot reach the model endpoint {self.url}: {exc}; check --base-url"
            )
        if isinstance(exc, openai.APIStatusError):
            code = exc.response.status_code
            try:
                detail = exc.response.text[:2000]
            except Exception:  # a streamed body that cannot be read again
                detail = str(exc)
            message = f"{self.url} answered HTTP {code}: {detail}"
            if isinstance(exc, openai.RateLimitError):
                return ModelRateLimited(
                    message + f" (after {self.max_retries} retries; slow down or raise the quota)",
                    code,
                )
            if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
                return ModelAuthError(message + " (check the API key: --api-key-env)", code)
            return ModelHTTPError(message, code)
        return ModelError(f"{self.url} did not answer in the chat-completions format: {exc}")

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
            calls.append(
                ToolCallRequest(
                    name=str(fn.get("name", "")),
                    arguments=_decode_arguments(fn.get("arguments", {})),
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


def _decode_arguments(args: Any) -> Any:
    """A tool call's arguments as a dict; text that is not JSON is kept for the agent to report."""
    if isinstance(args, str):
        try:
            return json.loads(args) if args.strip() else {}
        except ValueError:
            return args
    return args
