"""Issue #11 on the daemon, where the runner side does not exist in this tree yet.

Real `ExecutorService`, real gRPC on loopback, the real `agent.Client`; the
container is `tests.daemon.fake_runner.FakeSandbox`, which answers the new
`interrupt` / `checkpoint` / `rollback` / `drop_checkpoint` frames as
FRAMES-NEW.md agrees. The same behaviours against Docker and the real runner
are in test_survival_daemon.py (skipped until the runner side lands).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from agent import Client
from agent.errors import FailedPrecondition, InvalidArgument, NotFound, SessionLost
from proto import executor_pb2 as pb
from proto import executor_pb2_grpc as pb_grpc
from proto.results import Verdict
from tests.daemon.fake_runner import FakeDaemon, fake_daemon_in_thread


@pytest.fixture
def fake(request) -> Iterator[FakeDaemon]:
    with fake_daemon_in_thread(**getattr(request, "param", {})) as handle:
        yield handle


@pytest.fixture
def client(fake) -> Iterator[Client]:
    c = Client(fake.target)
    yield c
    c.close()


def test_interrupt_stops_the_snippet_and_keeps_the_state(fake, client):
    s = client.session()
    s.run("kept = 7")
    threading.Timer(0.3, s.interrupt).start()
    r = s.run("#loop")
    assert r.verdict is Verdict.INTERRUPTED and not r.session_lost
    assert s.run("kept * 6").python_value == 42  # usable at once, state kept
    assert s.interrupt() is False  # nothing runs: a no-op


def test_client_timeout_interrupts_instead_of_destroying(fake, client):
    s = client.session()
    s.run("kept = 1")
    r = s.run("#loop", timeout=0.2)
    assert r.verdict is Verdict.INTERRUPTED
    assert s.run("kept + 1").python_value == 2


def test_leaving_stream_early_leaves_a_usable_session(fake, client):
    s = client.session()
    s.run("kept = 'yes'")
    for item in s.stream("#loop"):
        assert item == "looping\n"
        break
    assert s.run("kept").python_value == "yes"  # no FAILED_PRECONDITION: the drain finished


def test_keyboard_interrupt_in_the_loop_keeps_the_session(fake, client):
    s = client.session()
    s.run("kept = 3")
    with pytest.raises(KeyboardInterrupt):
        for _item in s.stream("#loop"):
            raise KeyboardInterrupt
    assert s.run("kept").python_value == 3


def test_cancelled_execute_leaves_an_interrupted_idle_session(fake, client):
    s = client.session()
    s.run("kept = 5")
    channel = grpc.insecure_channel(fake.target)
    stub = pb_grpc.ExecutorStub(channel)
    call = stub.Execute(
        iter([pb.ExecuteRequest(start=pb.ExecuteStart(session_id=s.id, code="#loop"))])
    )
    assert next(call).HasField("output")
    call.cancel()  # the client disappears mid-snippet
    channel.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            assert s.run("kept").python_value == 5
            break
        except FailedPrecondition:
            time.sleep(0.05)  # still draining the interrupt
    else:
        pytest.fail("the session never became usable")
    sandbox = fake.pool.made[0]
    assert any(f.get("type") == "interrupt" for f in sandbox.frames_in)
    assert sandbox not in fake.pool.released


def test_wedged_runner_is_killed_after_the_grace_then_recovered_from_a_checkpoint(fake, client):
    s = client.session()
    s.run("a = 1")
    cp = s.checkpoint()
    s.run("b = 2")
    r = s.run("#stuck", timeout=0.1)
    assert r.verdict is Verdict.SANDBOX_LOST and r.session_lost
    assert "recover()" in r.error.message
    with Client(fake.target) as elsewhere:  # another process of the same caller
        other = elsewhere.attach(s.id)
        assert other.lost and other.detach()
    with pytest.raises(SessionLost) as lost:  # the daemon tells the owner how to continue
        client._call("GetVariables", pb.GetVariablesRequest(session_id=s.id))
    assert "recover()" in str(lost.value)
    rec = s.recover()
    assert rec.checkpoint_id == cp and rec.dropped == 1
    names = set(s.get_variables())
    assert "a" in names and "b" not in names  # back to the checkpoint, not beyond
    assert [c.checkpoint_id for c in s.checkpoints()] == [cp]  # still usable
    s.run("b = 3")
    s.rollback(cp)
    assert "b" not in s.get_variables()


def test_interrupt_during_a_tool_call_answers_the_call_first(fake):
    gate = threading.Event()

    def slow(arg: str) -> str:
        """Waits.

        Args:
            arg: anything.
        """
        gate.wait(10)
        return arg

    with Client(fake.target) as c:
        s = c.session(tools=[slow])
        threading.Timer(0.3, s.interrupt).start()
        r = s.run("#tool slow x")
        gate.set()
        # The daemon answered the pending call with InterruptedError, then stopped it.
        assert r.verdict in (Verdict.ERROR, Verdict.INTERRUPTED)
        assert r.error is not None and "interrupted" in r.error.message
        assert s.run("1 + 1").python_value == 2


def test_interrupt_storm_sends_one_frame_and_costs_nothing(fake, client):
    s = client.session()
    other = client.session()
    other.run("x = 1")
    stop = threading.Event()
    counts = []

    def storm() -> None:
        with Client(fake.target) as c2:
            s2 = c2.attach(s.id)
            s2.detach()
            n = 0
            while not stop.is_set():
                s2.interrupt()
                n += 1
            counts.append(n)

    t = threading.Thread(target=storm)
    t.start()
    time.sleep(0.1)
    r = s.run("#loop", timeout=5)
    stop.set()
    t.join(10)
    assert r.verdict is Verdict.INTERRUPTED
    assert counts and counts[0] > 10
    sandbox = fake.pool.made[0]
    assert sum(1 for f in sandbox.frames_in if f.get("type") == "interrupt") == 1
    assert other.run("x").python_value == 1


def test_checkpoints_are_scoped_to_their_session(fake, client):
    a, b = client.session(), client.session()
    a.run("v = 1")
    cp = a.checkpoint()
    b.run("v = 2")
    with pytest.raises(NotFound) as err:
        b.rollback(cp)  # another session's id: not found, like a wrong session id
    assert "checkpoint" in str(err.value)
    with pytest.raises(NotFound):
        b.drop_checkpoint(cp)
    with pytest.raises(InvalidArgument):
        b.rollback("x" * 500)
    assert b.run("v").python_value == 2
    a.run("v = 10")
    a.rollback(cp)
    assert a.run("v").python_value == 1
    assert [c.checkpoint_id for c in a.checkpoints()] == [cp]
    a.drop_checkpoint(cp)
    assert a.checkpoints() == []


def test_checkpoint_bomb_stops_at_the_limit_and_costs_other_sessions_nothing(fake, client):
    bomb, other = client.session(limits={"max_checkpoints": 3}), client.session()
    other.run("x = 1")
    ids = [bomb.checkpoint() for _ in range(3)]
    for _ in range(5):
        with pytest.raises(FailedPrecondition) as err:
            bomb.checkpoint()
        assert "max_checkpoints" in str(err.value)
    bomb.drop_checkpoint(ids[0])
    bomb.checkpoint()  # room again
    assert other.checkpoint() and other.run("x").python_value == 1


def test_fork_replays_with_recorded_tool_results(fake):
    calls: list[str] = []

    def fetch(url: str) -> str:
        """Fetch.

        Args:
            url: where.
        """
        calls.append(url)
        return f"page of {url}"

    with Client(fake.target) as c:
        s = c.session(tools=[fetch])
        s.run("#tool fetch a\npage = reply")
        s.set_variables({"n": 3})
        s.upload("f.txt", b"data")
        s.run("total = n * 2")
        child = s.fork()
        assert calls == ["a"]  # the tool ran once, at the original call
        assert child.id != s.id and child.replay_warnings == ()
        assert child.run("(page, total)").python_value == ["page of a", 6]
        child.run("total = 0")
        assert s.run("total").python_value == 6  # independent
        sandbox = fake.pool.made[-1]
        assert sandbox.files == {"f.txt": b"data"}


def test_fork_reports_what_replay_cannot_reproduce(fake, client):
    s = client.session()
    s.run("import random\nprint(random.random())")
    s.run("#loop", timeout=0.1)  # interrupted: not replayed
    child = s.fork()
    kinds = sorted(w.kind for w in child.replay_warnings)
    assert kinds == ["output", "skipped"]


def test_fork_from_a_checkpoint(fake, client):
    s = client.session()
    s.run("x = 1")
    cp = s.checkpoint()
    s.run("x = 2")
    assert s.fork(cp).run("x").python_value == 1
    assert s.fork().run("x").python_value == 2


def test_attach_continues_with_the_same_token_only(fake):
    with Client(fake.target) as a:
        s = a.session()
        s.run("x = 41")
        sid = s.detach()
    with Client(fake.target) as b:  # a.close() left the detached session open
        again = b.attach(sid)
        assert again.run("x + 1").python_value == 42


@pytest.mark.parametrize(
    "fake", [{"tokens": {"alice": "a" * 24, "mallory": "m" * 24}}], indirect=True
)
def test_stolen_session_id_with_another_token_is_not_found(fake):
    with Client(fake.target, token="a" * 24) as alice, Client(fake.target, token="m" * 24) as mal:
        s = alice.session()
        s.run("secret = 1")
        cp = s.checkpoint()
        for attempt in (
            lambda: mal.attach(s.id),
            lambda: mal._call("Interrupt", pb.InterruptRequest(session_id=s.id)),
            lambda: mal._call("Rollback", pb.RollbackRequest(session_id=s.id, checkpoint_id=cp)),
            lambda: mal._call("ForkSession", pb.ForkSessionRequest(session_id=s.id)),
            lambda: mal._call("RecoverSession", pb.RecoverSessionRequest(session_id=s.id)),
            lambda: mal._call("CloseSession", pb.CloseSessionRequest(session_id=s.id)),
        ):
            with pytest.raises(NotFound) as err:
                attempt()
            assert s.id not in str(err.value)
        assert s.run("secret").python_value == 1


def test_client_close_closes_its_sessions_unless_detached(fake):
    c = Client(fake.target)
    kept, _closed = c.session(), c.session()
    kept.detach()
    c.close()
    assert fake.pool.made[1] in fake.pool.released and fake.pool.made[0] not in fake.pool.released
    with Client(fake.target) as c2:
        c2.attach(kept.id).close()


def test_abandoned_open_is_rolled_back(fake):
    """Callers that give up around the moment the session is ready never leave one behind."""
    channel = grpc.insecure_channel(fake.target)
    stub = pb_grpc.ExecutorStub(channel)
    for delay in (0.1, 0.18, 0.19, 0.2, 0.21, 0.22, 0.3):
        fake.pool.init_delay_s = delay
        try:
            sid = stub.OpenSession(pb.OpenSessionRequest(), timeout=0.2).session_id
            stub.CloseSession(pb.CloseSessionRequest(session_id=sid))  # delivered: ours to close
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    time.sleep(1.0)
    channel.close()
    assert len(fake.service.sessions) == 0
    assert len(fake.pool.released) == len(fake.pool.made) == 7


def test_oversized_tool_result_is_a_tool_error_in_the_snippet(fake):
    def fetch(url: str) -> str:
        """Big.

        Args:
            url: where.
        """
        return "x" * (100 << 10)  # above the 64 KiB cap of this daemon

    with Client(fake.target) as c:
        s = c.session(tools=[fetch])
        assert s.caps.tool_result_bytes == 64 << 10
        s.run("kept = 1")
        r = s.run("#tool fetch a")
        assert r.verdict is Verdict.ERROR and r.error is not None
        assert r.error.type == "ToolError"
        assert "the result of 'fetch' is 100.0 KiB; the cap is 64 KiB" in r.error.message
        assert s.run("kept").python_value == 1


def test_daemon_checks_tool_result_size_too(fake):
    """A client that does not check: the daemon turns the oversized result into a ToolError."""
    import queue

    def fetch(url: str) -> str:
        """Echo.

        Args:
            url: where.
        """
        return url

    with Client(fake.target) as c:
        s = c.session(tools=[fetch])
        channel = grpc.insecure_channel(fake.target)
        stub = pb_grpc.ExecutorStub(channel)
        answers: queue.Queue[Any] = queue.Queue()

        def requests() -> Iterator[pb.ExecuteRequest]:
            yield pb.ExecuteRequest(start=pb.ExecuteStart(session_id=s.id, code="#tool fetch a"))
            while (item := answers.get()) is not None:
                yield item

        result = None
        for response in stub.Execute(requests(), timeout=30):
            if response.HasField("tool_call"):
                big = '"' + "y" * (200 << 10) + '"'
                answers.put(
                    pb.ExecuteRequest(
                        tool_result=pb.ToolResult(
                            call_id=response.tool_call.call_id, ok=True, value_json=big
                        )
                    )
                )
            elif response.HasField("result"):
                result = response.result
                answers.put(None)
        channel.close()
        assert result is not None and result.verdict == pb.VERDICT_ERROR
        assert result.error.type == "ToolError" and "config: max_file_bytes" in result.error.message
        assert s.run("1").python_value == 1


def test_sizes_are_checked_before_sending_with_the_cap_and_key(fake, client):
    s = client.session()
    assert s.caps.file_bytes == 64 << 10 and s.caps.code_bytes > 0
    with pytest.raises(InvalidArgument) as err:
        s.upload("big.bin", b"x" * (65 << 10))
    assert "max_file_bytes" in str(err.value) and "retry" not in str(err.value)
    with pytest.raises(InvalidArgument) as err:
        s.set_variables({"v": "x" * (65 << 10)})
    assert "max_file_bytes" in str(err.value)
    with pytest.raises(InvalidArgument) as err:
        s.run("#" * (s.caps.code_bytes + 1))
    assert "code_bytes" in str(err.value)
    # The daemon refuses the same without the client's check: INVALID_ARGUMENT, with the key.
    with pytest.raises(InvalidArgument) as err:
        client._call(
            "SetVariables",
            pb.SetVariablesRequest(
                session_id=s.id, variables_json='{"v": "' + "x" * (65 << 10) + '"}'
            ),
        )
    assert "max_file_bytes" in str(err.value)
    assert s.run("1 + 1").python_value == 2


def test_fork_bomb_hits_capacity_typed_and_leaks_nothing(fake, client):
    from agent.errors import ResourceExhausted

    fake.pool.max_containers = 4
    parent, other = client.session(), client.session()
    parent.run("x = 1")
    forks = []
    with pytest.raises(ResourceExhausted) as err:
        for _ in range(10):
            forks.append(parent.fork())
    assert len(forks) == 2 and "retry later" in str(err.value)
    assert other.run("1 + 1").python_value == 2  # costs no other session anything
    for f in forks:
        f.close()
    assert parent.fork().run("x").python_value == 1  # capacity came back
    in_use = len(fake.pool.made) - len(fake.pool.released)
    assert in_use == 3
