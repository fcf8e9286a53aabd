"""Synchronous driver for one sandbox container: start, exchange frames, destroy.

The daemon builds its pool on this class, tests and `corrald probe` use it
directly. One `Sandbox` is one hardened container (settings from
`executor.sandbox.hardening.container_config`) whose command is the runner;
the driver holds the container's attach socket and speaks the frames of
proto/frames.md over it.

Everything read from the socket is hostile: every read has a deadline, the
multiplexed stream headers and frame lengths are checked before anything is
buffered (memory stays below one maximum frame plus one read chunk, and the
stderr tail is bounded), and every frame handed on is rebuilt from
type-checked fields with strings cut to fixed caps. A violation raises a
`SandboxError` subclass; after a protocol error or a lost stream the sandbox
is unusable and the caller destroys it.

Not thread-safe: one request in flight at a time, from one thread (the daemon
runs each session's calls in a worker thread).
"""

from __future__ import annotations

import collections
import math
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from executor.interpreter.result import Verdict
from executor.limits import SessionLimits
from executor.runner.frames import DEFAULT_MAX_FRAME, FrameDecoder, FrameError, encode
from executor.sandbox import CONTAINER_PREFIX, LABEL_MANAGED

STDERR_TAIL_BYTES = 8 << 10  # last bytes of the runner's stderr kept for diagnostics
READ_CHUNK = 1 << 16
SEND_TIMEOUT_S = 10.0  # a runner that stops reading stdin cannot block us longer
DEFAULT_TOOL_TIME_BUDGET_S = 600.0  # tool time per snippet not counted against `timeout`
REMOVE_WAIT_S = 10.0  # wait for an engine-side removal already in progress
OUTPUT_SLACK = 4096  # characters tolerated past the output cap before calling it a violation
STREAM_STDOUT, STREAM_STDERR = 1, 2


class SandboxError(Exception):
    """Base of every driver error."""


class SandboxTimeout(SandboxError):
    """No (complete) frame arrived within the read timeout."""


class SandboxProtocolError(SandboxError):
    """The sandbox sent garbage, an oversized frame, or a frame violating the schema."""


class SandboxGone(SandboxError):
    """The attach stream ended or broke: the container died or was killed."""


class SandboxRequestError(SandboxError):
    """The runner answered a request with an `error` frame (bad path, bad variable name...)."""


class FrameSchemaError(SandboxProtocolError):
    """A frame from the sandbox does not match proto/frames.md."""


# ---------------------------------------------------------------------------
# Schema checks: each frame handed on is rebuilt from checked fields.
# ---------------------------------------------------------------------------

MAX_NAME = 256  # characters of a type, variable or tool name
MAX_REPR = 64 << 10  # characters of a repr
MAX_MESSAGE = 64 << 10  # characters of an error message
MAX_SOURCE_LINE = 4096
MAX_STATE_ITEMS = 10_000
MAX_ID = 256
VERDICTS = frozenset(v.value for v in Verdict)
USAGE_KEYS = ("wall_ms", "cpu_ms", "peak_memory_bytes", "output_bytes")


def _str(d: dict[str, Any], key: str, cap: int, *, where: str) -> str:
    value = d.get(key)
    if not isinstance(value, str):
        raise FrameSchemaError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    return value[:cap]


def _opt_str(d: dict[str, Any], key: str, cap: int, *, where: str) -> str | None:
    if d.get(key) is None:
        return None
    return _str(d, key, cap, where=where)


def _bool(d: dict[str, Any], key: str, *, where: str, default: bool | None = None) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise FrameSchemaError(f"{where}: {key!r} must be a boolean")
    return value


def _int(value: Any, *, where: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameSchemaError(f"{where} must be an integer")
    if minimum is not None and value < minimum:
        raise FrameSchemaError(f"{where} must be >= {minimum}")
    return value


def _dict(value: Any, *, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FrameSchemaError(f"{where} must be an object")
    return value


def _json_ok(value: Any, depth: int = 0) -> bool:
    """JSON data without NaN/Infinity, nested at most 100 deep (what the proto can carry)."""
    if depth > 100:
        return False
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_json_ok(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_ok(v, depth + 1) for k, v in value.items())
    return False


def _value(raw: Any, *, where: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    d = _dict(raw, where=where)
    has_json = _bool(d, "has_json", where=where, default=False)
    data = d.get("json") if has_json else None
    if has_json and not _json_ok(data):
        has_json, data = False, None
    return {
        "type": _str(d, "type", MAX_NAME, where=where),
        "repr": _str(d, "repr", MAX_REPR, where=where),
        "json": data,
        "has_json": has_json,
    }


def variable(raw: Any, *, where: str = "variable") -> dict[str, Any]:
    d = _dict(raw, where=where)
    v = _value(d, where=where)
    assert v is not None
    return {"name": _str(d, "name", MAX_NAME, where=where), **v}


def _error(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    d = _dict(raw, where="result.error")
    line = d.get("line")
    if line is not None:
        line = _int(line, where="result.error.line")
    return {
        "type": _str(d, "type", MAX_NAME, where="result.error"),
        "message": _str(d, "message", MAX_MESSAGE, where="result.error"),
        "line": line,
        "source_line": _opt_str(d, "source_line", MAX_SOURCE_LINE, where="result.error"),
    }


def state(raw: Any, *, where: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise FrameSchemaError(f"{where} must be a list")
    if len(raw) > MAX_STATE_ITEMS:
        raise FrameSchemaError(f"{where} has {len(raw)} items, more than {MAX_STATE_ITEMS}")
    return [variable(v, where=f"{where}[{i}]") for i, v in enumerate(raw)]


def result_frame(frame: dict[str, Any], *, output_cap: int) -> dict[str, Any]:
    """The checked copy of a `result` frame (Result.to_dict() fields plus usage)."""
    verdict = frame.get("verdict")
    if verdict not in VERDICTS:
        raise FrameSchemaError(f"result: unknown verdict {verdict!r}")
    stdout = _str(frame, "stdout", max(output_cap, 0) + 4096, where="result")
    truncated = _bool(frame, "truncated", where="result", default=False)
    if len(stdout.encode("utf-8", "surrogatepass")) > output_cap:
        stdout = stdout.encode("utf-8", "surrogatepass")[:output_cap].decode("utf-8", "ignore")
        truncated = True
    usage_raw = _dict(frame.get("usage"), where="result.usage")
    usage = {k: _int(usage_raw.get(k), where=f"result.usage.{k}", minimum=0) for k in USAGE_KEYS}
    return {
        "type": "result",
        "id": _str(frame, "id", MAX_ID, where="result"),
        "verdict": verdict,
        "stdout": stdout,
        "value": _value(frame.get("value"), where="result.value"),
        "is_final_answer": _bool(frame, "is_final_answer", where="result", default=False),
        "final_answer": _value(frame.get("final_answer"), where="result.final_answer"),
        "error": _error(frame.get("error")),
        "state": state(frame.get("state", []), where="result.state"),
        "truncated": truncated,
        "usage": usage,
    }


def ready_frame(frame: dict[str, Any]) -> dict[str, Any]:
    if frame.get("type") != "ready":
        raise FrameSchemaError(f"expected a ready frame first, got {frame.get('type')!r}")
    return {
        "type": "ready",
        "pid": _int(frame.get("pid"), where="ready.pid", minimum=1),
        "python": _str(frame, "python", MAX_NAME, where="ready"),
        "interpreter": _bool(frame, "interpreter", where="ready"),
    }


def tool_call_frame(frame: dict[str, Any]) -> dict[str, Any]:
    args = frame.get("args", [])
    kwargs = frame.get("kwargs", {})
    if not isinstance(args, list):
        raise FrameSchemaError("tool_call: 'args' must be a list")
    kwargs = _dict(kwargs, where="tool_call.kwargs")
    if not _json_ok(args) or not _json_ok(kwargs):
        raise FrameSchemaError("tool_call: arguments must be JSON data")
    return {
        "type": "tool_call",
        "id": _str(frame, "id", MAX_ID, where="tool_call"),
        "call_id": _str(frame, "call_id", MAX_ID, where="tool_call"),
        "name": _str(frame, "name", MAX_NAME, where="tool_call"),
        "args": args,
        "kwargs": kwargs,
    }


# ---------------------------------------------------------------------------
# The sandbox
# ---------------------------------------------------------------------------


def _docker_errors() -> tuple[type[BaseException], ...]:
    import docker.errors
    import requests.exceptions

    return (docker.errors.DockerException, requests.exceptions.RequestException)


class Sandbox:
    """One hardened container running the runner, driven over its attach socket."""

    def __init__(
        self,
        client: Any,
        container_id: str,
        name: str,
        labels: dict[str, str],
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        raw: bool = False,
    ) -> None:
        self.client = client
        self.container_id = container_id
        self.name = name
        self.labels = dict(labels)
        self.raw = raw
        self.max_frame = max_frame
        self.ready: dict[str, Any] = {}
        self.output_cap = SessionLimits().output_bytes  # from init limits
        self.started_at = time.time()
        self._sock_io: Any = None  # keeps docker-py's response object alive
        self._sock: socket.socket | None = None
        self._decoder = FrameDecoder(max_frame)
        self._frames: collections.deque[dict[str, Any]] = collections.deque()
        self._hdr = bytearray()  # partial 8-byte multiplex header
        self._remaining = 0  # payload bytes left in the current multiplexed chunk
        self._stream = 0
        self._stderr = bytearray()
        self._broken: SandboxError | None = None
        self._ids = 0
        self._destroyed = False

    # -- lifecycle ----------------------------------------------------------

    @classmethod
    def start(
        cls,
        client: Any,
        image: str,
        limits: SessionLimits,
        *,
        labels: dict[str, str],
        raw: bool = False,
        command: list[str] | None = None,
        ready_timeout: float = 30.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        runtime: str = "runc",
    ) -> Sandbox:
        """Create and start a hardened container and wait for the runner's `ready`.

        The attach socket is opened before the container starts, so no byte
        the runner writes is missed. On any failure the container is destroyed
        and a SandboxError (or the Docker error, wrapped) is raised.
        """
        from executor.sandbox.hardening import container_config

        name = f"{CONTAINER_PREFIX}{uuid.uuid4().hex[:12]}"
        all_labels = {**labels, LABEL_MANAGED: "1"}
        cfg = container_config(
            limits, labels=all_labels, name=name, raw=raw, command=command, runtime=runtime
        )
        try:
            container = client.containers.create(image, **cfg)
        except _docker_errors() as exc:
            raise SandboxError(
                f"could not create a sandbox container from image {image!r}: {exc} "
                "(check that the image exists: `corrald build-image`)"
            ) from exc
        sb = cls(client, container.id, name, all_labels, max_frame=max_frame, raw=raw)
        try:
            sb._sock_io = client.api.attach_socket(
                container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            sb._sock = getattr(sb._sock_io, "_sock", sb._sock_io)
            container.start()
            sb.started_at = time.time()
            first = sb.recv(ready_timeout)
            try:
                sb.ready = ready_frame(first)
            except FrameSchemaError as exc:
                raise sb._fail(SandboxProtocolError(f"bad ready frame: {exc}")) from None
            if command is None and sb.ready["interpreter"] == raw:
                mode = "raw CPython" if not sb.ready["interpreter"] else "the interpreter"
                raise sb._fail(
                    SandboxProtocolError(f"the runner reports {mode}, not what was asked")
                )
            sb.output_cap = limits.output_bytes
        except BaseException as exc:
            sb.destroy()
            if isinstance(exc, SandboxError):
                raise
            if isinstance(exc, _docker_errors()):
                raise SandboxError(f"could not start sandbox container {name}: {exc}") from exc
            raise
        return sb

    def kill(self) -> None:
        """SIGKILL the container (idempotent; a container already gone is fine)."""
        try:
            self.client.api.kill(self.container_id)
        except _docker_errors():
            pass

    def destroy(self) -> None:
        """Close the channel and force-remove the container. Idempotent, never raises."""
        self._destroyed = True
        self._close_socket()
        try:
            self.client.api.remove_container(self.container_id, force=True)
            return
        except Exception as exc:  # already removed (auto_remove) or engine gone
            if getattr(exc, "status_code", None) != 409:
                return
        # 409: the engine is already removing it (auto_remove after exit): wait for that,
        # so that "destroyed" means gone for callers that count containers.
        try:
            self.client.api.wait(self.container_id, timeout=REMOVE_WAIT_S, condition="removed")
        except Exception:  # gone already, or the engine is slow: nothing more to do
            pass

    def close_stdin(self) -> None:
        """Half-close the channel: the runner sees end of stdin and exits."""
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _close_socket(self) -> None:
        for obj in (self._sock, self._sock_io):
            if obj is not None:
                try:
                    obj.close()
                except Exception:
                    pass
        self._sock = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def fileno(self) -> int:
        """The attach socket's fd (for asyncio readers); -1 once closed."""
        return self._sock.fileno() if self._sock is not None else -1

    @property
    def stderr_tail(self) -> str:
        """The last few KiB the runner wrote to stderr (diagnostics only, untrusted)."""
        return bytes(self._stderr).decode("utf-8", "replace")

    def inspect_exit(self, wait: float = 2.0) -> dict[str, Any]:
        """After SandboxGone: was the container OOM-killed, and with what exit code?

        The container removes itself when it exits (auto_remove), so when
        inspect no longer finds it the answer comes from the engine's event
        log (`oom` and `die` events of this container since it started).
        """
        try:
            state = self.client.api.inspect_container(self.container_id)["State"]
            if not state.get("Running"):
                return {
                    "oom_killed": bool(state.get("OOMKilled")),
                    "exit_code": state.get("ExitCode"),
                }
        except _docker_errors():
            pass
        deadline = time.monotonic() + wait
        oom, code = False, None
        while True:
            try:
                events = self.client.api.events(
                    since=int(self.started_at) - 1,
                    until=int(time.time()) + 1,
                    filters={"container": self.container_id, "type": "container"},
                    decode=True,
                )
                for event in events:
                    action = event.get("Action") or event.get("status")
                    if action == "oom":
                        oom = True
                    elif action == "die":
                        raw_code = (event.get("Actor") or {}).get("Attributes", {}).get("exitCode")
                        code = int(raw_code) if str(raw_code).lstrip("-").isdigit() else None
            except _docker_errors():
                break
            if code is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        return {"oom_killed": oom, "exit_code": code}

    # -- frames -------------------------------------------------------------

    def _fail(self, exc: SandboxError) -> SandboxError:
        """Remember a fatal channel error: every later call raises it again."""
        if self._broken is None:
            self._broken = exc
        return exc

    def _next_id(self) -> str:
        self._ids += 1
        return f"q{self._ids}"

    def send(self, frame: dict[str, Any]) -> None:
        """Write one frame to the runner's stdin (bounded by SEND_TIMEOUT_S)."""
        if self._broken is not None:
            raise self._broken
        if self._sock is None:
            raise SandboxGone("the sandbox was destroyed")
        try:
            data = encode(frame, self.max_frame)
        except FrameError as exc:
            raise SandboxError(f"frame to the sandbox is too large: {exc}") from None
        try:
            self._sock.settimeout(SEND_TIMEOUT_S)
            self._sock.sendall(data)
        except TimeoutError:
            raise self._fail(
                SandboxTimeout(f"the runner did not read its input within {SEND_TIMEOUT_S:g} s")
            ) from None
        except OSError as exc:
            raise self._fail(SandboxGone(f"the sandbox's channel broke: {exc}")) from None

    def recv(self, timeout: float) -> dict[str, Any]:
        """The next frame from the runner; SandboxTimeout when none is complete in time."""
        deadline = time.monotonic() + timeout
        while not self._frames:
            if self._broken is not None:
                raise self._broken
            if self._sock is None:
                raise SandboxGone("the sandbox was destroyed")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxTimeout(f"no frame from the sandbox within {timeout:g} s")
            try:
                self._sock.settimeout(remaining)
                data = self._sock.recv(READ_CHUNK)
            except TimeoutError:
                continue
            except OSError as exc:
                raise self._fail(SandboxGone(f"the sandbox's channel broke: {exc}")) from None
            self._absorb(data)
        return self._frames.popleft()

    def _absorb(self, data: bytes) -> None:
        """Take bytes read from the attach socket; an empty read means the stream ended."""
        if not data:
            tail = self.stderr_tail[-500:].strip()
            raise self._fail(
                SandboxGone(
                    "the sandbox's stream ended (container exited or was killed)"
                    + (f"; stderr tail: {tail}" if tail else "")
                )
            )
        self._demux(data)

    def _demux(self, data: bytes) -> None:
        """Split the engine's multiplexed stream: 8-byte headers (stream, 0, 0, 0, length)."""
        view = memoryview(data)
        i = 0
        while i < len(view):
            if self._remaining == 0:
                take = view[i : i + 8 - len(self._hdr)]
                self._hdr += take
                i += len(take)
                if len(self._hdr) < 8:
                    return
                stream, zero, size = self._hdr[0], bytes(self._hdr[1:4]), self._hdr[4:8]
                self._hdr.clear()
                if stream not in (STREAM_STDOUT, STREAM_STDERR) or zero != b"\x00\x00\x00":
                    raise self._fail(
                        SandboxProtocolError("the attach stream is not multiplexed as expected")
                    )
                self._stream = stream
                self._remaining = int.from_bytes(size, "big")
                continue
            chunk = view[i : i + self._remaining]
            i += len(chunk)
            self._remaining -= len(chunk)
            if self._stream == STREAM_STDERR:
                self._stderr += chunk
                del self._stderr[:-STDERR_TAIL_BYTES]
                continue
            try:
                self._frames.extend(self._decoder.feed(bytes(chunk)))
            except FrameError as exc:
                raise self._fail(
                    SandboxProtocolError(f"bad frame from the sandbox: {exc}")
                ) from None

    def request(self, frame: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a request and return its answer (the frame with the same id).

        An `error` answer raises SandboxRequestError; any other frame meanwhile
        is a protocol violation (one request in flight at a time).
        """
        frame = dict(frame)
        rid = frame.setdefault("id", self._next_id())
        self.send(frame)
        answer = self.recv(timeout)
        if answer.get("id") != rid:
            raise self._fail(
                SandboxProtocolError(
                    f"expected the answer to request {rid!r}, got a {answer.get('type')!r} "
                    f"frame for {answer.get('id')!r}"
                )
            )
        if answer.get("type") == "error":
            raise SandboxRequestError(str(answer.get("message", "request failed"))[:MAX_MESSAGE])
        return answer

    def _expect(self, answer: dict[str, Any], kind: str) -> dict[str, Any]:
        if answer.get("type") != kind:
            raise self._fail(
                SandboxProtocolError(f"expected a {kind!r} frame, got {answer.get('type')!r}")
            )
        return answer

    # -- requests -----------------------------------------------------------

    def init(
        self,
        *,
        authorized_imports: list[str] | tuple[str, ...] = (),
        tools: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
        variables: dict[str, Any] | None = None,
        limits: dict[str, int],
        timeout: float = 10.0,
    ) -> None:
        """Give the runner its session: imports, tool declarations, variables, limits."""
        answer = self.request(
            {
                "type": "init",
                "authorized_imports": list(authorized_imports),
                "tools": list(tools),
                "variables": dict(variables or {}),
                "limits": dict(limits),
            },
            timeout,
        )
        self._expect(answer, "ack")
        if limits.get("output_bytes"):
            self.output_cap = int(limits["output_bytes"])

    def execute(
        self,
        code: str,
        *,
        timeout: float,
        on_output: Callable[[str], None] | None = None,
        on_tool_call: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        limits: dict[str, int] | None = None,
        tool_time_budget: float = DEFAULT_TOOL_TIME_BUDGET_S,
    ) -> dict[str, Any]:
        """Run one snippet; stream its output and tool calls; return the checked result frame.

        `timeout` bounds the whole snippet except the time spent inside
        `on_tool_call` (the runner pauses the snippet's clock during a tool call
        too; the tool timeout bounds each call there), up to `tool_time_budget`
        seconds of tool time in all, so a runner that keeps calling tools cannot
        hold the caller forever. `on_tool_call(frame)` returns
        `{"ok": True, "value": ...}` or `{"ok": False, "error": {"type", "message"}}`;
        without a handler every tool call fails with RuntimeError in the snippet.
        Exceptions raised by the callbacks propagate to the caller.
        """
        rid = self._next_id()
        frame: dict[str, Any] = {"type": "execute", "id": rid, "code": code}
        cap = self.output_cap
        if limits:
            frame["limits"] = dict(limits)
            if limits.get("output_bytes"):
                cap = min(cap, int(limits["output_bytes"]))
        self.send(frame)
        deadline = time.monotonic() + timeout
        streamed = 0
        tool_time = 0.0
        while True:
            answer = self.recv(max(0.0, deadline - time.monotonic()))
            kind = answer.get("type")
            if answer.get("id") != rid:
                raise self._fail(
                    SandboxProtocolError(f"a {kind!r} frame for another request during execute")
                )
            if kind == "output":
                data = answer.get("data")
                if not isinstance(data, str):
                    raise self._fail(FrameSchemaError("output: 'data' must be a string"))
                streamed += len(data)
                if streamed > cap + OUTPUT_SLACK:
                    raise self._fail(
                        SandboxProtocolError(
                            f"the sandbox streamed more than {cap} bytes of output"
                        )
                    )
                if on_output is not None:
                    on_output(data)
            elif kind == "tool_call":
                try:
                    call = tool_call_frame(answer)
                except FrameSchemaError as exc:
                    raise self._fail(exc) from None
                started = time.monotonic()
                if tool_time > tool_time_budget:
                    raise SandboxTimeout(
                        f"tool calls of this snippet took more than {tool_time_budget:g} s in all"
                    )
                if on_tool_call is None:
                    reply: dict[str, Any] = {
                        "ok": False,
                        "error": {"type": "RuntimeError", "message": "no tools in this session"},
                    }
                else:
                    reply = dict(on_tool_call(call))
                spent = time.monotonic() - started
                tool_time += spent
                deadline += spent
                reply.update(type="tool_result", id=rid, call_id=call["call_id"])
                self.send(reply)
            elif kind == "result":
                try:
                    return result_frame(answer, output_cap=cap)
                except FrameSchemaError as exc:
                    raise self._fail(exc) from None
            elif kind == "error":
                raise SandboxRequestError(
                    str(answer.get("message", "execute failed"))[:MAX_MESSAGE]
                )
            else:
                raise self._fail(SandboxProtocolError(f"unexpected {kind!r} frame during execute"))

    def set_vars(self, variables: dict[str, Any], timeout: float = 10.0) -> None:
        self._expect(self.request({"type": "set_vars", "variables": variables}, timeout), "ack")

    def get_vars(
        self, names: list[str] | None = None, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        answer = self._expect(
            self.request({"type": "get_vars", "names": names or []}, timeout), "vars"
        )
        try:
            return state(answer.get("state"), where="vars.state")
        except FrameSchemaError as exc:
            raise self._fail(exc) from None

    def write_file(self, path: str, data: bytes, timeout: float = 30.0) -> None:
        import base64

        frame = {"type": "write_file", "path": path, "data_b64": base64.b64encode(data).decode()}
        self._expect(self.request(frame, timeout), "ack")

    def read_file(self, path: str, timeout: float = 30.0) -> bytes:
        import base64
        import binascii

        answer = self._expect(self.request({"type": "read_file", "path": path}, timeout), "file")
        data = answer.get("data_b64")
        if not isinstance(data, str):
            raise self._fail(FrameSchemaError("file: 'data_b64' must be a string"))
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise self._fail(FrameSchemaError("file: 'data_b64' is not base64")) from None

    def ping(self, timeout: float = 2.0) -> bool:
        """True when the runner answers a ping in time (False on any sandbox error)."""
        try:
            self._expect(self.request({"type": "ping"}, timeout), "pong")
        except SandboxError:
            return False
        return True

    def shutdown(self) -> None:
        """Ask the runner to exit (the container then removes itself)."""
        try:
            self.send({"type": "shutdown"})
        except SandboxError:
            pass


__all__ = [
    "DEFAULT_MAX_FRAME",
    "Sandbox",
    "SandboxError",
    "SandboxGone",
    "SandboxProtocolError",
    "SandboxRequestError",
    "SandboxTimeout",
    "Verdict",
]
