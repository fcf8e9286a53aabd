"""Three daemons behind a real nginx, one Docker engine: routing, spread, failures.

nginx (Debian's package) runs the configuration `corrald fleet nginx-config`
renders, on 127.0.0.1 with an ephemeral port, in front of three `corrald
serve` processes with distinct instance ids and ports. Everything a test sees
goes through the proxy, except where the point is one daemon's own view
(its stats, its health, a direct open while it drains).

The tests share one fleet and run in file order: the destructive ones (a
daemon killed, a daemon drained) come last.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent import Client
from agent.client import Session
from agent.errors import CorralError, NotFound, Unavailable
from executor.daemon.server import SERVICE_NAME
from executor.fleet import LocalFleet
from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED
from proto import executor_pb2 as pb
from proto import executor_pb2_grpc as pb_grpc
from proto.routing import ROUTE_METADATA, route_of

pytestmark = pytest.mark.docker

POOL_MAX = 6
DAEMON_FLAGS = (
    "--pool-warm=1",
    f"--pool-max={POOL_MAX}",
    "--refill-concurrency=1",
    "--shutdown-drain-s=60",
    "--health-check-interval-s=0",
    "--open-wait-s=60",
)


@pytest.fixture(scope="module")
def fleet(
    nginx_bin: str, docker_client: Any, sandbox_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalFleet]:
    prefix = f"test-fleet-{uuid.uuid4().hex[:8]}"
    state = tmp_path_factory.mktemp("nginx")
    try:
        with LocalFleet(
            state,
            count=3,
            prefix=prefix,
            daemon_flags=(f"--image={sandbox_image}", *DAEMON_FLAGS),
            nginx=nginx_bin,
        ) as f:
            yield f
    finally:
        for instance in (f"{prefix}-{i}" for i in range(3)):
            for c in docker_client.containers.list(
                all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={instance}"]}
            ):
                try:
                    c.remove(force=True)
                except Exception:
                    pass


def _open(client: Client, n: int) -> list[Session]:
    return [client.session() for _ in range(n)]


def _direct_stats(route: str) -> Any:
    with Client(route) as direct:
        return direct.stats()


def _health(route: str, service: str = SERVICE_NAME) -> int:
    with grpc.insecure_channel(route) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def _alive(fleet: LocalFleet) -> list[str]:
    return [r for r, d in zip(fleet.routes, fleet.daemons, strict=True) if d.proc.poll() is None]


def test_sessions_spread_and_every_call_reaches_its_daemon(fleet: LocalFleet) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    assert all(_health(r) == serving and _health(r, "") == serving for r in fleet.routes)
    with Client(fleet.target) as client:
        sessions = _open(client, 9)
        routes = Counter(route_of(s.id) for s in sessions)
        assert set(routes) == set(fleet.routes), routes  # every daemon got sessions
        for i, s in enumerate(sessions):
            assert s.run(f"x = {i}").ok
            s.set_variables({"y": i * 10})
        for i, s in enumerate(sessions):  # state set in earlier calls is there: same daemon
            r = s.run("x + y")
            assert r.ok and r.python_value == i * 11, r
        for route, instance in zip(fleet.routes, fleet.instance_ids, strict=True):
            stats = _direct_stats(route)
            assert stats.instance_id == instance
            assert stats.sessions == routes[route]  # each daemon counts only its own
        for s in sessions:
            s.close()
        for route in fleet.routes:
            assert _direct_stats(route).sessions == 0


def test_a_forged_route_is_refused_never_answered_with_another_session(
    fleet: LocalFleet,
) -> None:
    with Client(fleet.target) as client:
        s = client.session()
        s.run("secret = 42")
        route, _, token = s.id.rpartition("/")
        other = next(r for r in fleet.routes if r != route)
        # The token under another daemon's route: that daemon does not hold it.
        with pytest.raises(NotFound) as err:
            client.attach(f"{other}/{token}")
        assert ROUTE_METADATA not in str(err.value)
        # A route no daemon has: balanced to some daemon, which refuses with the hint.
        with pytest.raises(NotFound) as err:
            client.attach(f"10.255.0.1:9/{token}")
        assert ROUTE_METADATA in str(err.value) and "10.255.0.1:9" in str(err.value)
        # The right id, but the metadata steers the call to another daemon.
        with grpc.insecure_channel(fleet.target) as channel:
            stub = pb_grpc.ExecutorStub(channel)
            with pytest.raises(grpc.RpcError) as rpc:
                stub.GetVariables(
                    pb.GetVariablesRequest(session_id=s.id),
                    metadata=((ROUTE_METADATA, other),),
                    timeout=10,
                )
            assert rpc.value.code() == grpc.StatusCode.NOT_FOUND
            assert route in (rpc.value.details() or "")
        # The real session is untouched, and attach by id works through the proxy.
        with Client(fleet.target) as again:
            same = again.attach(s.id)
            assert same.run("secret").python_value == 42
            same.detach()
        s.close()


def test_health_says_not_serving_while_the_pool_is_exhausted(fleet: LocalFleet) -> None:
    route = fleet.routes[-1]
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    with Client(route) as direct:
        held = [direct.session() for _ in range(POOL_MAX)]  # every container it may have
        deadline = time.monotonic() + 30
        while _health(route) != not_serving:
            assert time.monotonic() < deadline, "an exhausted daemon still reports SERVING"
            time.sleep(0.1)
        assert _health(route, "") == serving  # liveness: still alive, do not restart it
        held.pop().close()
        deadline = time.monotonic() + 30
        while _health(route) != serving:
            assert time.monotonic() < deadline, "capacity came back but health did not"
            time.sleep(0.1)
        for s in held:
            s.close()


def test_killing_one_daemon_loses_only_its_sessions(fleet: LocalFleet) -> None:
    with Client(fleet.target) as client:
        sessions = _open(client, 6)
        for i, s in enumerate(sessions):
            s.run(f"v = {i}")
        by_route = Counter(route_of(s.id) for s in sessions)
        victim = max(by_route, key=lambda r: by_route[r])
        idx = fleet.routes.index(victim)
        # Mid-run: one of the victim's sessions is running a snippet when it dies.
        running = next(s for s in sessions if route_of(s.id) == victim)
        outcome: dict[str, Any] = {}

        def hold() -> None:
            try:
                outcome["result"] = running.run("import time\ntime.sleep(60)")
            except CorralError as exc:
                outcome["error"] = exc

        runner = threading.Thread(target=hold)
        runner.start()
        time.sleep(1.0)
        fleet.daemons[idx].proc.send_signal(signal.SIGKILL)
        fleet.daemons[idx].proc.wait(30)
        runner.join(60)
        assert not runner.is_alive()
        if "error" in outcome:  # the stream broke with the daemon: typed, not a hang
            assert isinstance(outcome["error"], Unavailable | NotFound), outcome
        else:
            assert outcome["result"].verdict == "SANDBOX_LOST", outcome
        survivors = [r for r in fleet.routes if r != victim]
        for i, s in enumerate(sessions):
            if route_of(s.id) == victim:
                try:
                    r = s.run("v")
                except (NotFound, Unavailable):
                    continue  # typed: the daemon that held it is gone
                assert r.session_lost and r.verdict == "SANDBOX_LOST", r
            else:
                r = s.run("v")
                assert r.ok and r.python_value == i, r
        # New opens keep succeeding, on the two that are left.
        fresh = _open(client, 6)
        assert {route_of(s.id) for s in fresh} == set(survivors)
        for s in fresh:
            assert s.run("1 + 1").python_value == 2
            s.close()
        for s in sessions:
            if route_of(s.id) != victim:
                s.close()
            else:
                s.closed = True  # nothing to close: its daemon is gone


def test_a_drained_daemon_takes_no_new_sessions(fleet: LocalFleet) -> None:
    alive = _alive(fleet)
    assert alive
    drained = alive[0]
    proc = fleet.daemons[fleet.routes.index(drained)]
    with Client(drained) as direct:
        busy = direct.session(limits={"wall_time_ms": 120_000})
        outcome: dict[str, Any] = {}

        def hold() -> None:  # a running snippet keeps the daemon draining
            try:
                outcome["result"] = busy.run("import time\ntime.sleep(100)\n'done'")
            except CorralError as exc:
                outcome["error"] = exc

        runner = threading.Thread(target=hold)
        runner.start()
        try:
            time.sleep(1.0)
            before = direct.stats().sessions
            proc.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            while _health(drained) != health_pb2.HealthCheckResponse.NOT_SERVING:
                assert time.monotonic() < deadline, "the draining daemon still reports SERVING"
                time.sleep(0.1)
            with pytest.raises(Unavailable):
                direct.session()  # refused (after the client's bounded retries)
            with Client(fleet.target) as client:
                fresh = _open(client, 4)
                assert all(route_of(s.id) != drained for s in fresh)
                for s in fresh:
                    assert s.run("2 * 21").python_value == 42
                    s.close()
            assert direct.stats().sessions == before  # nothing new landed on it
            busy.interrupt()  # let the drain finish (still answered while draining)
        finally:
            runner.join(60)
        r = outcome.get("result")
        # INTERRUPTED with a runner that honours interrupts, else killed after the grace.
        assert r is not None and r.verdict in ("INTERRUPTED", "SANDBOX_LOST"), outcome
        busy.closed = True  # the daemon ends its sessions as it stops
    assert proc.proc.wait(60) == 0
    assert Path(fleet.state_dir / "nginx.conf").exists()
