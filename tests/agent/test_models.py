"""Models: ScriptedModel, and OpenAICompatibleModel against a real local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agent import ChatMessage, ModelError, OpenAICompatibleModel, ScriptedModel, TokenUsage


def test_scripted_model_replays_and_records() -> None:
    model = ScriptedModel(["first Observation: cut here", ChatMessage(content="second")])
    msgs = [{"role": "user", "content": "hello"}]
    first = model.generate(msgs, stop_sequences=["Observation:"])
    assert first.content == "first "  # stop sequences applied like an endpoint
    msgs.append({"role": "assistant", "content": "x"})  # later mutation is not seen
    second = model.generate(msgs, tools=[{"type": "function"}])
    assert second.content == "second"
    assert model.calls_log[0] == {
        "messages": [{"role": "user", "content": "hello"}],
        "stop_sequences": ["Observation:"],
        "tools": None,
    }
    assert model.calls_log[1]["tools"] == [{"type": "function"}]
    assert first.token_usage == TokenUsage(2, 2)
    assert model.total_usage.total_tokens > 0
    assert model.remaining == 0
    with pytest.raises(ModelError, match="ran out of responses: it was called 3 times but has 2"):
        model.generate(msgs)


class _Endpoint:
    """A chat-completions server on 127.0.0.1 that answers from a queue."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[tuple[int, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                endpoint.requests.append(
                    {
                        "path": self.path,
                        "auth": self.headers.get("Authorization"),
                        "body": json.loads(self.rfile.read(length)),
                    }
                )
                status, payload = endpoint.answers.pop(0)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def endpoint() -> Iterator[_Endpoint]:
    ep = _Endpoint()
    yield ep
    ep.close()


def _completion(content: str | None, tool_calls: list[Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }


def test_openai_compatible_text_completion(
    endpoint: _Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", "sk-test")
    endpoint.answers.append((200, _completion("Thought: hi\n```py\nprint(1)\n```")))
    model = OpenAICompatibleModel(
        "small-model", endpoint.base_url, api_key_env="MY_KEY", temperature=0.0
    )
    msg = model.generate(
        [{"role": "user", "content": "task"}], stop_sequences=["Observation:", "Calling tools:"]
    )
    assert msg.content == "Thought: hi\n```py\nprint(1)\n```"
    assert msg.token_usage == TokenUsage(12, 5)
    assert model.total_usage == TokenUsage(12, 5)
    req = endpoint.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["auth"] == "Bearer sk-test"
    assert req["body"] == {
        "model": "small-model",
        "messages": [{"role": "user", "content": "task"}],
        "stop": ["Observation:", "Calling tools:"],
        "temperature": 0.0,
    }


def test_openai_compatible_native_tool_calls(endpoint: _Endpoint) -> None:
    endpoint.answers.append(
        (
            200,
            _completion(
                None,
                [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                    },
                    {
                        "id": "call_10",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{bad"},
                    },
                ],
            ),
        )
    )
    model = OpenAICompatibleModel("m", endpoint.base_url, api_key="k2")
    tools = [{"type": "function", "function": {"name": "add", "parameters": {}}}]
    msg = model.generate([{"role": "user", "content": "add"}], tools=tools)
    assert msg.content == ""
    assert [(c.id, c.name, c.arguments) for c in msg.tool_calls] == [
        ("call_9", "add", {"a": 1, "b": 2}),
        ("call_10", "f", "{bad"),  # undecodable arguments kept as text for the agent to report
    ]
    assert endpoint.requests[0]["body"]["tools"] == tools
    assert endpoint.requests[0]["auth"] == "Bearer k2"


def test_openai_compatible_without_native_tools_sends_none(endpoint: _Endpoint) -> None:
    endpoint.answers.append((200, _completion("ok")))
    model = OpenAICompatibleModel("m", endpoint.base_url, api_key="", native_tools=False)
    model.generate([{"role": "user", "content": "x"}], tools=[{"type": "function"}])
    assert "tools" not in endpoint.requests[0]["body"]
    assert endpoint.requests[0]["auth"] is None


def test_openai_compatible_errors_are_model_errors(endpoint: _Endpoint) -> None:
    model = OpenAICompatibleModel("m", endpoint.base_url, api_key="k")
    endpoint.answers.append((401, {"error": {"message": "invalid api key"}}))
    with pytest.raises(ModelError, match=r"answered HTTP 401: .*invalid api key"):
        model.generate([{"role": "user", "content": "x"}])
    endpoint.answers.append((200, b"not json"))
    with pytest.raises(ModelError, match="did not answer in the chat-completions format"):
        model.generate([{"role": "user", "content": "x"}])
    endpoint.answers.append((200, {"choices": []}))
    with pytest.raises(ModelError, match="chat-completions format"):
        model.generate([{"role": "user", "content": "x"}])


def test_openai_compatible_unreachable() -> None:
    model = OpenAICompatibleModel("m", "http://127.0.0.1:9/v1", api_key="k", timeout=5)
    with pytest.raises(ModelError, match="cannot reach the model endpoint"):
        model.generate([{"role": "user", "content": "x"}])
