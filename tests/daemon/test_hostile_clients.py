"""Attacks on the daemon's API by clients with only network access (real daemon, real gRPC).

- An unauthenticated flood of large requests is refused before any body is
  read: the daemon's memory barely moves and nothing stays behind.
- A request whose variables grow past the container frame cap when re-encoded
  is INVALID_ARGUMENT before any container is taken: no container is counted
  as failed or destroyed, and a bystander session keeps working.
- Malformed protobuf is INVALID_ARGUMENT, not UNKNOWN.
- A tenant's GetStats shows only its own figures.
- Files stream in chunks larger than one message through the client.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections.abc import Iterator

import grpc
import psutil
import pytest

from agent import Client
from executor.daemon.testing import DaemonProcess
from proto import executor_pb2 as pb
from proto import executor_pb2_grpc as pb_grpc
from proto.limits import FILE_CHUNK_BYTES, MiB
from tests.daemon.helpers import execute, open_session

TOKEN_A = "alice-secret-0123456789abcdef"
TOKEN_B = "bob-secret-0123456789abcdefgh"
ALICE = (("authorization", f"Bearer {TOKEN_A}"),)
BOB = (("authorization", f"Bearer {TOKEN_B}"),)
FLOOD_CALLS = 80
FLOOD_BYTES = 15 * MiB
RSS_BUDGET = 100 * MiB
# Big enough that an expanding payload fits one message but not one frame.
MESSAGE_CAP = 20 * MiB


@pytest.fixture(scope="module")
def guarded(sandbox_image, test_instance_id) -> Iterator[DaemonProcess]:
    flags = [
        f"--image={sandbox_image}",
        f"--instance-id={test_instance_id}-hostile",
        "--no-self-check",
        "--metrics-address=0",
        "--pool-warm=2",
        "--pool-max=4",
        f"--token=alice={TOKEN_A}",
        f"--token=bob={TOKEN_B}",
        "--admin-callers=alice",
        f"--max-message-bytes={MESSAGE_CAP}",
    ]
    with DaemonProcess(*flags) as d:
        yield d


@pytest.fixture(scope="module")
def stub(guarded) -> Iterator[pb_grpc.ExecutorStub]:
    channel = grpc.insecure_channel(
        guarded.target, options=[("grpc.max_send_message_length", 64 * MiB)]
    )
    yield pb_grpc.ExecutorStub(channel)
    channel.close()


def stats(stub: pb_grpc.ExecutorStub, metadata=ALICE) -> pb.GetStatsResponse:
    return stub.GetStats(pb.GetStatsRequest(), metadata=metadata, timeout=30)


def test_unauthenticated_flood_is_refused_before_any_body_is_read(guarded, stub):
    proc = psutil.Process(guarded.proc.pid)
    before = proc.memory_info().rss
    peak = [before]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    payload = b"x" * FLOOD_BYTES

    def attack(i: int) -> grpc.StatusCode:
        channel = grpc.insecure_channel(
            guarded.target, options=[("grpc.max_send_message_length", 64 * MiB)]
        )
        try:
            pb_grpc.ExecutorStub(channel).UploadFile(
                pb.UploadFileRequest(session_id="x", path=f"f{i}", data=payload), timeout=120
            )
        except grpc.RpcError as exc:
            return exc.code()
        finally:
            channel.close()
        return grpc.StatusCode.OK

    try:
        for _ in range(2):  # twice: what a burst leaves behind would add up
            with concurrent.futures.ThreadPoolExecutor(FLOOD_CALLS) as pool:
                codes = list(pool.map(attack, range(FLOOD_CALLS)))
            assert set(codes) == {grpc.StatusCode.UNAUTHENTICATED}
    finally:
        done.set()
        watcher.join()
    after = proc.memory_info().rss
    assert peak[0] - before <= RSS_BUDGET, f"RSS rose by {(peak[0] - before) >> 20} MiB"
    assert after - before <= RSS_BUDGET // 4, f"{(after - before) >> 20} MiB stayed behind"
    # The daemon keeps serving its real callers.
    assert stats(stub).instance_id == guarded.instance_id


def test_unauthenticated_streams_are_refused_too(stub):
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Execute(iter([pb.ExecuteRequest(start=pb.ExecuteStart(code="1"))]), timeout=30))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        stub.UploadFileStream(iter([pb.FileChunk(session_id="x", path="a")]), timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_expanding_variables_never_touch_a_container(stub):
    bystander = open_session(stub, metadata=ALICE)
    before = stats(stub)
    # "9e15" is 4 characters of JSON; re-encoded it is "9000000000000000.0" (18).
    text = '{"x": [' + ",".join(["9e15"] * (2 * 1024 * 1024)) + "]}"
    assert len(text) < MESSAGE_CAP
    for _ in range(3):
        with pytest.raises(grpc.RpcError) as err:
            stub.OpenSession(
                pb.OpenSessionRequest(variables_json=text), metadata=ALICE, timeout=120
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "too large once encoded" in (err.value.details() or "")
    with pytest.raises(grpc.RpcError) as err:
        stub.SetVariables(
            pb.SetVariablesRequest(session_id=bystander, variables_json=text),
            metadata=ALICE,
            timeout=120,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = stats(stub)
    assert after.containers_failed == before.containers_failed
    assert after.containers_destroyed == before.containers_destroyed
    # The session the payload was aimed at is intact.
    run = execute(stub, bystander, "1 + 1", metadata=ALICE)
    assert json.loads(run.result.value.json) == 2 and not run.result.session_lost
    stub.CloseSession(pb.CloseSessionRequest(session_id=bystander), metadata=ALICE, timeout=30)


@pytest.mark.parametrize("limits", [{"memory_bytes": 1}, {"cpu_millis": 1}, {"pids": 1}])
def test_impossible_limits_are_invalid_argument_without_a_container(stub, limits):
    before = stats(stub)
    with pytest.raises(grpc.RpcError) as err:
        open_session(stub, metadata=ALICE, limits=limits)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "below the minimum" in (err.value.details() or "")
    assert stats(stub).containers_created == before.containers_created


def test_malformed_protobuf_is_invalid_argument(guarded):
    channel = grpc.insecure_channel(guarded.target)
    try:
        raw = channel.unary_unary("/corral.v1.Executor/OpenSession")
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\xff\xff\xff\xff", metadata=ALICE, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid protobuf message" in (err.value.details() or "")
    finally:
        channel.close()


def test_tenants_see_only_their_own_stats(stub):
    session = open_session(stub, metadata=BOB)
    try:
        mine = stats(stub, BOB)
        assert not mine.global_view and mine.sessions == 1
        assert mine.warm == mine.in_use == mine.containers_created == 0
        admin = stats(stub, ALICE)
        assert admin.global_view and admin.containers_created > 0
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session), metadata=BOB, timeout=30)


def test_files_larger_than_a_chunk_round_trip_through_the_client(guarded):
    data = bytes(range(256)) * ((2 * FILE_CHUNK_BYTES + 12345) // 256)
    with Client(guarded.target, token=TOKEN_A) as client, client.session() as s:
        assert s.upload("big/data.bin", data) == len(data)
        assert s.download("big/data.bin") == data
        assert s.run("len(open('big/data.bin', 'rb').read())").value.json == len(data)


def test_a_session_at_the_minimum_limits_runs(stub):
    from proto.limits import LIMIT_MINIMUMS

    limits = {
        "memory_bytes": LIMIT_MINIMUMS["memory_bytes"],
        "pids": LIMIT_MINIMUMS["pids"],
        "cpu_millis": LIMIT_MINIMUMS["cpu_millis"],
        "workspace_bytes": LIMIT_MINIMUMS["workspace_bytes"],
    }
    session = open_session(stub, metadata=ALICE, limits=limits)
    try:
        run = execute(stub, session, "import json\nsum(range(10))", metadata=ALICE)
        assert json.loads(run.result.value.json) == 45, run.result
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session), metadata=ALICE, timeout=30)
