"""The daemon holds: permanent tests of reproduced faults (issue #10).

- fd burst: with the daemon's fd limit at 1024, 1000 idle TCP connections to
  the gRPC port exhaust its fds; background loops hit EMFILE (psutil, Docker
  API) and must survive, and once the connections close every open works.
- frozen container: a paused warm container is never handed to an opener,
  and a paused session container is declared lost at once instead of after a
  call's full timeout.
- churn: workers open a session, run 3 snippets and close, over and over;
  no open fails (the 60 s, 8-worker version is benchmarks/churn.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.churn import churn
from executor.daemon import config, doctor
from executor.daemon.errors import ConfigError
from executor.daemon.testing import DaemonProcess, running_daemon
from proto import executor_pb2 as pb
from tests.daemon.helpers import execute, open_session, stub_for

FD_LIMIT = 1024
IDLE_CONNECTIONS = 1000


def _serve_flags(image: str, instance: str, *extra: str) -> list[str]:
    return [
        "--listen=127.0.0.1:0",
        f"--image={image}",
        f"--instance-id={instance}",
        "--no-self-check",
        "--metrics-address=127.0.0.1:0",
        "--pool-warm=2",
        "--pool-max=6",
        *extra,
    ]


def _health(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status)


@contextlib.contextmanager
def _idle_connections(port: int, count: int):  # type: ignore[no-untyped-def]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = count + 256
    if soft < need <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2.0)
            try:
                s.connect(("127.0.0.1", port))
            except OSError:
                s.close()
                break
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_fd_burst_leaves_the_daemon_serving(docker_client, sandbox_image, test_instance_id):
    with DaemonProcess(
        *_serve_flags(sandbox_image, test_instance_id, "--health-check-interval-s=0.5")
    ) as d:
        listening = next(r for r in d.log if isinstance(r, dict) and r.get("msg") == "listening")
        assert listening["fd_limit"] >= FD_LIMIT  # raised to the hard limit at start
        # The setting: the daemon's fds capped at 1024 (soft and hard).
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
        port = int(d.target.rpartition(":")[2])
        channel, stub = stub_for(d.target)
        try:
            sessions = []
            stub.GetStats(pb.GetStatsRequest(), timeout=30)  # connected before the burst
            with _idle_connections(port, IDLE_CONNECTIONS) as socks:
                assert len(socks) >= IDLE_CONNECTIONS // 2, len(socks)
                _wait_fds_exhausted(d.proc.pid)
                # Work during the burst over the connection made before it: taking the
                # warm containers makes refill start new ones, which needs fds it cannot get.
                sessions = [open_session(stub) for _ in range(2)]
                time.sleep(3.0)
                assert d.proc.poll() is None
                faults = [
                    r
                    for r in d.log
                    if isinstance(r, dict)
                    and r.get("level") in ("warning", "error")
                    and "Too many open files" in str(r)
                ]
                assert faults, "the burst did not exhaust the daemon's fds"
            for sid in sessions:
                stub.CloseSession(pb.CloseSessionRequest(session_id=sid), timeout=30)
            # After the burst: every open works and snippets run.
            deadline = time.monotonic() + 60
            while _health(d.target) != health_pb2.HealthCheckResponse.SERVING:
                assert time.monotonic() < deadline, "health never returned to SERVING"
                time.sleep(0.5)
            for _ in range(4):
                sid = open_session(stub)
                assert execute(stub, sid, "21 * 2").result.value.json == "42"
                stub.CloseSession(pb.CloseSessionRequest(session_id=sid), timeout=30)
            metrics_port = listening["metrics_port"]
            with urllib.request.urlopen(
                f"http://127.0.0.1:{metrics_port}/healthz", timeout=10
            ) as r:
                assert r.read() == b"ok\n"
        finally:
            channel.close()


def _wait_fds_exhausted(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(os.listdir(f"/proc/{pid}/fd")) < FD_LIMIT - 2:
        assert time.monotonic() < deadline, "the daemon's fds never filled up"
        time.sleep(0.1)


def _pause(docker_client, container_id: str) -> None:  # type: ignore[no-untyped-def]
    docker_client.api.pause(container_id)


def test_frozen_containers_are_declared_lost_at_once(
    docker_client, sandbox_image, test_instance_id
):
    with running_daemon(
        image=sandbox_image,
        instance_id=test_instance_id,
        docker_client=docker_client,
        pool_warm=2,
        pool_max=6,
        health_check_interval_s=60.0,  # the engine's pause event must do it, not a ping
        # runc: `docker pause` freezes a runc container with the cgroup freezer at once;
        # a gVisor sandbox is paused by runsc itself, more slowly (the timing below is runc's).
        runtime="runc",
        default_wall_time_ms=20_000,
        max_wall_time_ms=20_000,
    ) as d:
        channel, stub = stub_for(d.target)
        try:
            # A warm container frozen in the pool is replaced, never handed out.
            assert d.daemon.pool is not None
            frozen = d.daemon.pool._warm[0]
            failed_before = d.daemon.metrics.containers_failed.value()
            _pause(docker_client, frozen.container_id)
            sessions = [open_session(stub) for _ in range(3)]
            for sid in sessions:
                assert execute(stub, sid, "1 + 1").result.value.json == "2"
            held = {s.sandbox.container_id for s in d.daemon.sessions.all()}
            assert frozen.container_id not in held
            assert d.daemon.metrics.containers_failed.value() > failed_before
            # A session container frozen between calls: the next call says it is lost,
            # well before the 20 s wall time or a 10 s call timeout.
            victim = next(s for s in d.daemon.sessions.all() if s.id == sessions[0])
            _pause(docker_client, victim.sandbox.container_id)
            t0 = time.monotonic()
            run = execute(stub, sessions[0], "2 + 2")
            took = time.monotonic() - t0
            assert pb.Verdict.Name(run.result.verdict) == "VERDICT_SANDBOX_LOST", run.result
            assert took < 8.0, took
            # Bystanders are untouched.
            for sid in sessions[1:]:
                assert execute(stub, sid, "3 + 3").result.value.json == "6"
                stub.CloseSession(pb.CloseSessionRequest(session_id=sid), timeout=30)
        finally:
            channel.close()
    # Nothing paused is left behind (a paused container would never exit by itself).
    paused = docker_client.api.containers(
        all=True, filters={"label": [f"io.corral.instance={test_instance_id}"], "status": "paused"}
    )
    assert not paused, paused


def test_churn_has_no_failed_opens(docker_client, sandbox_image, test_instance_id):
    with running_daemon(
        image=sandbox_image,
        instance_id=test_instance_id,
        docker_client=docker_client,
        pool_warm=2,
        pool_max=8,
    ) as d:
        report = churn(d.target, workers=4, seconds=15)
    assert report["failed_opens"] == 0, json.dumps(report)
    assert not report["bad_verdicts"], report
    assert report["sessions"] >= 4


def test_warm_ceiling_below_floor_is_refused():
    with pytest.raises(ConfigError, match="pool_warm_max"):
        config.from_flat({"pool_warm": 2, "pool_warm_max": 1})


def test_a_loop_that_keeps_failing_turns_health_not_serving_and_the_doctor_says_why(
    docker_client, sandbox_image, test_instance_id
):
    with running_daemon(
        image=sandbox_image,
        instance_id=test_instance_id,
        docker_client=docker_client,
        pool_warm=1,
        pool_max=2,
        session_reap_interval_s=0.05,
        metrics_address="127.0.0.1:0",
    ) as d:
        registry = d.daemon.sessions
        real = registry.expired

        def broken(now: float | None = None) -> list:  # type: ignore[type-arg]
            raise OSError(24, "Too many open files")  # the fault: injected, not reproducible here

        metrics_address = f"127.0.0.1:{d.daemon.metrics_port}"
        assert doctor.running_daemon_checks(metrics_address)[0].ok
        registry.expired = broken  # type: ignore[method-assign]
        try:
            deadline = time.monotonic() + 30
            while _health(d.target) != health_pb2.HealthCheckResponse.NOT_SERVING:
                assert time.monotonic() < deadline, "health stayed SERVING"
                time.sleep(0.2)
            (check,) = doctor.running_daemon_checks(metrics_address)
            assert not check.ok
            assert "session-reaper" in check.detail and "Too many open files" in check.detail
            assert d.daemon.metrics.loop_failures.value(loop="session-reaper") >= 5
        finally:
            registry.expired = real  # type: ignore[method-assign]
        deadline = time.monotonic() + 30
        while _health(d.target) != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, "health never recovered"
            time.sleep(0.2)
        assert doctor.running_daemon_checks(metrics_address)[0].ok


def test_custom_limits_evict_a_warm_container_when_the_pool_is_full(
    docker_client, sandbox_image, test_instance_id
):
    with running_daemon(
        image=sandbox_image,
        instance_id=test_instance_id,
        docker_client=docker_client,
        pool_warm=2,
        pool_max=2,
        open_wait_s=30.0,
    ) as d:
        channel, stub = stub_for(d.target)
        try:
            assert d.daemon.pool is not None and d.daemon.pool.stats().warm == 2
            sid = open_session(stub, limits={"memory_bytes": 300 << 20})
            assert execute(stub, sid, "1 + 1").result.value.json == "2"
            assert d.daemon.metrics.pool_evictions.value() == 1
            assert d.daemon.metrics.opens_refused.value() == 0
            stub.CloseSession(pb.CloseSessionRequest(session_id=sid), timeout=30)
        finally:
            channel.close()
