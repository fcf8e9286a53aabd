"""The blocking driver and the asyncio channel behave alike, over a real socket pair.

A thread plays the runner on one end (reading plain frames, writing them
multiplexed as the engine does); the transport under test holds the other.
No Docker: these check what the transports themselves add (reads, writes,
deadlines, callbacks), the same for both.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from executor.daemon.channel import AsyncSandbox
from executor.sandbox import events
from executor.sandbox.driver import Sandbox
from executor.sandbox.errors import SandboxGone, SandboxRequestError, SandboxTimeout

READY = {"type": "ready", "pid": 7, "python": "3.11", "interpreter": True}
USAGE = {"wall_ms": 1, "cpu_ms": 1, "peak_memory_bytes": 1, "output_bytes": 0}
SLACK_S = 10.0  # "within the timeout" on a loaded machine (not a speed test)


def result(rid: str, **fields: Any) -> dict[str, Any]:
    return {"type": "result", "id": rid, "verdict": "OK", "stdout": "", "usage": USAGE, **fields}


class FakeRunner:
    """The runner's end of the channel, scripted by a test."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(30)

    def read(self) -> dict[str, Any]:
        (size,) = struct.unpack(">I", self._exact(4))
        frame: dict[str, Any] = json.loads(self._exact(size))
        return frame

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def send(self, frame: dict[str, Any]) -> None:
        body = json.dumps(frame).encode()
        payload = struct.pack(">I", len(body)) + body
        self.sock.sendall(bytes([1, 0, 0, 0]) + struct.pack(">I", len(payload)) + payload)


Script = Callable[[FakeRunner], None]


class Transport:
    """One API over both transports: each call runs to completion, blocking."""

    def __init__(self, kind: str, sock: socket.socket) -> None:
        self.kind = kind
        self.sandbox = Sandbox(None, "fake", "fake", {})
        self.sandbox.attach(sock)
        self.aio = AsyncSandbox(self.sandbox)
        self.loop = asyncio.new_event_loop()

    def ready(self) -> Any:
        if self.kind == "blocking":
            return self.sandbox.recv(5)
        return self.loop.run_until_complete(self.aio.recv_async(5))

    def request(self, frame: dict[str, Any], timeout: float = 5) -> Any:
        if self.kind == "blocking":
            return self.sandbox.request(frame, timeout)
        return self.loop.run_until_complete(self.aio.request_async(frame, timeout))

    def execute(
        self, timeout: float, tool: Callable[[events.ToolCall], Any], **kw: Any
    ) -> events.ExecuteResult:
        seen: list[str] = []
        if self.kind == "blocking":
            return self.sandbox.execute(
                "code", timeout=timeout, on_output=seen.append, on_tool_call=tool, **kw
            )

        async def on_tool_call(call: events.ToolCall) -> Any:
            return await asyncio.to_thread(tool, call)

        return self.loop.run_until_complete(
            self.aio.execute_async(
                "code", timeout=timeout, on_output=seen.append, on_tool_call=on_tool_call, **kw
            )
        )

    def close(self) -> None:
        self.sandbox.destroy()
        self.loop.close()


@pytest.fixture(params=["blocking", "asyncio"])
def pair(request: pytest.FixtureRequest) -> Iterator[Callable[[Script], Transport]]:
    """Start a scripted runner; hand back the transport, ready frame consumed."""
    threads: list[threading.Thread] = []
    transports: list[Transport] = []
    errors: list[BaseException] = []

    def start(script: Script) -> Transport:
        ours, theirs = socket.socketpair()

        def run() -> None:
            runner = FakeRunner(theirs)
            try:
                runner.send(READY)
                script(runner)
            except (EOFError, OSError):
                pass  # the transport closed its end: the test is over
            except BaseException as exc:
                errors.append(exc)
            finally:
                theirs.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        transport = Transport(request.param, ours)
        transports.append(transport)
        assert isinstance(transport.ready(), events.Ready)
        return transport

    yield start
    for transport in transports:
        transport.close()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    assert not errors, errors


def test_slow_tool_is_not_charged_to_the_deadline(pair: Callable[[Script], Transport]) -> None:
    def script(runner: FakeRunner) -> None:
        rid = runner.read()["id"]
        runner.send({"type": "tool_call", "id": rid, "call_id": "c", "name": "t"})
        answer = runner.read()
        runner.send(result(rid, stdout=json.dumps(answer)))

    t = pair(script)

    def slow_tool(call: events.ToolCall) -> dict[str, Any]:
        time.sleep(1.0)  # twice the snippet's deadline
        return {"ok": True, "value": call.name}

    done = t.execute(0.5, slow_tool)
    answer = json.loads(done.result.stdout)
    assert answer == {
        "type": "tool_result",
        "id": done.id,
        "call_id": "c",
        "ok": True,
        "value": "t",
    }


def test_tool_time_budget(pair: Callable[[Script], Transport]) -> None:
    def script(runner: FakeRunner) -> None:
        rid = runner.read()["id"]
        runner.send({"type": "tool_call", "id": rid, "call_id": "c", "name": "t"})
        runner.read()  # never comes: the transport gives up instead of answering

    t = pair(script)
    with pytest.raises(SandboxTimeout, match="tool_time_budget_ms"):
        t.execute(5, lambda call: time.sleep(0.5) or {"ok": True}, tool_time_budget=0.2)
    with pytest.raises(SandboxTimeout):
        t.request({"type": "ping"})  # the channel stays broken


def test_silence_times_out(pair: Callable[[Script], Transport]) -> None:
    def script(runner: FakeRunner) -> None:
        runner.read()
        runner.read()  # blocks until the transport closes

    t = pair(script)
    started = time.monotonic()
    with pytest.raises(SandboxTimeout, match=r"no result from the sandbox within 0\.5 s"):
        t.execute(0.5, lambda call: {"ok": True})
    assert time.monotonic() - started < 0.5 + SLACK_S


def test_refusal_then_ping(pair: Callable[[Script], Transport]) -> None:
    def script(runner: FakeRunner) -> None:
        rid = runner.read()["id"]
        runner.send({"type": "error", "id": rid, "message": "path leaves /workspace"})
        runner.send({"type": "pong", "id": runner.read()["id"]})
        runner.read()

    t = pair(script)
    with pytest.raises(SandboxRequestError, match=r"^path leaves /workspace$"):
        t.request({"type": "read_file", "path": "../x"})
    assert isinstance(t.request({"type": "ping"}), events.Pong)


def test_death_is_gone(pair: Callable[[Script], Transport]) -> None:
    def script(runner: FakeRunner) -> None:
        runner.read()
        runner.sock.sendall(bytes([2, 0, 0, 0, 0, 0, 0, 4]) + b"bye!")

    t = pair(script)
    with pytest.raises(SandboxGone, match="bye!"):
        t.request({"type": "ping"})


def test_interrupt_from_the_loop_while_executing() -> None:
    ours, theirs = socket.socketpair()
    runner = FakeRunner(theirs)
    aio = AsyncSandbox(Sandbox(None, "fake", "fake", {}))
    aio.sandbox.attach(ours)

    def script() -> None:
        runner.send(READY)
        rid = runner.read()["id"]
        assert runner.read() == {"type": "interrupt", "id": rid}
        runner.send(result(rid, verdict="TIMEOUT"))

    async def main() -> events.ExecuteResult:
        assert isinstance(await aio.recv_async(5), events.Ready)

        async def tool(call: events.ToolCall) -> dict[str, Any]:
            raise AssertionError("no tool call expected")

        run = asyncio.create_task(
            aio.execute_async("while True: pass", timeout=30, on_output=print, on_tool_call=tool)
        )
        await asyncio.sleep(0.2)
        await aio.interrupt_async()
        return await run

    thread = threading.Thread(target=script, daemon=True)
    thread.start()
    try:
        done = asyncio.run(main())
        assert done.result.verdict == "TIMEOUT"
        assert asyncio.run(_nothing_to_interrupt(aio)) is None
    finally:
        aio.destroy()
        thread.join(10)
        theirs.close()


async def _nothing_to_interrupt(aio: AsyncSandbox) -> None:
    await aio.interrupt_async()  # idle: writes nothing
