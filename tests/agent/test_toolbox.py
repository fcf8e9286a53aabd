"""The default toolbox against HTTP servers the tests start (live endpoints on request)."""

from __future__ import annotations

import base64
import json
import os
import threading
import urllib.parse
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agent import CodeAgent, ScriptedModel, ToolCallingAgent
from agent.errors import ToolError
from agent.toolbox import (
    TranscriberTool,
    VisitWebpageTool,
    WebSearchTool,
    html_to_markdown,
)

PAGE = """<!doctype html><html><head><title>Corral  notes</title>
<style>body { color: red }</style><script>alert('x')</script></head>
<body><h1>Fences</h1><p>Snippets run in a <b>sandbox</b>, see
<a href="https://example.org/doc">the docs</a>.</p>
<ul><li>no network</li><li>no secrets</li></ul>
<pre>x = 1
y = 2</pre><p>Inline <code>final_answer()</code> ends it.</p></body></html>"""
AUDIO = b"RIFF\x00\x01fake-wave-bytes"


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/page":
            self._send(200, "text/html; charset=utf-8", PAGE.encode())
        elif url.path == "/big":
            self._send(200, "text/html", ("<p>" + "word " * 50_000 + "</p>").encode())
        elif url.path == "/bin":
            self._send(200, "application/octet-stream", b"\x00\x01\x02")
        elif url.path == "/audio.wav":
            self._send(200, "audio/wav", AUDIO)
        elif url.path == "/search":
            q = urllib.parse.parse_qs(url.query)["q"][0]
            hits = [
                {"title": f"About {q}", "href": "https://a.example/1", "body": "first hit"},
                {"title": "Second", "href": "https://a.example/2", "body": "second hit"},
            ]
            self._send(200, "application/json", json.dumps(hits).encode())
        else:
            self._send(404, "text/plain", b"not here")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/v1/audio/transcriptions":
            self._send(404, "text/plain", b"no")
            return
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        fields = {
            part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()
        }
        self.seen.append({"auth": self.headers.get("Authorization"), **fields})
        if fields.get(b"model") == b"broken" or fields.get("model") == b"broken":
            self._send(500, "application/json", b'{"error": "model crashed"}')
            return
        self._send(200, "application/json", json.dumps({"text": " hello corral "}).encode())


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_visit_webpage_returns_bounded_markdown(server: str) -> None:
    tool = VisitWebpageTool(allow_private=True)
    text = tool(url=f"{server}/page")
    assert text.startswith("# Corral notes\n\n# Fences")
    assert "Snippets run in a **sandbox**, see [the docs](https://example.org/doc)." in text
    assert "- no network\n- no secrets" in text
    assert "```\nx = 1\ny = 2\n```" in text
    assert "`final_answer()`" in text
    assert "alert" not in text and "color: red" not in text
    big = VisitWebpageTool(max_chars=1000, allow_private=True)(url=f"{server}/big")
    assert len(big) < 1100 and big.endswith("[... page cut: it is longer than shown]")
    assert "not a text page" in tool(url=f"{server}/bin")
    with pytest.raises(ToolError, match="HTTP 404"):
        tool(url=f"{server}/missing")


def test_visit_webpage_refuses_private_hosts_and_other_schemes(server: str) -> None:
    tool = VisitWebpageTool()
    with pytest.raises(ToolError, match=r"non-public address 127\.0\.0\.1"):
        tool(url=f"{server}/page")
    with pytest.raises(ToolError, match="non-public address"):
        tool(url="http://169.254.169.254/latest/meta-data/")
    with pytest.raises(ToolError, match=r"only http\(s\) URLs"):
        tool(url="file:///etc/passwd")


def test_web_search_formats_results_from_a_search_backend(server: str) -> None:
    import urllib.request

    def local_search(query: str, max_results: int) -> list[dict[str, Any]]:
        url = f"{server}/search?q={urllib.parse.quote(query)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return list(json.loads(response.read()))[:max_results]

    text = WebSearchTool(max_results=1, search=local_search)(query="corral")
    assert text == "## Search results\n\n[About corral](https://a.example/1)\nfirst hit"
    empty = WebSearchTool(search=lambda q, n: [])(query="nothing")
    assert "No results" in empty
    with pytest.raises(ToolError, match="empty"):
        WebSearchTool(search=local_search)(query="  ")


@pytest.mark.skipif(
    os.environ.get("CORRAL_LIVE_TESTS") != "1", reason="set CORRAL_LIVE_TESTS=1 to reach DDGS"
)
def test_web_search_live_through_ddgs() -> None:
    text = WebSearchTool(max_results=3)(query="Python programming language")
    assert text.startswith("## Search results") and "](http" in text


def test_transcriber_posts_to_an_openai_compatible_endpoint(server: str) -> None:
    _Handler.seen.clear()
    tool = TranscriberTool(base_url=f"{server}/v1", model="whisper-tiny", api_key="k-123")
    assert tool(audio=base64.b64encode(AUDIO).decode(), language="en") == "hello corral"
    [sent] = _Handler.seen
    assert sent["auth"] == "Bearer k-123"
    assert sent["model"] == b"whisper-tiny" and sent["language"] == b"en"
    assert sent["file"] == AUDIO
    by_url = TranscriberTool(base_url=f"{server}/v1", api_key="", allow_private_urls=True)
    assert by_url(audio=f"{server}/audio.wav") == "hello corral"
    assert _Handler.seen[-1]["file"] == AUDIO and _Handler.seen[-1]["auth"] is None
    with pytest.raises(ToolError, match="HTTP 500"):
        TranscriberTool(base_url=f"{server}/v1", model="broken")(audio="AAAA")
    with pytest.raises(ToolError, match="base64"):
        tool(audio="not base64 !")
    with pytest.raises(ToolError, match="non-public"):
        TranscriberTool(base_url=f"{server}/v1")(audio=f"{server}/audio.wav")


def test_html_to_markdown_survives_broken_markup() -> None:
    title, text = html_to_markdown("<p>open <b>bold <a href='x'>link")
    assert title == "" and "open **bold" in text


def test_add_base_tools_reach_the_snippets(server: str) -> None:
    model = ScriptedModel(
        [
            f"```py\npage = visit_webpage(url='{server}/page')\nfinal_answer(page.splitlines()[0])\n```"
        ]
    )
    agent = CodeAgent(
        tools=[VisitWebpageTool(allow_private=True)],  # given tools win over the defaults
        model=model,
        executor="process",
        add_base_tools=True,
    )
    with agent:
        assert sorted(agent.tools) == ["transcriber", "visit_webpage", "web_search"]
        assert "def web_search(query: str) -> str:" in agent.system_prompt
        assert agent.run("title?") == "# Corral notes"
    calling = ToolCallingAgent(model=ScriptedModel([]), executor="local", add_base_tools=True)
    assert sorted(calling.all_tools) == [
        "final_answer",
        "python_interpreter",
        "transcriber",
        "visit_webpage",
        "web_search",
    ]
