"""Snippet and session-setup orchestration: what the daemon does with a container.

Free of gRPC servicer plumbing and of authentication, so it runs against a
fake sandbox in tests. A sandbox here is anything with the `AsyncSandbox`
methods the daemon uses: `init_async`, `request_async`, `execute_async`,
`kill` and `inspect_exit`.

`bind_container` takes a container from the pool and sends it the session's
init frame, replacing containers that fail at init (a refusal of the request
is the caller's fault and never counts as a container failure; the request was
already validated, so a refusal means the runner disagrees with validation).

`replayed_container` does the same for fork and recover, then replays a
session's recorded history into the new container (`lifecycle.replay`).

`run_snippet` runs one snippet as a task that reads the container's frames;
output chunks and tool calls go through a queue to the response stream as they
arrive, tool answers come back from the client's request stream through one
future per call, and the task's own deadline (wall time + grace, not counting
time spent waiting for tools, which has its own budget: tool_time_budget_ms)
ends in a kill and a TIMEOUT with session_lost. A consumer that leaves before
the result (cancelled Execute, deadline, closed stream) interrupts the snippet
the way `Interrupt` does: the session keeps its state (`lifecycle.RunControl`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

from executor.daemon import convert, lifecycle
from executor.daemon.errors import (
    CannotReplay,
    InvalidArgument,
    SandboxCallFailed,
    SandboxUnavailable,
)
from executor.daemon.validation import MAX_NAME_CHARS, OpenPlan
from executor.sandbox.events import Artifact as ArtifactEvent
from executor.sandbox.events import ExecuteResult, ToolCall
from proto import executor_pb2 as pb
from proto.limits import SessionLimits

log = logging.getLogger("corral.daemon.orchestration")

CALL_TIMEOUT_S = 10.0  # set/get vars, files, init: the runner answers these at once
OPEN_ATTEMPTS = 3  # a warm container found dead at init is replaced this many times
TOOL_MARGIN_S = 0.25  # the daemon gives up on a tool answer this much before the runner
MAX_TOOL_ERROR_CHARS = 64 << 10


class PoolLike(Protocol):
    async def acquire(self, limits: SessionLimits, timeout: float) -> Any: ...
    def release(self, sandbox: Any) -> None: ...
    async def destroy(self, sandbox: Any) -> None: ...


def _driver() -> Any:
    from executor.sandbox import driver

    return driver


async def kill(sandbox: Any) -> None:
    """Kill the container now (hard timeout): unblocks any pending read on its channel."""
    try:
        await asyncio.to_thread(sandbox.kill)
    except Exception as exc:  # a container already gone is fine
        log.debug("kill failed", extra={"error": str(exc)[:200]})


async def bind_container(
    pool: PoolLike, plan: OpenPlan, *, open_wait_s: float, on_failure: Any = None
) -> Any:
    """A pool container initialised for `plan`; SandboxUnavailable after OPEN_ATTEMPTS."""
    driver = _driver()
    last = ""
    for attempt in range(OPEN_ATTEMPTS):
        sandbox = await pool.acquire(plan.limits, open_wait_s)
        try:
            await sandbox.init_async(**plan.init, timeout=CALL_TIMEOUT_S)
            return sandbox
        except driver.SandboxRequestError as exc:
            # The runner answered (the channel works): it refused the request itself.
            # The container saw the request, so it is not reused for another session.
            await pool.destroy(sandbox)
            raise InvalidArgument(f"the sandbox refused the session setup: {exc}") from exc
        except driver.SandboxError as exc:
            await pool.destroy(sandbox)
            last = str(exc)[:200]
            if on_failure is not None:
                on_failure()
            log.warning(
                "container failed at session init; retrying",
                extra={"attempt": attempt + 1, "error": last},
            )
        except BaseException:
            pool.release(sandbox)  # cancelled or a bug: never leak the container
            raise
    raise SandboxUnavailable(
        f"{OPEN_ATTEMPTS} containers in a row failed at session init (last: {last}); "
        "retry in a moment, and if it persists run `corrald doctor` on the daemon host"
    )


async def replayed_container(
    pool: PoolLike,
    limits: SessionLimits,
    init: dict[str, Any],
    entries: Sequence[lifecycle.Entry],
    *,
    open_wait_s: float,
    grace_ms: int,
    checkpoints: Sequence[lifecycle.Checkpoint] = (),
    on_failure: Any = None,
) -> tuple[Any, lifecycle.ReplayReport]:
    """A fresh container, initialised as `init` says, with `entries` replayed into it.

    Containers that die during init or replay are replaced (OPEN_ATTEMPTS);
    a runner refusing the replay or a replayed snippet overrunning its time is
    the history's fault: not retried.
    """
    driver = _driver()
    last = ""
    for attempt in range(OPEN_ATTEMPTS):
        sandbox = await pool.acquire(limits, open_wait_s)
        try:
            await sandbox.init_async(**init, timeout=CALL_TIMEOUT_S)
            report = await lifecycle.replay(sandbox, tuple(entries), limits, grace_ms, checkpoints)
            return sandbox, report
        except driver.SandboxRequestError as exc:
            await pool.destroy(sandbox)
            raise SandboxCallFailed(f"the sandbox refused the replay: {exc}") from exc
        except driver.SandboxTimeout as exc:
            await pool.destroy(sandbox)  # the history's fault, not the container's: no retry
            raise CannotReplay(
                "a replayed snippet did not finish within wall_time_ms + grace "
                "(non-deterministic code?); fork from an earlier checkpoint"
            ) from exc
        except driver.SandboxError as exc:
            await pool.destroy(sandbox)
            last = str(exc)[:200]
            if on_failure is not None:
                on_failure()
            log.warning(
                "container failed during replay; retrying",
                extra={"attempt": attempt + 1, "error": last},
            )
        except BaseException:
            pool.release(sandbox)  # cancelled or a bug: never leak the container
            raise
    raise SandboxUnavailable(
        f"{OPEN_ATTEMPTS} containers in a row failed during replay (last: {last}); "
        "retry in a moment, and if it persists run `corrald doctor` on the daemon host"
    )


def tool_reply(tr: pb.ToolResult) -> dict[str, Any]:
    """A client's ToolResult as the runner's tool_result body (JSON checked here)."""
    if not tr.ok:
        return {
            "ok": False,
            "error": {
                "type": tr.error_type[:MAX_NAME_CHARS] or "Exception",
                "message": tr.error_message[:MAX_TOOL_ERROR_CHARS],
            },
        }
    try:
        value = json.loads(tr.value_json) if tr.value_json else None
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        return {
            "ok": False,
            "error": {
                "type": "ValueError",
                "message": f"the client's tool result is not JSON: {exc}",
            },
        }
    return {"ok": True, "value": value}


async def run_snippet(
    sandbox: Any,
    code: str,
    limits: SessionLimits,
    *,
    grace_ms: int,
    requests: AsyncIterator[pb.ExecuteRequest] | None,
    result_cap: int | None = None,
    control: lifecycle.RunControl | None = None,
    on_result: Callable[[pb.ExecuteResult], Awaitable[None]] | None = None,
) -> AsyncGenerator[pb.ExecuteResponse, None]:
    """Stream one snippet's OutputChunks and ToolCalls, then exactly one ExecuteResult.

    `requests` is the rest of the client's Execute stream (tool answers); None
    when the session has no tools (no answer can ever be needed). A tool
    answer larger than `result_cap` bytes becomes a ToolError inside the
    snippet. `control` (made here when None) is how `Interrupt` reaches the
    run, and collects the tool answers for the history. `on_result` is awaited
    exactly once with the result: before it is yielded, or, when the consumer
    left first, after the snippet was interrupted (the session keeps its state;
    only a runner that ignores the interrupt is killed). A result with
    session_lost means the container was killed; the caller ends the session.
    """
    hard_s = (limits.wall_time_ms + grace_ms) / 1000
    tool_timeout_s = limits.tool_timeout_ms / 1000
    if control is None:
        control = lifecycle.RunControl(sandbox, grace_ms / 1000, lambda: kill(sandbox))
    events: asyncio.Queue[Any] = asyncio.Queue()
    pending = control.pending  # call_id -> the future its answer resolves
    names: dict[str, str] = {}  # call_id -> tool name, for size errors

    def on_output(text: str) -> None:
        events.put_nowait(pb.ExecuteResponse(output=pb.OutputChunk(text=text)))

    def on_stderr(text: str) -> None:
        chunk = pb.OutputChunk(text=text, stream=pb.STREAM_STDERR)
        events.put_nowait(pb.ExecuteResponse(output=chunk))

    def on_artifact(event: ArtifactEvent) -> None:
        # Checked by the channel core (size, count, bytes match the type).
        events.put_nowait(pb.ExecuteResponse(artifact=convert.artifact(event)))

    async def on_tool_call(call: ToolCall) -> dict[str, Any]:
        # `call` passed the channel's schema check (strings, JSON-safe arguments);
        # arguments that cannot cross were refused by the channel before this.
        call_id, name = call.call_id, call.name
        if control.interrupted:
            return dict(lifecycle.INTERRUPT_ERROR)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        pending[call_id] = fut
        names[call_id] = name
        events.put_nowait(
            pb.ExecuteResponse(
                tool_call=pb.ToolCall(
                    call_id=call_id,
                    name=name,
                    args_json=json.dumps(call.args),
                    kwargs_json=json.dumps(call.kwargs),
                )
            )
        )
        # Answer just before the runner's own tool timeout would fire, so the
        # runner never receives an answer to a call it already gave up on.
        wait = max(0.0, tool_timeout_s - min(TOOL_MARGIN_S, tool_timeout_s / 10))
        try:
            async with asyncio.timeout(wait):
                reply = await fut
        except TimeoutError:
            reply = {
                "ok": False,
                "error": {
                    "type": "TimeoutError",
                    "message": f"tool {name[:100]!r} got no answer from the client "
                    f"within {limits.tool_timeout_ms} ms",
                },
            }
        finally:
            pending.pop(call_id, None)
            names.pop(call_id, None)
        control.tool_log.append((name, reply))  # replayed by fork/recover, never re-called
        return reply

    async def read_answers(stream: AsyncIterator[pb.ExecuteRequest]) -> None:
        try:
            async for req in stream:
                if req.WhichOneof("kind") != "tool_result":
                    continue  # only tool results are meaningful after the start
                tr = req.tool_result
                fut = pending.get(tr.call_id)
                if fut is None or fut.done():
                    continue  # late or unknown answer: the call already timed out
                size = len(tr.value_json)
                if result_cap is not None and size > result_cap:
                    # A ToolError inside the snippet, never a lost session.
                    name = names.get(tr.call_id, "?")
                    fut.set_result(lifecycle.oversized_tool_result(name, size, result_cap))
                    continue
                fut.set_result(tool_reply(tr))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A malformed message on the client's stream: pending calls get an
            # error inside the snippet (or time out); the snippet and the session go on.
            log.info("bad message on an Execute stream", extra={"error": str(exc)[:200]})

    reader = asyncio.create_task(read_answers(requests)) if requests is not None else None
    run = asyncio.create_task(
        sandbox.execute_async(
            code,
            timeout=hard_s,
            on_output=on_output,
            on_tool_call=on_tool_call,
            tool_time_budget=limits.tool_time_budget_ms / 1000,
            on_stderr=on_stderr,
            on_artifact=on_artifact,
        )
    )
    control.task = run
    done = object()
    run.add_done_callback(lambda _: events.put_nowait(done))
    result: pb.ExecuteResult | None = None
    try:
        while (item := await events.get()) is not done:
            yield item
        result = await _outcome(sandbox, run, limits, hard_s, control)
    finally:
        if reader is not None:
            reader.cancel()
        if result is None:
            # The consumer left before the result (cancelled Execute, deadline,
            # closed stream): interrupt the snippet, wait the grace for its
            # result, keep the session. Shielded: a second cancel must not leave
            # the runner half-way.
            await asyncio.shield(control.stop())
            if not run.done():
                run.cancel()
                await asyncio.wait({run}, timeout=5.0)
            left = await _outcome(sandbox, run, limits, hard_s, control)
            if on_result is not None:
                await on_result(left)
            log.info("client left mid-snippet; interrupted")
    if on_result is not None:
        await on_result(result)
    yield pb.ExecuteResponse(result=result)


async def _outcome(
    sandbox: Any,
    run: asyncio.Task[ExecuteResult],
    limits: SessionLimits,
    hard_s: float,
    control: lifecycle.RunControl,
) -> pb.ExecuteResult:
    """The ExecuteResult for a finished channel call, or a lost-session verdict."""
    driver = _driver()
    try:
        return convert.execute_result(run.result())
    except driver.SandboxRequestError as exc:
        if control.interrupted:
            # A runner that refuses the interrupt frame cannot stop the snippet
            # and its channel is out of step: the container goes, the session
            # can be recovered.
            await kill(sandbox)
            return convert.lost_result(
                pb.VERDICT_SANDBOX_LOST,
                f"the runner cannot interrupt ({str(exc)[:200]}); the container was "
                "killed; recover() continues the session from its last checkpoint",
            )
        # The runner refused the execute frame but keeps serving: not the snippet's fault.
        return pb.ExecuteResult(
            verdict=pb.VERDICT_INTERNAL,
            error=pb.ErrorInfo(type="INTERNAL", message=f"the runner refused: {exc}"[:2000]),
        )
    except driver.SandboxTimeout as exc:
        await kill(sandbox)
        return convert.lost_result(
            pb.VERDICT_TIMEOUT,
            f"no answer within {hard_s:g} s (wall_time_ms + grace): {str(exc)[:200]}; "
            "the container was killed",
            wall_ms=int(hard_s * 1000),
        )
    except (driver.SandboxError, asyncio.CancelledError) as exc:
        await kill(sandbox)
        if control.killed:
            return convert.lost_result(
                pb.VERDICT_SANDBOX_LOST,
                f"the snippet did not stop within {control.grace_s:g} s of the interrupt "
                "(hard_timeout_grace_ms); the container was killed; recover() continues "
                "the session from its last checkpoint",
            )
        info = await asyncio.to_thread(_inspect_exit, sandbox)
        if info.get("oom_killed"):
            return convert.lost_result(
                pb.VERDICT_MEMORY_LIMIT,
                f"the container ran out of memory (limit {limits.memory_bytes} bytes) "
                "and was killed",
            )
        log.warning("container lost during a snippet", extra={"error": str(exc)[:300]})
        return convert.lost_result(
            pb.VERDICT_SANDBOX_LOST, f"the container died or was killed: {str(exc)[:500]}"
        )
    except Exception as exc:
        log.exception("snippet failed inside the daemon")
        await kill(sandbox)
        return convert.lost_result(pb.VERDICT_INTERNAL, f"daemon error: {exc}"[:500])


def _inspect_exit(sandbox: Any) -> dict[str, Any]:
    try:
        info = sandbox.inspect_exit()
        return info if isinstance(info, dict) else {}
    except Exception:  # the container may already be removed
        return {}
