"""The synchronous Corral client: `Client` opens `Session`s that run snippets.

    client = Client("127.0.0.1:50051", token=None)
    with client.session(imports=["numpy"], tools=[my_tool]) as s:
        r = s.run("x = 1\\nx + 1")

Every gRPC failure is raised as a typed `CorralError` (see agent.errors); what
the snippet did is always in the `Result` (verdict, error, output), never
hidden. Tool calls from the snippet run on the caller's thread, while the
Execute stream is open, and their result or exception goes back into the
snippet.
"""

from __future__ import annotations

import queue
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import grpc

from agent import wire
from agent.errors import (
    CorralError,
    ProtocolError,
    SessionClosed,
    SessionLost,
    Unavailable,
    from_rpc_error,
)
from agent.results import Result, Variable, variable_from_proto
from agent.tools import Tool
from proto import executor_pb2, executor_pb2_grpc
from proto.limits import SessionLimits

# Deadline of the small unary calls (variables, files, close, stats), seconds.
DEFAULT_TIMEOUT_S = 30.0
# OpenSession may wait for the pool to refill.
OPEN_TIMEOUT_S = 120.0


class Client:
    """A connection to a Corral daemon.

    target: "host:port" (default: $CORRAL_TARGET, else 127.0.0.1:50051).
    token: bearer token for a daemon with auth (default: $CORRAL_TOKEN).
    tls: None (plaintext), True (system roots), a path to a CA bundle, or
    grpc.ChannelCredentials.
    """

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
            self._channel = grpc.insecure_channel(self.target, options=wire.CHANNEL_OPTIONS)
        else:
            self._channel = grpc.secure_channel(self.target, creds, options=wire.CHANNEL_OPTIONS)
        self._stub = executor_pb2_grpc.ExecutorStub(self._channel)

    # -- lifecycle --------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        try:
            return getattr(self._stub, method)(
                request, metadata=self._metadata, timeout=timeout or self.timeout
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    def wait_ready(self, timeout: float) -> None:
        """Block until the daemon accepts connections (e.g. right after starting it).

        Raises Unavailable when it does not within `timeout` seconds.
        """
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as exc:
            raise Unavailable(
                f"UNAVAILABLE: the daemon at {self.target} did not accept a connection "
                f"within {timeout:g} s"
            ) from exc

    # -- API --------------------------------------------------------------

    def session(
        self,
        imports: Iterable[str] | None = None,
        tools: Iterable[Any] | None = None,
        variables: Mapping[str, Any] | None = None,
        limits: Mapping[str, int] | SessionLimits | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Session:
        """Open a session (a warm container bound to you). Use it as a context manager."""
        table = wire.tool_table(tools)
        request = wire.open_request(
            imports=imports, tools=table, variables=variables, limits=limits, labels=labels
        )
        response = self._call("OpenSession", request, timeout=max(self.timeout, OPEN_TIMEOUT_S))
        return Session(
            self,
            wire.check_session_id(response.session_id),
            wire.limits_dict(response.limits),
            table,
        )

    open_session = session

    def stats(self) -> wire.Stats:
        return wire.Stats.from_proto(self._call("GetStats", executor_pb2.GetStatsRequest()))


class Session:
    """One sandbox session: a container with a persistent interpreter state."""

    def __init__(
        self, client: Client, session_id: str, limits: dict[str, int], tools: dict[str, Tool]
    ) -> None:
        self.client = client
        self.id = session_id
        self.limits = limits  # in force, after the daemon's defaults and caps
        self.tools = tools
        self.closed = False
        self.lost = False  # the container died: every further call fails

    def __repr__(self) -> str:
        state = "lost" if self.lost else "closed" if self.closed else "open"
        return f"<Session {self.id[:8]}… {state} on {self.client.target}>"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, request: Any) -> Any:
        try:
            return self.client._call(method, request)
        except SessionLost:
            self.lost = True  # the daemon says the container is gone
            raise

    def _check_open(self) -> None:
        if self.closed:
            raise SessionClosed(f"session {self.id} is closed; open a new one")
        if self.lost:
            raise SessionClosed(f"session {self.id} lost its sandbox; open a new one")

    # -- snippets ---------------------------------------------------------

    def run(self, code: str, *, timeout: float | None = None) -> Result:
        """Run a snippet to completion and return its Result."""
        result: Result | None = None
        for item in self.stream(code, timeout=timeout):
            if isinstance(item, Result):
                result = item
        if result is None:  # stream() always ends with a Result or raises
            raise ProtocolError("the daemon closed the stream without a result")
        return result

    def stream(self, code: str, *, timeout: float | None = None) -> Iterator[str | Result]:
        """Yield printed output (str) as it arrives, then the Result (last item)."""
        self._check_open()
        requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        requests.put(wire.start_request(self.id, code))

        def request_iter() -> Iterator[Any]:
            while True:
                item = requests.get()
                if item is None:
                    return
                yield item

        deadline = timeout if timeout is not None else wire.execute_timeout(self.limits)
        call = self.client._stub.Execute(
            request_iter(), metadata=self.client._metadata, timeout=deadline
        )
        result: Result | None = None
        finished = False
        try:
            for response in call:
                kind = response.WhichOneof("kind")
                if result is not None:
                    raise ProtocolError(f"the daemon sent {kind!r} after the result")
                if kind == "output":
                    yield response.output.text
                elif kind == "tool_call":
                    requests.put(
                        executor_pb2.ExecuteRequest(
                            tool_result=wire.run_tool_call(self.tools, response.tool_call)
                        )
                    )
                elif kind == "result":
                    result = Result.from_proto(response.result)
                    requests.put(None)  # half-close: nothing more to send
                else:
                    raise ProtocolError(f"unknown message from the daemon: {kind!r}")
            finished = True
        except grpc.RpcError as exc:
            finished = True
            err = from_rpc_error(exc)
            self.lost = self.lost or isinstance(err, SessionLost)
            raise err from exc
        finally:
            requests.put(None)
            if not finished:
                call.cancel()  # the caller stopped iterating, or a check failed
        if result is None:
            raise ProtocolError("the daemon closed the Execute stream without a result")
        if result.session_lost:
            self.lost = True
        yield result

    # -- variables and files ---------------------------------------------

    def set_variables(self, variables: Mapping[str, Any]) -> None:
        """Bind JSON-safe values to names in the session's state."""
        self._check_open()
        self._call(
            "SetVariables",
            executor_pb2.SetVariablesRequest(
                session_id=self.id, variables_json=wire.variables_json(variables) or "{}"
            ),
        )

    def get_variables(self, names: Iterable[str] | None = None) -> dict[str, Variable]:
        """The named variables (all user variables when names is None), by name."""
        self._check_open()
        if isinstance(names, str):
            names = [names]
        response = self._call(
            "GetVariables",
            executor_pb2.GetVariablesRequest(session_id=self.id, names=list(names or ())),
        )
        return {v.name: variable_from_proto(v) for v in response.variables}

    def upload(self, path: str, data: bytes | str) -> int:
        """Write a file under /workspace (streamed in chunks); returns its size in bytes."""
        self._check_open()
        payload = data.encode() if isinstance(data, str) else bytes(data)
        chunks = wire.file_chunks(self.id, path, payload)
        response = self._call("UploadFileStream", chunks)
        return int(response.size)

    def download(self, path: str) -> bytes:
        """Read a file from /workspace (streamed in chunks)."""
        self._check_open()
        request = executor_pb2.DownloadFileRequest(session_id=self.id, path=path)
        try:
            return b"".join(
                chunk.data
                for chunk in self.client._stub.DownloadFileStream(
                    request, metadata=self.client._metadata, timeout=self.client.timeout
                )
            )
        except grpc.RpcError as exc:
            err = from_rpc_error(exc)
            self.lost = self.lost or isinstance(err, SessionLost)
            raise err from exc

    def close(self) -> None:
        """Destroy the session's container. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        try:
            self._call("CloseSession", executor_pb2.CloseSessionRequest(session_id=self.id))
        except CorralError:
            if not self.lost:
                raise
