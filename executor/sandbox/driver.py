"""Blocking transport for one sandbox container: start, exchange frames, destroy.

Tests, `corrald probe`, `corrald doctor` and the benchmarks use it directly;
the daemon wraps it in `executor.daemon.channel.AsyncSandbox`. One `Sandbox`
is one hardened container (settings from
`executor.sandbox.hardening.container_config`) whose command is the runner;
the driver holds the container's attach socket and moves bytes between it and
its `ChannelProtocol` (executor/sandbox/protocol.py), which does every check:
the multiplexed-stream headers and frame sizes before anything is buffered,
turn-taking, the execute clock and the schema of every frame, handed on as
typed events (executor/sandbox/events.py). Every read has a deadline and
every write a timeout. A violation raises a `SandboxError` subclass; after
anything but a `SandboxRequestError` the sandbox is unusable and the caller
destroys it.

Not thread-safe: one request in flight at a time, from one thread; only
`interrupt` may be called from another thread while `execute` runs.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from executor.sandbox import CONTAINER_PREFIX, LABEL_MANAGED, events
from executor.sandbox.errors import (
    FrameSchemaError,
    SandboxError,
    SandboxGone,
    SandboxProtocolError,
    SandboxRequestError,
    SandboxTimeout,
)
from executor.sandbox.events import Artifact, Event, ExecuteResult, Output, Ready, ToolCall
from executor.sandbox.protocol import (
    DEFAULT_TOOL_TIME_BUDGET_S,
    STDERR_TAIL_BYTES,
    ChannelProtocol,
)
from proto.frames import DEFAULT_MAX_FRAME
from proto.limits import SessionLimits
from proto.results import Variable, Verdict

READ_CHUNK = 1 << 16
SEND_TIMEOUT_S = 10.0  # a runner that stops reading stdin cannot block us longer
REMOVE_WAIT_S = 10.0  # wait for an engine-side removal already in progress
NO_TOOLS = {"ok": False, "error": {"type": "RuntimeError", "message": "no tools in this session"}}
ToolHandler = Callable[[ToolCall], dict[str, Any]]


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
        self.channel = ChannelProtocol(max_frame=max_frame, expect_interpreter=not raw)
        self.ready: Ready | None = None
        self.started_at = time.time()
        self._sock_io: Any = None  # keeps docker-py's response object alive
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()

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
            sb.attach(
                client.api.attach_socket(
                    container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
                )
            )
            container.start()
            sb.started_at = time.time()
            if command is not None:
                sb.channel.expect_interpreter = None  # a test's own command: any mode
            sb.channel.output_cap = limits.output_bytes
            sb.channel.expect_ready(ready_timeout)
            first = sb._next_event()
            if not isinstance(first, Ready):  # unreachable: the core lets only `ready` first
                raise sb.channel.fail(SandboxProtocolError("no ready frame first"))
            sb.ready = first
        except BaseException as exc:
            sb.destroy()
            if isinstance(exc, SandboxError):
                raise
            if isinstance(exc, _docker_errors()):
                raise SandboxError(f"could not start sandbox container {name}: {exc}") from exc
            raise
        return sb

    def attach(self, stream: Any) -> None:
        """Use `stream` (the engine's attach socket, or docker-py's wrapper of it) as the channel.

        Tests attach one end of a socket pair to play a runner without Docker.
        """
        self._sock_io = stream
        self._sock = getattr(stream, "_sock", stream)

    def kill(self) -> None:
        """SIGKILL the container (idempotent; a container already gone is fine)."""
        try:
            self.client.api.kill(self.container_id)
        except _docker_errors():
            pass

    def destroy(self) -> None:
        """Close the channel and force-remove the container. Idempotent, never raises."""
        self.channel.fail(SandboxGone("the sandbox was destroyed"))
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
        return self.channel.stderr_tail

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

    # -- bytes ------------------------------------------------------------

    @property
    def sock(self) -> socket.socket:
        """The attach socket; SandboxGone once destroyed (for other transports)."""
        if self._sock is None:
            raise self.channel.fail(SandboxGone("the sandbox was destroyed"))
        return self._sock

    def _write(self, data: bytes) -> None:
        if not data:
            return
        with self._send_lock:
            sock = self.sock
            try:
                sock.settimeout(SEND_TIMEOUT_S)
                sock.sendall(data)
            except TimeoutError:
                raise self.channel.fail(send_timeout_error()) from None
            except OSError as exc:
                raise self.channel.fail(broken_error(exc)) from None

    def _next_event(self, timeout: float | None = None) -> Event:
        """The next event; reads until one is complete or the deadline passes.

        The deadline is the core's (request, execute, ready) unless `timeout` is given.
        """
        channel, since = self.channel, self.channel.now()
        while (event := channel.next_event()) is None:
            data = self._recv(channel.wait_left(timeout, since))
            if data is not None:
                channel.receive_data(data)
        return event

    def _recv(self, wait: float) -> bytes | None:
        """One read of at most `wait` seconds; None when nothing came."""
        sock = self.sock
        try:
            sock.settimeout(min(wait, 3600.0))
            return sock.recv(READ_CHUNK)
        except TimeoutError:
            return None
        except OSError as exc:
            raise self.channel.fail(broken_error(exc)) from None

    def send(self, frame: dict[str, Any]) -> None:
        """Write one frame as it is (no turn-taking): `shutdown`, tests' raw frames."""
        self._write(self.channel.encode(frame))

    def recv(self, timeout: float) -> Event:
        """The next event from the runner; SandboxTimeout when none is complete in time."""
        return self._next_event(timeout)

    def request(self, frame: dict[str, Any], timeout: float) -> events.Answer:
        """Send a request and return its typed answer (the frame with the same id).

        An `error` answer raises SandboxRequestError; any other frame meanwhile
        is a protocol violation (one request in flight at a time).
        """
        self._write(self.channel.request(frame, timeout))
        return answer_of(self.channel, self._next_event())

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
        self.request(init_frame(authorized_imports, tools, variables, limits), timeout)

    def execute(
        self,
        code: str,
        *,
        timeout: float,
        on_output: Callable[[str], None] | None = None,
        on_tool_call: ToolHandler | None = None,
        limits: dict[str, int] | None = None,
        tool_time_budget: float = DEFAULT_TOOL_TIME_BUDGET_S,
        on_stderr: Callable[[str], None] | None = None,
        on_artifact: Callable[[Artifact], None] | None = None,
    ) -> ExecuteResult:
        """Run one snippet; stream its output and tool calls; return its checked result.

        `timeout` bounds the whole snippet except the time its tool calls are
        out (the runner pauses the snippet's clock during a tool call too; the
        tool timeout bounds each call there), up to `tool_time_budget` seconds
        of tool time in all. `on_tool_call(call)` returns `{"ok": True,
        "value": ...}` or `{"ok": False, "error": {"type", "message"}}`;
        without a handler every tool call fails with RuntimeError in the
        snippet. Exceptions raised by the callbacks propagate to the caller.
        Artifacts go to `on_artifact` as they come; without it they are kept in
        the returned result's `artifacts`.
        """
        channel = self.channel
        artifacts = []
        self._write(
            channel.execute(code, timeout=timeout, limits=limits, tool_time_budget=tool_time_budget)
        )
        while not isinstance(event := self._next_event(), ExecuteResult):
            if isinstance(event, Output):
                sink = on_stderr if event.stream == "stderr" else on_output
                if sink is not None:
                    sink(event.data)
            elif isinstance(event, Artifact):
                if on_artifact is not None:
                    on_artifact(event)
                else:
                    artifacts.append(event.artifact)
            elif isinstance(event, ToolCall):
                if event.refusal is not None:
                    reply = event.refusal
                else:
                    reply = NO_TOOLS if on_tool_call is None else on_tool_call(event)
                self._write(channel.answer_tool_call(event.call_id, reply))
        event.result.artifacts.extend(artifacts)
        return event

    def interrupt(self) -> None:
        """Stop the running snippet as its wall-time limit would (any thread; no-op when idle)."""
        self._write(self.channel.interrupt())

    def set_vars(self, variables: dict[str, Any], timeout: float = 10.0) -> None:
        self.request({"type": "set_vars", "variables": variables}, timeout)

    def get_vars(self, names: list[str] | None = None, timeout: float = 10.0) -> list[Variable]:
        answer = self.request({"type": "get_vars", "names": names or []}, timeout)
        assert isinstance(answer, events.Vars)  # the core checks the answer type
        return list(answer.state)

    def write_file(self, path: str, data: bytes, timeout: float = 30.0) -> None:
        self.request(write_file_frame(path, data), timeout)

    def read_file(self, path: str, timeout: float = 30.0) -> bytes:
        answer = self.request({"type": "read_file", "path": path}, timeout)
        assert isinstance(answer, events.File)  # the core checks the answer type
        return answer.data

    def ping(self, timeout: float = 2.0) -> bool:
        """True when the runner answers a ping in time (False on any sandbox error)."""
        try:
            self.request({"type": "ping"}, timeout)
        except SandboxError:
            return False
        return True

    def shutdown(self) -> None:
        """Ask the runner to exit (the container then removes itself)."""
        try:
            self.send({"type": "shutdown"})
        except SandboxError:
            pass


def send_timeout_error() -> SandboxTimeout:
    return SandboxTimeout(f"the runner did not read its input within {SEND_TIMEOUT_S:g} s")


def broken_error(exc: OSError) -> SandboxGone:
    return SandboxGone(f"the sandbox's channel broke: {exc}")


def answer_of(channel: ChannelProtocol, event: Event) -> events.Answer:
    """`event` as a request's answer (the core lets only answers through; this tells mypy)."""
    if isinstance(event, events.ANSWER_TYPES):
        return event
    raise channel.fail(SandboxProtocolError(f"a {event.frame_type!r} frame instead of an answer"))


def init_frame(
    authorized_imports: list[str] | tuple[str, ...],
    tools: list[dict[str, Any]] | tuple[dict[str, Any], ...],
    variables: dict[str, Any] | None,
    limits: dict[str, int],
) -> dict[str, Any]:
    """The `init` request (shared with the asyncio transport)."""
    return {
        "type": "init",
        "authorized_imports": list(authorized_imports),
        "tools": list(tools),
        "variables": dict(variables or {}),
        "limits": dict(limits),
    }


def write_file_frame(path: str, data: bytes) -> dict[str, Any]:
    return {"type": "write_file", "path": path, "data_b64": base64.b64encode(data).decode()}


__all__ = [
    "DEFAULT_MAX_FRAME",
    "STDERR_TAIL_BYTES",
    "FrameSchemaError",
    "Sandbox",
    "SandboxError",
    "SandboxGone",
    "SandboxProtocolError",
    "SandboxRequestError",
    "SandboxTimeout",
    "Verdict",
]
