"""Routable sessions without Docker: what the client sends, what the daemon refuses.

The client side is checked against a real gRPC server in this process that
records each call's metadata (the thing a proxy routes on); the daemon side
through the real `ExecutorService` on a real port over fake sandboxes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from concurrent import futures
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from agent import AsyncClient, Client
from agent.errors import NotFound, Unavailable
from executor.daemon.auth import Authenticator
from executor.daemon.config import DaemonConfig
from executor.daemon.errors import ConfigError, SessionElsewhere, SessionNotFound
from executor.daemon.interceptor import Gate
from executor.daemon.metrics import DaemonMetrics
from executor.daemon.server import Daemon, serving_status
from executor.daemon.service import ExecutorService
from executor.daemon.sessions import Session, SessionRegistry
from proto import executor_pb2 as pb
from proto import executor_pb2_grpc as pb_grpc
from proto.limits import SessionLimits
from proto.routing import ROUTE_METADATA, route_of
from tests.daemon.fake_runner import FakePool

ROUTE = "127.0.0.1:7001"
SESSION_ID = f"{ROUTE}/tok-abcdefghijklmnop"


class Recorder(pb_grpc.ExecutorServicer):
    """Answers what the client needs and records (method, route metadata) per call."""

    def __init__(self, refuse_opens: int = 0) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.refuse_opens = refuse_opens
        self.lock = threading.Lock()

    def _record(self, method: str, context: grpc.ServicerContext) -> None:
        route = dict(context.invocation_metadata()).get(ROUTE_METADATA)
        with self.lock:
            self.calls.append((method, route))

    def OpenSession(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("OpenSession", context)
        if self.refuse_opens > 0:
            self.refuse_opens -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "the daemon is shutting down")
        return pb.OpenSessionResponse(session_id=SESSION_ID)

    def AttachSession(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("AttachSession", context)
        return pb.AttachSessionResponse()

    def SetVariables(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("SetVariables", context)
        return pb.SetVariablesResponse()

    def GetVariables(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("GetVariables", context)
        return pb.GetVariablesResponse()

    def UploadFile(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("UploadFile", context)
        return pb.UploadFileResponse(size=len(request.data))

    def UploadFileStream(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        self._record("UploadFileStream", context)
        return pb.UploadFileResponse(size=sum(len(c.data) for c in request_iterator))

    def DownloadFileStream(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("DownloadFileStream", context)
        yield pb.FileChunk(data=b"hi")

    def Run(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("Run", context)
        return pb.ExecuteResult(verdict=pb.VERDICT_OK)

    def Checkpoint(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("Checkpoint", context)
        return pb.CheckpointResponse(checkpoint_id="cp_1")

    def ForkSession(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("ForkSession", context)
        return pb.ForkSessionResponse(session_id=f"{ROUTE}/child-token-abcdefgh")

    def GetStats(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("GetStats", context)
        return pb.GetStatsResponse(instance_id="rec")

    def CloseSession(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("CloseSession", context)
        return pb.CloseSessionResponse()

    def Execute(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        self._record("Execute", context)
        next(request_iterator)
        yield pb.ExecuteResponse(result=pb.ExecuteResult(verdict=pb.VERDICT_OK))


@contextlib.contextmanager
def recording_server(refuse_opens: int = 0) -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder(refuse_opens)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_ExecutorServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", recorder
    finally:
        server.stop(0)


# --- client: the route travels with every call after OpenSession ---------------


def test_sync_client_sends_the_route_on_every_session_call() -> None:
    with recording_server() as (target, rec), Client(target) as client:
        s = client.session()
        s.set_variables({"x": 1})
        s.get_variables(["x"])
        s.upload("a.txt", b"hi")
        assert s.download("a.txt") == b"hi"
        s.checkpoint()
        assert s.run("x").ok  # no tools: the unary Run
        assert list(s.stream("x"))  # streaming: Execute
        child = s.fork()
        client.stats()
        child.close()
        s.close()
    routes = dict(rec.calls)
    assert rec.calls[0] == ("OpenSession", None)  # balanced: no route yet
    assert routes["GetStats"] is None
    for method in (
        "SetVariables",
        "GetVariables",
        "UploadFileStream",
        "DownloadFileStream",
        "Checkpoint",
        "Run",
        "Execute",
        "ForkSession",
        "CloseSession",
    ):
        assert routes[method] == ROUTE, method


def test_attach_by_id_carries_the_route() -> None:
    with recording_server() as (target, rec), Client(target) as client:
        s = client.attach(SESSION_ID)
        s.set_variables({"y": 2})
        s.detach()
    assert rec.calls == [("AttachSession", ROUTE), ("SetVariables", ROUTE)]


def test_async_client_sends_the_route_on_every_session_call() -> None:
    async def scenario(target: str) -> None:
        async with AsyncClient(target) as client:
            s = await client.open_session()
            await s.set_variables({"x": 1})
            assert (await s.run("x")).ok  # no tools: the unary Run
            assert [item async for item in s.stream("x")]  # Execute
            await s.upload("a.txt", b"hi")
            assert await s.download("a.txt") == b"hi"
            await s.close()
            a = await client.attach(SESSION_ID)
            await a.get_variables()
            a.detach()

    with recording_server() as (target, rec):
        asyncio.run(scenario(target))
    assert rec.calls == [
        ("OpenSession", None),
        ("SetVariables", ROUTE),
        ("Run", ROUTE),
        ("Execute", ROUTE),
        ("UploadFileStream", ROUTE),
        ("DownloadFileStream", ROUTE),
        ("CloseSession", ROUTE),
        ("AttachSession", ROUTE),
        ("GetVariables", ROUTE),
    ]


def test_an_id_without_a_usable_route_is_sent_without_one() -> None:
    with recording_server() as (target, rec), Client(target) as client:
        for sid in ("bare-token", "bad route!/tok"):
            client.attach(sid).detach()
    assert rec.calls == [("AttachSession", None), ("AttachSession", None)]


def test_open_refused_unavailable_is_retried_a_bounded_number_of_times() -> None:
    with recording_server(refuse_opens=2) as (target, rec), Client(target) as client:
        s = client.session()
        assert s.id == SESSION_ID
        s.detach()
    assert [m for m, _ in rec.calls] == ["OpenSession"] * 3
    with (
        recording_server(refuse_opens=10) as (target, rec),
        Client(target) as client,
        pytest.raises(Unavailable),
    ):
        client.session()
    assert len(rec.calls) == 3  # bounded: then the caller sees the refusal


def test_async_open_retries_too() -> None:
    async def scenario(target: str) -> str:
        async with AsyncClient(target) as client:
            s = await client.open_session()
            s.detach()
            return s.id

    with recording_server(refuse_opens=1) as (target, rec):
        assert asyncio.run(scenario(target)) == SESSION_ID
    assert [m for m, _ in rec.calls] == ["OpenSession", "OpenSession"]


# --- daemon: ids name the route; another route is never looked up ----------------


def _session(sid: str, owner: str = "alice") -> Session:
    return Session(id=sid, owner=owner, sandbox=None, limits=SessionLimits())


def test_registry_ids_carry_its_route_and_foreign_routes_are_refused_before_lookup() -> None:
    async def scenario() -> None:
        mine = SessionRegistry("10.0.0.1:50051")
        sid = mine.new_id()
        assert route_of(sid) == "10.0.0.1:50051" and len(sid.rpartition("/")[2]) >= 22
        mine.add(_session(sid))
        assert mine.get(sid, "alice").id == sid
        token = sid.rpartition("/")[2]
        for forged in (f"10.0.0.2:50051/{token}", token, f"/{token}"):
            with pytest.raises(SessionElsewhere) as err:
                mine.get(forged, "alice")
            assert ROUTE_METADATA in str(err.value) and "10.0.0.1:50051" in str(err.value)
        # Another caller's session: NOT_FOUND like a missing one, no routing hint.
        with pytest.raises(SessionNotFound) as err:
            mine.get(sid, "bob")
        assert not isinstance(err.value, SessionElsewhere)
        assert ROUTE_METADATA not in str(err.value)

    asyncio.run(scenario())


def test_route_defaults_to_the_instance_id_and_bad_addresses_are_refused() -> None:
    assert Daemon(DaemonConfig(instance_id="corrald-a")).route == "corrald-a"
    cfg = DaemonConfig().replace(instance_id="x", advertise_address="10.1.2.3:50051")
    assert Daemon(cfg).route == "10.1.2.3:50051"
    with pytest.raises(ConfigError, match="advertise_address"):
        DaemonConfig().replace(advertise_address="10.1.2.3:50051/evil")
    with pytest.raises(ConfigError, match="instance_id"):
        DaemonConfig().replace(instance_id="has space")


def test_serving_status_follows_capacity_and_drain() -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING

    def pool(warm: int, starting: int, in_use: int, max_containers: int = 4) -> Any:
        stats = SimpleNamespace(
            warm=warm,
            starting=starting,
            in_use=in_use,
            destroying=0,
            max_containers=max_containers,
        )
        return SimpleNamespace(stats=lambda: stats)

    assert serving_status(True, pool(1, 0, 3)) == serving
    assert serving_status(True, pool(0, 1, 3)) == serving  # one on its way
    assert serving_status(True, pool(0, 0, 2)) == serving  # room to start one
    assert serving_status(True, pool(0, 0, 4)) == not_serving  # exhausted
    assert serving_status(False, pool(2, 0, 0)) == not_serving  # draining
    assert serving_status(True, None) == not_serving


def test_real_service_refuses_a_foreign_route_with_a_hint() -> None:
    async def scenario() -> None:
        registry = SessionRegistry(ROUTE)
        service = ExecutorService(
            DaemonConfig(),
            FakePool(),
            registry,
            DaemonMetrics(),
            "fake",  # type: ignore[arg-type]
        )
        server = grpc.aio.server(interceptors=[Gate(Authenticator({}))])
        pb_grpc.add_ExecutorServicer_to_server(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with AsyncClient(f"127.0.0.1:{port}") as client:
                s = await client.open_session()
                assert route_of(s.id) == ROUTE
                token = s.id.rpartition("/")[2]
                stranger = await client.attach(s.id)  # same caller, same id: fine
                stranger.detach()
                with pytest.raises(NotFound) as err:
                    await client.attach(f"127.0.0.1:7002/{token}")
                assert ROUTE_METADATA in str(err.value) and "127.0.0.1:7002" in str(err.value)
                await s.close()
        finally:
            await server.stop(0)

    asyncio.run(scenario())
