"""The unary Run RPC: the Execute snippet path in one message each way, for sessions without tools."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from agent.aio import AsyncClient
from agent.client import Client
from proto import executor_pb2 as pb
from tests.daemon.helpers import open_session, tool


def test_run_returns_the_result_with_output_value_and_state(stub):
    sid = open_session(stub)
    r = stub.Run(pb.ExecuteStart(session_id=sid, code="x = 41\nprint('hi')\nx + 1"), timeout=60)
    assert r.verdict == pb.VERDICT_OK
    assert r.stdout == "hi\n"
    assert r.value.repr == "42"
    # The state persists between Run and Execute alike.
    r2 = stub.Run(pb.ExecuteStart(session_id=sid, code="x"), timeout=60)
    assert r2.value.repr == "41"
    stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


def test_run_reports_snippet_errors_as_verdicts(stub):
    sid = open_session(stub)
    r = stub.Run(pb.ExecuteStart(session_id=sid, code="1/0"), timeout=60)
    assert r.verdict == pb.VERDICT_ERROR and r.error.type == "ZeroDivisionError"
    r = stub.Run(pb.ExecuteStart(session_id=sid, code="def ("), timeout=60)
    assert r.verdict == pb.VERDICT_SYNTAX_ERROR
    stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


def test_run_refuses_a_session_with_tools_and_names_execute(stub):
    sid = open_session(stub, tools=[tool("lookup")])
    with pytest.raises(grpc.RpcError) as err:
        stub.Run(pb.ExecuteStart(session_id=sid, code="1"), timeout=60)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "Execute" in err.value.details()
    stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


def test_run_on_an_unknown_session_is_not_found(stub):
    with pytest.raises(grpc.RpcError) as err:
        stub.Run(pb.ExecuteStart(session_id="nope", code="1"), timeout=60)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_run_checks_the_code_size(stub, daemon):
    sid = open_session(stub)
    big = "#" * (daemon.config.max_limits.code_bytes + 1)
    with pytest.raises(grpc.RpcError) as err:
        stub.Run(pb.ExecuteStart(session_id=sid, code=big), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


def test_a_cancelled_run_interrupts_the_snippet_and_keeps_the_session(stub):
    sid = open_session(stub)
    stub.Run(pb.ExecuteStart(session_id=sid, code="y = 7"), timeout=60)
    fut = stub.Run.future(pb.ExecuteStart(session_id=sid, code="while True: pass"), timeout=60)
    with pytest.raises(grpc.FutureTimeoutError):
        fut.result(timeout=1.0)  # still running
    fut.cancel()
    # The same path as a cancelled Execute: the session is never forgotten; it
    # continues with its state, or (a runner that did not stop) reports the loss.
    deadline = time.monotonic() + 30
    while True:  # the interrupt (or the kill after its grace) may take a moment on a busy host
        try:
            r = stub.Run(pb.ExecuteStart(session_id=sid, code="y"), timeout=60)
            break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.details()
            assert time.monotonic() < deadline, "the session stayed busy after the cancel"
            time.sleep(0.2)
    if r.verdict == pb.VERDICT_OK:
        assert r.value.repr == "7"
    else:
        assert r.verdict == pb.VERDICT_SANDBOX_LOST and r.session_lost
    stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


# What a client timeout leaves: the interrupted session, or (a runner that did not
# stop within the grace) a lost one; the same as through Execute.
STOPPED = ("INTERRUPTED", "SANDBOX_LOST")


def test_the_clients_use_run_without_tools_and_it_honours_timeout(daemon):
    with Client(daemon.target) as client, client.session() as s:
        assert s.run("print('a')\n2").stdout == "a\n"
        assert client._unary_run
        r = s.run("while True: pass", timeout=1.0)
        assert r.verdict in STOPPED
        assert s.lost == (r.verdict == "SANDBOX_LOST")

    async def main() -> None:
        async with AsyncClient(daemon.target) as client, client.session() as s:
            assert (await s.run("print('b')")).stdout == "b\n"
            assert client._unary_run
            r = await s.run("while True: pass", timeout=1.0)
            assert r.verdict in STOPPED

    asyncio.run(main())
