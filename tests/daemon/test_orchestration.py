"""Snippet orchestration and request validation without Docker.

The sandbox here is a fake with the `AsyncSandbox` methods the daemon uses;
it exists to inject what a real container cannot be made to do on demand
(die at init, time out, answer a tool call at a chosen moment). The driver's
real exception classes are raised, so the orchestration's mapping is the one
production uses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from executor.daemon import lifecycle, orchestration, validation
from executor.daemon.config import DaemonConfig
from executor.daemon.errors import (
    CannotReplay,
    InvalidArgument,
    LimitTooHigh,
    LimitTooLow,
    PoolExhausted,
    SandboxUnavailable,
    TooLarge,
)
from executor.sandbox import driver, events
from proto import executor_pb2 as pb
from proto.frames import DEFAULT_MAX_FRAME
from proto.limits import LIMIT_MINIMUMS, MiB, SessionLimits

CONFIG = DaemonConfig()


class FakeSandbox:
    """Scripted container: `script(on_output, on_tool_call)` plays the runner's part."""

    def __init__(
        self,
        *,
        init_error: BaseException | None = None,
        script: Callable[..., Awaitable[dict[str, Any]]] | None = None,
        oom: bool = False,
    ) -> None:
        self.init_error = init_error
        self.script = script
        self.oom = oom
        self.inits: list[dict[str, Any]] = []
        self.killed = False

    async def init_async(self, **kwargs: Any) -> None:
        self.inits.append(kwargs)
        if self.init_error is not None:
            raise self.init_error

    async def execute_async(
        self, code: str, *, timeout: float, on_output: Any, on_tool_call: Any, **_: Any
    ) -> events.ExecuteResult:
        assert self.script is not None
        frame = await self.script(on_output, lambda d: on_tool_call(call(d)))
        return events.result(frame, output_cap=1 << 20)

    def kill(self) -> None:
        self.killed = True

    def inspect_exit(self) -> dict[str, Any]:
        return {"oom_killed": self.oom}


class FakePool:
    """Hands out prepared sandboxes; records what was destroyed and released."""

    def __init__(self, sandboxes: list[FakeSandbox]) -> None:
        self.sandboxes = list(sandboxes)
        self.destroyed: list[FakeSandbox] = []
        self.released: list[FakeSandbox] = []
        self.acquired = 0

    async def acquire(self, limits: SessionLimits, timeout: float) -> FakeSandbox:
        if not self.sandboxes:
            raise PoolExhausted("empty")
        self.acquired += 1
        return self.sandboxes.pop(0)

    def release(self, sandbox: Any) -> None:
        self.released.append(sandbox)

    async def destroy(self, sandbox: Any) -> None:
        self.destroyed.append(sandbox)


def ok_result(**extra: Any) -> dict[str, Any]:
    return {
        "type": "result",
        "id": "q1",
        "verdict": "OK",
        "stdout": "",
        "truncated": False,
        "state": [],
        "usage": {"wall_ms": 0, "cpu_ms": 0, "peak_memory_bytes": 0, "output_bytes": 0},
        **extra,
    }


def call(d: dict[str, Any]) -> events.ToolCall:
    """A scripted tool call as the channel delivers it (a typed event)."""
    return events.tool_call({"type": "tool_call", "id": "q1", **d})


async def collect(stream: AsyncIterator[pb.ExecuteResponse]) -> list[pb.ExecuteResponse]:
    return [r async for r in stream]


def plan(**request: Any) -> validation.OpenPlan:
    return validation.open_session(pb.OpenSessionRequest(**request), CONFIG)


# --- binding a container to a session ---------------------------------------


def test_a_container_dead_at_init_is_replaced_and_counted():
    dead, good = FakeSandbox(init_error=driver.SandboxGone("eof")), FakeSandbox()
    pool = FakePool([dead, good])
    failures: list[int] = []

    got = asyncio.run(
        orchestration.bind_container(
            pool, plan(), open_wait_s=1, on_failure=lambda: failures.append(1)
        )
    )
    assert got is good and pool.destroyed == [dead] and failures == [1]


def test_exhausted_init_retries_are_unavailable_not_failed_precondition():
    pool = FakePool([FakeSandbox(init_error=driver.SandboxGone("eof")) for _ in range(5)])
    with pytest.raises(SandboxUnavailable, match="3 containers in a row failed at session init"):
        asyncio.run(orchestration.bind_container(pool, plan(), open_wait_s=1))
    assert pool.acquired == orchestration.OPEN_ATTEMPTS == len(pool.destroyed)


def test_a_refused_setup_is_the_callers_fault_and_not_retried():
    sandbox = FakeSandbox(init_error=driver.SandboxRequestError("bad tool spec"))
    pool = FakePool([sandbox, FakeSandbox()])
    failures: list[int] = []
    with pytest.raises(InvalidArgument, match="refused the session setup: bad tool spec"):
        asyncio.run(
            orchestration.bind_container(
                pool, plan(), open_wait_s=1, on_failure=lambda: failures.append(1)
            )
        )
    assert pool.acquired == 1 and not failures


# --- running a snippet -------------------------------------------------------


def test_output_then_tool_call_then_result_in_order():
    async def script(on_output: Any, on_tool_call: Any) -> dict[str, Any]:
        on_output("hello\n")
        reply = await on_tool_call({"call_id": "c1", "name": "add", "args": [1, 2], "kwargs": {}})
        return ok_result(stdout=f"hello\n{reply['value']}")

    async def scenario() -> list[pb.ExecuteResponse]:
        answers: asyncio.Queue[pb.ExecuteRequest] = asyncio.Queue()

        async def requests() -> AsyncIterator[pb.ExecuteRequest]:
            while True:
                yield await answers.get()

        out = []
        stream = orchestration.run_snippet(
            FakeSandbox(script=script), "x", SessionLimits(), grace_ms=100, requests=requests()
        )
        async for response in stream:
            out.append(response)
            if response.HasField("tool_call"):
                call = response.tool_call
                assert json.loads(call.args_json) == [1, 2]
                answers.put_nowait(
                    pb.ExecuteRequest(
                        tool_result=pb.ToolResult(call_id=call.call_id, ok=True, value_json="3")
                    )
                )
        return out

    out = asyncio.run(scenario())
    assert [r.WhichOneof("kind") for r in out] == ["output", "tool_call", "result"]
    assert out[-1].result.verdict == pb.VERDICT_OK and out[-1].result.stdout == "hello\n3"


def test_a_tool_without_answer_gets_a_timeout_error_inside_the_snippet():
    async def script(on_output: Any, on_tool_call: Any) -> dict[str, Any]:
        reply = await on_tool_call({"call_id": "c1", "name": "slow", "args": [], "kwargs": {}})
        assert reply["ok"] is False and reply["error"]["type"] == "TimeoutError"
        return ok_result(stdout=reply["error"]["message"])

    async def silent() -> AsyncIterator[pb.ExecuteRequest]:
        await asyncio.sleep(3600)
        yield pb.ExecuteRequest()

    limits = SessionLimits(tool_timeout_ms=50)
    out = asyncio.run(
        collect(
            orchestration.run_snippet(
                FakeSandbox(script=script), "x", limits, grace_ms=100, requests=silent()
            )
        )
    )
    assert "got no answer from the client within 50 ms" in out[-1].result.stdout


def test_a_hard_timeout_kills_the_container_and_loses_the_session():
    async def script(on_output: Any, on_tool_call: Any) -> dict[str, Any]:
        raise driver.SandboxTimeout("no frame")

    sandbox = FakeSandbox(script=script)
    out = asyncio.run(
        collect(
            orchestration.run_snippet(
                sandbox, "x", SessionLimits(wall_time_ms=1000), grace_ms=500, requests=None
            )
        )
    )
    result = out[-1].result
    assert result.verdict == pb.VERDICT_TIMEOUT and result.session_lost and sandbox.killed
    assert "no answer within 1.5 s" in result.error.message


@pytest.mark.parametrize(
    ("oom", "verdict"), [(True, pb.VERDICT_MEMORY_LIMIT), (False, pb.VERDICT_SANDBOX_LOST)]
)
def test_a_dead_container_is_memory_limit_when_oom_killed(oom, verdict):
    async def script(on_output: Any, on_tool_call: Any) -> dict[str, Any]:
        raise driver.SandboxGone("eof")

    sandbox = FakeSandbox(script=script, oom=oom)
    out = asyncio.run(
        collect(orchestration.run_snippet(sandbox, "x", SessionLimits(), grace_ms=0, requests=None))
    )
    assert out[-1].result.verdict == verdict and out[-1].result.session_lost and sandbox.killed


def test_a_runner_refusal_is_internal_but_keeps_the_session():
    async def script(on_output: Any, on_tool_call: Any) -> dict[str, Any]:
        raise driver.SandboxRequestError("code too large")

    sandbox = FakeSandbox(script=script)
    out = asyncio.run(
        collect(orchestration.run_snippet(sandbox, "x", SessionLimits(), grace_ms=0, requests=None))
    )
    assert out[-1].result.verdict == pb.VERDICT_INTERNAL
    assert not out[-1].result.session_lost and not sandbox.killed


def test_tool_reply_checks_the_clients_json():
    bad = orchestration.tool_reply(pb.ToolResult(call_id="c", ok=True, value_json="{nope"))
    assert bad["ok"] is False and bad["error"]["type"] == "ValueError"
    err = orchestration.tool_reply(pb.ToolResult(call_id="c", ok=False, error_type="X" * 999))
    assert len(err["error"]["type"]) == validation.MAX_NAME_CHARS


# --- validation: everything before a container is touched ---------------------


def test_variables_that_grow_when_re_encoded_are_refused_up_front():
    # 1e9 is 3 characters; re-encoded as 1000000000.0 it is 12: the text fits the
    # frame, its encoding does not. Refused by validation, before any container.
    count = DEFAULT_MAX_FRAME // 5
    text = '{"x": [' + ",".join(["1e9"] * count) + "]}"
    assert len(text) < DEFAULT_MAX_FRAME
    with pytest.raises(InvalidArgument, match="too large once encoded"):
        validation.open_session(pb.OpenSessionRequest(variables_json=text), CONFIG)
    with pytest.raises(InvalidArgument, match="too large once encoded"):
        validation.set_variables(
            pb.SetVariablesRequest(session_id="s", variables_json=text), CONFIG
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [("memory_bytes", 1), ("cpu_millis", 1), ("pids", 1), ("workspace_bytes", 9)],
)
def test_impossible_limits_name_the_minimum(field, value):
    with pytest.raises(LimitTooLow) as err:
        validation.limits(pb.Limits(**{field: value}), CONFIG)
    least = LIMIT_MINIMUMS[field]
    assert f"limit {field}={value} is below the minimum of {least}" in str(err.value)


def test_minimum_limits_are_valid_and_within_the_default_maxima():
    for name, least in LIMIT_MINIMUMS.items():
        assert 0 < least <= getattr(CONFIG.default_limits, name), name


def test_a_workspace_that_does_not_fit_in_memory_is_refused():
    with pytest.raises(InvalidArgument, match=r"workspace_bytes=.* does not fit"):
        validation.limits(pb.Limits(memory_bytes=128 * MiB, workspace_bytes=512 * MiB), CONFIG)
    ok = validation.limits(pb.Limits(memory_bytes=512 * MiB, workspace_bytes=256 * MiB), CONFIG)
    assert ok.workspace_bytes == 256 * MiB


def test_limits_above_the_maximum_still_name_the_maximum():
    with pytest.raises(LimitTooHigh, match="exceeds the server's maximum"):
        validation.limits(pb.Limits(pids=10_000), CONFIG)


@pytest.mark.parametrize("key", ["a\nlevel=error", "x\x1b[31m", "tab\there", "del\x7f"])
def test_label_keys_with_control_characters_are_refused(key):
    with pytest.raises(InvalidArgument, match="control characters"):
        validation.open_session(pb.OpenSessionRequest(labels={key: "v"}), CONFIG)


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"tools": [pb.ToolSpec(name="_private")]},
        {"tools": [pb.ToolSpec(name="a"), pb.ToolSpec(name="a")]},
        {"tools": [pb.ToolSpec(name="a", inputs_json="[1]")]},
        {"authorized_imports": [""]},
        {"variables_json": "[1, 2]"},
        {"labels": {str(i): "v" for i in range(validation.MAX_LABELS + 1)}},
    ],
)
def test_malformed_open_requests_are_invalid_argument(request_kwargs):
    with pytest.raises(InvalidArgument):
        validation.open_session(pb.OpenSessionRequest(**request_kwargs), CONFIG)


def test_code_and_file_caps():
    with pytest.raises(TooLarge, match="max_code_bytes"):
        validation.code("x" * (CONFIG.max_limits.code_bytes + 1), CONFIG)
    with pytest.raises(TooLarge, match="max_file_bytes"):
        validation.file_size(CONFIG.max_file_bytes + 1, CONFIG)
    with pytest.raises(InvalidArgument, match="control characters"):
        validation.workspace_path("a\nb")


# --- merged behaviours: interrupt on leave, history, tool-result cap, replay --------


class InterruptibleSandbox(FakeSandbox):
    """A runner that stops its snippet (INTERRUPTED, state kept) when told to."""

    def __init__(self, *, obey: bool = True) -> None:
        super().__init__()
        self.obey = obey
        self.sent: list[dict[str, Any]] = []
        self._stop = asyncio.Event()

    async def interrupt_async(self) -> None:
        self.sent.append({"type": "interrupt"})
        if self.obey:
            self._stop.set()

    async def execute_async(
        self, code: str, *, timeout: float, on_output: Any, on_tool_call: Any, **_: Any
    ) -> events.ExecuteResult:
        on_output("started\n")
        await self._stop.wait()
        return events.result(ok_result(verdict="INTERRUPTED"), output_cap=1 << 20)

    def kill(self) -> None:
        super().kill()
        self._stop.set()


def test_a_consumer_leaving_mid_snippet_interrupts_and_keeps_the_session():
    sandbox = InterruptibleSandbox()
    results: list[pb.ExecuteResult] = []

    async def on_result(result: pb.ExecuteResult) -> None:
        results.append(result)

    async def scenario() -> None:
        stream = orchestration.run_snippet(
            sandbox, "x", SessionLimits(), grace_ms=2000, requests=None, on_result=on_result
        )
        first = await anext(stream)
        assert first.output.text == "started\n"
        await stream.aclose()  # the client went away

    asyncio.run(scenario())
    assert [f["type"] for f in sandbox.sent] == ["interrupt"]
    assert len(results) == 1 and results[0].verdict == pb.VERDICT_INTERRUPTED
    assert not results[0].session_lost and not sandbox.killed


def test_a_runner_ignoring_the_interrupt_is_killed_after_the_grace():
    sandbox = InterruptibleSandbox(obey=False)
    results: list[pb.ExecuteResult] = []

    async def on_result(result: pb.ExecuteResult) -> None:
        results.append(result)

    async def scenario() -> None:
        stream = orchestration.run_snippet(
            sandbox, "x", SessionLimits(), grace_ms=50, requests=None, on_result=on_result
        )
        await anext(stream)
        await stream.aclose()

    asyncio.run(scenario())
    assert sandbox.killed and len(results) == 1


def test_tool_answers_are_logged_for_replay_and_oversized_ones_refused_inside():
    async def script(on_output: Any, on_tool_call: Any) -> dict[str, Any]:
        reply = await on_tool_call({"call_id": "c1", "name": "big", "args": [], "kwargs": {}})
        return ok_result(stdout=reply["error"]["type"])

    async def scenario() -> tuple[list[pb.ExecuteResponse], Any]:
        control = lifecycle.RunControl(FakeSandbox(), 1.0, _nothing)
        answers: asyncio.Queue[pb.ExecuteRequest] = asyncio.Queue()

        async def requests() -> AsyncIterator[pb.ExecuteRequest]:
            while True:
                yield await answers.get()

        out = []
        stream = orchestration.run_snippet(
            FakeSandbox(script=script),
            "x",
            SessionLimits(),
            grace_ms=100,
            requests=requests(),
            result_cap=10,
            control=control,
        )
        async for response in stream:
            out.append(response)
            if response.HasField("tool_call"):
                answers.put_nowait(
                    pb.ExecuteRequest(
                        tool_result=pb.ToolResult(
                            call_id=response.tool_call.call_id, ok=True, value_json="1" * 11
                        )
                    )
                )
        return out, control

    out, control = asyncio.run(scenario())
    assert out[-1].result.verdict == pb.VERDICT_OK and out[-1].result.stdout == "ToolError"
    assert [name for name, _ in control.tool_log] == ["big"]


async def _nothing() -> None:
    return None


def test_replay_replaces_dead_containers_and_does_not_retry_an_overrun():
    dead, good = FakeSandbox(init_error=driver.SandboxGone("eof")), FakeSandbox()
    pool = FakePool([dead, good])
    failures: list[int] = []
    got, report = asyncio.run(
        orchestration.replayed_container(
            pool,
            SessionLimits(),
            {"authorized_imports": [], "tools": [], "variables": {}, "limits": {}},
            (),
            open_wait_s=1,
            grace_ms=0,
            on_failure=lambda: failures.append(1),
        )
    )
    assert got is good and pool.destroyed == [dead] and failures == [1]
    assert report.replayed == 0

    slow = FakeSandbox(init_error=driver.SandboxTimeout("slow"))
    pool = FakePool([slow, FakeSandbox()])
    with pytest.raises(CannotReplay, match="did not finish"):
        asyncio.run(
            orchestration.replayed_container(
                pool, SessionLimits(), {}, (), open_wait_s=1, grace_ms=0
            )
        )
    assert pool.acquired == 1 and pool.destroyed == [slow]
