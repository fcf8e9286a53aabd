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
from collections.abc import AsyncIterator, Generator, Iterable, Mapping
from typing import Any

import grpc
import grpc.aio

from agent import wire
from agent.client import DEFAULT_TIMEOUT_S, OPEN_TIMEOUT_S
from agent.errors import (
    CorralError,
    ProtocolError,
    SessionClosed,
    SessionLost,
    from_rpc_error,
)
from agent.results import Result, Variable, variable_from_proto
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
        self.timeout = timeout
        creds = wire.channel_credentials(tls)
        if creds is None:
            self._channel = grpc.aio.insecure_channel(self.target, options=wire.CHANNEL_OPTIONS)
        else:
            self._channel = grpc.aio.secure_channel(
                self.target, creds, options=wire.CHANNEL_OPTIONS
            )
        self._stub = executor_pb2_grpc.ExecutorStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        try:
            return await getattr(self._stub, method)(
                request, metadata=self._metadata, timeout=timeout or self.timeout
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

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
        table = wire.tool_table(tools)
        request = wire.open_request(
            imports=imports, tools=table, variables=variables, limits=limits, labels=labels
        )
        response = await self._call(
            "OpenSession", request, timeout=max(self.timeout, OPEN_TIMEOUT_S)
        )
        return AsyncSession(
            self,
            wire.check_session_id(response.session_id),
            wire.limits_dict(response.limits),
            table,
        )

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
        if self._session is not None:
            await self._session.close()


async def _run_tool_call(tools: Mapping[str, Tool], call: Any) -> Any:
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
    return wire.tool_success(prepared.call_id, tool.name, value)


class AsyncSession:
    """One sandbox session, asyncio flavour (see `agent.client.Session`)."""

    def __init__(
        self, client: AsyncClient, session_id: str, limits: dict[str, int], tools: dict[str, Tool]
    ) -> None:
        self.client = client
        self.id = session_id
        self.limits = limits
        self.tools = tools
        self.closed = False
        self.lost = False

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: str, request: Any) -> Any:
        try:
            return await self.client._call(method, request)
        except SessionLost:
            self.lost = True  # the daemon says the container is gone
            raise

    def _check_open(self) -> None:
        if self.closed:
            raise SessionClosed(f"session {self.id} is closed; open a new one")
        if self.lost:
            raise SessionClosed(f"session {self.id} lost its sandbox; open a new one")

    async def run(self, code: str, *, timeout: float | None = None) -> Result:
        result: Result | None = None
        async for item in self.stream(code, timeout=timeout):
            if isinstance(item, Result):
                result = item
        if result is None:
            raise ProtocolError("the daemon closed the stream without a result")
        return result

    async def stream(
        self, code: str, *, timeout: float | None = None
    ) -> AsyncIterator[str | Result]:
        """Yield printed output (str) as it arrives, then the Result (last item)."""
        self._check_open()
        start = wire.start_request(self.id, code)
        deadline = timeout if timeout is not None else wire.execute_timeout(self.limits)
        call = self.client._stub.Execute(metadata=self.client._metadata, timeout=deadline)
        result: Result | None = None
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
                    yield response.output.text
                elif kind == "tool_call":
                    answer = await _run_tool_call(self.tools, response.tool_call)
                    await call.write(executor_pb2.ExecuteRequest(tool_result=answer))
                elif kind == "result":
                    result = Result.from_proto(response.result)
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
            if not finished:
                call.cancel()
        if result is None:
            raise ProtocolError("the daemon closed the Execute stream without a result")
        if result.session_lost:
            self.lost = True
        yield result

    async def set_variables(self, variables: Mapping[str, Any]) -> None:
        self._check_open()
        await self._call(
            "SetVariables",
            executor_pb2.SetVariablesRequest(
                session_id=self.id, variables_json=wire.variables_json(variables) or "{}"
            ),
        )

    async def get_variables(self, names: Iterable[str] | None = None) -> dict[str, Variable]:
        self._check_open()
        if isinstance(names, str):
            names = [names]
        response = await self._call(
            "GetVariables",
            executor_pb2.GetVariablesRequest(session_id=self.id, names=list(names or ())),
        )
        return {v.name: variable_from_proto(v) for v in response.variables}

    async def upload(self, path: str, data: bytes | str) -> int:
        """Write a file under /workspace (streamed in chunks); returns its size in bytes."""
        self._check_open()
        payload = data.encode() if isinstance(data, str) else bytes(data)
        response = await self._call(
            "UploadFileStream", iter(list(wire.file_chunks(self.id, path, payload)))
        )
        return int(response.size)

    async def download(self, path: str) -> bytes:
        """Read a file from /workspace (streamed in chunks)."""
        self._check_open()
        request = executor_pb2.DownloadFileRequest(session_id=self.id, path=path)
        call = self.client._stub.DownloadFileStream(
            request, metadata=self.client._metadata, timeout=self.client.timeout
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

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self._call("CloseSession", executor_pb2.CloseSessionRequest(session_id=self.id))
        except CorralError:
            if not self.lost:
                raise
