"""Listening on a unix socket and with TLS; pool health checks; dedicated containers; cancels."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from executor.daemon.testing import running_daemon
from executor.sandbox.runtimes import cgroup_pids
from proto import executor_pb2 as pb
from proto import executor_pb2_grpc as pb_grpc
from tests.daemon.helpers import execute, open_session, stub_for

pytestmark = pytest.mark.docker


def test_unix_socket_listener(docker_client, sandbox_image, test_instance_id, tmp_path: Path):
    sock = tmp_path / "corral.sock"
    with running_daemon(
        image=sandbox_image,
        instance_id=test_instance_id,
        docker_client=docker_client,
        listen=f"unix:{sock}",
        pool_warm=0,
    ) as d:
        assert d.target == f"unix:{sock}" and sock.exists()
        channel, stub = stub_for(d.target)
        assert stub.GetStats(pb.GetStatsRequest()).instance_id == test_instance_id
        channel.close()


def test_tls_listener(docker_client, sandbox_image, test_instance_id, tmp_path: Path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    with running_daemon(
        image=sandbox_image,
        instance_id=test_instance_id,
        docker_client=docker_client,
        tls_cert=str(cert),
        tls_key=str(key),
        pool_warm=0,
    ) as d:
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(d.target, creds) as channel:
            stub = pb_grpc.ExecutorStub(channel)
            assert stub.GetStats(pb.GetStatsRequest(), timeout=10).instance_id == test_instance_id
        # A plaintext client cannot talk to the TLS listener.
        with grpc.insecure_channel(d.target) as channel:
            stub = pb_grpc.ExecutorStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.GetStats(pb.GetStatsRequest(), timeout=5)
            assert err.value.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            )


def test_dead_warm_container_is_replaced(docker_client, sandbox_image, test_instance_id):
    with running_daemon(
        image=sandbox_image,
        instance_id=test_instance_id,
        docker_client=docker_client,
        pool_warm=1,
        pool_max=2,
        health_check_interval_s=0.3,
    ) as d:
        pool = d.daemon.pool
        assert pool is not None
        victim = next(iter(pool._warm))
        docker_client.api.kill(victim.container_id)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            warm = list(pool._warm)
            if warm and victim not in warm and d.daemon.metrics.containers_failed.value() >= 1:
                break
            time.sleep(0.1)
        assert d.daemon.metrics.containers_failed.value() >= 1
        assert victim not in list(pool._warm)
        channel, stub = stub_for(d.target)
        sid = open_session(stub)
        assert json.loads(execute(stub, sid, "'fresh'").result.value.json) == "fresh"
        channel.close()


def test_custom_container_limits_get_a_dedicated_container(stub, daemon, docker_client):
    memory = 256 << 20
    session_id = open_session(stub, limits={"memory_bytes": memory, "pids": 96})
    try:
        sandbox = daemon.daemon.sessions.get(session_id, "anonymous").sandbox
        host = docker_client.api.inspect_container(sandbox.container_id)["HostConfig"]
        assert host["Memory"] == memory
        assert host["PidsLimit"] == cgroup_pids(daemon.daemon.runtime, 96)
        assert json.loads(execute(stub, session_id, "21 * 2").result.value.json) == 42
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_client_cancel_interrupts_and_never_forgets_the_session(stub, daemon, docker_client):
    """Issue #11: a cancelled Execute interrupts the snippet; the session is never NOT_FOUND.

    With a runner that honours `interrupt` the session keeps its state; one that
    does not is killed after the grace, and the session waits for recover().
    """
    from tests.daemon.survival import RUNNER_INTERRUPTS

    session_id = open_session(stub)
    container_id = daemon.daemon.sessions.get(session_id, "anonymous").sandbox.container_id
    execute(stub, session_id, "kept = 41")
    req = pb.ExecuteRequest(
        start=pb.ExecuteStart(session_id=session_id, code="print('x')\nwhile True:\n    pass")
    )
    call = stub.Execute(iter([req]), timeout=30)
    first = next(call)
    assert first.HasField("output")
    call.cancel()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            got = stub.GetVariables(pb.GetVariablesRequest(session_id=session_id, names=["kept"]))
            assert RUNNER_INTERRUPTS and got.variables[0].json == "41"
            break
        except grpc.RpcError as exc:
            assert exc.code() != grpc.StatusCode.NOT_FOUND, exc.details()
            if exc.code() == grpc.StatusCode.ABORTED:
                assert not RUNNER_INTERRUPTS and "recover()" in exc.details()
                break
        time.sleep(0.1)
    else:
        pytest.fail("the session stayed busy after its client's cancellation")
    stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))
    ids = [c["Id"] for c in docker_client.api.containers(all=True)]
    deadline = time.monotonic() + 30
    while container_id in ids and time.monotonic() < deadline:
        time.sleep(0.2)
        ids = [c["Id"] for c in docker_client.api.containers(all=True)]
    assert container_id not in ids


def test_a_container_never_serves_two_sessions(stub, daemon):
    seen = set()
    for _ in range(3):
        sid = open_session(stub)
        seen.add(daemon.daemon.sessions.get(sid, "anonymous").sandbox.container_id)
        stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
    assert len(seen) == 3


def test_logs_carry_the_session_id(stub, caplog):
    with caplog.at_level("INFO", logger="corral"):
        sid = open_session(stub)
        stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
    events = {r.getMessage(): r for r in caplog.records if getattr(r, "session_id", None) == sid}
    assert "session opened" in events and "session ended" in events
