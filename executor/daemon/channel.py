"""The container channel on the daemon's event loop (no thread per call).

`AsyncSandbox` is an asyncio transport around the same `ChannelProtocol`
(executor/sandbox/protocol.py) as the blocking driver: it reads and writes the
container's attach socket through the loop and lets the core do every check
(stream headers, frame sizes, turn-taking, the schema of every frame, the
execute clock that pauses while a tool call is out and the tool-time budget).
The container itself (start, kill, destroy, exit status, the pool's blocking
health ping) is the driver's `Sandbox`, held here, not inherited. Why the loop:
on a busy host every cross-thread hand-off costs a scheduler wake-up; keeping
the hot path on the loop removes two of them per snippet and per session
open. Every wait has a deadline, and a runner that stops reading its input
cannot block the loop (writes are non-blocking with a timeout).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

from executor.sandbox.driver import (
    READ_CHUNK,
    SEND_TIMEOUT_S,
    Sandbox,
    answer_of,
    broken_error,
    init_frame,
    send_timeout_error,
)
from executor.sandbox.events import (
    Answer,
    Artifact,
    Event,
    ExecuteResult,
    Output,
    Ready,
    ToolCall,
)
from executor.sandbox.protocol import DEFAULT_TOOL_TIME_BUDGET_S, ChannelProtocol
from proto.limits import SessionLimits

ToolHandler = Callable[[ToolCall], Awaitable[dict[str, Any]]]


class AsyncSandbox:
    """A sandbox container whose frames move on the asyncio loop."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.channel: ChannelProtocol = sandbox.channel
        self._write_lock = asyncio.Lock()  # an interrupt must not split a tool result

    # -- the container (blocking; the pool calls these in a thread) -----------

    @classmethod
    def start(cls, client: Any, image: str, limits: SessionLimits, **kwargs: Any) -> AsyncSandbox:
        """`Sandbox.start` (blocking: create, attach, start, wait for ready), wrapped."""
        return cls(Sandbox.start(client, image, limits, **kwargs))

    @property
    def container_id(self) -> str:
        return self.sandbox.container_id

    @property
    def name(self) -> str:
        return self.sandbox.name

    @property
    def labels(self) -> dict[str, str]:
        return self.sandbox.labels

    @property
    def ready(self) -> Ready | None:
        return self.sandbox.ready

    @property
    def stderr_tail(self) -> str:
        return self.channel.stderr_tail

    def ping(self, timeout: float = 2.0) -> bool:
        """Blocking ping (the pool's health check of an idle warm container)."""
        return self.sandbox.ping(timeout)

    def kill(self) -> None:
        self.sandbox.kill()

    def destroy(self) -> None:
        self.sandbox.destroy()

    def inspect_exit(self, wait: float = 2.0) -> dict[str, Any]:
        return self.sandbox.inspect_exit(wait)

    def fileno(self) -> int:
        return self.sandbox.fileno()

    # -- bytes on the loop ----------------------------------------------------

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        async with self._write_lock:
            sock = self.sandbox.sock
            sock.settimeout(0)
            try:
                sent = sock.send(data)  # usually everything, without touching the loop
                if sent < len(data):
                    loop = asyncio.get_running_loop()
                    async with asyncio.timeout(SEND_TIMEOUT_S):
                        await loop.sock_sendall(sock, data[sent:])
            except BlockingIOError:
                try:
                    async with asyncio.timeout(SEND_TIMEOUT_S):
                        await asyncio.get_running_loop().sock_sendall(sock, data)
                except TimeoutError:
                    raise self.channel.fail(send_timeout_error()) from None
                except OSError as exc:
                    raise self.channel.fail(broken_error(exc)) from None
            except TimeoutError:
                raise self.channel.fail(send_timeout_error()) from None
            except OSError as exc:
                raise self.channel.fail(broken_error(exc)) from None

    async def _next_event(self, timeout: float | None = None) -> Event:
        """The next event; reads until one is complete or the deadline passes."""
        channel, since = self.channel, self.channel.now()
        while (event := channel.next_event()) is None:
            if (data := await self._recv(channel.wait_left(timeout, since))) is not None:
                channel.receive_data(data)
        return event

    async def _recv(self, wait: float) -> bytes | None:
        """One read of at most `wait` seconds, through the loop when nothing is ready yet."""
        sock = self.sandbox.sock
        sock.settimeout(0)
        try:
            return sock.recv(READ_CHUNK)  # often ready at once: no loop round trip
        except BlockingIOError:
            pass
        except OSError as exc:
            raise self.channel.fail(broken_error(exc)) from None
        try:
            async with asyncio.timeout(None if math.isinf(wait) else wait):
                return await asyncio.get_running_loop().sock_recv(sock, READ_CHUNK)
        except TimeoutError:
            return None
        except OSError as exc:
            raise self.channel.fail(broken_error(exc)) from None

    async def send_async(self, frame: dict[str, Any]) -> None:
        """Write one frame as it is (no turn-taking)."""
        await self._write(self.channel.encode(frame))

    async def recv_async(self, timeout: float) -> Event:
        """The next event; SandboxTimeout when none is complete within `timeout` seconds."""
        return await self._next_event(timeout)

    async def request_async(self, frame: dict[str, Any], timeout: float) -> Answer:
        """A request and its typed answer; the runner's `error` raises SandboxRequestError."""
        await self._write(self.channel.request(frame, timeout))
        return answer_of(self.channel, await self._next_event())

    async def init_async(
        self,
        *,
        authorized_imports: list[str],
        tools: list[dict[str, Any]],
        variables: dict[str, Any],
        limits: dict[str, int],
        timeout: float = 10.0,
    ) -> None:
        await self.request_async(init_frame(authorized_imports, tools, variables, limits), timeout)

    async def execute_async(
        self,
        code: str,
        *,
        timeout: float,
        on_output: Callable[[str], None],
        on_tool_call: ToolHandler,
        tool_time_budget: float = DEFAULT_TOOL_TIME_BUDGET_S,
        on_stderr: Callable[[str], None] | None = None,
        on_artifact: Callable[[Artifact], None] | None = None,
    ) -> ExecuteResult:
        """`Sandbox.execute` on the loop. Time inside `on_tool_call` is not charged.

        stderr chunks go to `on_stderr` and checked artifacts to `on_artifact`
        as they come (dropped when not given: the result holds the stderr).
        """
        channel = self.channel
        await self._write(channel.execute(code, timeout=timeout, tool_time_budget=tool_time_budget))
        while not isinstance(event := await self._next_event(), ExecuteResult):
            if isinstance(event, Output):
                if event.stream == "stderr":
                    if on_stderr is not None:
                        on_stderr(event.data)
                else:
                    on_output(event.data)
            elif isinstance(event, Artifact):
                if on_artifact is not None:
                    on_artifact(event)
            elif isinstance(event, ToolCall):
                reply = event.refusal if event.refusal is not None else await on_tool_call(event)
                await self._write(channel.answer_tool_call(event.call_id, reply))
        return event

    async def interrupt_async(self) -> None:
        """Stop the running snippet as its wall-time limit would; its result still comes."""
        await self._write(self.channel.interrupt())
