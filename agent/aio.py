"""The asyncio Corral client: the same API as `agent.client`, with awaits.

    async with AsyncClient("127.0.0.1:50051") as client:
        async with client.session(tools=[fetch]) as s:
            r = await s.run("fetch('x')")
            async for item in s.stream("print(1)"): ...

Tools may be plain or `async def` functions: coroutines are awaited on the
event loop, plain functions run in a worker thread so a slow tool does not
stall other sessions.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import warnings
from collections.abc import AsyncIterator, Generator, Iterable, Mapping
from typing import Any

import grpc
import grpc.aio

from agent import wire
from agent.client import CLOSE_TIMEOUT_S, DEFAULT_TIMEOUT_S, OPEN_TIMEOUT_S
from agent.errors import (
    ClientClosed,
    CorralError,
    CorralWarning,
    ProtocolError,
    SessionClosed,
    SessionLost,
    Unavailable,
    from_rpc_error,
)
from agent.results import Artifact, FileInfo, Result, Stderr, Variable, variable_from_proto
from agent.tools import FunctionTool, Tool
from proto import executor_pb2, executor_pb2_grpc
from proto.limits import SessionLimits


class AsyncClient:
    """An asyncio connection to a Corral daemon (arguments as for `Client`)."""

    def __init__(
        self,
        target: str | None = None,
        token: str | None = None,
        tls: wire.TlsOption = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.target = wire.resolve_target(target)
        self._metadata = wire.call_metadata(wire.resolve_token(token))
        self.timeout = wire.check_timeout(timeout, "Client timeout=")
        self.closed = False
        creds = wire.channel_credentials(tls)
        if creds is None:
            self._channel = grpc.aio.insecure_channel(self.target, options=wire.CHANNEL_OPTIONS)
        else:
            self._channel = grpc.aio.secure_channel(
                self.target, creds, options=wire.CHANNEL_OPTIONS
            )
        self._stub = executor_pb2_grpc.ExecutorStub(self._channel)
        self._unary_run = True  # False once a daemon answers Run with UNIMPLEMENTED
        self._sessions: dict[str, AsyncSession] = {}  # opened or attached here

    async def close(self) -> None:
        """Close the sessions this client opened (unless detached), then the channel.

        Safe to call twice; later calls raise ClientClosed.
        """
        for session in list(self._sessions.values()):
            if not session.detached and not session.closed:
                try:
                    await session.close(timeout=CLOSE_TIMEOUT_S)
                except CorralError:
                    pass  # already gone on the daemon
        self._sessions.clear()
        self.closed = True
        await self._channel.close()

    def check_open(self) -> None:
        if self.closed:
            raise ClientClosed(
                f"the client for {self.target} is closed; create a new AsyncClient to continue"
            )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(
        self, method: str, request: Any, timeout: float | None = None, *, session_id: str = ""
    ) -> Any:
        """One unary (or client-streaming) call; `session_id` routes a stream of requests."""
        self.check_open()
        metadata = (
            wire.route_metadata(self._metadata, session_id)
            if session_id
            else wire.request_metadata(self._metadata, request)
        )
        try:
            return await getattr(self._stub, method)(
                request,
                metadata=metadata,
                timeout=timeout or self.timeout,
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    async def _open(self, request: Any) -> Any:
        """OpenSession, retried when refused UNAVAILABLE (no session made; see wire.OPEN_ATTEMPTS)."""
        timeout = max(self.timeout, OPEN_TIMEOUT_S)
        for pause in wire.OPEN_RETRY_BACKOFF_S[: wire.OPEN_ATTEMPTS - 1]:
            try:
                return await self._call("OpenSession", request, timeout=timeout)
            except Unavailable:
                await asyncio.sleep(pause)
        return await self._call("OpenSession", request, timeout=timeout)

    def session(
        self,
        imports: Iterable[str] | None = None,
        tools: Iterable[Any] | None = None,
        variables: Mapping[str, Any] | None = None,
        limits: Mapping[str, int] | SessionLimits | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> _Opening:
        """`await client.session(...)` or `async with client.session(...) as s`."""
        return _Opening(
            self.open_session(
                imports=imports, tools=tools, variables=variables, limits=limits, labels=labels
            )
        )

    async def open_session(
        self,
        imports: Iterable[str] | None = None,
        tools: Iterable[Any] | None = None,
        variables: Mapping[str, Any] | None = None,
        limits: Mapping[str, int] | SessionLimits | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> AsyncSession:
        self.check_open()
        table = wire.tool_table(tools)
        request = wire.open_request(
            imports=imports, tools=table, variables=variables, limits=limits, labels=labels
        )
        response = await self._open(request)
        session = self._adopt(
            AsyncSession(
                self,
                wire.check_session_id(response.session_id),
                wire.limits_dict(response.limits),
                table,
                wire.Caps.from_proto(response.caps),
            )
        )
        session.warnings = [str(w) for w in response.warnings]
        for text in session.warnings:
            warnings.warn(text, CorralWarning, stacklevel=2)
        return session

    async def attach(self, session_id: str, tools: Iterable[Any] | None = None) -> AsyncSession:
        """Continue a session opened elsewhere with the same token (see `Client.attach`)."""
        response = await self._call(
            "AttachSession", executor_pb2.AttachSessionRequest(session_id=session_id)
        )
        session = self._adopt(
            AsyncSession(
                self,
                wire.check_session_id(session_id),
                wire.limits_dict(response.limits),
                wire.attached_tools(response.tools, tools),
                wire.Caps.from_proto(response.caps),
            )
        )
        session.lost = bool(response.lost)  # then recover() continues it
        return session

    def _adopt(self, session: AsyncSession) -> AsyncSession:
        self._sessions[session.id] = session
        return session

    async def stats(self) -> wire.Stats:
        return wire.Stats.from_proto(await self._call("GetStats", executor_pb2.GetStatsRequest()))


class _Opening:
    """Awaitable and async context manager around a session being opened."""

    def __init__(self, coro: Any) -> None:
        self._coro = coro
        self._session: AsyncSession | None = None

    def __await__(self) -> Generator[Any, None, AsyncSession]:
        return self._coro.__await__()  # type: ignore[no-any-return]

    async def __aenter__(self) -> AsyncSession:
        self._session = await self._coro
        return self._session

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None and not self._session.detached:
            await self._session.close()


async def _run_tool_call(
    tools: Mapping[str, Tool], call: Any, caps: wire.Caps | None = None
) -> Any:
    prepared = wire.prepare_tool_call(tools, call)
    if prepared.error is not None or prepared.tool is None:
        return prepared.error
    tool = prepared.tool
    target = tool.fn if isinstance(tool, FunctionTool) else tool.forward
    try:
        if inspect.iscoroutinefunction(target):
            value = await target(**prepared.kwargs)
        else:
            value = await asyncio.to_thread(tool.forward, **prepared.kwargs)
            if inspect.isawaitable(value):
                value = await value
    except Exception as exc:  # raised inside the snippet
        return wire.tool_failure(prepared.call_id, exc)
    return wire.checked_tool_result(
        wire.tool_success(prepared.call_id, tool.name, value), caps, tool.name
    )


class AsyncSession:
    """One sandbox session, asyncio flavour (see `agent.client.Session`)."""

    def __init__(
        self,
        client: AsyncClient,
        session_id: str,
        limits: dict[str, int],
        tools: dict[str, Tool],
        caps: wire.Caps | None = None,
    ) -> None:
        self.client = client
        self.id = session_id
        self.limits = limits
        self.tools = tools
        self.caps = caps or wire.Caps()
        self.closed = False
        self.lost = False
        self.detached = False
        self.warnings: list[str] = []
        self.replay_warnings: tuple[wire.ReplayWarning, ...] = ()

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self.detached:
            await self.close()

    async def _call(
        self, method: str, request: Any, timeout: float | None = None, *, session_id: str = ""
    ) -> Any:
        try:
            return await self.client._call(method, request, timeout, session_id=session_id)
        except SessionLost:
            self.lost = True  # the daemon says the container is gone
            raise

    def _check_open(self) -> None:
        self.client.check_open()
        if self.closed:
            raise SessionClosed(f"session {self.id} is closed; open a new one")
        if self.lost:
            raise SessionClosed(
                f"session {self.id} lost its sandbox; recover() continues it from its last "
                "checkpoint, or open a new one"
            )

    async def run(self, code: str, *, timeout: float | None = None) -> Result:
        """Run a snippet to completion: the unary Run RPC without tools, else Execute."""
        if not self.tools and self.client._unary_run:
            unary = await self._run_unary(code, timeout)
            if unary is not None:
                return unary
        result: Result | None = None
        async for item in self.stream(code, timeout=timeout):
            if isinstance(item, Result):
                result = item
        if result is None:
            raise ProtocolError("the daemon closed the stream without a result")
        return result

    async def _run_unary(self, code: str, timeout: float | None) -> Result | None:
        """run() through Run; None when the daemon predates Run (then Execute is used).

        Cancelling the task cancels the call, which interrupts the snippet on
        the daemon; the session stays (its next snippet waits for the stop).
        """
        self._check_open()
        wire.check_code(code, self.caps)
        start = wire.start_request(self.id, code).start
        deadline = wire.execute_timeout(self.limits)
        timer: asyncio.TimerHandle | None = None
        if timeout is not None:
            deadline = wire.check_timeout(timeout) + wire.EXECUTE_MARGIN_S
            timer = asyncio.get_running_loop().call_later(
                timeout, lambda: asyncio.ensure_future(self._interrupt_quietly())
            )
        try:
            response = await self.client._stub.Run(
                start,
                metadata=wire.route_metadata(self.client._metadata, self.id),
                timeout=deadline,
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:  # an older daemon: stream instead
                self.client._unary_run = False
                return None
            raise from_rpc_error(exc) from exc
        finally:
            if timer is not None:
                timer.cancel()
        result = Result.from_proto(response, [Artifact.from_proto(a) for a in response.artifacts])
        if result.session_lost:
            self.lost = True
        return result

    async def stream(
        self, code: str, *, timeout: float | None = None
    ) -> AsyncIterator[str | Artifact | Result]:
        """Yield output (str; `Stderr` for stderr) and artifacts as they come, then the Result.

        The Result (last item) also holds the stderr text and every artifact.

        timeout: seconds; then the snippet is interrupted (Result INTERRUPTED,
        the state stays). Leaving early or cancelling the task interrupts too.
        """
        self._check_open()
        wire.check_code(code, self.caps)
        start = wire.start_request(self.id, code)
        deadline = wire.execute_timeout(self.limits)
        timer: asyncio.TimerHandle | None = None
        if timeout is not None:
            deadline = wire.check_timeout(timeout) + wire.EXECUTE_MARGIN_S
        call = self.client._stub.Execute(
            metadata=wire.route_metadata(self.client._metadata, self.id), timeout=deadline
        )
        if timeout is not None:
            timer = asyncio.get_running_loop().call_later(
                timeout, lambda: asyncio.ensure_future(self._interrupt_quietly())
            )
        result: Result | None = None
        artifacts: list[Artifact] = []
        finished = False
        try:
            await call.write(start)
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    break
                kind = response.WhichOneof("kind")
                if result is not None:
                    raise ProtocolError(f"the daemon sent {kind!r} after the result")
                if kind == "output":
                    chunk = response.output
                    if chunk.stream == executor_pb2.STREAM_STDERR:
                        yield Stderr(chunk.text)
                    else:
                        yield chunk.text
                elif kind == "artifact":
                    artifact = Artifact.from_proto(response.artifact)
                    artifacts.append(artifact)
                    yield artifact
                elif kind == "tool_call":
                    answer = await _run_tool_call(self.tools, response.tool_call, self.caps)
                    await call.write(executor_pb2.ExecuteRequest(tool_result=answer))
                elif kind == "result":
                    result = Result.from_proto(response.result, artifacts)
                    await call.done_writing()
                else:
                    raise ProtocolError(f"unknown message from the daemon: {kind!r}")
            finished = True
        except grpc.RpcError as exc:
            finished = True
            err = from_rpc_error(exc)
            self.lost = self.lost or isinstance(err, SessionLost)
            raise err from exc
        finally:
            if timer is not None:
                timer.cancel()
            if not finished:
                # Left early, cancelled, or a check failed: interrupt and wait (bounded,
                # shielded from a second cancel) so the session stays usable.
                try:
                    await asyncio.shield(self._drain_interrupted(call))
                finally:
                    call.cancel()
        if result is None:
            raise ProtocolError("the daemon closed the Execute stream without a result")
        if result.session_lost:
            self.lost = True
        yield result

    async def interrupt(self) -> bool:
        """Stop the running snippet (Result INTERRUPTED, state kept); False if none ran."""
        self._check_open()
        response = await self.client._call(
            "Interrupt", executor_pb2.InterruptRequest(session_id=self.id)
        )
        return bool(response.interrupted)

    async def _interrupt_quietly(self) -> None:
        try:
            await self.interrupt()
        except CorralError:
            pass  # ended meanwhile, or the daemon is gone: the stream will say

    async def _drain_interrupted(self, call: Any) -> None:
        await self._interrupt_quietly()
        try:
            async with asyncio.timeout(wire.INTERRUPT_DRAIN_S):
                while True:
                    response = await call.read()
                    if response is grpc.aio.EOF:
                        return
                    if response.WhichOneof("kind") == "result" and response.result.session_lost:
                        self.lost = True
        except (TimeoutError, grpc.RpcError, asyncio.CancelledError):
            pass

    async def checkpoint(self) -> str:
        self._check_open()
        response = await self.client._call(
            "Checkpoint", executor_pb2.CheckpointRequest(session_id=self.id)
        )
        return str(response.checkpoint_id)

    async def rollback(self, checkpoint: str | wire.CheckpointInfo) -> None:
        self._check_open()
        await self.client._call(
            "Rollback",
            executor_pb2.RollbackRequest(
                session_id=self.id, checkpoint_id=wire.check_checkpoint_id(checkpoint)
            ),
        )

    async def checkpoints(self) -> list[wire.CheckpointInfo]:
        self._check_open()
        response = await self.client._call(
            "ListCheckpoints", executor_pb2.ListCheckpointsRequest(session_id=self.id)
        )
        return [wire.CheckpointInfo.from_proto(c) for c in response.checkpoints]

    async def drop_checkpoint(self, checkpoint: str | wire.CheckpointInfo) -> None:
        self._check_open()
        await self.client._call(
            "DropCheckpoint",
            executor_pb2.DropCheckpointRequest(
                session_id=self.id, checkpoint_id=wire.check_checkpoint_id(checkpoint)
            ),
        )

    async def fork(
        self,
        checkpoint: str | wire.CheckpointInfo | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> AsyncSession:
        """A new independent session from this one's state (see `Session.fork`)."""
        self._check_open()
        response = await self.client._call(
            "ForkSession",
            executor_pb2.ForkSessionRequest(
                session_id=self.id,
                checkpoint_id=wire.check_checkpoint_id(checkpoint) if checkpoint else "",
                labels=dict(labels or {}),
            ),
            timeout=max(self.client.timeout, OPEN_TIMEOUT_S),
        )
        child = self.client._adopt(
            AsyncSession(
                self.client,
                wire.check_session_id(response.session_id),
                wire.limits_dict(response.limits),
                dict(self.tools),
                wire.Caps.from_proto(response.caps),
            )
        )
        child.replay_warnings = tuple(wire.ReplayWarning.from_proto(w) for w in response.warnings)
        return child

    async def recover(self) -> wire.Recovery:
        """After SANDBOX_LOST: continue in a new container from the last checkpoint."""
        if self.closed:
            raise SessionClosed(f"session {self.id} is closed; open a new one")
        response = await self.client._call(
            "RecoverSession",
            executor_pb2.RecoverSessionRequest(session_id=self.id),
            timeout=max(self.client.timeout, OPEN_TIMEOUT_S),
        )
        self.lost = False
        return wire.Recovery.from_proto(response)

    def detach(self) -> str:
        """Leave the session open when this client closes; returns its id for attach()."""
        self.detached = True
        return self.id

    async def set_variables(self, variables: Mapping[str, Any]) -> None:
        self._check_open()
        text = wire.variables_json(variables) or "{}"
        wire.check_variables(text, self.caps)
        await self._call(
            "SetVariables",
            executor_pb2.SetVariablesRequest(session_id=self.id, variables_json=text),
        )

    async def get_variables(self, names: Iterable[str] | None = None) -> dict[str, Variable]:
        self._check_open()
        if isinstance(names, str):
            names = [names]
        names = [wire.check_text(n, "a variable name") for n in names or ()]
        response = await self._call(
            "GetVariables",
            executor_pb2.GetVariablesRequest(session_id=self.id, names=list(names or ())),
        )
        return {v.name: variable_from_proto(v) for v in response.variables}

    async def upload(self, path: str | os.PathLike[str], data: bytes | str) -> int:
        """Write a file in the workspace ("x" or "/workspace/x"), streamed in chunks."""
        self._check_open()
        payload = wire.file_data(data)
        wire.check_file(payload, self.caps)
        chunks = list(wire.file_chunks(self.id, wire.file_path(path), payload))
        response = await self._call("UploadFileStream", iter(chunks), session_id=self.id)
        return int(response.size)

    async def download(self, path: str | os.PathLike[str]) -> bytes:
        """Read a file from the workspace ("x" or "/workspace/x"), streamed in chunks."""
        self._check_open()
        request = executor_pb2.DownloadFileRequest(session_id=self.id, path=wire.file_path(path))
        call = self.client._stub.DownloadFileStream(
            request,
            metadata=wire.route_metadata(self.client._metadata, self.id),
            timeout=self.client.timeout,
        )
        parts = []
        try:
            async for chunk in call:
                parts.append(chunk.data)
        except grpc.RpcError as exc:
            err = from_rpc_error(exc)
            self.lost = self.lost or isinstance(err, SessionLost)
            raise err from exc
        return b"".join(parts)

    async def files(self, path: str | os.PathLike[str] = ".") -> list[FileInfo]:
        self._check_open()
        response = await self.client._call(
            "ListFiles",
            executor_pb2.ListFilesRequest(session_id=self.id, path=wire.file_path(path)),
        )
        return [FileInfo.from_proto(e) for e in response.entries]

    async def remove(self, path: str | os.PathLike[str]) -> None:
        self._check_open()
        await self.client._call(
            "RemoveFile",
            executor_pb2.RemoveFileRequest(session_id=self.id, path=wire.file_path(path)),
        )

    async def mkdir(self, path: str | os.PathLike[str]) -> None:
        self._check_open()
        await self.client._call(
            "MakeDirectory",
            executor_pb2.MakeDirectoryRequest(session_id=self.id, path=wire.file_path(path)),
        )

    async def close(self, *, timeout: float | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.client._sessions.pop(self.id, None)
        if self.client.closed:
            return  # nothing can be sent; the daemon ends it at its idle timeout
        try:
            await self._call(
                "CloseSession", executor_pb2.CloseSessionRequest(session_id=self.id), timeout
            )
        except CorralError:
            if not self.lost:
                raise
