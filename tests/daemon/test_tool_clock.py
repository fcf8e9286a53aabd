"""One clock for a snippet, end to end: the daemon's hard deadline pauses while a tool
call is out, as the runner's soft timer does, up to the session's tool-time budget."""

from __future__ import annotations

import json
import time

import pytest

from proto import executor_pb2 as pb
from tests.daemon.helpers import execute, open_session, tool

pytestmark = pytest.mark.docker


def test_tool_call_storm_is_not_charged_to_the_wall_clock(stub):
    # wall_time_ms + the shared daemon's grace (1500 ms) is 2.5 s of hard deadline; the
    # storm takes far longer on the wall, nearly all of it with a tool call out. The
    # runner's own timer decides: the snippet ends OK, or (on a loaded machine, where
    # the runner's own share of 12,000 calls passes 1 s) in its soft TIMEOUT with the
    # session and its state kept. The hard deadline must never fire first.
    session_id = open_session(stub, tools=[tool("tick")], limits={"wall_time_ms": 1000})
    try:
        code = "n = 0\nfor i in range(12_000):\n    n += tick()\nn"
        r = execute(stub, session_id, code, tools={"tick": lambda: 1}).result
        assert not r.session_lost, r.error.message
        assert r.verdict in (pb.VERDICT_OK, pb.VERDICT_TIMEOUT), r.error.message
        kept = json.loads(execute(stub, session_id, "n").result.value.json)
        assert kept == 12_000 if r.verdict == pb.VERDICT_OK else 0 < kept < 12_000
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_tool_time_budget_ends_the_snippet(stub):
    session_id = open_session(
        stub,
        tools=[tool("slow")],
        limits={"wall_time_ms": 1000, "tool_timeout_ms": 5000, "tool_time_budget_ms": 1000},
    )

    def slow() -> str:
        time.sleep(0.6)
        return "late"

    try:
        r = execute(stub, session_id, "for i in range(5):\n    slow()\n", tools={"slow": slow})
        assert r.result.verdict == pb.VERDICT_TIMEOUT
        assert r.result.session_lost
        assert "tool_time_budget_ms" in r.result.error.message
        assert r.kinds.count("tool_call") == 2  # the budget ran out with the second answer
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_tool_time_budget_is_a_limit(stub):
    opened = stub.OpenSession(pb.OpenSessionRequest(limits=pb.Limits(tool_time_budget_ms=1234)))
    try:
        assert opened.limits.tool_time_budget_ms == 1234
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=opened.session_id))
