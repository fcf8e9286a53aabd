"""Session ownership, expiry, files, lost containers, pool limits, health and metrics."""

from __future__ import annotations

import json
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from executor.daemon.testing import running_daemon
from proto import executor_pb2 as pb
from tests.daemon.helpers import execute, open_session, stub_for

pytestmark = pytest.mark.docker

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"


def code_of(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def test_idle_session_expires(stub, daemon):
    session_id = open_session(stub, limits={"idle_timeout_s": 1})
    assert stub.GetStats(pb.GetStatsRequest()).sessions >= 1
    time.sleep(2.5)  # idle 1 s, reaper every 0.2 s
    assert (
        code_of(lambda: stub.GetVariables(pb.GetVariablesRequest(session_id=session_id)))
        == grpc.StatusCode.NOT_FOUND
    )
    assert daemon.daemon.metrics.sessions_expired.value() >= 1


def test_unknown_session_is_not_found(stub):
    assert code_of(lambda: execute(stub, "no-such-session", "1")) == grpc.StatusCode.NOT_FOUND


def test_file_upload_download_and_caps(stub, daemon):
    session_id = open_session(stub)
    try:
        payload = bytes(range(256)) * 16
        up = stub.UploadFile(
            pb.UploadFileRequest(session_id=session_id, path="data/in.bin", data=payload)
        )
        assert up.size == len(payload)
        down = stub.DownloadFile(pb.DownloadFileRequest(session_id=session_id, path="data/in.bin"))
        assert down.data == payload

        cap = daemon.config.max_file_bytes
        with pytest.raises(grpc.RpcError) as err:
            stub.UploadFile(
                pb.UploadFileRequest(session_id=session_id, path="big.bin", data=b"x" * (cap + 1))
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"at most {cap} bytes" in err.value.details()
        assert "max_file_bytes" in err.value.details()

        for bad in ("../escape", "/etc/passwd"):
            assert (
                code_of(
                    lambda bad=bad: stub.UploadFile(
                        pb.UploadFileRequest(session_id=session_id, path=bad, data=b"x")
                    )
                )
                == grpc.StatusCode.INVALID_ARGUMENT
            )
        assert (
            code_of(
                lambda: stub.DownloadFile(
                    pb.DownloadFileRequest(session_id=session_id, path="missing.txt")
                )
            )
            == grpc.StatusCode.FAILED_PRECONDITION
        )
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_snippet_reads_uploads_and_writes_downloads_in_the_workspace(stub):
    """Files uploaded through the API are the snippet's input; what it writes can be downloaded."""
    session_id = open_session(stub)
    try:
        stub.UploadFile(
            pb.UploadFileRequest(session_id=session_id, path="in.csv", data=b"x,y\n1,2\n3,4\n")
        )
        code = (
            "rows = [line.split(',') for line in open('in.csv').read().split()[1:]]\n"
            "total = sum(int(a) * int(b) for a, b in rows)\n"
            "with open('out.txt', 'w') as f:\n"
            "    f.write(f'total={total}')\n"
            "total"
        )
        result = execute(stub, session_id, code).result
        assert result.verdict == pb.VERDICT_OK, result.error
        assert json.loads(result.value.json) == 14
        down = stub.DownloadFile(pb.DownloadFileRequest(session_id=session_id, path="out.txt"))
        assert down.data == b"total=14"
        # The interpreter's open() stays inside the workspace.
        escape = execute(stub, session_id, "open('/etc/passwd').read()").result
        assert escape.verdict == pb.VERDICT_ERROR
        assert escape.error.type == "PermissionError"
        assert "root:" not in escape.stdout + escape.error.message
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_container_killed_from_outside(stub, daemon, docker_client):
    session_id = open_session(stub)
    container_id = daemon.daemon.sessions.get(session_id, "anonymous").sandbox.container_id

    def kill(response: pb.ExecuteResponse) -> None:
        if response.HasField("output"):
            docker_client.api.kill(container_id)

    r = execute(stub, session_id, "print('up')\nwhile True:\n    pass", on_response=kill).result
    assert r.verdict == pb.VERDICT_SANDBOX_LOST and r.session_lost
    # Kept for its owner's recover() (issue #11): ABORTED says so.
    assert code_of(lambda: execute(stub, session_id, "1")) == grpc.StatusCode.ABORTED
    stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))
    assert code_of(lambda: execute(stub, session_id, "1")) == grpc.StatusCode.NOT_FOUND
    # The daemon keeps serving.
    other = open_session(stub)
    assert json.loads(execute(stub, other, "2 + 2").result.value.json) == 4
    stub.CloseSession(pb.CloseSessionRequest(session_id=other))


def test_idle_container_killed_from_outside(stub, daemon, docker_client):
    session_id = open_session(stub)
    container_id = daemon.daemon.sessions.get(session_id, "anonymous").sandbox.container_id
    docker_client.api.kill(container_id)
    assert (
        code_of(lambda: stub.GetVariables(pb.GetVariablesRequest(session_id=session_id)))
        == grpc.StatusCode.ABORTED
    )
    assert code_of(lambda: execute(stub, session_id, "1")) == grpc.StatusCode.ABORTED
    stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_close_is_idempotent_for_the_owner(stub):
    session_id = open_session(stub)
    stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))
    stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))
    assert code_of(lambda: execute(stub, session_id, "1")) == grpc.StatusCode.NOT_FOUND


def test_stats_health_reflection_metrics(stub, daemon):
    stats = stub.GetStats(pb.GetStatsRequest())
    assert stats.instance_id == daemon.instance_id
    assert stats.max_containers == daemon.config.pool_max
    assert stats.containers_created >= 2

    channel = grpc.insecure_channel(daemon.target)
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "corral.v1.Executor"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = list(
        refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    )
    names = {s.name for s in answers[0].list_services_response.service}
    assert "corral.v1.Executor" in names and "grpc.health.v1.Health" in names
    channel.close()

    text = urllib.request.urlopen(daemon.metrics_url, timeout=10).read().decode()
    for name in (
        "corral_pool_warm",
        "corral_pool_in_use",
        "corral_session_open_seconds_bucket",
        "corral_execute_seconds_bucket",
        "corral_containers_created_total",
        "corral_containers_destroyed_total",
        "corral_containers_failed_total",
    ):
        assert name in text, name
    assert 'corral_verdicts_total{verdict="OK"}' in text


@pytest.mark.parametrize("dummy", [None])
def test_auth_and_other_callers(docker_client, sandbox_image, test_instance_id, dummy):
    with running_daemon(
        image=sandbox_image,
        instance_id=test_instance_id,
        docker_client=docker_client,
        pool_warm=1,
        pool_max=2,
        tokens={"alice": ALICE, "bob": BOB},
    ) as d:
        channel, stub = stub_for(d.target)
        alice = [("authorization", f"Bearer {ALICE}")]
        bob = [("authorization", f"Bearer {BOB}")]
        with pytest.raises(grpc.RpcError) as err:
            stub.OpenSession(pb.OpenSessionRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "Bearer" in err.value.details()
        wrong = [("authorization", "Bearer " + "z" * len(ALICE))]
        assert code_of(lambda: stub.GetStats(pb.GetStatsRequest(), metadata=wrong)) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        assert code_of(lambda: execute(stub, "x", "1", metadata=wrong)) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        session_id = open_session(stub, metadata=alice)
        r = execute(stub, session_id, "'mine'", metadata=alice).result
        assert json.loads(r.value.json) == "mine"
        # Bob sees Alice's session exactly like a missing one.
        for call in (
            lambda: execute(stub, session_id, "1", metadata=bob),
            lambda: stub.GetVariables(pb.GetVariablesRequest(session_id=session_id), metadata=bob),
            lambda: stub.CloseSession(pb.CloseSessionRequest(session_id=session_id), metadata=bob),
            lambda: stub.DownloadFile(
                pb.DownloadFileRequest(session_id=session_id, path="x"), metadata=bob
            ),
        ):
            assert code_of(call) == grpc.StatusCode.NOT_FOUND
        # ...and the session is untouched.
        r = execute(stub, session_id, "'still mine'", metadata=alice).result
        assert json.loads(r.value.json) == "still mine"
        stub.CloseSession(pb.CloseSessionRequest(session_id=session_id), metadata=alice)
        channel.close()


def test_pool_exhaustion(docker_client, sandbox_image, test_instance_id):
    with running_daemon(
        image=sandbox_image,
        instance_id=test_instance_id,
        docker_client=docker_client,
        pool_warm=1,
        pool_max=1,
        open_wait_s=0.5,
    ) as d:
        channel, stub = stub_for(d.target)
        first = open_session(stub)
        with pytest.raises(grpc.RpcError) as err:
            open_session(stub)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "pool_max=1" in err.value.details() and "open_wait_s" in err.value.details()
        stub.CloseSession(pb.CloseSessionRequest(session_id=first))
        # Once the container is destroyed the pool refills and opening works again.
        deadline = time.monotonic() + 60
        while True:
            try:
                second = open_session(stub)
                break
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                    raise
        assert json.loads(execute(stub, second, "3").result.value.json) == 3
        channel.close()


def test_memory_floor_blocks_new_containers(docker_client, sandbox_image, test_instance_id):
    with running_daemon(
        image=sandbox_image,
        instance_id=test_instance_id,
        docker_client=docker_client,
        pool_warm=0,
        pool_max=2,
        open_wait_s=1.5,
        min_available_memory_bytes=1 << 60,  # more than any host has
    ) as d:
        channel, stub = stub_for(d.target)
        with pytest.raises(grpc.RpcError) as err:
            open_session(stub)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "min_available_memory_bytes" in err.value.details()
        assert stub.GetStats(pb.GetStatsRequest()).containers_created == 0
        channel.close()


def test_client_session_is_lost_when_the_daemon_says_so(daemon, docker_client):
    from agent import Client
    from agent.errors import SessionClosed
    from agent.errors import SessionLost as ClientSessionLost

    with Client(daemon.target) as client:
        s = client.session()
        container_id = daemon.daemon.sessions.get(s.id, "anonymous").sandbox.container_id
        docker_client.api.kill(container_id)
        with pytest.raises(ClientSessionLost, match="open a new session"):
            s.set_variables({"a": 1})
        assert s.lost
        with pytest.raises(SessionClosed, match="lost its sandbox"):
            s.run("1")
        s.close()  # closing a lost session does not raise
