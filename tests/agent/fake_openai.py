"""A local OpenAI-compatible chat-completions server for tests (real HTTP on 127.0.0.1).

Each request pops the next scripted answer: `("text", content)` for a
completion (streamed as SSE when the request asks for a stream), or
`("status", code, body, headers)` for an HTTP error, or `("sleep", seconds)`
to stall before answering with the next item. Requests are recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, script: list[tuple[Any, ...]] | None = None) -> None:
        self.script: list[tuple[Any, ...]] = list(script or [])
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with server.lock:
                    server.requests.append(
                        {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                    )
                    item = server.script.pop(0) if server.script else ("status", 500, "no script")
                    while item[0] == "sleep":
                        time.sleep(item[1])
                        item = server.script.pop(0) if server.script else ("text", "")
                if item[0] == "status":
                    _, code, text, *rest = item
                    headers = rest[0] if rest else {}
                    data = json.dumps({"error": {"message": text}}).encode()
                    self.send_response(code)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                content = item[1]
                if body.get("stream"):
                    self._stream(content)
                    return
                data = json.dumps(completion(content)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, content: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                pieces = [content[i : i + 7] for i in range(0, len(content), 7)] or [""]
                for piece in pieces:
                    self._event(chunk({"content": piece}))
                self._event(chunk({}, finish="stop"))
                self._event({**chunk({}), "choices": [], "usage": usage(20, len(pieces))})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

            def _event(self, payload: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def usage(prompt: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": usage(12, 5),
    }


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


@contextmanager
def fake_openai(script: list[tuple[Any, ...]] | None = None) -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(script).start()
    try:
        yield server
    finally:
        server.close()
