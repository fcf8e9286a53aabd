"""The `corral.v1.Executor` servicer: the RPC surface, one thin method per RPC.

A handler validates its request (`validation`), finds the caller's session,
claims its lock (one sandbox call at a time) and talks to the session's
container, through `orchestration` for anything longer than one request.
Authentication, request decoding and the mapping of `DaemonError`s to gRPC
statuses happen around every handler in the server interceptor
(`interceptor.Gate`); a handler only reads `current_caller()` and raises.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from executor.daemon import convert, orchestration, validation
from executor.daemon.auth import ANONYMOUS, current_caller
from executor.daemon.config import DaemonConfig
from executor.daemon.errors import (
    InvalidArgument,
    SandboxCallFailed,
    SessionLost,
    SessionNotFound,
    ShuttingDown,
    TooLarge,
)
from executor.daemon.metrics import DaemonMetrics
from executor.daemon.pool import Pool
from executor.daemon.sessions import Session, SessionRegistry, new_session_id
from proto import executor_pb2 as pb
from proto import executor_pb2_grpc as pb_grpc
from proto.limits import FILE_CHUNK_BYTES

log = logging.getLogger("corral.daemon.service")

CLOSED_MEMORY = 10_000  # recently closed ids remembered, so CloseSession stays idempotent
FIRST_REQUEST_TIMEOUT_S = 30.0  # an Execute stream must send its ExecuteStart this soon
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

    async def end_session(self, session: Session, reason: str) -> None:
        """Forget the session and destroy its container (idempotent)."""
        if self.sessions.pop(session.id) is None:
            return
        session.lost = True
        if session.lock.locked():
            # A snippet is running: killing first ends its pending read with EOF
            # before the socket is closed under it.
            await orchestration.kill(session.sandbox)
        self._closed[session.id] = session.owner
        while len(self._closed) > CLOSED_MEMORY:
            self._closed.popitem(last=False)
        self.pool.release(session.sandbox)
        log.info("session ended", extra={"session_id": session.id, "reason": reason})

    async def _lose(self, session: Session, reason: str, detail: str) -> SessionLost:
        await orchestration.kill(session.sandbox)
        await self.end_session(session, reason)
        return SessionLost(detail[:300])

    async def _call(self, session: Session, frame: dict[str, Any], want: str) -> dict[str, Any]:
        """One request/answer on the session's channel; runner refusals -> SandboxCallFailed."""
        from executor.sandbox import driver

        try:
            answer = await session.sandbox.request_async(frame, orchestration.CALL_TIMEOUT_S)
        except driver.SandboxRequestError as exc:
            raise SandboxCallFailed(f"the sandbox refused {frame['type']}: {exc}") from exc
        except driver.SandboxError as exc:
            raise await self._lose(session, "lost", str(exc)) from exc
        if answer.get("type") != want:
            got = str(answer.get("type"))[:40]
            raise await self._lose(
                session, "protocol", f"the runner answered {got!r} instead of {want!r}"
            )
        return answer

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
            id=new_session_id(),
            owner=caller,
            sandbox=sandbox,
            limits=plan.limits,
            labels=plan.labels,
            has_tools=plan.has_tools,
        )
        self.sessions.add(session)
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
            session_id=session.id, limits=convert.limits_to_proto(plan.limits)
        )

    async def CloseSession(
        self, request: pb.CloseSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseSessionResponse:
        try:
            session = self._session(request.session_id)
        except SessionNotFound:
            if self._closed.get(request.session_id) == current_caller():
                return pb.CloseSessionResponse()  # already closed by its owner: idempotent
            raise
        await self.end_session(session, "closed")
        return pb.CloseSessionResponse()

    # --- variables and files -------------------------------------------------

    async def SetVariables(
        self, request: pb.SetVariablesRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetVariablesResponse:
        frame = validation.set_variables(request)
        session = self._session(request.session_id)
        async with session.claim():
            session.touch()
            await self._call(session, frame, "ack")
        return pb.SetVariablesResponse()

    async def GetVariables(
        self, request: pb.GetVariablesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetVariablesResponse:
        frame = validation.get_variables(request)
        session = self._session(request.session_id)
        async with session.claim():
            session.touch()
            answer = await self._call(session, frame, "vars")
        try:
            return pb.GetVariablesResponse(variables=convert.variables(answer.get("state")))
        except convert.BadFrame as exc:
            lost = await self._lose(session, "protocol", f"the runner sent bad variables: {exc}")
            raise lost from exc

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
        return len(data)

    async def _read_file(self, session: Session, path: str) -> bytes:
        async with session.claim():
            session.touch()
            answer = await self._call(session, {"type": "read_file", "path": path}, "file")
        encoded = answer.get("data_b64")
        cap = self.config.max_file_bytes
        if not isinstance(encoded, str):
            raise SandboxCallFailed("the runner sent a file frame without data")
        if len(encoded) > (cap + 2) // 3 * 4:
            raise TooLarge(f"the file {path!r}", len(encoded) * 3 // 4, cap, "max_file_bytes")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SandboxCallFailed(f"the runner sent undecodable file data: {exc}") from None
        if len(data) > cap:
            raise TooLarge(f"the file {path!r}", len(data), cap, "max_file_bytes")
        return data

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
        async with session.claim():
            session.touch()
            task = asyncio.current_task()
            if task is not None:
                self.running.add(task)
            try:
                async for response in self._run(session, code, request_iterator):
                    yield response
            except asyncio.CancelledError:
                # The client went away mid-snippet: its state is unknowable, end the session.
                await orchestration.kill(session.sandbox)
                await self.end_session(session, "client cancelled")
                raise
            finally:
                if task is not None:
                    self.running.discard(task)
                session.touch()
        self._snippets_by_caller[caller] += 1

    async def _run(
        self, session: Session, code: str, requests: AsyncIterator[pb.ExecuteRequest]
    ) -> AsyncIterator[pb.ExecuteResponse]:
        t0 = time.perf_counter()
        responses = orchestration.run_snippet(
            session.sandbox,
            code,
            session.limits,
            grace_ms=self.config.hard_timeout_grace_ms,
            requests=requests if session.has_tools else None,
        )
        async for response in responses:
            if not response.HasField("result"):
                yield response
                continue
            result = response.result
            self.snippets_executed += 1
            verdict = pb.Verdict.Name(result.verdict).removeprefix("VERDICT_")
            self.metrics.verdicts.inc(verdict=verdict)
            self.metrics.execute_latency.observe(time.perf_counter() - t0)
            if result.session_lost:
                await self.end_session(session, f"lost: {verdict}")
            # Every snippet at DEBUG; at INFO only the ones that did not simply run.
            level = logging.DEBUG if result.verdict in _QUIET_VERDICTS else logging.INFO
            log.log(
                level,
                "snippet done",
                extra={"session_id": session.id, "verdict": verdict, "lost": result.session_lost},
            )
            yield response


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
