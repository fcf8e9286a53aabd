"""The `corral.v1.Executor` servicer: the RPC surface, one thin method per RPC.

A handler validates its request (`validation`), finds the caller's session,
claims its lock (one sandbox call at a time) and talks to the session's
container, through `orchestration` for anything longer than one request
(session setup, a snippet run, a replay for fork/recover). The bookkeeping of
sessions that survive (history, checkpoints, interrupts) is in `lifecycle`.
Authentication, request decoding and the mapping of `DaemonError`s to gRPC
statuses happen around every handler in the server interceptor
(`interceptor.Gate`); a handler only reads `current_caller()` and raises.

Execute: a client that goes away mid-snippet (cancel, deadline, closed stream)
interrupts the snippet the way `Interrupt` does; the session keeps its state.
Only a runner that ignores the interrupt within the grace loses its container
(SANDBOX_LOST, recoverable with RecoverSession).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from executor.daemon import convert, lifecycle, orchestration, validation
from executor.daemon.auth import ANONYMOUS, current_caller
from executor.daemon.config import DaemonConfig
from executor.daemon.errors import (
    CannotReplay,
    CheckpointLimit,
    InvalidArgument,
    NeedsStream,
    SandboxCallFailed,
    SessionBusy,
    SessionLost,
    SessionNeedsRecovery,
    SessionNotFound,
    ShuttingDown,
    TooLarge,
)
from executor.daemon.metrics import DaemonMetrics
from executor.daemon.pool import Pool
from executor.daemon.sessions import Session, SessionRegistry
from proto import executor_pb2 as pb
from proto import executor_pb2_grpc as pb_grpc
from proto.limits import FILE_CHUNK_BYTES, SessionLimits

log = logging.getLogger("corral.daemon.service")

RUN_ARTIFACT_BYTES = 12 << 20  # artifact bytes one unary Run reply carries (Execute streams all)
CLOSED_MEMORY = 10_000  # recently closed ids remembered, so CloseSession stays idempotent
FIRST_REQUEST_TIMEOUT_S = 30.0  # a client stream must send its first message this soon
MAX_LOGGED_LABELS = 8
_QUIET_VERDICTS = frozenset((pb.VERDICT_OK, pb.VERDICT_ERROR, pb.VERDICT_SYNTAX_ERROR))


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
        self.accepting = True
        self.snippets_executed = 0
        self._snippets_by_caller: collections.Counter[str] = collections.Counter()
        self._closed: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.running: set[asyncio.Task[Any]] = set()

    # --- helpers -------------------------------------------------------------

    def _session(self, session_id: str) -> Session:
        return self.sessions.get(validation.session_id(session_id), current_caller())

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
            await orchestration.kill(session.sandbox)
        if recoverable:
            self.sessions.mark_lost(session, reason)
        else:
            self._closed[session.id] = session.owner
            while len(self._closed) > CLOSED_MEMORY:
                self._closed.popitem(last=False)
        self.pool.release(session.sandbox)
        log.info("session ended", extra={"session_id": session.id, "reason": reason})

    async def _lose(self, session: Session, reason: str, detail: str) -> SessionLost:
        """Kill the container; the session is kept for recover(). The error to raise."""
        await orchestration.kill(session.sandbox)
        await self.end_session(session, reason, recoverable=True)
        return SessionLost(detail[:300])

    async def _call(self, session: Session, frame: dict[str, Any], want: str) -> Any:
        """One request/answer on the session's channel; runner refusals -> SandboxCallFailed.

        The answer is the channel's typed event (its type already checked by the channel).
        """
        from executor.sandbox import driver

        try:
            answer = await session.sandbox.request_async(frame, orchestration.CALL_TIMEOUT_S)
        except driver.SandboxRequestError as exc:
            raise SandboxCallFailed(f"the sandbox refused {frame['type']}: {exc}") from exc
        except driver.SandboxError as exc:
            raise await self._lose(session, f"lost: {str(exc)[:200]}", str(exc)) from exc
        if answer.frame_type != want:
            got = str(answer.frame_type)[:40]
            raise await self._lose(
                session, "protocol", f"the runner answered {got!r} instead of {want!r}"
            )
        return answer

    def _grace_s(self) -> float:
        """How long an interrupted snippet gets to answer before its container is killed."""
        return self.config.hard_timeout_grace_ms / 1000

    def _caps(self, limits: SessionLimits) -> pb.Caps:
        return lifecycle.caps(limits, self.config.max_file_bytes, self.config.max_message_bytes)

    async def _roll_back_if_abandoned(
        self, session: Session, context: grpc.aio.ServicerContext
    ) -> None:
        """End a just-opened session if its response is not delivered (cancel, deadline)."""

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

    async def OpenSession(
        self, request: pb.OpenSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.OpenSessionResponse:
        caller = current_caller()
        if not self.accepting:
            raise ShuttingDown("the daemon is shutting down; open the session on another daemon")
        t0 = time.perf_counter()
        plan = validation.open_session(request, self.config)
        sandbox = await orchestration.bind_container(
            self.pool,
            plan,
            open_wait_s=self.config.open_wait_s,
            on_failure=self.metrics.containers_failed.inc,
        )
        session = Session(
            id=self.sessions.new_id(),
            owner=caller,
            sandbox=sandbox,
            limits=plan.limits,
            labels=plan.labels,
            has_tools=plan.has_tools,
            init=plan.init,
        )
        self.sessions.add(session)
        # A caller that gave up (deadline, cancel) never learns the id: roll back.
        await self._roll_back_if_abandoned(session, context)
        elapsed = time.perf_counter() - t0
        self.metrics.open_latency.observe(elapsed)
        self.metrics.sessions_opened.inc()
        shown = list(plan.labels.items())[:MAX_LOGGED_LABELS]
        log.info(
            "session opened",
            extra={
                "session_id": session.id,
                "caller": caller,
                "container": getattr(sandbox, "name", ""),
                "open_ms": round(elapsed * 1000, 2),
                **{f"label_{k}": v for k, v in shown},
            },
        )
        return pb.OpenSessionResponse(
            session_id=session.id,
            limits=convert.limits_to_proto(plan.limits),
            warnings=plan.warnings,
            caps=self._caps(plan.limits),
        )

    async def CloseSession(
        self, request: pb.CloseSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseSessionResponse:
        caller = current_caller()
        try:
            session = self._session(request.session_id)
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

    async def SetVariables(
        self, request: pb.SetVariablesRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetVariablesResponse:
        frame = validation.set_variables(request, self.config)
        session = self._session(request.session_id)
        async with session.claim():
            session.touch()
            await self._call(session, frame, "ack")
            session.history.append(lifecycle.set_vars_entry(frame["variables"]))
        return pb.SetVariablesResponse()

    async def GetVariables(
        self, request: pb.GetVariablesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetVariablesResponse:
        frame = validation.get_variables(request)
        session = self._session(request.session_id)
        async with session.claim():
            session.touch()
            answer = await self._call(session, frame, "vars")
        return pb.GetVariablesResponse(variables=convert.variables(answer.state))

    async def UploadFile(
        self, request: pb.UploadFileRequest, context: grpc.aio.ServicerContext
    ) -> pb.UploadFileResponse:
        path = validation.workspace_path(request.path)
        validation.file_size(len(request.data), self.config)
        session = self._session(request.session_id)
        return pb.UploadFileResponse(size=await self._write_file(session, path, request.data))

    async def UploadFileStream(
        self, request_iterator: AsyncIterator[pb.FileChunk], context: grpc.aio.ServicerContext
    ) -> pb.UploadFileResponse:
        first = await _first(request_iterator, "UploadFileStream", "a FileChunk")
        path = validation.workspace_path(first.path)
        session = self._session(first.session_id)  # before reading the rest of the file
        parts, size = [first.data], len(first.data)
        self._check_chunk(first)
        async for chunk in request_iterator:
            if chunk.session_id or chunk.path:
                raise InvalidArgument("only the first FileChunk may carry session_id and path")
            self._check_chunk(chunk)
            size += len(chunk.data)
            validation.file_size(size, self.config)  # stop reading as soon as it is too big
            parts.append(chunk.data)
        validation.file_size(size, self.config)
        return pb.UploadFileResponse(size=await self._write_file(session, path, b"".join(parts)))

    async def DownloadFile(
        self, request: pb.DownloadFileRequest, context: grpc.aio.ServicerContext
    ) -> pb.DownloadFileResponse:
        path = validation.workspace_path(request.path)
        session = self._session(request.session_id)
        return pb.DownloadFileResponse(data=await self._read_file(session, path))

    async def DownloadFileStream(
        self, request: pb.DownloadFileRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.FileChunk]:
        path = validation.workspace_path(request.path)
        session = self._session(request.session_id)
        data = await self._read_file(session, path)
        view = memoryview(data)
        for offset in range(0, max(len(data), 1), FILE_CHUNK_BYTES):
            yield pb.FileChunk(data=bytes(view[offset : offset + FILE_CHUNK_BYTES]))

    @staticmethod
    def _check_chunk(chunk: pb.FileChunk) -> None:
        if len(chunk.data) > FILE_CHUNK_BYTES:
            raise InvalidArgument(
                f"a FileChunk carries {len(chunk.data)} bytes; send at most {FILE_CHUNK_BYTES}"
            )

    async def _write_file(self, session: Session, path: str, data: bytes) -> int:
        frame = {"type": "write_file", "path": path, "data_b64": base64.b64encode(data).decode()}
        async with session.claim():
            session.touch()
            await self._call(session, frame, "ack")
            session.history.append(lifecycle.upload_entry(path, bytes(data)))
        return len(data)

    async def _read_file(self, session: Session, path: str) -> bytes:
        cap = self.config.max_file_bytes
        async with session.claim():
            session.touch()
            answer = await self._call(
                session, {"type": "read_file", "path": path, "max_bytes": cap}, "file"
            )
        data: bytes = answer.data
        if len(data) > cap:
            raise TooLarge(f"the file {path!r}", len(data), cap, "max_file_bytes")
        return data

    async def ListFiles(
        self, request: pb.ListFilesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFilesResponse:
        path = validation.workspace_path(request.path, allow_root=True)
        session = self._session(request.session_id)
        async with session.claim():
            session.touch()
            answer = await self._call(session, {"type": "list_files", "path": path}, "files")
        return pb.ListFilesResponse(
            entries=[
                pb.FileEntry(path=e.path, size=e.size, is_dir=e.is_dir, mtime_ms=e.mtime_ms)
                for e in answer.entries
            ]
        )

    async def RemoveFile(
        self, request: pb.RemoveFileRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveFileResponse:
        path = validation.workspace_path(request.path)
        session = self._session(request.session_id)
        async with session.claim():
            session.touch()
            await self._call(session, {"type": "remove_file", "path": path}, "ack")
        return pb.RemoveFileResponse()

    async def MakeDirectory(
        self, request: pb.MakeDirectoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.MakeDirectoryResponse:
        path = validation.workspace_path(request.path)
        session = self._session(request.session_id)
        async with session.claim():
            session.touch()
            await self._call(session, {"type": "make_dir", "path": path}, "ack")
        return pb.MakeDirectoryResponse()

    # --- stats ---------------------------------------------------------------

    async def GetStats(
        self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStatsResponse:
        caller = current_caller()
        if caller == ANONYMOUS or caller in self.config.admin_callers:
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
                global_view=True,
            )
        own = sum(1 for s in self.sessions.all() if s.owner == caller)
        return pb.GetStatsResponse(
            max_containers=self.pool.stats().max_containers,  # capacity, not activity
            sessions=own,
            snippets_executed=self._snippets_by_caller[caller],
            instance_id=self.instance_id,
        )

    # --- sessions that survive: interrupt, checkpoints, fork, recover, attach -----
    # The bookkeeping is in executor/daemon/lifecycle.py, the replay container in
    # orchestration.replayed_container; these are thin handlers.

    async def Interrupt(
        self, request: pb.InterruptRequest, context: grpc.aio.ServicerContext
    ) -> pb.InterruptResponse:
        session = self._session(request.session_id)
        control = session.run
        return pb.InterruptResponse(interrupted=control is not None and control.interrupt())

    async def Checkpoint(
        self, request: pb.CheckpointRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckpointResponse:
        session = self._session(request.session_id)
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

    async def Rollback(
        self, request: pb.RollbackRequest, context: grpc.aio.ServicerContext
    ) -> pb.RollbackResponse:
        session = self._session(request.session_id)
        cp = lifecycle.find_checkpoint(session.checkpoints, request.checkpoint_id)
        await lifecycle.wait_until_free(session, self._grace_s() + 1)
        async with session.claim():
            session.touch()
            await self._call(session, {"type": "rollback", "checkpoint_id": cp.runner_id}, "ack")
            session.history.restore(cp.snapshot)
        return pb.RollbackResponse()

    async def ListCheckpoints(
        self, request: pb.ListCheckpointsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCheckpointsResponse:
        session = self._session(request.session_id)
        infos = [lifecycle.checkpoint_info(cp) for cp in session.checkpoints.values()]
        return pb.ListCheckpointsResponse(checkpoints=infos)

    async def DropCheckpoint(
        self, request: pb.DropCheckpointRequest, context: grpc.aio.ServicerContext
    ) -> pb.DropCheckpointResponse:
        session = self._session(request.session_id)
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

    async def ForkSession(
        self, request: pb.ForkSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.ForkSessionResponse:
        caller = current_caller()
        if not self.accepting:
            raise ShuttingDown("the daemon is shutting down; fork on another daemon")
        parent = self._session(request.session_id)
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
        labels = validation.fork_labels(parent.labels, request.labels)
        t0 = time.perf_counter()
        sandbox, report = await orchestration.replayed_container(
            self.pool,
            parent.limits,
            parent.init,
            snap.entries,
            open_wait_s=self.config.open_wait_s,
            grace_ms=self.config.hard_timeout_grace_ms,
            on_failure=self.metrics.containers_failed.inc,
        )
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

    async def RecoverSession(
        self, request: pb.RecoverSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecoverSessionResponse:
        caller = current_caller()
        if not self.accepting:
            raise ShuttingDown("the daemon is shutting down; recover on another daemon")
        session_id = validation.session_id(request.session_id)
        try:
            session = self.sessions.get_lost(session_id, caller)
        except SessionNotFound:
            self.sessions.get(session_id, caller)  # NOT_FOUND unless it is alive
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
            sandbox, report = await orchestration.replayed_container(
                self.pool,
                session.limits,
                session.init,
                snap.entries,
                open_wait_s=self.config.open_wait_s,
                grace_ms=self.config.hard_timeout_grace_ms,
                checkpoints=keep,
                on_failure=self.metrics.containers_failed.inc,
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

    async def AttachSession(
        self, request: pb.AttachSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.AttachSessionResponse:
        caller = current_caller()
        session_id = validation.session_id(request.session_id)
        try:
            session = self.sessions.get(session_id, caller)
        except SessionNeedsRecovery:
            session = self.sessions.get_lost(session_id, caller)  # to call recover()
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

    # --- execute -------------------------------------------------------------

    async def Execute(
        self,
        request_iterator: AsyncIterator[pb.ExecuteRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.ExecuteResponse]:
        caller = current_caller()
        if not self.accepting:
            raise ShuttingDown("the daemon is shutting down; no new snippets")
        first = await _first(request_iterator, "Execute", "ExecuteStart")
        if first.WhichOneof("kind") != "start":
            raise InvalidArgument("the first Execute request must carry ExecuteStart")
        code = validation.code(first.start.code, self.config)
        session = self._session(first.start.session_id)
        await lifecycle.wait_until_free(session, self._grace_s() + 1)
        async with session.claim():
            session.touch()
            task = asyncio.current_task()
            if task is not None:
                self.running.add(task)
            snippet = self._run(session, code, caller, request_iterator)
            try:
                async for response in snippet:
                    yield response
            finally:
                # The client went away mid-snippet (cancelled, deadline, stream closed):
                # closing the run interrupts the snippet and keeps the session (see
                # orchestration.run_snippet); only a runner ignoring the interrupt loses it.
                await snippet.aclose()
                session.run = None
                if task is not None:
                    self.running.discard(task)
                session.touch()

    async def Run(
        self, request: pb.ExecuteStart, context: grpc.aio.ServicerContext
    ) -> pb.ExecuteResult:
        """Unary Execute for sessions without tools: the same snippet path, one message each way."""
        session = self._session(request.session_id)
        if session.has_tools:
            raise NeedsStream(
                "this session was opened with tools: run its snippets with Execute, whose "
                "stream carries the tool calls and their answers"
            )

        async def requests() -> AsyncIterator[pb.ExecuteRequest]:
            yield pb.ExecuteRequest(start=request)

        result = pb.ExecuteResult()
        artifacts: list[pb.Artifact] = []
        kept = dropped = 0
        async for response in self.Execute(requests(), context):
            if response.HasField("result"):
                result = response.result
            elif response.HasField("artifact"):  # checked by the channel already
                size = len(response.artifact.data)
                if kept + size > RUN_ARTIFACT_BYTES:
                    dropped += 1  # one reply must stay under the send cap
                    continue
                kept += size
                artifacts.append(response.artifact)
        result.artifacts.extend(artifacts)
        if dropped:
            result.stderr += (
                f"[corral] {dropped} artifact(s) not returned: over the {RUN_ARTIFACT_BYTES}-byte "
                "budget of one Run reply; run the snippet with stream() to get every artifact\n"
            )
        return result

    def _run(
        self,
        session: Session,
        code: str,
        caller: str,
        requests: AsyncIterator[pb.ExecuteRequest],
    ) -> Any:
        """The snippet's response stream; its result is counted and recorded exactly once."""
        t0 = time.perf_counter()
        control = lifecycle.RunControl(
            session.sandbox, self._grace_s(), lambda: orchestration.kill(session.sandbox)
        )
        session.run = control

        async def on_result(result: pb.ExecuteResult) -> None:
            session.run = None
            await self._snippet_done(session, code, caller, control, result, t0)

        return orchestration.run_snippet(
            session.sandbox,
            code,
            session.limits,
            grace_ms=self.config.hard_timeout_grace_ms,
            requests=requests if session.has_tools else None,
            result_cap=self.config.max_file_bytes,
            control=control,
            on_result=on_result,
        )

    async def _snippet_done(
        self,
        session: Session,
        code: str,
        caller: str,
        control: lifecycle.RunControl,
        result: pb.ExecuteResult,
        t0: float,
    ) -> None:
        """Count, record in the history (for fork/recover), end a lost session, log."""
        self.snippets_executed += 1
        self._snippets_by_caller[caller] += 1
        verdict = pb.Verdict.Name(result.verdict).removeprefix("VERDICT_")
        self.metrics.verdicts.inc(verdict=verdict)
        self.metrics.execute_latency.observe(time.perf_counter() - t0)
        if result.session_lost:
            await self.end_session(session, f"lost: {verdict}", recoverable=True)
        elif result.verdict != pb.VERDICT_SYNTAX_ERROR:  # a syntax error changed nothing
            session.history.append(
                lifecycle.execute_entry(code, control.tool_log, verdict, result.stdout)
            )
        # Every snippet at DEBUG; at INFO only the ones that did not simply run.
        level = logging.DEBUG if result.verdict in _QUIET_VERDICTS else logging.INFO
        log.log(
            level,
            "snippet done",
            extra={"session_id": session.id, "verdict": verdict, "lost": result.session_lost},
        )


async def _first(requests: AsyncIterator[Any], method: str, what: str) -> Any:
    """The first message of a client stream, within FIRST_REQUEST_TIMEOUT_S."""
    try:
        async with asyncio.timeout(FIRST_REQUEST_TIMEOUT_S):
            return await anext(aiter(requests))
    except StopAsyncIteration:
        raise InvalidArgument(f"the {method} stream ended before {what}") from None
    except TimeoutError:
        raise InvalidArgument(
            f"no {what} within {FIRST_REQUEST_TIMEOUT_S:g} s of opening {method}"
        ) from None
