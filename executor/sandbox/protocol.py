"""The daemon side of the container channel as a sans-IO state machine.

`ChannelProtocol` is fed the bytes read from a container's attach stream
(`receive_data`) and hands back typed events (`next_event`, see
`executor/sandbox/events.py`); what to write to the container comes back as
bytes from the method that decides it (`request`, `execute`,
`answer_tool_call`, `interrupt`). It does no I/O: no sockets, threads or
event loop. The blocking driver (`executor/sandbox/driver.py`), the daemon's
asyncio channel (`executor/daemon/channel.py`) and the seccomp tool's raw
runs (`StreamDemux` only) are thin transports around it, so every size, order
and time check of the channel is written once, here.

What it owns:

- Docker's multiplexed attach stream (`StreamDemux`): 8-byte headers (stream
  1 or 2, three zero bytes, big-endian length), payload passed through without
  buffering; stderr keeps a bounded tail for diagnostics.
- Frames (proto/frames.md): the announced length is checked before the body
  is buffered, so memory stays below one maximum frame plus one read.
- Turn-taking: one request in flight; its answer must carry its id and an
  answer type that fits it; anything else is a protocol violation. Request ids
  are chosen here.
- The execute state machine: output counted against the snippet's cap (with a
  little slack for the runner's batching; stdout and stderr each), artifacts
  counted against `max_artifacts` and each checked by `events.artifact`
  (size, base64, bytes that match the declared type), tool calls, the result. Its
  deadline (the daemon's hard timeout) pauses while a tool call is out, as the
  runner's soft timer does, crediting each call a little transit time, up to
  a total tool-time budget (`tool_time_budget_ms`).
- Failure memory: after a protocol error, a timeout or the end of the stream
  the channel is broken, and every later call raises that error again.

Time comes from `clock` (monotonic seconds), injectable for tests.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from executor.sandbox import events
from executor.sandbox.errors import (
    SandboxError,
    SandboxGone,
    SandboxProtocolError,
    SandboxRequestError,
    SandboxTimeout,
)
from executor.sandbox.events import Event
from proto.frames import DEFAULT_MAX_FRAME, FrameDecoder, FrameError, FrameTooLarge, encode
from proto.limits import SessionLimits

STREAM_STDOUT, STREAM_STDERR = 1, 2
STDERR_TAIL_BYTES = 8 << 10  # last bytes of the runner's stderr kept for diagnostics
OUTPUT_SLACK = 4096  # characters tolerated past the output cap before calling it a violation
# Time credited to each tool call on top of the measured pause: the tool_call and
# tool_result frames cross the engine's attach proxy while the runner's timer is
# paused but the daemon's is not. Counted against the tool-time budget.
TOOL_TRANSIT_CREDIT_S = 0.002
DEFAULT_TOOL_TIME_BUDGET_S = SessionLimits().tool_time_budget_ms / 1000

# The answer type each request expects; a request type not listed accepts any answer.
ANSWERS = {
    "init": "ack",
    "set_vars": "ack",
    "get_vars": "vars",
    "write_file": "ack",
    "read_file": "file",
    "ping": "pong",
    "checkpoint": "checkpoint",
    "rollback": "ack",
    "drop_checkpoint": "ack",
    "list_checkpoints": "checkpoints",
    "list_files": "files",
    "remove_file": "ack",
    "make_dir": "ack",
}


class StreamDemux:
    """Splits Docker's multiplexed attach stream into (stream, payload) pieces.

    Holds at most a partial 8-byte header between calls: payload bytes are
    handed on as they arrive, never collected.
    """

    def __init__(self) -> None:
        self._hdr = bytearray()
        self._remaining = 0  # payload bytes left in the current chunk
        self._stream = 0

    def feed(self, data: bytes) -> Iterator[tuple[int, memoryview]]:
        """Yield (STREAM_STDOUT or STREAM_STDERR, payload) for `data`; bad headers raise."""
        view = memoryview(data)
        i, n = 0, len(view)
        while i < n:
            if self._remaining == 0:
                take = view[i : i + 8 - len(self._hdr)]
                self._hdr += take
                i += len(take)
                if len(self._hdr) < 8:
                    return
                stream, zero = self._hdr[0], self._hdr[1:4]
                if stream not in (STREAM_STDOUT, STREAM_STDERR) or zero != b"\x00\x00\x00":
                    raise SandboxProtocolError(
                        "the attach stream is not multiplexed as expected "
                        f"(header {bytes(self._hdr).hex()})"
                    )
                self._stream = stream
                self._remaining = int.from_bytes(self._hdr[4:8], "big")
                self._hdr.clear()
                continue
            chunk = view[i : i + self._remaining]
            i += len(chunk)
            self._remaining -= len(chunk)
            yield self._stream, chunk


# Channel states.
AWAIT_READY, IDLE, REQUEST, EXECUTE, TOOL = "await_ready", "idle", "request", "execute", "tool"


def _artifact_caps(
    base: tuple[int, int], limits: dict[str, Any], *, only_lower: bool
) -> tuple[int, int]:
    """(max_artifact_bytes, max_artifacts) from a frame's limits over `base` (0 = keep)."""
    out = list(base)
    for i, key in enumerate(("max_artifact_bytes", "max_artifacts")):
        value = limits.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            out[i] = min(value, base[i]) if only_lower else value
    return out[0], out[1]


class ChannelProtocol:
    """One container channel, daemon side. Not thread-safe; no I/O."""

    def __init__(
        self,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        output_cap: int = SessionLimits().output_bytes,
        expect_interpreter: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        defaults = SessionLimits()
        self.max_frame = max_frame
        self.output_cap = output_cap  # the session's; init's limits.output_bytes replaces it
        self.expect_interpreter = expect_interpreter  # None: any runner mode is fine
        self.broken: SandboxError | None = None
        self.state = AWAIT_READY
        self._clock = clock
        self._demux = StreamDemux()
        self._decoder = FrameDecoder(max_frame)
        self._stderr = bytearray()
        self._events: collections.deque[Event] = collections.deque()
        self._ids = 0
        self._rid: str | None = None  # id of the request or execute in flight
        self._kind = ""  # its frame type
        self._deadline = math.inf
        self._timeout = 0.0
        self._init_output: int | None = None
        # The session's artifact caps (init's limits replace them), as for output_cap.
        self.artifact_caps = (defaults.max_artifact_bytes, defaults.max_artifacts)
        self._init_artifacts: tuple[int, int] | None = None
        # execute state
        self._cap = output_cap
        self._streamed = 0
        self._streamed_err = 0
        self._artifact_caps = self.artifact_caps
        self._artifacts = 0
        self._call_id: str | None = None
        self._paused_at = 0.0
        self._tool_time = 0.0
        self._tool_budget = DEFAULT_TOOL_TIME_BUDGET_S

    # -- bytes in ------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Take bytes read from the attach stream; b"" means the stream ended.

        Complete frames become events (see `next_event`). A violation raises,
        and the channel stays broken.
        """
        self._check()
        if not data:
            tail = self.stderr_tail[-500:].strip()
            raise self.fail(
                SandboxGone(
                    "the sandbox's stream ended (container exited or was killed)"
                    + (f"; stderr tail: {tail}" if tail else "")
                )
            )
        try:
            for stream, chunk in self._demux.feed(data):
                if stream == STREAM_STDERR:
                    self._stderr += chunk
                    del self._stderr[:-STDERR_TAIL_BYTES]
                    continue
                for frame in self._decoder.feed(chunk):
                    self._events.append(self._accept(frame))
        except FrameError as exc:
            raise self.fail(SandboxProtocolError(f"bad frame from the sandbox: {exc}")) from None
        except SandboxError as exc:
            raise self.fail(exc) from None

    def next_event(self) -> Event | None:
        """The next event, or None when more bytes are needed.

        The runner's `error` answer to the request in flight raises
        SandboxRequestError (the channel stays usable).
        """
        self._check()
        if not self._events:
            return None
        event = self._events.popleft()
        if isinstance(event, events.Error):
            raise SandboxRequestError(event.message)
        return event

    def _accept(self, frame: dict[str, Any]) -> Event:
        """Check one frame against the state and the schema; move the state on."""
        kind = frame["type"]
        if self.state == AWAIT_READY:
            if kind != "ready":
                raise SandboxProtocolError(f"expected a ready frame first, got {kind[:40]!r}")
            ready = events.ready(frame)
            if self.expect_interpreter is not None and ready.interpreter != self.expect_interpreter:
                mode = "the interpreter" if ready.interpreter else "raw CPython"
                raise SandboxProtocolError(f"the runner reports {mode}, not what was asked")
            self.state = IDLE
            return ready
        if self.state == IDLE:
            raise SandboxProtocolError(f"a {kind[:40]!r} frame arrived with no request in flight")
        if frame.get("id") != self._rid:
            other = str(frame.get("id"))[:60]
            if self.state == REQUEST:
                raise SandboxProtocolError(
                    f"expected the answer to request {self._rid!r}, got a {kind[:40]!r} frame "
                    f"for {other!r}"
                )
            raise SandboxProtocolError(f"a {kind[:40]!r} frame for another request during execute")
        if kind == "error":
            self._finish()
            return events.error(frame)
        if self.state == REQUEST:
            want = ANSWERS.get(self._kind)
            parse = events.ANSWER_PARSERS.get(kind)
            if parse is None or (want is not None and kind != want):
                raise SandboxProtocolError(
                    f"expected a {want or 'answer'!r} frame for {self._kind}, got {kind[:40]!r}"
                )
            answer = parse(frame)
            if self._kind == "init" and self._init_output:
                self.output_cap = self._init_output
            if self._kind == "init" and self._init_artifacts:
                self.artifact_caps = self._init_artifacts
            self._finish()
            return answer
        if kind == "result":
            done = events.result(frame, output_cap=self._cap)
            self._finish()
            return done
        if self.state == TOOL:
            raise SandboxProtocolError(f"a {kind[:40]!r} frame while a tool call is out")
        if kind == "output":
            out = events.output(frame)
            if out.stream == "stderr":
                self._streamed_err += len(out.data)
                streamed = self._streamed_err
            else:
                self._streamed += len(out.data)
                streamed = self._streamed
            if streamed > self._cap + OUTPUT_SLACK:
                raise SandboxProtocolError(
                    f"the sandbox streamed more than {self._cap} bytes of output ({out.stream})"
                )
            return out
        if kind == "artifact":
            max_bytes, max_count = self._artifact_caps
            self._artifacts += 1
            if self._artifacts > max_count:
                raise SandboxProtocolError(
                    f"the sandbox sent more than max_artifacts={max_count} artifacts"
                )
            return events.artifact(frame, max_bytes=max_bytes)
        if kind == "tool_call":
            call = events.tool_call(frame)
            self.state, self._call_id, self._paused_at = TOOL, call.call_id, self._clock()
            return call
        raise SandboxProtocolError(f"unexpected {kind[:40]!r} frame during execute")

    def _finish(self) -> None:
        self.state, self._rid, self._call_id, self._deadline = IDLE, None, None, math.inf

    # -- bytes out -----------------------------------------------------------

    def encode(self, frame: dict[str, Any]) -> bytes:
        """A frame as bytes, without changing the state (`shutdown`, tests' raw frames)."""
        self._check()
        try:
            return encode(frame, self.max_frame)
        except FrameTooLarge as exc:
            raise SandboxError(f"frame to the sandbox is too large: {exc}") from None

    def _start(self, frame: dict[str, Any], timeout: float) -> bytes:
        self._check()
        if self.state != IDLE:
            busy = f"{self._kind} is in flight" if self._rid else "the runner is not ready"
            raise SandboxError(f"cannot send {frame.get('type')!r}: {busy}; one at a time")
        data = self.encode(frame)
        self._rid, self._kind = frame["id"], frame["type"]
        self._timeout = timeout
        self._deadline = self._clock() + timeout
        return data

    def next_id(self) -> str:
        self._ids += 1
        return f"q{self._ids}"

    def request(self, frame: dict[str, Any], timeout: float) -> bytes:
        """Start a request (any type but `execute`); its answer comes as an event.

        `frame` needs a "type"; its "id" is chosen here unless given.
        """
        frame = dict(frame)
        if not isinstance(frame.setdefault("id", self.next_id()), str):
            raise SandboxError("a request id must be a string")
        data = self._start(frame, timeout)
        self.state = REQUEST
        limits = frame.get("limits")
        output_bytes = limits.get("output_bytes") if isinstance(limits, dict) else None
        self._init_output = int(output_bytes) if frame["type"] == "init" and output_bytes else None
        self._init_artifacts = None
        if frame["type"] == "init" and isinstance(limits, dict):
            self._init_artifacts = _artifact_caps(self.artifact_caps, limits, only_lower=False)
        return data

    def execute(
        self,
        code: str,
        *,
        timeout: float,
        limits: dict[str, int] | None = None,
        tool_time_budget: float = DEFAULT_TOOL_TIME_BUDGET_S,
    ) -> bytes:
        """Start a snippet; events follow: `Output`, `Artifact`, `ToolCall`, then one `ExecuteResult`.

        `timeout` bounds the snippet except the time its tool calls are out
        (see `answer_tool_call`), up to `tool_time_budget` seconds of that.
        """
        frame: dict[str, Any] = {"type": "execute", "id": self.next_id(), "code": code}
        cap = self.output_cap
        if limits:
            frame["limits"] = dict(limits)
            if limits.get("output_bytes"):
                cap = min(cap, int(limits["output_bytes"]))
        data = self._start(frame, timeout)
        self.state = EXECUTE
        self._cap, self._streamed, self._streamed_err = cap, 0, 0
        self._artifacts = 0
        self._artifact_caps = _artifact_caps(self.artifact_caps, limits or {}, only_lower=True)
        self._tool_time, self._tool_budget = 0.0, tool_time_budget
        return data

    def answer_tool_call(self, call_id: str, reply: dict[str, Any]) -> bytes:
        """The `tool_result` for the tool call out; the execute's clock runs again.

        `reply` is `{"ok": True, "value": json}` or `{"ok": False, "error":
        {"type", "message"}}`. Returns b"" when that call is no longer out (the
        execute ended meanwhile, e.g. after an interrupt). Raises SandboxTimeout
        once the snippet's tool calls took more than the budget in all.
        """
        self._check()
        if self.state != TOOL or call_id != self._call_id:
            return b""
        spent = self._clock() - self._paused_at + TOOL_TRANSIT_CREDIT_S
        self._tool_time += spent
        self._deadline += spent
        self.state, self._call_id = EXECUTE, None
        if self._tool_time > self._tool_budget:
            raise self.fail(
                SandboxTimeout(
                    f"the tool calls of this snippet took {self._tool_time:.1f} s in all, more "
                    f"than its tool time budget of {self._tool_budget:g} s (tool_time_budget_ms)"
                )
            )
        frame: dict[str, Any] = {"type": "tool_result", "id": self._rid, "call_id": call_id}
        if reply.get("ok") is True:
            frame.update(ok=True, value=reply.get("value"))
        else:
            frame.update(ok=False, error=reply.get("error") or {})
        try:
            return self.encode(frame)
        except SandboxError:
            too_large = {"type": "ValueError", "message": "the tool's result is too large"}
            return self.encode({**frame, "ok": False, "value": None, "error": too_large})

    def interrupt(self) -> bytes:
        """The `interrupt` frame for the running execute; b"" when none runs.

        The runner stops the snippet as its wall-time limit would and answers
        with the ordinary `result` (verdict INTERRUPTED).
        """
        self._check()
        if self.state not in (EXECUTE, TOOL):
            return b""
        return self.encode({"type": "interrupt", "id": self._rid})

    # -- time and failure ----------------------------------------------------

    def expect_ready(self, timeout: float) -> None:
        """Start the clock for the runner's `ready` frame."""
        if self.state == AWAIT_READY:
            self._timeout, self._deadline = timeout, self._clock() + timeout

    def time_left(self) -> float:
        """Seconds until the request, execute or ready wait in flight times out.

        Infinite while a tool call is out (the clock is paused) or nothing is
        in flight.
        """
        if self.state == TOOL:
            return math.inf
        return self._deadline - self._clock()

    def wait_left(self, timeout: float | None = None, since: float = 0.0) -> float:
        """Seconds a transport may wait for bytes now; raises the timeout when none are left.

        The deadline is the one in flight, or `timeout` seconds after `since`
        (from `now()`) for a transport's own wait.
        """
        left = self.time_left() if timeout is None else since + timeout - self._clock()
        if left <= 0:
            raise self.timed_out(timeout)
        return left

    def now(self) -> float:
        return self._clock()

    @property
    def tool_time_left(self) -> float:
        """Seconds of the running snippet's tool-time budget not used yet."""
        used = self._tool_time + (self._clock() - self._paused_at if self.state == TOOL else 0.0)
        return max(0.0, self._tool_budget - used)

    def timed_out(self, timeout: float | None = None) -> SandboxTimeout:
        """The timeout error for what is in flight; the channel is broken from now on.

        `timeout` names the caller's own wait when nothing is in flight.
        """
        if self.state == AWAIT_READY:
            what = "no ready frame from the runner"
        elif self.state in (EXECUTE, TOOL):
            what = "no result from the sandbox"
        elif self.state == REQUEST:
            what = f"no answer to {self._kind} from the sandbox"
        else:
            what = "no frame from the sandbox"
        note = " (tool time not counted)" if self.state in (EXECUTE, TOOL) else ""
        waited = self._timeout if timeout is None else timeout
        exc = SandboxTimeout(f"{what} within {waited:g} s{note}")
        self.fail(exc)
        return exc

    def fail(self, exc: SandboxError) -> SandboxError:
        """Remember a fatal channel error (the first one wins); returns it for `raise`."""
        if self.broken is None:
            self.broken = exc
        return exc

    def _check(self) -> None:
        if self.broken is not None:
            raise self.broken

    @property
    def busy(self) -> bool:
        """True while a request or execute is in flight."""
        return self.state in (REQUEST, EXECUTE, TOOL)

    @property
    def stderr_tail(self) -> str:
        """The last few KiB the runner wrote to stderr (diagnostics only, untrusted)."""
        return bytes(self._stderr).decode("utf-8", "replace")
