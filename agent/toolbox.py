"""The default toolbox (`add_base_tools=True`): web search, web pages, speech-to-text.

Every tool here runs on the client, never in the sandbox (which has no
network): a snippet calls the stub, the call comes back here.

- `WebSearchTool` (`web_search`): DuckDuckGo and friends through the maintained
  `ddgs` package (`pip install 'corral[tools]'`), or any `search(query,
  max_results) -> [{title, href, body}]` function you give it.
- `VisitWebpageTool` (`visit_webpage`): fetches an http(s) page and returns
  readable Markdown, bounded in bytes read and characters returned. The URL
  comes from the model, so by default it refuses hosts that resolve to
  loopback, private, link-local or reserved addresses (your intranet, cloud
  metadata endpoints); `allow_private=True` lifts that. (A DNS answer that
  changes between the check and the fetch is not defended against.)
- `TranscriberTool` (`transcriber`): speech-to-text through an
  OpenAI-compatible `/audio/transcriptions` endpoint (OpenAI, a local
  whisper server, ...): configurable base URL, model and API key variable.
  The audio is given as base64 text or an http(s) URL (same address policy).
- `python_interpreter` (for a ToolCallingAgent) is `agent.agents.PythonInterpreterTool`,
  which the agent adds itself when it has somewhere to run code.

Standard library HTTP only, apart from `ddgs`.
"""

from __future__ import annotations

import base64
import binascii
import html.parser
import ipaddress
import json
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from agent.errors import ToolError
from agent.tools import Tool

DEFAULT_TIMEOUT_S = 20.0
MAX_PAGE_BYTES = 2 << 20  # bytes of a page read before converting
MAX_PAGE_CHARS = 40_000  # characters of Markdown returned
MAX_AUDIO_BYTES = 25 << 20  # the OpenAI endpoint's own upload limit
USER_AGENT = "corral-agent/0.1 (+https://github.com/corral)"

SearchFn = Callable[[str, int], list[dict[str, Any]]]


# -- addresses ----------------------------------------------------------------


def check_public_url(url: str, *, allow_private: bool) -> str:
    """The URL if it is http(s) and (unless allowed) its host resolves to public addresses only."""
    if not isinstance(url, str):
        raise ToolError("url must be text")
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(f"only http(s) URLs with a host can be fetched, not {url[:200]!r}")
    if allow_private:
        return parts.geturl()
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 0, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise ToolError(f"cannot resolve {parts.hostname!r}: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            raise ToolError(
                f"{parts.hostname!r} resolves to the non-public address {address}; this tool "
                "only fetches public pages (the agent's owner can set allow_private=True)"
            )
    return parts.geturl()


def _fetch(url: str, *, timeout: float, max_bytes: int) -> tuple[bytes, str, bool]:
    """(body, content type, truncated) of a GET; errors become ToolError."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(max_bytes + 1)
            ctype = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raise ToolError(f"{url} answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ToolError(f"cannot fetch {url}: {exc}") from None
    return body[:max_bytes], ctype, len(body) > max_bytes


# -- HTML to Markdown ---------------------------------------------------------

_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head", "iframe", "form"})
_BLOCK = frozenset(
    {"p", "div", "section", "article", "main", "header", "footer", "nav", "aside", "table",
     "tr", "blockquote", "figure", "figcaption", "dl", "dt", "dd", "ul", "ol", "br", "hr"}
)  # fmt: skip


class _Markdown(html.parser.HTMLParser):
    """A small HTML -> Markdown converter: headings, paragraphs, links, lists, code."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.pre = 0
        self.href: str | None = None
        self.link_text: list[str] = []
        self.title: list[str] = []
        self.in_title = False

    def _emit(self, text: str) -> None:
        if self.href is not None:
            self.link_text.append(text)
        else:
            self.out.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag in _SKIP:
            self.skip += 1
            return
        if self.skip:
            return
        if re.fullmatch(r"h[1-6]", tag):
            self._emit("\n\n" + "#" * int(tag[1]) + " ")
        elif tag == "li":
            self._emit("\n- ")
        elif tag == "pre":
            self.pre += 1
            self._emit("\n\n```\n")
        elif tag == "code" and not self.pre:
            self._emit("`")
        elif tag in ("strong", "b"):
            self._emit("**")
        elif tag in ("em", "i"):
            self._emit("*")
        elif tag == "a":
            href = dict(attrs).get("href")
            if href and not href.startswith(("javascript:", "#")):
                self.href = href
                self.link_text = []
        elif tag in _BLOCK:
            self._emit("\n\n" if tag != "br" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
            self._emit("\n```\n\n")
        elif tag == "code" and not self.pre:
            self._emit("`")
        elif tag in ("strong", "b"):
            self._emit("**")
        elif tag in ("em", "i"):
            self._emit("*")
        elif tag == "a" and self.href is not None:
            text = " ".join("".join(self.link_text).split())
            href, self.href = self.href, None
            self.out.append(f"[{text}]({href})" if text else "")
        elif re.fullmatch(r"h[1-6]", tag) or tag in _BLOCK:
            self._emit("\n\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        if self.skip:
            return
        self._emit(data if self.pre else re.sub(r"\s+", " ", data))

    def markdown(self) -> str:
        text = "".join(self.out)
        text = re.sub(r"[ \t]+\n", "\n", text)
        text = re.sub(r"\n[ \t]+", "\n", text)
        return re.sub(r"\n{3,}", "\n\n", text).strip()


def html_to_markdown(page: str) -> tuple[str, str]:
    """(title, Markdown) of an HTML document."""
    parser = _Markdown()
    try:
        parser.feed(page)
        parser.close()
    except (AssertionError, ValueError):  # pathological markup: keep what was parsed
        pass
    return " ".join("".join(parser.title).split()), parser.markdown()


def _decode(body: bytes, content_type: str) -> str:
    match = re.search(r"charset=([\w.-]+)", content_type, re.I)
    try:
        return body.decode(match.group(1) if match else "utf-8", "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


# -- tools ----------------------------------------------------------------------


class WebSearchTool(Tool):
    """`web_search(query)`: titles, links and snippets of the top results."""

    name = "web_search"
    description = (
        "Search the web. Returns the top results as Markdown: title, link and a snippet each."
    )
    inputs = {"query": {"type": "string", "description": "what to search for"}}
    output_type = "string"

    def __init__(
        self,
        max_results: int = 10,
        *,
        search: SearchFn | None = None,
        backend: str = "auto",
        region: str = "wt-wt",
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        super().__init__()
        self.max_results = max_results
        self.search = search
        self.backend = backend
        self.region = region
        self.timeout = timeout

    def _ddgs_search(self, query: str, max_results: int) -> list[dict[str, Any]]:
        try:
            from ddgs import DDGS
            from ddgs.exceptions import DDGSException
        except ImportError as exc:
            raise ToolError(
                f"web_search needs the ddgs package: pip install 'corral[tools]' ({exc})"
            ) from None
        try:
            results = DDGS(timeout=int(self.timeout)).text(
                query, max_results=max_results, backend=self.backend, region=self.region
            )
        except DDGSException as exc:
            raise ToolError(f"the web search failed: {exc}") from None
        return list(results)

    def forward(self, query: str) -> str:  # type: ignore[override]
        if not query.strip():
            raise ToolError("the query is empty")
        search = self.search or self._ddgs_search
        results = search(query, self.max_results)[: self.max_results]
        if not results:
            return f"No results for {query!r}; try a shorter or different query."
        blocks = []
        for r in results:
            title = str(r.get("title", "")).strip() or "(untitled)"
            href = str(r.get("href") or r.get("url") or "")
            body = str(r.get("body") or r.get("snippet") or "").strip()
            blocks.append(f"[{title}]({href})\n{body}")
        return "## Search results\n\n" + "\n\n".join(blocks)


class VisitWebpageTool(Tool):
    """`visit_webpage(url)`: the page as Markdown (bounded)."""

    name = "visit_webpage"
    description = (
        "Fetch a web page and return its content as Markdown (long pages are cut). "
        "Use it to read a page found with web_search."
    )
    inputs = {"url": {"type": "string", "description": "the http(s) URL of the page"}}
    output_type = "string"

    def __init__(
        self,
        max_chars: int = MAX_PAGE_CHARS,
        *,
        max_bytes: int = MAX_PAGE_BYTES,
        timeout: float = DEFAULT_TIMEOUT_S,
        allow_private: bool = False,
    ) -> None:
        super().__init__()
        self.max_chars = max_chars
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.allow_private = allow_private

    def forward(self, url: str) -> str:  # type: ignore[override]
        url = check_public_url(url, allow_private=self.allow_private)
        body, ctype, cut = _fetch(url, timeout=self.timeout, max_bytes=self.max_bytes)
        text = _decode(body, ctype)
        if "html" in ctype.lower() or re.search(r"<html|<body|<p[ >]", text[:2000], re.I):
            title, text = html_to_markdown(text)
            if title:
                text = f"# {title}\n\n{text}"
        elif not ctype.lower().startswith(("text/", "application/json", "application/xml")):
            return f"{url} is not a text page ({ctype or 'unknown type'}, {len(body)} bytes)."
        if len(text) > self.max_chars or cut:
            text = text[: self.max_chars] + "\n\n[... page cut: it is longer than shown]"
        return text


class TranscriberTool(Tool):
    """`transcriber(audio)`: speech to text through an OpenAI-compatible endpoint."""

    name = "transcriber"
    description = (
        "Transcribe speech to text. `audio` is the audio file as base64 text, or an http(s) "
        "URL of the file."
    )
    inputs = {
        "audio": {"type": "string", "description": "base64 of the audio file, or its URL"},
        "language": {
            "type": "string",
            "description": "ISO-639-1 code of the spoken language, e.g. 'en' (optional)",
            "nullable": True,
        },
    }
    output_type = "string"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        allow_private_urls: bool = False,
    ) -> None:
        super().__init__()
        self.base_url = (
            base_url or os.environ.get("CORRAL_TRANSCRIBE_BASE_URL") or "https://api.openai.com/v1"
        ).rstrip("/")
        self.model = model or os.environ.get("CORRAL_TRANSCRIBE_MODEL") or "whisper-1"
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.timeout = timeout
        self.allow_private_urls = allow_private_urls

    def _audio_bytes(self, audio: str) -> bytes:
        if audio.startswith(("http://", "https://")):
            url = check_public_url(audio, allow_private=self.allow_private_urls)
            data, _, cut = _fetch(url, timeout=self.timeout, max_bytes=MAX_AUDIO_BYTES)
            if cut:
                raise ToolError(f"the audio at {url} is larger than {MAX_AUDIO_BYTES} bytes")
            return data
        if audio.startswith("data:"):
            audio = audio.split(",", 1)[-1]
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise ToolError("audio must be base64 text or an http(s) URL") from None
        if not data:
            raise ToolError("the audio is empty")
        if len(data) > MAX_AUDIO_BYTES:
            raise ToolError(f"the audio is larger than {MAX_AUDIO_BYTES} bytes")
        return data

    def forward(self, audio: str, language: str | None = None) -> str:  # type: ignore[override]
        data = self._audio_bytes(audio)
        fields = {"model": self.model, "response_format": "json"}
        if language:
            fields["language"] = language
        boundary = uuid.uuid4().hex
        parts = []
        for key, value in fields.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="audio"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
        parts.append(f"--{boundary}--\r\n".encode())
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/audio/transcriptions"
        request = urllib.request.Request(url, data=b"".join(parts), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read(MAX_PAGE_BYTES)
        except urllib.error.HTTPError as exc:
            detail = exc.read(500).decode("utf-8", "replace")
            raise ToolError(f"{url} answered HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ToolError(
                f"cannot reach the transcription endpoint {url}: {exc}; check base_url"
            ) from None
        try:
            text = json.loads(raw)["text"]
        except (ValueError, KeyError, TypeError):
            raise ToolError(f"{url} did not answer {{'text': ...}}: {raw[:200]!r}") from None
        return str(text).strip()


def base_tools() -> list[Tool]:
    """The tools `add_base_tools=True` adds (python_interpreter is the agent's own)."""
    return [WebSearchTool(), VisitWebpageTool(), TranscriberTool()]


__all__ = [
    "TranscriberTool",
    "VisitWebpageTool",
    "WebSearchTool",
    "base_tools",
    "check_public_url",
    "html_to_markdown",
]
