"""The `corral.v1.Executor` servicer: one method per RPC, no lifecycle.

Each handler authenticates, finds the caller's session, claims its lock (one
sandbox call at a time) and talks to the session's container through
`channel.AsyncSandbox` on the event loop. Errors are `DaemonError`s, turned
into gRPC statuses by `_rpc` using `errors.grpc_status` (the one mapping).

Execute runs the snippet as a task that reads the container's frames; output
chunks and tool calls go through a queue to the response stream as they
arrive, tool answers come back from the client's request stream through one
future per call, and the task's own deadline (wall time + grace, not counting
time spent waiting for tools) ends in a kill and a TIMEOUT with session_lost.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from executor.daemon import convert, files, lifecycle
from executor.daemon.auth import Authenticator
from executor.daemon.config import DaemonConfig
from executor.daemon.errors import (
    CannotReplay,
    CheckpointLimit,
    DaemonError,
    InvalidArgument,
    SandboxCallFailed,
    SessionBusy,
    SessionLost,
    SessionNeedsRecovery,
    SessionNotFound,
    ShuttingDown,
    TooLarge,
    grpc_status,
)
from executor.daemon.imports import check_imports
from executor.daemon.metrics import DaemonMetrics
from executor.daemon.pool import Pool
from executor.daemon.sessions import Session, SessionRegistry, resolve_limits
from executor.sandbox.events import Artifact as ArtifactEvent
from executor.sandbox.events import ExecuteResult, ToolCall
from proto import executor_pb2 as pb
from proto import executor_pb2_grpc as pb_grpc
from proto.limits import LimitValueError, SessionLimits, check_minimum

log = logging.getLogger("corral.daemon.service")

CALL_TIMEOUT_S = 10.0  # set/get vars, files, init: the runner answers these at once
MAX_TOOLS = 256
MAX_IMPORTS = 256
MAX_LABELS = 64
MAX_PATH_CHARS = 1024
MAX_NAME_CHARS = 200
MAX_TOOL_ERROR_CHARS = 64 << 10
CLOSED_MEMORY = 10_000  # recently closed ids remembered, so CloseSession stays idempotent
OPEN_ATTEMPTS = 3  # a warm container found dead at init is replaced this many times
FIRST_REQUEST_TIMEOUT_S = 30.0  # an Execute stream must send its ExecuteStart this soon
TOOL_MARGIN_S = 0.25  # the daemon gives up on a tool answer this much before the runner

T = TypeVar("T")
_QUIET_VERDICTS = frozenset((pb.VERDICT_OK, pb.VERDICT_ERROR, pb.VERDICT_SYNTAX_ERROR))


def _sandbox_errors() -> tuple[type[BaseException], ...]:
    from executor.sandbox import driver

    return (driver.SandboxError,)


def _rpc(
    fn: Callable[..., Awaitable[T]],
) -> Callable[..., Awaitable[T]]:
    """Unary handler wrapper: DaemonError -> its gRPC status with the message."""

    @functools.wraps(fn)
    async def wrapper(self: ExecutorService, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await fn(self, request, context)
        except DaemonError as exc:
            await context.abort(grpc_status(exc), str(exc))
            raise  # unreachable: abort raises

    return wrapper


class ExecutorService(pb_grpc.ExecutorServicer):
    def __init__(
        self,
        config: DaemonConfig,
        pool: Pool,
        sessions: SessionRegistry,
        metrics: DaemonMetrics,
        instance_id: str,
    ) -> None:
        self.config = config
        self.pool = pool
        self.sessions = sessions
        self.metrics = metrics
        self.instance_id = instance_id
        self.auth = Authenticator(config.tokens)
        self.accepting = True
        self.snippets_executed = 0
        self._closed: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.running: set[asyncio.Task[Any]] = set()

    # --- helpers -------------------------------------------------------------

    def _caller(self, context: grpc.aio.ServicerContext) -> str:
        return self.auth.identify(context.invocation_metadata())

    def _session(self, session_id: str, context: grpc.aio.ServicerContext) -> Session:
        return self.sessions.get(session_id, self._caller(context))

    async def end_session(
        self, session: Session, reason: str, *, recoverable: bool = False
    ) -> None:
        """Forget the session and destroy its container (idempotent).

        recoverable: the container was lost, not the session: it is kept aside
        for its owner's `recover()` until its idle timeout.
        """
        if self.sessions.pop(session.id) is None:
            return
        session.lost = True
        if session.lock.locked():
            # A snippet is running: killing first ends its pending read with EOF
            # before the socket is closed under it.
            await self._kill(session)
        if recoverable:
            self.sessions.mark_lost(session, reason)
        else:
            self._closed[session.id] = session.owner
            while len(self._closed) > CLOSED_MEMORY:
                self._closed.popitem(last=False)
        self.pool.release(session.sandbox)
        log.info("session ended", extra={"session_id": session.id, "reason": reason})

    async def _kill(self, session: Session) -> None:
        """Kill the container now (hard timeout): unblocks a driver thread stuck reading."""
        try:
            await asyncio.to_thread(session.sandbox.kill)
        except Exception as exc:  # a container already gone is fine
            log.debug("kill failed", extra={"session_id": session.id, "error": str(exc)})

    async def _call(self, session: Session, frame: dict[str, Any], want: str) -> Any:
        """One request/answer on the session's channel; runner refusals -> SandboxCallFailed.

        The answer is the channel's typed event (its type already checked by the channel).
        """
        from executor.sandbox import driver

        try:
            answer = await session.sandbox.request_async(frame, CALL_TIMEOUT_S)
        except driver.SandboxRequestError as exc:
            raise SandboxCallFailed(f"the sandbox refused {frame['type']}: {exc}") from exc
        except driver.SandboxError as exc:
            await self._kill(session)
            await self.end_session(session, f"lost: {str(exc)[:200]}", recoverable=True)
            raise SessionLost(str(exc)[:300]) from exc
        if answer.frame_type != want:
            await self._kill(session)
            await self.end_session(session, "protocol", recoverable=True)
            raise SessionLost(f"the runner answered {answer.frame_type!r} instead of {want!r}")
        return answer

    def _grace_s(self) -> float:
        """How long an interrupted snippet gets to answer before its container is killed."""
        return self.config.hard_timeout_grace_ms / 1000

    def _caps(self, limits: SessionLimits) -> pb.Caps:
        return lifecycle.caps(limits, self.config.max_file_bytes, self.config.max_message_bytes)

    def _check_variables_size(self, variables_json: str) -> None:
        size = len(variables_json)
        if size > self.config.max_file_bytes:
            raise TooLarge(
                "the variables' JSON", size, self.config.max_file_bytes, "max_file_bytes"
            )

    async def _roll_back_if_abandoned(
        self, session: Session, context: grpc.aio.ServicerContext
    ) -> None:
        """End a just-opened session if its OpenSession is not delivered (cancel, deadline)."""

        def done(ctx: Any) -> None:
            if not ctx.cancelled():
                return
            task = asyncio.get_running_loop().create_task(
                self.end_session(session, "open abandoned by its caller")
            )
            self.running.add(task)
            task.add_done_callback(self.running.discard)

        context.add_done_callback(done)
        remaining = context.time_remaining()
        if context.cancelled() or (remaining is not None and remaining <= 0):
            await self.end_session(session, "open abandoned by its caller")
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "the deadline passed before the session was ready; it was rolled back",
            )

    # --- sessions ------------------------------------------------------------

    @_rpc
    async def OpenSession(
        self, request: pb.OpenSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.OpenSessionResponse:
        caller = self._caller(context)
        if not self.accepting:
            raise ShuttingDown("the daemon is shutting down; open the session on another daemon")
        t0 = time.perf_counter()
        requested = convert.limits_to_dict(request.limits)
        for name, value in requested.items():
            try:
                check_minimum(name, value)
            except LimitValueError as exc:
                raise InvalidArgument(str(exc)) from None
        warnings = check_imports(request.authorized_imports)
        limits = resolve_limits(
            requested,
            self.config.default_limits,
            self.config.max_limits,
        )
        self._check_variables_size(request.variables_json)
        init = _init_args(request, limits)
        labels = dict(request.labels)
        if len(labels) > MAX_LABELS:
            raise InvalidArgument(f"at most {MAX_LABELS} labels per session")
        for attempt in range(OPEN_ATTEMPTS):
            sandbox = await self.pool.acquire(limits, self.config.open_wait_s)
            try:
                await sandbox.init_async(**init, timeout=CALL_TIMEOUT_S)
                break
            except BaseException as exc:
                if not isinstance(exc, _sandbox_errors()):
                    self.pool.release(sandbox)  # cancelled or a bug: never leak the container
                    raise
                await self.pool.destroy(sandbox)
                if _is_refusal(exc):
                    raise InvalidArgument(f"the sandbox refused the session setup: {exc}") from exc
                self.metrics.containers_failed.inc()
                log.warning(
                    "container failed at session init; retrying",
                    extra={"attempt": attempt + 1, "error": str(exc)[:200]},
                )
        else:
            raise SandboxCallFailed("containers keep failing at session init; see the daemon log")
        session = Session(
            id=self.sessions.new_id(),
            owner=caller,
            sandbox=sandbox,
            limits=limits,
            labels=labels,
            has_tools=bool(init["tools"]),
            init=init,
        )
        self.sessions.add(session)
        # A caller that gave up (deadline, cancel) never learns the id: roll back.
        await self._roll_back_if_abandoned(session, context)
        elapsed = time.perf_counter() - t0
        self.metrics.open_latency.observe(elapsed)
        self.metrics.sessions_opened.inc()
        log.info(
            "session opened",
            extra={
                "session_id": session.id,
                "caller": caller,
                "container": getattr(sandbox, "name", ""),
                "open_ms": round(elapsed * 1000, 2),
                **{f"label_{k}": v for k, v in list(labels.items())[:8]},
            },
        )
        return pb.OpenSessionResponse(
            session_id=session.id,
            limits=convert.limits_to_proto(limits),
            warnings=warnings,
            caps=self._caps(limits),
        )

    @_rpc
    async def CloseSession(
        self, request: pb.CloseSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseSessionResponse:
        caller = self._caller(context)
        try:
            session = self.sessions.get(request.session_id, caller)
        except SessionNotFound:
            if self._closed.get(request.session_id) == caller:
                return pb.CloseSessionResponse()  # already closed by its owner: idempotent
            raise
        except SessionNeedsRecovery:  # lost, kept for recover(): closing forgets it
            self.sessions.forget_lost(request.session_id, caller)
            self._closed[request.session_id] = caller
            return pb.CloseSessionResponse()
        await self.end_session(session, "closed")
        return pb.CloseSessionResponse()

    # --- variables and files -------------------------------------------------

    @_rpc
    async def SetVariables(
        self, request: pb.SetVariablesRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetVariablesResponse:
        session = self._session(request.session_id, context)
        self._check_variables_size(request.variables_json)
        try:
            variables = convert.parse_json_object(request.variables_json, "variables_json")
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        async with session.claim():
            session.touch()
            await self._call(session, {"type": "set_vars", "variables": variables}, "ack")
            session.history.append(lifecycle.set_vars_entry(variables))
        return pb.SetVariablesResponse()

    @_rpc
    async def GetVariables(
        self, request: pb.GetVariablesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetVariablesResponse:
        session = self._session(request.session_id, context)
        async with session.claim():
            session.touch()
            answer = await self._call(
                session, {"type": "get_vars", "names": list(request.names)}, "vars"
            )
        return pb.GetVariablesResponse(variables=convert.variables(answer.state))

    @_rpc
    async def UploadFile(
        self, request: pb.UploadFileRequest, context: grpc.aio.ServicerContext
    ) -> pb.UploadFileResponse:
        session = self._session(request.session_id, context)
        path = _workspace_path(request.path)
        size = len(request.data)
        if size > self.config.max_file_bytes:
            raise TooLarge("the file", size, self.config.max_file_bytes, "max_file_bytes")
        data_b64 = base64.b64encode(request.data).decode("ascii")
        async with session.claim():
            session.touch()
            await self._call(
                session, {"type": "write_file", "path": path, "data_b64": data_b64}, "ack"
            )
            session.history.append(lifecycle.upload_entry(path, bytes(request.data)))
        return pb.UploadFileResponse(size=size)

    @_rpc
    async def DownloadFile(
        self, request: pb.DownloadFileRequest, context: grpc.aio.ServicerContext
    ) -> pb.DownloadFileResponse:
        session = self._session(request.session_id, context)
        path = _workspace_path(request.path)
        async with session.claim():
            session.touch()
            answer = await self._call(
                session,
                {"type": "read_file", "path": path, "max_bytes": self.config.max_file_bytes},
                "file",
            )
        data, cap = answer.data, self.config.max_file_bytes
        if len(data) > cap:
            raise TooLarge(f"the file {path!r}", len(data), cap, "max_file_bytes")
        return pb.DownloadFileResponse(data=data)

    @_rpc
    async def GetStats(
        self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStatsResponse:
        self._caller(context)
        s = self.pool.stats()
        m = self.metrics
        return pb.GetStatsResponse(
            warm=s.warm,
            in_use=s.in_use,
            starting=s.starting,
            max_containers=s.max_containers,
            sessions=len(self.sessions),
            containers_created=int(m.containers_created.value()),
            containers_destroyed=int(m.containers_destroyed.value()),
            containers_failed=int(m.containers_failed.value()),
            snippets_executed=self.snippets_executed,
            instance_id=self.instance_id,
        )

    @_rpc
    async def ListFiles(
        self, request: pb.ListFilesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFilesResponse:
        session = self._session(request.session_id, context)
        path = files.workspace_path(request.path, allow_root=True)
        async with session.claim():
            session.touch()
            answer = await self._call(session, {"type": "list_files", "path": path}, "files")
        return pb.ListFilesResponse(
            entries=[
                pb.FileEntry(path=e.path, size=e.size, is_dir=e.is_dir, mtime_ms=e.mtime_ms)
                for e in answer.entries
            ]
        )

    @_rpc
    async def RemoveFile(
        self, request: pb.RemoveFileRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveFileResponse:
        session = self._session(request.session_id, context)
        path = files.workspace_path(request.path)
        async with session.claim():
            session.touch()
            await self._call(session, {"type": "remove_file", "path": path}, "ack")
        return pb.RemoveFileResponse()

    @_rpc
    async def MakeDirectory(
        self, request: pb.MakeDirectoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.MakeDirectoryResponse:
        session = self._session(request.session_id, context)
        path = files.workspace_path(request.path)
        async with session.claim():
            session.touch()
            await self._call(session, {"type": "make_dir", "path": path}, "ack")
        return pb.MakeDirectoryResponse()

    # --- sessions that survive: interrupt, checkpoints, fork, recover, attach -----
    # The logic lives in executor/daemon/lifecycle.py; these are thin handlers.

    @_rpc
    async def Interrupt(
        self, request: pb.InterruptRequest, context: grpc.aio.ServicerContext
    ) -> pb.InterruptResponse:
        session = self._session(request.session_id, context)
        control = session.run
        return pb.InterruptResponse(interrupted=control is not None and control.interrupt())

    @_rpc
    async def Checkpoint(
        self, request: pb.CheckpointRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckpointResponse:
        session = self._session(request.session_id, context)
        await lifecycle.wait_until_free(session, self._grace_s() + 1)
        async with session.claim():
            session.touch()
            held = len(session.checkpoints)
            if held >= session.limits.max_checkpoints:
                raise CheckpointLimit(held)
            answer = await self._call(session, {"type": "checkpoint"}, "checkpoint")
            cp = lifecycle.Checkpoint(
                id=lifecycle.new_checkpoint_id(),
                runner_id=lifecycle.runner_checkpoint_id(answer),
                created_ms=lifecycle.now_ms(),
                snapshot=session.history.snapshot(),
            )
            session.checkpoints[cp.id] = cp
        return pb.CheckpointResponse(checkpoint_id=cp.id, checkpoints=len(session.checkpoints))

    @_rpc
    async def Rollback(
        self, request: pb.RollbackRequest, context: grpc.aio.ServicerContext
    ) -> pb.RollbackResponse:
        session = self._session(request.session_id, context)
        cp = lifecycle.find_checkpoint(session.checkpoints, request.checkpoint_id)
        await lifecycle.wait_until_free(session, self._grace_s() + 1)
        async with session.claim():
            session.touch()
            await self._call(session, {"type": "rollback", "checkpoint_id": cp.runner_id}, "ack")
            session.history.restore(cp.snapshot)
        return pb.RollbackResponse()

    @_rpc
    async def ListCheckpoints(
        self, request: pb.ListCheckpointsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCheckpointsResponse:
        session = self._session(request.session_id, context)
        infos = [lifecycle.checkpoint_info(cp) for cp in session.checkpoints.values()]
        return pb.ListCheckpointsResponse(checkpoints=infos)

    @_rpc
    async def DropCheckpoint(
        self, request: pb.DropCheckpointRequest, context: grpc.aio.ServicerContext
    ) -> pb.DropCheckpointResponse:
        session = self._session(request.session_id, context)
        cp = lifecycle.find_checkpoint(session.checkpoints, request.checkpoint_id)
        await lifecycle.wait_until_free(session, self._grace_s() + 1)
        async with session.claim():
            session.touch()
            session.checkpoints.pop(cp.id, None)
            try:
                await self._call(
                    session, {"type": "drop_checkpoint", "checkpoint_id": cp.runner_id}, "ack"
                )
            except SandboxCallFailed:
                pass  # the runner no longer holds it: dropped either way
        return pb.DropCheckpointResponse()

    @_rpc
    async def ForkSession(
        self, request: pb.ForkSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.ForkSessionResponse:
        caller = self._caller(context)
        if not self.accepting:
            raise ShuttingDown("the daemon is shutting down; fork on another daemon")
        parent = self.sessions.get(request.session_id, caller)
        if request.checkpoint_id:
            snap = lifecycle.find_checkpoint(parent.checkpoints, request.checkpoint_id).snapshot
        else:
            snap = parent.history.snapshot()
        if not snap.complete:
            raise CannotReplay(
                f"the session's history outgrew what the daemon records "
                f"({lifecycle.HISTORY_MAX_BYTES} bytes or {lifecycle.HISTORY_MAX_ENTRIES} "
                "entries), so it cannot be rebuilt by replay; fork from an earlier checkpoint"
            )
        labels = {**parent.labels, **dict(request.labels)}
        if len(labels) > MAX_LABELS:
            raise InvalidArgument(f"at most {MAX_LABELS} labels per session")
        t0 = time.perf_counter()
        sandbox, report = await self._replayed_sandbox(parent.limits, parent.init, snap.entries)
        child = Session(
            id=self.sessions.new_id(),
            owner=caller,
            sandbox=sandbox,
            limits=parent.limits,
            labels=labels,
            has_tools=parent.has_tools,
            init=parent.init,
        )
        child.history.restore(snap)
        self.sessions.add(child)
        await self._roll_back_if_abandoned(child, context)
        self.metrics.sessions_opened.inc()
        log.info(
            "session forked",
            extra={
                "session_id": child.id,
                "parent": parent.id,
                "replayed": report.replayed,
                "warnings": len(report.warnings),
                "fork_ms": round((time.perf_counter() - t0) * 1000, 2),
            },
        )
        return pb.ForkSessionResponse(
            session_id=child.id,
            limits=convert.limits_to_proto(child.limits),
            caps=self._caps(child.limits),
            replayed=report.replayed,
            warnings=report.warnings,
        )

    @_rpc
    async def RecoverSession(
        self, request: pb.RecoverSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecoverSessionResponse:
        caller = self._caller(context)
        if not self.accepting:
            raise ShuttingDown("the daemon is shutting down; recover on another daemon")
        try:
            session = self.sessions.get_lost(request.session_id, caller)
        except SessionNotFound:
            self.sessions.get(request.session_id, caller)  # NOT_FOUND unless it is alive
            raise CannotReplay(
                "the session has not lost its container; nothing to recover"
            ) from None
        if session.recovering:
            raise SessionBusy()
        target = lifecycle.latest_on_line(session.checkpoints, session.history)
        snap = target.snapshot if target is not None else lifecycle.Snapshot((), True)
        keep = [cp for cp in session.checkpoints.values() if lifecycle.is_prefix(cp.snapshot, snap)]
        session.recovering = True
        try:
            sandbox, report = await self._replayed_sandbox(
                session.limits, session.init, snap.entries, keep
            )
        finally:
            session.recovering = False
        dropped = len(session.history) - len(snap.entries)
        session.sandbox = sandbox
        session.checkpoints = {
            cp.id: lifecycle.Checkpoint(cp.id, report.runner_ids[cp.id], cp.created_ms, cp.snapshot)
            for cp in keep
            if cp.id in report.runner_ids
        }
        session.history.restore(snap)
        session.lock = asyncio.Lock()
        self.sessions.revive(session)
        log.info(
            "session recovered",
            extra={
                "session_id": session.id,
                "checkpoint": target.id if target else "",
                "replayed": report.replayed,
                "dropped": dropped,
            },
        )
        return pb.RecoverSessionResponse(
            checkpoint_id=target.id if target is not None else "",
            replayed=report.replayed,
            dropped=dropped,
            warnings=report.warnings,
        )

    @_rpc
    async def AttachSession(
        self, request: pb.AttachSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.AttachSessionResponse:
        caller = self._caller(context)
        try:
            session = self.sessions.get(request.session_id, caller)
        except SessionNeedsRecovery:
            session = self.sessions.get_lost(request.session_id, caller)  # to call recover()
        session.touch()
        tools = [
            pb.ToolSpec(
                name=t["name"],
                description=t["description"],
                inputs_json=json.dumps(t["inputs"]),
                output_type=t["output_type"],
            )
            for t in session.init.get("tools", ())
        ]
        return pb.AttachSessionResponse(
            limits=convert.limits_to_proto(session.limits),
            caps=self._caps(session.limits),
            tools=tools,
            labels=session.labels,
            running=session.lock.locked(),
            checkpoints=len(session.checkpoints),
            lost=session.lost,
        )

    async def _replayed_sandbox(
        self,
        limits: SessionLimits,
        init: dict[str, Any],
        entries: tuple[lifecycle.Entry, ...],
        checkpoints: list[lifecycle.Checkpoint] | None = None,
    ) -> tuple[Any, lifecycle.ReplayReport]:
        """A fresh container, initialised as `init` says, with `entries` replayed into it."""
        for attempt in range(OPEN_ATTEMPTS):
            sandbox = await self.pool.acquire(limits, self.config.open_wait_s)
            try:
                await sandbox.init_async(**init, timeout=CALL_TIMEOUT_S)
                report = await lifecycle.replay(
                    sandbox, entries, limits, self.config.hard_timeout_grace_ms, checkpoints or ()
                )
                return sandbox, report
            except BaseException as exc:
                if not isinstance(exc, _sandbox_errors()):
                    self.pool.release(sandbox)  # cancelled or a bug: never leak the container
                    raise
                await self.pool.destroy(sandbox)
                if _is_refusal(exc):
                    raise SandboxCallFailed(f"the sandbox refused the replay: {exc}") from exc
                if _is_timeout(exc):  # the history's fault, not the container's: no retry
                    raise CannotReplay(
                        "a replayed snippet did not finish within wall_time_ms + grace "
                        "(non-deterministic code?); fork from an earlier checkpoint"
                    ) from exc
                self.metrics.containers_failed.inc()
                log.warning(
                    "container failed during replay; retrying",
                    extra={"attempt": attempt + 1, "error": str(exc)[:200]},
                )
        raise SandboxCallFailed("containers keep failing during replay; see the daemon log")

    # --- execute -------------------------------------------------------------

    async def Execute(
        self,
        request_iterator: AsyncIterator[pb.ExecuteRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.ExecuteResponse]:
        try:
            caller = self._caller(context)
            if not self.accepting:
                raise ShuttingDown("the daemon is shutting down; no new snippets")
            try:
                async with asyncio.timeout(FIRST_REQUEST_TIMEOUT_S):
                    first = await anext(aiter(request_iterator))
            except StopAsyncIteration:
                raise InvalidArgument("the Execute stream ended before ExecuteStart") from None
            except TimeoutError:
                raise InvalidArgument(
                    f"no ExecuteStart within {FIRST_REQUEST_TIMEOUT_S:g} s of opening Execute"
                ) from None
            if first.WhichOneof("kind") != "start":
                raise InvalidArgument("the first Execute request must carry ExecuteStart")
            start = first.start
            code_size = len(start.code.encode("utf-8", "surrogatepass"))
            code_cap = self.config.max_limits.code_bytes
            if code_size > code_cap:
                raise TooLarge("the code", code_size, code_cap, "max_code_bytes")
            session = self.sessions.get(start.session_id, caller)
            await lifecycle.wait_until_free(session, self._grace_s() + 1)
            lock = session.claim()
        except DaemonError as exc:
            await context.abort(grpc_status(exc), str(exc))
            return
        async with lock:
            session.touch()
            task = asyncio.current_task()
            if task is not None:
                self.running.add(task)
            snippet = self._run_snippet(session, start.code, request_iterator)
            try:
                async for response in snippet:
                    yield response
            finally:
                # The client went away mid-snippet (cancelled, deadline, stream closed):
                # closing the generator interrupts the snippet and keeps the session
                # (see _run_snippet); only a runner that ignores the interrupt loses it.
                await snippet.aclose()
                if task is not None:
                    self.running.discard(task)
                session.touch()

    async def Run(
        self, request: pb.ExecuteStart, context: grpc.aio.ServicerContext
    ) -> pb.ExecuteResult:
        """Unary Execute for sessions without tools: the same snippet path, one message each way."""
        try:
            session = self.sessions.get(request.session_id, self._caller(context))
        except DaemonError as exc:
            await context.abort(grpc_status(exc), str(exc))
            raise  # unreachable: abort raises
        if session.has_tools:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this session was opened with tools: run its snippets with Execute, whose "
                "stream carries the tool calls and their answers",
            )

        async def requests() -> AsyncIterator[pb.ExecuteRequest]:
            yield pb.ExecuteRequest(start=request)

        result = pb.ExecuteResult()
        artifacts: list[pb.Artifact] = []
        async for response in self.Execute(requests(), context):
            if response.HasField("result"):
                result = response.result
            elif response.HasField("artifact"):
                artifacts.append(response.artifact)  # checked by the channel already
        result.artifacts.extend(artifacts)
        return result

    async def _run_snippet(
        self,
        session: Session,
        code: str,
        requests: AsyncIterator[pb.ExecuteRequest],
    ) -> AsyncGenerator[pb.ExecuteResponse, None]:
        limits = session.limits
        t0 = time.perf_counter()
        hard_s = (limits.wall_time_ms + self.config.hard_timeout_grace_ms) / 1000
        tool_timeout_s = limits.tool_timeout_ms / 1000
        result_cap = self.config.max_file_bytes
        events: asyncio.Queue[Any] = asyncio.Queue()
        control = lifecycle.RunControl(
            session.sandbox, self._grace_s(), lambda: self._kill(session)
        )
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
            # `call` passed the channel's schema check (strings, JSON-safe arguments).
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

        async def read_answers() -> None:
            async for req in requests:
                if req.WhichOneof("kind") != "tool_result":
                    continue  # only tool results are meaningful after the start
                tr = req.tool_result
                fut = pending.get(tr.call_id)
                if fut is None or fut.done():
                    continue  # late or unknown answer: the call already timed out
                size = len(tr.value_json)
                if size > result_cap:  # a ToolError inside the snippet, never a lost session
                    name = names.get(tr.call_id, "?")
                    fut.set_result(lifecycle.oversized_tool_result(name, size, result_cap))
                    continue
                fut.set_result(_tool_reply(tr))

        # Without tools no answer can ever be needed: skip the request reader.
        reader = asyncio.create_task(read_answers()) if session.has_tools else None
        run = asyncio.create_task(
            session.sandbox.execute_async(
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
        session.run = control
        done = object()
        run.add_done_callback(lambda _: events.put_nowait(done))  # type: ignore[arg-type]
        result: pb.ExecuteResult | None = None
        try:
            while (item := await events.get()) is not done:
                yield item
            result = await self._outcome(session, run, hard_s, control)
        finally:
            if reader is not None:
                reader.cancel()
            if result is None:
                # The client left before the result (cancelled Execute, deadline, closed
                # stream, or the generator was closed): interrupt the snippet, wait the
                # grace for its result, keep the session. Shielded: a second cancel
                # must not leave the runner half-way.
                await asyncio.shield(control.stop())
                if not run.done():
                    run.cancel()
                result = await self._outcome(session, run, hard_s, control)
                await self._snippet_done(session, code, control, result, t0)
                log.info("client left mid-snippet; interrupted", extra={"session_id": session.id})
            session.run = None
        await self._snippet_done(session, code, control, result, t0)
        yield pb.ExecuteResponse(result=result)

    async def _snippet_done(
        self,
        session: Session,
        code: str,
        control: lifecycle.RunControl,
        result: pb.ExecuteResult,
        t0: float,
    ) -> None:
        """Count, record in the history (for fork/recover), end a lost session, log."""
        self.snippets_executed += 1
        verdict_name = pb.Verdict.Name(result.verdict).removeprefix("VERDICT_")
        self.metrics.verdicts.inc(verdict=verdict_name)
        self.metrics.execute_latency.observe(time.perf_counter() - t0)
        if result.session_lost:
            await self.end_session(session, f"lost: {verdict_name}", recoverable=True)
        elif result.verdict != pb.VERDICT_SYNTAX_ERROR:  # a syntax error changed nothing
            session.history.append(
                lifecycle.execute_entry(code, control.tool_log, verdict_name, result.stdout)
            )
        # Every snippet at DEBUG; at INFO only the ones that did not simply run.
        level = logging.DEBUG if result.verdict in _QUIET_VERDICTS else logging.INFO
        log.log(
            level,
            "snippet done",
            extra={"session_id": session.id, "verdict": verdict_name, "lost": result.session_lost},
        )

    async def _outcome(
        self,
        session: Session,
        run: asyncio.Task[ExecuteResult],
        hard_s: float,
        control: lifecycle.RunControl,
    ) -> pb.ExecuteResult:
        """The ExecuteResult for a finished driver call, or a lost-session verdict."""
        from executor.sandbox import driver

        try:
            return convert.execute_result(run.result())
        except driver.SandboxRequestError as exc:
            if control.interrupted:
                # A runner that refuses the interrupt frame cannot stop the snippet
                # and its channel is out of step: the container goes, the session
                # can be recovered.
                await self._kill(session)
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
            await self._kill(session)
            return convert.lost_result(
                pb.VERDICT_TIMEOUT,
                f"{exc} (hard timeout {hard_s:g} s = wall_time_ms + grace); "
                "the container was killed",
                wall_ms=int(hard_s * 1000),
            )
        except driver.SandboxError as exc:
            await self._kill(session)
            if control.killed:
                return convert.lost_result(
                    pb.VERDICT_SANDBOX_LOST,
                    f"the snippet did not stop within {control.grace_s:g} s of the interrupt "
                    "(hard_timeout_grace_ms); the container was killed; recover() continues "
                    "the session from its last checkpoint",
                )
            info = await asyncio.to_thread(_inspect_exit, session.sandbox)
            if info.get("oom_killed"):
                return convert.lost_result(
                    pb.VERDICT_MEMORY_LIMIT,
                    f"the container ran out of memory (limit {session.limits.memory_bytes} bytes) "
                    "and was killed",
                )
            log.warning(
                "container lost during a snippet",
                extra={"session_id": session.id, "error": str(exc)[:300]},
            )
            return convert.lost_result(
                pb.VERDICT_SANDBOX_LOST, f"the container died or was killed: {str(exc)[:500]}"
            )
        except Exception as exc:
            log.exception("snippet failed inside the daemon", extra={"session_id": session.id})
            await self._kill(session)
            return convert.lost_result(pb.VERDICT_INTERNAL, f"daemon error: {exc}"[:500])


def _tool_reply(tr: pb.ToolResult) -> dict[str, Any]:
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


def _inspect_exit(sandbox: Any) -> dict[str, Any]:
    try:
        info = sandbox.inspect_exit()
        return info if isinstance(info, dict) else {}
    except Exception:  # the container may already be removed
        return {}


def _is_timeout(exc: BaseException) -> bool:
    from executor.sandbox import driver

    return isinstance(exc, driver.SandboxTimeout)


def _is_refusal(exc: BaseException) -> bool:
    """True when the runner answered init with an error (bad input), not a dead channel."""
    from executor.sandbox import driver

    return isinstance(exc, driver.SandboxRequestError)


def _workspace_path(path: str) -> str:
    """A clean path relative to /workspace, or InvalidArgument saying what is wrong."""
    return files.workspace_path(path)


def _init_args(request: pb.OpenSessionRequest, limits: SessionLimits) -> dict[str, Any]:
    """The init frame's fields, validated (the runner re-checks them)."""
    if len(request.authorized_imports) > MAX_IMPORTS:
        raise InvalidArgument(f"at most {MAX_IMPORTS} authorized_imports")
    if len(request.tools) > MAX_TOOLS:
        raise InvalidArgument(f"at most {MAX_TOOLS} tools per session")
    tools = []
    for t in request.tools:
        if not t.name.isidentifier() or t.name.startswith("_"):
            raise InvalidArgument(
                f"tool name {t.name[:60]!r} must be a Python identifier not starting with '_'"
            )
        try:
            inputs = convert.parse_json_object(t.inputs_json, f"tools[{t.name}].inputs_json")
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        tools.append(
            {
                "name": t.name,
                "description": t.description,
                "inputs": inputs,
                "output_type": t.output_type or "any",
            }
        )
    try:
        variables = convert.parse_json_object(request.variables_json, "variables_json")
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    return {
        "authorized_imports": list(request.authorized_imports),
        "tools": tools,
        "variables": variables,
        "limits": limits.runner_limits(),
    }
