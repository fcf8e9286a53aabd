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

import os
import queue
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import grpc

from agent import wire
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
from agent.tools import Tool
from proto import executor_pb2, executor_pb2_grpc
from proto.limits import SessionLimits

# Deadline of the small unary calls (variables, files, close, stats), seconds.
DEFAULT_TIMEOUT_S = 30.0
# Client.close() closing its sessions: short, so a dead daemon cannot stall an exit.
CLOSE_TIMEOUT_S = 5.0
# OpenSession may wait for the pool to refill.
OPEN_TIMEOUT_S = 120.0


class Client:
    """A connection to a Corral daemon.

    target: "host:port", or a bare host for port 50051 (default: $CORRAL_TARGET,
    else 127.0.0.1:50051).
    token: bearer token for a daemon with auth (default: $CORRAL_TOKEN).
    tls: None (plaintext), True (system roots), a path to a CA bundle, or
    grpc.ChannelCredentials.
    timeout: deadline of the small calls (variables, files, close, stats),
    seconds; a snippet's deadline follows its limits (see `Session.run`).
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
        self.timeout = wire.check_timeout(timeout, "Client timeout=")
        self.closed = False
        creds = wire.channel_credentials(tls)
        if creds is None:
            self._channel = grpc.insecure_channel(self.target, options=wire.CHANNEL_OPTIONS)
        else:
            self._channel = grpc.secure_channel(self.target, creds, options=wire.CHANNEL_OPTIONS)
        self._stub = executor_pb2_grpc.ExecutorStub(self._channel)
        self._unary_run = True  # False once a daemon answers Run with UNIMPLEMENTED
        self._sessions: dict[str, Session] = {}  # opened or attached here; closed by close()

    # -- lifecycle --------------------------------------------------------

    def close(self) -> None:
        """Close the sessions this client opened (unless detached), then the channel.

        Safe to call twice; later calls raise ClientClosed.
        """
        for session in list(self._sessions.values()):
            if not session.detached and not session.closed:
                try:
                    session.close(timeout=CLOSE_TIMEOUT_S)
                except CorralError:
                    pass  # already gone on the daemon: nothing left to free
        self._sessions.clear()
        self.closed = True
        self._channel.close()

    def check_open(self) -> None:
        if self.closed:
            raise ClientClosed(
                f"the client for {self.target} is closed; create a new Client to continue"
            )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
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
            return getattr(self._stub, method)(
                request,
                metadata=metadata,
                timeout=timeout or self.timeout,
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        except ValueError as exc:  # grpc: "Cannot invoke RPC: Channel closed!" (a race with close)
            self.check_open()
            raise CorralError(f"{method} could not be sent: {exc}") from exc

    def wait_ready(self, timeout: float) -> None:
        """Block until the daemon accepts connections (e.g. right after starting it).

        Raises Unavailable when it does not within `timeout` seconds.
        """
        self.check_open()
        timeout = wire.check_timeout(timeout, "wait_ready timeout")
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
        """Open a session (a warm container bound to you). Use it as a context manager.

        imports: modules snippets may import beyond the safe defaults ("numpy",
        "numpy.*", "*"); limits: {name: int} (see `proto.limits.SessionLimits`,
        0 or absent = the daemon's default). The daemon's warnings (e.g. an
        import naming no module in the sandbox) are in `Session.warnings` and
        are also issued as `CorralWarning`s.
        """
        self.check_open()
        table = wire.tool_table(tools)
        request = wire.open_request(
            imports=imports, tools=table, variables=variables, limits=limits, labels=labels
        )
        response = self._open(request)
        session = self._adopt(
            Session(
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

    open_session = session

    def _open(self, request: Any) -> Any:
        """OpenSession, retried when refused UNAVAILABLE (no session made; see wire.OPEN_ATTEMPTS)."""
        for pause in wire.OPEN_RETRY_BACKOFF_S[: wire.OPEN_ATTEMPTS - 1]:
            try:
                return self._call("OpenSession", request, timeout=max(self.timeout, OPEN_TIMEOUT_S))
            except Unavailable:
                time.sleep(pause)
        return self._call("OpenSession", request, timeout=max(self.timeout, OPEN_TIMEOUT_S))

    def attach(self, session_id: str, tools: Iterable[Any] | None = None) -> Session:
        """Continue a session opened elsewhere (another process, same token).

        Give the same tools it was opened with (they run here). Another
        caller's session id is NOT_FOUND, exactly like an unknown one. A lost
        session comes back with `lost` set: `recover()` continues it. This
        client's close() closes it, unless detach() is called.
        """
        response = self._call(
            "AttachSession", executor_pb2.AttachSessionRequest(session_id=session_id)
        )
        session = self._adopt(
            Session(
                self,
                wire.check_session_id(session_id),
                wire.limits_dict(response.limits),
                wire.attached_tools(response.tools, tools),
                wire.Caps.from_proto(response.caps),
            )
        )
        session.lost = bool(response.lost)  # then recover() continues it
        return session

    def _adopt(self, session: Session) -> Session:
        self._sessions[session.id] = session
        return session

    def stats(self) -> wire.Stats:
        return wire.Stats.from_proto(self._call("GetStats", executor_pb2.GetStatsRequest()))


class Session:
    """One sandbox session: a container with a persistent interpreter state."""

    def __init__(
        self,
        client: Client,
        session_id: str,
        limits: dict[str, int],
        tools: dict[str, Tool],
        caps: wire.Caps | None = None,
    ) -> None:
        self.client = client
        self.id = session_id
        self.limits = limits  # in force, after the daemon's defaults and caps
        self.tools = tools
        self.caps = caps or wire.Caps()  # payload sizes the daemon accepts, checked before sending
        self.closed = False
        self.lost = False  # the container died: recover() continues it in a new one
        self.detached = False  # detach(): Client.close() and `with` leave it open
        self.warnings: list[str] = []  # the daemon's warnings when the session opened
        # What replay could not reproduce, for a session made by fork().
        self.replay_warnings: tuple[wire.ReplayWarning, ...] = ()

    def __repr__(self) -> str:
        state = "lost" if self.lost else "closed" if self.closed else "open"
        route, _, token = self.id.rpartition("/")
        where = f"{route} via {self.client.target}" if route else self.client.target
        return f"<Session {token[:8]}… {state} on {where}>"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.detached:
            self.close()

    def _call(
        self, method: str, request: Any, timeout: float | None = None, *, session_id: str = ""
    ) -> Any:
        try:
            return self.client._call(method, request, timeout, session_id=session_id)
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

    # -- snippets ---------------------------------------------------------

    def run(self, code: str, *, timeout: float | None = None) -> Result:
        """Run a snippet to completion and return its Result.

        A session without tools uses the unary Run RPC (one message each way,
        cheaper than a stream); with tools, or from stream(), Execute.
        """
        if not self.tools and self.client._unary_run:
            unary = self._run_unary(code, timeout)
            if unary is not None:
                return unary
        result: Result | None = None
        for item in self.stream(code, timeout=timeout):
            if isinstance(item, Result):
                result = item
        if result is None:  # stream() always ends with a Result or raises
            raise ProtocolError("the daemon closed the stream without a result")
        return result

    def _run_unary(self, code: str, timeout: float | None) -> Result | None:
        """run() through Run; None when the daemon predates Run (then Execute is used)."""
        self._check_open()
        wire.check_code(code, self.caps)
        start = wire.start_request(self.id, code).start
        deadline = wire.execute_timeout(self.limits)
        timer: threading.Timer | None = None
        if timeout is not None:
            deadline = wire.check_timeout(timeout) + wire.EXECUTE_MARGIN_S
            timer = threading.Timer(timeout, self._interrupt_quietly)
            timer.daemon = True
        try:
            future = self.client._stub.Run.future(
                start,
                metadata=wire.route_metadata(self.client._metadata, self.id),
                timeout=deadline,
            )
        except ValueError as exc:  # the channel was closed meanwhile
            self.client.check_open()
            raise CorralError(f"Run could not be sent: {exc}") from exc
        if timer is not None:
            timer.start()
        try:
            response = future.result()
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:  # an older daemon: stream instead
                self.client._unary_run = False
                return None
            raise from_rpc_error(exc) from exc
        except BaseException:
            # Ctrl-C: cancelling the call interrupts the snippet; the session stays.
            future.cancel()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        result = Result.from_proto(response, [Artifact.from_proto(a) for a in response.artifacts])
        if result.session_lost:
            self.lost = True
        return result

    def stream(
        self, code: str, *, timeout: float | None = None
    ) -> Iterator[str | Artifact | Result]:
        """Yield output (str; `Stderr` for stderr) and artifacts as they come, then the Result.

        The Result (last item) also holds the stderr text and every artifact.

        timeout: seconds; then the snippet is interrupted and the Result says
        INTERRUPTED (the session and its state stay). Leaving the loop early,
        or Ctrl-C, interrupts the snippet the same way before returning.
        """
        self._check_open()
        wire.check_code(code, self.caps)
        requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        requests.put(wire.start_request(self.id, code))

        def request_iter() -> Iterator[Any]:
            while True:
                item = requests.get()
                if item is None:
                    return
                yield item

        deadline = wire.execute_timeout(self.limits)
        timer: threading.Timer | None = None
        if timeout is not None:
            deadline = wire.check_timeout(timeout) + wire.EXECUTE_MARGIN_S
            timer = threading.Timer(timeout, self._interrupt_quietly)
            timer.daemon = True
        try:
            call = self.client._stub.Execute(
                request_iter(),
                metadata=wire.route_metadata(self.client._metadata, self.id),
                timeout=deadline,
            )
        except ValueError as exc:  # the channel was closed meanwhile
            self.client.check_open()
            raise CorralError(f"Execute could not be sent: {exc}") from exc
        if timer is not None:
            timer.start()
        result: Result | None = None
        artifacts: list[Artifact] = []
        finished = False
        try:
            for response in call:
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
                    requests.put(
                        executor_pb2.ExecuteRequest(
                            tool_result=wire.run_tool_call(
                                self.tools, response.tool_call, self.caps
                            )
                        )
                    )
                elif kind == "result":
                    result = Result.from_proto(response.result, artifacts)
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
            if timer is not None:
                timer.cancel()
            if not finished:
                # The caller stopped iterating, Ctrl-C, or a check failed: interrupt the
                # snippet and wait (bounded) for its result, so the session stays usable.
                try:
                    self._drain_interrupted(call)
                finally:
                    requests.put(None)
                    call.cancel()
            requests.put(None)
        if result is None:
            raise ProtocolError("the daemon closed the Execute stream without a result")
        if result.session_lost:
            self.lost = True
        yield result

    def interrupt(self) -> bool:
        """Stop the running snippet (its Result says INTERRUPTED; the state stays).

        Safe from another thread while run()/stream() waits. False when no
        snippet was running.
        """
        self._check_open()
        response = self.client._call("Interrupt", executor_pb2.InterruptRequest(session_id=self.id))
        return bool(response.interrupted)

    def _interrupt_quietly(self) -> None:
        try:
            self.interrupt()
        except CorralError:
            pass  # the snippet ended meanwhile, or the daemon is gone: the stream will say

    def _drain_interrupted(self, call: Any) -> None:
        """Interrupt, then read the stream to its end within INTERRUPT_DRAIN_S."""
        self._interrupt_quietly()
        guard = threading.Timer(wire.INTERRUPT_DRAIN_S, call.cancel)
        guard.daemon = True
        guard.start()
        try:
            for response in call:
                if response.WhichOneof("kind") == "result" and response.result.session_lost:
                    self.lost = True
        except grpc.RpcError:
            pass  # cancelled by the guard, or the daemon ended the stream
        finally:
            guard.cancel()

    # -- checkpoints, fork, recovery, ownership -----------------------------

    def checkpoint(self) -> str:
        """Save the whole interpreter state; returns an id for rollback()."""
        self._check_open()
        response = self.client._call(
            "Checkpoint", executor_pb2.CheckpointRequest(session_id=self.id)
        )
        return str(response.checkpoint_id)

    def rollback(self, checkpoint: str | wire.CheckpointInfo) -> None:
        """Return the state to a checkpoint of this session (it stays usable)."""
        self._check_open()
        self.client._call(
            "Rollback",
            executor_pb2.RollbackRequest(
                session_id=self.id, checkpoint_id=wire.check_checkpoint_id(checkpoint)
            ),
        )

    def checkpoints(self) -> list[wire.CheckpointInfo]:
        self._check_open()
        response = self.client._call(
            "ListCheckpoints", executor_pb2.ListCheckpointsRequest(session_id=self.id)
        )
        return [wire.CheckpointInfo.from_proto(c) for c in response.checkpoints]

    def drop_checkpoint(self, checkpoint: str | wire.CheckpointInfo) -> None:
        self._check_open()
        self.client._call(
            "DropCheckpoint",
            executor_pb2.DropCheckpointRequest(
                session_id=self.id, checkpoint_id=wire.check_checkpoint_id(checkpoint)
            ),
        )

    def fork(
        self,
        checkpoint: str | wire.CheckpointInfo | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> Session:
        """A new, independent session (own container) starting from this one's state.

        Built by replaying this session's history with the recorded tool
        results (no tool runs twice). What replay could not reproduce is in
        the new session's `replay_warnings`.
        """
        self._check_open()
        response = self.client._call(
            "ForkSession",
            executor_pb2.ForkSessionRequest(
                session_id=self.id,
                checkpoint_id=wire.check_checkpoint_id(checkpoint) if checkpoint else "",
                labels=dict(labels or {}),
            ),
            timeout=max(self.client.timeout, OPEN_TIMEOUT_S),
        )
        child = self.client._adopt(
            Session(
                self.client,
                wire.check_session_id(response.session_id),
                wire.limits_dict(response.limits),
                dict(self.tools),
                wire.Caps.from_proto(response.caps),
            )
        )
        child.replay_warnings = tuple(wire.ReplayWarning.from_proto(w) for w in response.warnings)
        return child

    def recover(self) -> wire.Recovery:
        """After SANDBOX_LOST: continue this session in a new container from its last checkpoint."""
        if self.closed:
            raise SessionClosed(f"session {self.id} is closed; open a new one")
        response = self.client._call(
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

    # -- variables and files ---------------------------------------------

    def set_variables(self, variables: Mapping[str, Any]) -> None:
        """Bind JSON-safe values to names in the session's state."""
        self._check_open()
        text = wire.variables_json(variables) or "{}"
        wire.check_variables(text, self.caps)
        self._call(
            "SetVariables",
            executor_pb2.SetVariablesRequest(session_id=self.id, variables_json=text),
        )

    def get_variables(self, names: Iterable[str] | None = None) -> dict[str, Variable]:
        """The named variables (all user variables when names is None), by name."""
        self._check_open()
        if isinstance(names, str):
            names = [names]
        names = [wire.check_text(n, "a variable name") for n in names or ()]
        response = self._call(
            "GetVariables",
            executor_pb2.GetVariablesRequest(session_id=self.id, names=list(names or ())),
        )
        return {v.name: variable_from_proto(v) for v in response.variables}

    def upload(self, path: str | os.PathLike[str], data: bytes | str) -> int:
        """Write a file in the workspace ("x" or "/workspace/x"); returns its size in bytes.

        Parent directories are created. Text is written as UTF-8. The file travels
        in chunks (UploadFileStream), so it is bounded by the file cap, not by the
        message cap.
        """
        self._check_open()
        payload = wire.file_data(data)
        wire.check_file(payload, self.caps)
        chunks = wire.file_chunks(self.id, wire.file_path(path), payload)
        response = self._call("UploadFileStream", chunks, session_id=self.id)
        return int(response.size)

    def download(self, path: str | os.PathLike[str]) -> bytes:
        """Read a file from the workspace ("x" or "/workspace/x"), streamed in chunks."""
        self._check_open()
        request = executor_pb2.DownloadFileRequest(session_id=self.id, path=wire.file_path(path))
        try:
            return b"".join(
                chunk.data
                for chunk in self.client._stub.DownloadFileStream(
                    request,
                    metadata=wire.route_metadata(self.client._metadata, self.id),
                    timeout=self.client.timeout,
                )
            )
        except grpc.RpcError as exc:
            err = from_rpc_error(exc)
            self.lost = self.lost or isinstance(err, SessionLost)
            raise err from exc
        except ValueError as exc:  # grpc: "Cannot invoke RPC: Channel closed!" (a race with close)
            self.client.check_open()
            raise CorralError(f"DownloadFileStream could not be sent: {exc}") from exc

    def files(self, path: str | os.PathLike[str] = ".") -> list[FileInfo]:
        """The entries of a workspace directory (default: its root), sorted by path."""
        self._check_open()
        response = self.client._call(
            "ListFiles",
            executor_pb2.ListFilesRequest(session_id=self.id, path=wire.file_path(path)),
        )
        return [FileInfo.from_proto(e) for e in response.entries]

    def remove(self, path: str | os.PathLike[str]) -> None:
        """Delete a file or an empty directory in the workspace."""
        self._check_open()
        self.client._call(
            "RemoveFile",
            executor_pb2.RemoveFileRequest(session_id=self.id, path=wire.file_path(path)),
        )

    def mkdir(self, path: str | os.PathLike[str]) -> None:
        """Make a workspace directory and its missing parents (an existing one is fine)."""
        self._check_open()
        self.client._call(
            "MakeDirectory",
            executor_pb2.MakeDirectoryRequest(session_id=self.id, path=wire.file_path(path)),
        )

    def close(self, *, timeout: float | None = None) -> None:
        """Destroy the session's container. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self.client._sessions.pop(self.id, None)
        if self.client.closed:
            return  # nothing can be sent; the daemon ends it at its idle timeout
        try:
            self._call(
                "CloseSession", executor_pb2.CloseSessionRequest(session_id=self.id), timeout
            )
        except CorralError:
            if not self.lost:
                raise
