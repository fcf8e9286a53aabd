"""Snippets end to end through the real daemon: results, state, streaming, tools, verdicts."""

from __future__ import annotations

import json
import threading

import grpc
import pytest

from proto import executor_pb2 as pb
from tests.daemon.helpers import NO_ANSWER, execute, in_thread, open_session, tool

pytestmark = pytest.mark.docker


@pytest.fixture
def sid(stub):
    session_id = open_session(stub)
    yield session_id
    stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_end_to_end_snippet(stub, sid):
    run = execute(stub, sid, "x = 6 * 7\nprint('hello')\nx")
    r = run.result
    assert r.verdict == pb.VERDICT_OK
    assert r.stdout == "hello\n"
    assert r.value.type == "int" and json.loads(r.value.json) == 42
    assert {v.name: json.loads(v.json) for v in r.state}["x"] == 42
    assert not r.session_lost
    assert r.usage.wall_ms >= 0 and r.usage.output_bytes == len("hello\n")


def test_state_across_snippets_and_variables_rpcs(stub, sid):
    execute(stub, sid, "counter = 41")
    assert json.loads(execute(stub, sid, "counter + 1").result.value.json) == 42
    stub.SetVariables(pb.SetVariablesRequest(session_id=sid, variables_json='{"items": [1, 2]}'))
    assert json.loads(execute(stub, sid, "len(items) + counter").result.value.json) == 43
    got = stub.GetVariables(pb.GetVariablesRequest(session_id=sid, names=["counter"]))
    assert [(v.name, json.loads(v.json)) for v in got.variables] == [("counter", 41)]


def test_initial_variables_and_bad_json_is_invalid_argument(stub):
    session_id = open_session(stub, variables_json='{"greeting": "hi"}')
    try:
        assert json.loads(execute(stub, session_id, "greeting * 2").result.value.json) == "hihi"
        with pytest.raises(grpc.RpcError) as err:
            stub.SetVariables(pb.SetVariablesRequest(session_id=session_id, variables_json="[1"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "variables_json is not valid JSON" in err.value.details()
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_streaming_order(stub):
    session_id = open_session(stub, tools=[tool("mark")])
    code = "print('before')\nmark()\nprint('after')\n'done'"
    run = execute(stub, session_id, code, tools={"mark": lambda: None})
    kinds = run.kinds
    assert kinds[-1] == "result" and kinds.count("result") == 1
    outputs = [r.output.text for r in run.responses if r.HasField("output")]
    call_at = kinds.index("tool_call")
    before = "".join(r.output.text for r in run.responses[:call_at] if r.HasField("output"))
    assert before == "before\n"
    assert "".join(outputs) == "before\nafter\n" == run.result.stdout
    stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_tool_round_trip_error_and_no_answer(stub):
    tools = [
        tool("add", {"a": "integer", "b": "integer"}, "integer"),
        tool("explode"),
        tool("silent"),
    ]
    session_id = open_session(stub, tools=tools, limits={"tool_timeout_ms": 1000})

    def explode() -> None:
        raise ValueError("tool broke")

    handlers = {"add": lambda a, b: a + b, "explode": explode, "silent": lambda: NO_ANSWER}
    try:
        r = execute(stub, session_id, "add(2, b=3)", tools=handlers).result
        assert r.verdict == pb.VERDICT_OK and json.loads(r.value.json) == 5

        code = "try:\n    explode()\nexcept ValueError as e:\n    caught = str(e)\ncaught"
        r = execute(stub, session_id, code, tools=handlers).result
        assert r.verdict == pb.VERDICT_OK and "tool broke" in json.loads(r.value.json)

        code = (
            "try:\n    silent()\n    got = 'answer'\nexcept TimeoutError:\n    got = 'timeout'\ngot"
        )
        r = execute(stub, session_id, code, tools=handlers).result
        assert r.verdict == pb.VERDICT_OK and json.loads(r.value.json) == "timeout"
        # The session is still usable afterwards.
        r = execute(stub, session_id, "add(1, 1)", tools=handlers).result
        assert json.loads(r.value.json) == 2
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_final_answer(stub, sid):
    r = execute(stub, sid, "final_answer({'n': 42})\nprint('not reached')").result
    assert r.is_final_answer
    assert json.loads(r.final_answer.json) == {"n": 42}
    assert "not reached" not in r.stdout


@pytest.mark.parametrize(
    ("code", "verdict", "error_type"),
    [
        ("a = 1\nb = a / 0", pb.VERDICT_ERROR, "ZeroDivisionError"),
        ("x = (", pb.VERDICT_SYNTAX_ERROR, None),
        ("import subprocess", pb.VERDICT_POLICY_DENIED, None),
        ("().__class__.__bases__", pb.VERDICT_POLICY_DENIED, None),
    ],
)
def test_failure_verdicts_keep_the_session(stub, sid, code, verdict, error_type):
    r = execute(stub, sid, code).result
    assert r.verdict == verdict, r
    assert not r.session_lost
    if error_type:
        assert r.error.type == error_type and r.error.line == 2
    assert json.loads(execute(stub, sid, "1 + 1").result.value.json) == 2


def test_soft_timeout_keeps_state(stub):
    session_id = open_session(stub, limits={"wall_time_ms": 500})
    try:
        execute(stub, session_id, "kept = 'yes'")
        r = execute(stub, session_id, "while True:\n    pass").result
        assert r.verdict == pb.VERDICT_TIMEOUT and not r.session_lost
        assert json.loads(execute(stub, session_id, "kept").result.value.json) == "yes"
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_hard_timeout_kills_the_container(stub, daemon, docker_client):
    # 3 s: room for the exec below to land before the runner's own soft timeout fires.
    session_id = open_session(stub, limits={"wall_time_ms": 3000})
    session = daemon.daemon.sessions.get(session_id, "anonymous")
    container = docker_client.containers.get(session.sandbox.container_id)

    def freeze(response: pb.ExecuteResponse) -> None:
        if response.HasField("output"):
            # SIGSTOP every process: the runner can no longer answer, not even its soft
            # timeout. (Not `docker pause`: the daemon sees that event and declares the
            # container lost at once, see test_robustness.py.)
            container.exec_run(["python3", "-c", "import os, signal; os.kill(-1, signal.SIGSTOP)"])

    r = execute(stub, session_id, "print('go')\nwhile True:\n    pass", on_response=freeze).result
    assert r.verdict == pb.VERDICT_TIMEOUT and r.session_lost
    assert "killed" in r.error.message
    with pytest.raises(grpc.RpcError) as err:
        execute(stub, session_id, "1")
    # The owner learns the container is gone and how to continue (issue #11).
    assert err.value.code() == grpc.StatusCode.ABORTED
    assert "recover()" in err.value.details()
    stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_memory_limit(stub, sid):
    r = execute(stub, sid, "blob = 'x' * (2 * 1024 ** 3)").result
    assert r.verdict == pb.VERDICT_MEMORY_LIMIT, r


def test_output_truncation(stub):
    session_id = open_session(stub, limits={"output_bytes": 1000})
    try:
        r = execute(stub, session_id, "print('y' * 5000)\n'end'").result
        assert r.verdict == pb.VERDICT_OUTPUT_TRUNCATED and r.truncated
        assert len(r.stdout.encode()) <= 1000
        assert json.loads(r.value.json) == "end"
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_second_concurrent_execute_is_refused(stub):
    session_id = open_session(stub, tools=[tool("hold")])
    release = threading.Event()
    entered = threading.Event()

    def hold() -> str:
        entered.set()
        release.wait(30)
        return "held"

    t, box = in_thread(lambda: execute(stub, session_id, "hold()", tools={"hold": hold}))
    try:
        assert entered.wait(30)
        with pytest.raises(grpc.RpcError) as err:
            execute(stub, session_id, "1")
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "one snippet at a time" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            stub.GetVariables(pb.GetVariablesRequest(session_id=session_id))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        release.set()
        t.join(30)
    assert json.loads(box["value"].result.value.json) == "held"
    stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_sessions_run_in_parallel(stub):
    """A's snippet waits (inside a tool) until B's snippet has finished: they overlap."""
    a = open_session(stub, tools=[tool("wait_for_b")])
    b = open_session(stub)
    b_done = threading.Event()

    def wait_for_b() -> bool:
        return b_done.wait(30)

    t, box = in_thread(lambda: execute(stub, a, "wait_for_b()", tools={"wait_for_b": wait_for_b}))
    try:
        assert json.loads(execute(stub, b, "'b ran'").result.value.json) == "b ran"
        b_done.set()
        t.join(30)
        assert json.loads(box["value"].result.value.json) is True
    finally:
        b_done.set()
        for s in (a, b):
            stub.CloseSession(pb.CloseSessionRequest(session_id=s))


def test_limits_above_maximum_name_field_and_maximum(stub, daemon):
    maximum = daemon.config.max_limits.wall_time_ms
    with pytest.raises(grpc.RpcError) as err:
        open_session(stub, limits={"wall_time_ms": maximum + 1})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "wall_time_ms" in err.value.details() and str(maximum) in err.value.details()


def test_code_size_cap(stub, sid, daemon):
    cap = daemon.config.max_limits.code_bytes
    with pytest.raises(grpc.RpcError) as err:
        execute(stub, sid, "#" * (cap + 1))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_code_bytes" in err.value.details()
