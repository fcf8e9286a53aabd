"""The container channel on the daemon's event loop (no thread per call).

`AsyncSandbox` is the driver's `Sandbox` (same container, same hardening, same
hostile-input checks: the multiplexed-stream demuxer, the frame decoder with
its size cap and the frame schema checks) with `send_async`/`recv_async`
reading and writing the attach socket through the loop instead of a blocking
thread. The snippet path (`execute_async`) mirrors `Sandbox.execute` frame for
frame. Why: on a busy host every cross-thread hand-off costs a scheduler
wake-up; keeping the hot path on the loop removes two of them per snippet and
per session open. Every wait still has a deadline, and a runner that stops
reading its input cannot block the loop (the send is non-blocking with a
timeout).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from executor.sandbox import driver
from executor.sandbox.driver import (
    OUTPUT_SLACK,
    READ_CHUNK,
    SEND_TIMEOUT_S,
    FrameSchemaError,
    Sandbox,
    SandboxError,
    SandboxGone,
    SandboxProtocolError,
    SandboxRequestError,
    SandboxTimeout,
)
from proto.frames import FrameError, encode

ToolHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class AsyncSandbox(Sandbox):
    """A driver Sandbox whose frame I/O can also run on an asyncio loop."""

    async def send_async(self, frame: dict[str, Any]) -> None:
        if self._broken is not None:
            raise self._broken
        sock = self._sock
        if sock is None:
            raise SandboxGone("the sandbox was destroyed")
        try:
            data = encode(frame, self.max_frame)
        except FrameError as exc:
            raise SandboxError(f"frame to the sandbox is too large: {exc}") from None
        sock.settimeout(0)
        loop = asyncio.get_running_loop()
        try:
            sent = sock.send(data)  # usually everything, without touching the loop
            if sent < len(data):
                await asyncio.wait_for(loop.sock_sendall(sock, data[sent:]), SEND_TIMEOUT_S)
        except BlockingIOError:
            try:
                await asyncio.wait_for(loop.sock_sendall(sock, data), SEND_TIMEOUT_S)
            except TimeoutError:
                raise self._fail(self._send_timeout()) from None
            except OSError as exc:
                raise self._fail(SandboxGone(f"the sandbox's channel broke: {exc}")) from None
        except TimeoutError:
            raise self._fail(self._send_timeout()) from None
        except OSError as exc:
            raise self._fail(SandboxGone(f"the sandbox's channel broke: {exc}")) from None

    @staticmethod
    def _send_timeout() -> SandboxTimeout:
        return SandboxTimeout(f"the runner did not read its input within {SEND_TIMEOUT_S:g} s")

    async def recv_async(self, timeout: float) -> dict[str, Any]:
        """The next frame; SandboxTimeout when none is complete within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._frames:
            if self._broken is not None:
                raise self._broken
            sock = self._sock
            if sock is None:
                raise SandboxGone("the sandbox was destroyed")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise SandboxTimeout(f"no frame from the sandbox within {timeout:g} s")
            sock.settimeout(0)
            try:
                try:
                    data = sock.recv(READ_CHUNK)
                except BlockingIOError:
                    async with asyncio.timeout(remaining):  # no extra task, unlike wait_for
                        data = await loop.sock_recv(sock, READ_CHUNK)
            except TimeoutError:
                continue
            except OSError as exc:
                raise self._fail(SandboxGone(f"the sandbox's channel broke: {exc}")) from None
            self._absorb(data)
        return self._frames.popleft()

    async def request_async(self, frame: dict[str, Any], timeout: float) -> dict[str, Any]:
        """`Sandbox.request` on the loop: the answer with the same id, or an error."""
        frame = dict(frame)
        rid = frame.setdefault("id", self._next_id())
        await self.send_async(frame)
        answer = await self.recv_async(timeout)
        if answer.get("id") != rid:
            raise self._fail(
                SandboxProtocolError(
                    f"expected the answer to request {rid!r}, got a {answer.get('type')!r} frame"
                )
            )
        if answer.get("type") == "error":
            raise SandboxRequestError(
                str(answer.get("message", "request failed"))[: driver.MAX_MESSAGE]
            )
        return answer

    async def init_async(
        self,
        *,
        authorized_imports: list[str],
        tools: list[dict[str, Any]],
        variables: dict[str, Any],
        limits: dict[str, int],
        timeout: float = 10.0,
    ) -> None:
        answer = await self.request_async(
            {
                "type": "init",
                "authorized_imports": authorized_imports,
                "tools": tools,
                "variables": variables,
                "limits": limits,
            },
            timeout,
        )
        self._expect(answer, "ack")
        if limits.get("output_bytes"):
            self.output_cap = int(limits["output_bytes"])

    async def execute_async(
        self,
        code: str,
        *,
        timeout: float,
        on_output: Callable[[str], None],
        on_tool_call: ToolHandler,
    ) -> dict[str, Any]:
        """`Sandbox.execute` on the loop. Time inside `on_tool_call` is not charged."""
        rid = self._next_id()
        await self.send_async({"type": "execute", "id": rid, "code": code})
        cap = self.output_cap
        deadline = time.monotonic() + timeout
        streamed = 0
        while True:
            answer = await self.recv_async(max(0.0, deadline - time.monotonic()))
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
                on_output(data)
            elif kind == "tool_call":
                from executor.daemon.lifecycle import tool_call_refusal

                refusal = tool_call_refusal(answer)  # e.g. arguments nested too deep
                if refusal is not None:  # the snippet's mistake: raise it there
                    refusal.update(type="tool_result", id=rid, call_id=answer["call_id"])
                    await self.send_async(refusal)
                    continue
                try:
                    call = driver.tool_call_frame(answer)
                except FrameSchemaError as exc:
                    raise self._fail(exc) from None
                started = time.monotonic()
                reply = dict(await on_tool_call(call))
                deadline += time.monotonic() - started
                reply.update(type="tool_result", id=rid, call_id=call["call_id"])
                await self.send_async(reply)
            elif kind == "result":
                try:
                    return driver.result_frame(answer, output_cap=cap)
                except FrameSchemaError as exc:
                    raise self._fail(exc) from None
            elif kind == "error":
                raise SandboxRequestError(
                    str(answer.get("message", "execute failed"))[: driver.MAX_MESSAGE]
                )
            else:
                raise self._fail(SandboxProtocolError(f"unexpected {kind!r} frame during execute"))
