"""`corral mcp`: Corral as an MCP (Model Context Protocol) server.

    corral mcp --target 127.0.0.1:50051             # stdio, for a desktop MCP client
    corral mcp --target 127.0.0.1:50051 --http      # streamable HTTP on 127.0.0.1:8765/mcp

Tools served:

- `run_python(code)`: run a snippet; the text result carries the verdict,
  printed output, the last value and the error; figures and images the
  result carries (artifacts) come back as MCP image content. Variables
  persist across calls from the same client.
- `reset()`: drop the client's session (a fresh one opens on the next call).
- `upload_file(path, content, encoding)` / `download_file(path)`: the
  session's workspace.

Which calls share a session ("the same client"): over stdio, everything (one
process serves one client); over HTTP, the MCP session (`Mcp-Session-Id`,
set by clients that use the initialize handshake). The sessionless protocol
(2026-07-28) carries no client identity: such clients share one session per
`session` name they pass (default "default"), which is why `--http` listens
on loopback only. At most `max_clients` sessions are kept; the least recently
used one is closed beyond that.

Built on the `mcp` package (`pip install 'corral[mcp]'`), imported only here.
Blocking Corral calls run in worker threads; calls of one client are
serialised so its snippets never interleave.
"""

import argparse
import base64
import collections
import contextlib
import ipaddress
import mimetypes
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from agent.errors import CorralError, InvalidArgument
from agent.executors import AgentSession, Executor, resolve_executor
from agent.results import Result

DEFAULT_PORT = 8765
DEFAULT_MAX_CLIENTS = 32
STDIO_KEY = "stdio"
MAX_TEXT_CHARS = 100_000  # of output shown per call; the rest is cut with a note
SESSION_ID_HEADER = "mcp-session-id"
INSTALL_HINT = "pip install 'corral[mcp]'"


def _mcp() -> Any:
    try:
        import mcp_types
        from mcp.server import mcpserver
    except ImportError as exc:
        raise CorralError(f"the MCP server needs the mcp package: {INSTALL_HINT} ({exc})") from exc
    return mcpserver, mcp_types


class ClientSessions:
    """One Corral session per MCP client, opened on first use, LRU-capped."""

    def __init__(
        self, open_session: Callable[[], AgentSession], max_clients: int = DEFAULT_MAX_CLIENTS
    ) -> None:
        if max_clients < 1:
            raise InvalidArgument("max_clients must be at least 1")
        self._open = open_session
        self.max_clients = max_clients
        self._sessions: collections.OrderedDict[str, AgentSession] = collections.OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: str) -> AgentSession:
        """The client's session (call with its lock held); reopened when lost or closed."""
        with self._guard:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
        if session is not None and not (session.lost or session.closed):
            return session
        session = self._open()
        evicted: list[AgentSession] = []
        with self._guard:
            self._sessions[key] = session
            self._sessions.move_to_end(key)
            while len(self._sessions) > self.max_clients:
                _, old = self._sessions.popitem(last=False)
                evicted.append(old)
        for old in evicted:
            _close_quietly(old)
        return session

    def reset(self, key: str) -> bool:
        """Close the client's session; True when there was one."""
        with self._guard:
            session = self._sessions.pop(key, None)
        if session is None:
            return False
        _close_quietly(session)
        return True

    def close_all(self) -> None:
        with self._guard:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            _close_quietly(session)


def _close_quietly(session: AgentSession) -> None:
    try:
        session.close()
    except CorralError:
        pass  # already gone on the daemon's side


def format_result(result: Result) -> str:
    """The text an MCP client sees for one snippet run."""
    parts = [f"verdict: {result.verdict.value}"]
    if result.stdout:
        out = result.stdout
        if len(out) > MAX_TEXT_CHARS:
            out = out[:MAX_TEXT_CHARS] + "\n[... output cut]"
        parts.append("output:\n" + out.rstrip("\n"))
    if result.truncated:
        parts.append("[the sandbox truncated the output: print less]")
    if result.stderr:
        err = result.stderr
        if len(err) > MAX_TEXT_CHARS:
            err = err[:MAX_TEXT_CHARS] + "\n[... stderr cut]"
        parts.append("stderr:\n" + err.rstrip("\n"))
    if result.is_final_answer and result.final_answer is not None:
        parts.append("final answer: " + result.final_answer.repr)
    elif result.value is not None and result.value.type != "NoneType":
        parts.append("value: " + result.value.repr)
    if result.error is not None:
        if len(result.error.frames) > 1 and result.error.traceback:
            parts.append("error:\n" + result.error.traceback)
        else:
            parts.append(f"error: {result.error}")
    if result.session_lost:
        parts.append("the sandbox was lost: variables are gone; the next call starts afresh")
    return "\n".join(parts)


def artifact_images(result: Any) -> list[tuple[str, str, str]]:
    """(name, mime_type, base64 data) of each image artifact the result carries.

    Ready for results that carry `artifacts` as a list of {name, mime_type,
    data} (dicts or objects; data as bytes or base64 text); anything else is
    skipped.
    """
    images = []
    for item in getattr(result, "artifacts", None) or ():
        get = item.get if isinstance(item, dict) else lambda k, i=item: getattr(i, k, None)
        mime, data, name = get("mime_type"), get("data"), get("name")
        if not isinstance(mime, str) or not mime.startswith("image/"):
            continue
        if isinstance(data, bytes | bytearray):
            text = base64.b64encode(bytes(data)).decode("ascii")
        elif isinstance(data, str):
            text = data
        else:
            continue
        images.append((str(name or "image"), mime, text))
    return images


def build_server(
    executor: Executor,
    *,
    imports: list[str] | None = None,
    limits: dict[str, int] | None = None,
    max_clients: int = DEFAULT_MAX_CLIENTS,
    stdio: bool = False,
) -> tuple[Any, ClientSessions]:
    """An `MCPServer` serving Corral sessions from `executor`, and its session table."""
    mcpserver, types = _mcp()
    import anyio

    # This module has no `from __future__ import annotations`: the tools' annotations
    # are evaluated here, so MCPServer finds the Context parameter without importing
    # mcp when the module loads (the CLI imports it for every command).
    Context = mcpserver.Context

    def open_session() -> AgentSession:
        return executor.open(
            imports=list(imports or ()), limits=limits, labels={"client": "corral-mcp"}
        )

    sessions = ClientSessions(open_session, max_clients)

    @contextlib.asynccontextmanager
    async def lifespan(server: Any) -> AsyncIterator[None]:
        try:
            yield None
        finally:
            await anyio.to_thread.run_sync(sessions.close_all)

    server = mcpserver.MCPServer(
        "corral",
        instructions=(
            "Run Python in a Corral sandbox: run_python(code) keeps variables between calls; "
            "reset() starts afresh; files live in the session's workspace."
        ),
        lifespan=lifespan,
    )

    def client_key(ctx: Any, session: str | None) -> str:
        if stdio:
            return STDIO_KEY
        headers = ctx.headers or {}
        sid = headers.get(SESSION_ID_HEADER)
        if sid:
            return f"mcp:{sid}"
        return f"named:{session or 'default'}"

    async def with_session(key: str, fn: Callable[[AgentSession], Any]) -> Any:
        def work() -> Any:
            with sessions.lock(key):
                return fn(sessions.get(key))

        return await anyio.to_thread.run_sync(work)

    def failure(exc: Exception) -> Any:
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=f"Corral error: {exc}")], is_error=True
        )

    @server.tool()
    async def run_python(
        code: str,
        ctx: Context,  # type: ignore[valid-type]
        session: str | None = None,
    ) -> Any:
        """Run Python code in a sandboxed, stateful session.

        Variables, functions and imports persist between calls. The text result
        shows the verdict, printed output, the value of the last expression and
        any error; images the code produces come back as images.

        Args:
            code: the Python source to run.
            session: a name for the state to use (only for clients without MCP sessions).
        """
        key = client_key(ctx, session)
        try:
            result: Result = await with_session(key, lambda s: s.run(code))
        except CorralError as exc:
            return failure(exc)
        content: list[Any] = [types.TextContent(type="text", text=format_result(result))]
        for _name, mime, data in artifact_images(result):
            content.append(types.ImageContent(type="image", data=data, mime_type=mime))
        return types.CallToolResult(content=content, is_error=not result.ok)

    @server.tool()
    async def reset(ctx: Context, session: str | None = None) -> str:  # type: ignore[valid-type]
        """Drop this client's sandbox session: variables and files are gone.

        Args:
            session: the state's name (only for clients without MCP sessions).
        """
        key = client_key(ctx, session)
        had = await anyio.to_thread.run_sync(sessions.reset, key)
        return "session reset" if had else "there was no session; nothing to reset"

    @server.tool()
    async def upload_file(
        path: str,
        content: str,
        ctx: Context,  # type: ignore[valid-type]
        encoding: str = "utf-8",
        session: str | None = None,
    ) -> Any:
        """Write a file into the session's workspace, where code can open() it.

        Args:
            path: a path relative to the workspace, e.g. "data/input.csv".
            content: the file's content, as text or base64.
            encoding: "utf-8" (content is text) or "base64" (content is base64 bytes).
            session: the state's name (only for clients without MCP sessions).
        """
        if encoding not in ("utf-8", "base64"):
            return failure(InvalidArgument("encoding must be 'utf-8' or 'base64'"))
        try:
            data = (
                base64.b64decode(content, validate=True)
                if encoding == "base64"
                else content.encode("utf-8")
            )
        except ValueError as exc:
            return failure(InvalidArgument(f"content is not valid base64: {exc}"))
        try:
            size = await with_session(client_key(ctx, session), lambda s: s.upload(path, data))
        except CorralError as exc:
            return failure(exc)
        return f"wrote {size} bytes to {path}"

    @server.tool()
    async def download_file(
        path: str,
        ctx: Context,  # type: ignore[valid-type]
        session: str | None = None,
    ) -> Any:
        """Read a file from the session's workspace (images come back as images).

        Args:
            path: a path relative to the workspace.
            session: the state's name (only for clients without MCP sessions).
        """
        try:
            data = await with_session(client_key(ctx, session), lambda s: s.download(path))
        except CorralError as exc:
            return failure(exc)
        mime = mimetypes.guess_type(path)[0] or ""
        if mime.startswith("image/"):
            encoded = base64.b64encode(data).decode("ascii")
            return types.ImageContent(type="image", data=encoded, mime_type=mime)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            encoded = base64.b64encode(data).decode("ascii")
            return f"(binary, {len(data)} bytes, base64)\n{encoded}"

    return server, sessions


def _check_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise InvalidArgument(
            f"--host {host} is not a loopback address; the MCP server has no authentication, "
            "so it listens on 127.0.0.1 or ::1 only"
        )


def add_parser(subparsers: Any, connection_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `corral mcp` on the CLI's subcommand table."""
    p = subparsers.add_parser(
        "mcp",
        help="serve Corral to MCP clients (stdio, or streamable HTTP with --http)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP address (loopback only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port (path /mcp)")
    p.add_argument(
        "--executor",
        choices=("daemon", "process", "local"),
        default="daemon",
        help="where code runs: a daemon session (default), a child process, or in-process",
    )
    p.add_argument("--max-clients", type=int, default=DEFAULT_MAX_CLIENTS)
    connection_args(p)
    p.set_defaults(func=cmd_mcp)


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve until the client (stdio) or a signal (HTTP) ends it."""
    try:
        if args.http:
            _check_loopback(args.host)
        if args.executor == "daemon":
            from agent.cli import _client

            executor = resolve_executor(_client(args))
        else:
            executor = resolve_executor(args.executor)
        server, _ = build_server(
            executor, imports=args.imports, max_clients=args.max_clients, stdio=not args.http
        )
    except CorralError as exc:
        print(f"corral mcp: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, InvalidArgument) else 10
    try:
        if args.http:
            print(
                f"corral mcp: serving streamable HTTP on http://{args.host}:{args.port}/mcp",
                file=sys.stderr,
            )
            server.run("streamable-http", host=args.host, port=args.port)
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    finally:
        executor.close()
    return 0
