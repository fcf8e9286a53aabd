"""Errors mapping, sessions registry, limits resolution, frame conversion, metrics text."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from executor.daemon import convert
from executor.daemon.errors import (
    DaemonError,
    LimitTooHigh,
    PoolExhausted,
    SessionBusy,
    SessionLost,
    SessionNotFound,
    TooLarge,
    Unauthenticated,
    grpc_status,
)
from executor.daemon.metrics import Counter, DaemonMetrics, Histogram
from executor.daemon.service import _workspace_path
from executor.daemon.sessions import Session, SessionRegistry, new_session_id, resolve_limits
from executor.sandbox import events
from proto import executor_pb2 as pb
from proto.limits import SessionLimits
from proto.results import Result, Verdict


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (LimitTooHigh("wall_time_ms", 5, 1), grpc.StatusCode.INVALID_ARGUMENT),
        (TooLarge("the code", 9, 1, "max_code_bytes"), grpc.StatusCode.INVALID_ARGUMENT),
        (Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED),
        (SessionNotFound("abc"), grpc.StatusCode.NOT_FOUND),
        (SessionBusy(), grpc.StatusCode.FAILED_PRECONDITION),
        (SessionLost("gone"), grpc.StatusCode.ABORTED),
        (PoolExhausted("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (DaemonError("x"), grpc.StatusCode.INTERNAL),
        (RuntimeError("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_one_status_per_error(exc, code):
    assert grpc_status(exc) is code


def test_limits_resolution():
    defaults, maxima = SessionLimits(), SessionLimits(wall_time_ms=20_000)
    got = resolve_limits({"wall_time_ms": 0, "pids": 10}, defaults, maxima)
    assert got.wall_time_ms == defaults.wall_time_ms and got.pids == 10
    with pytest.raises(LimitTooHigh) as err:
        resolve_limits({"wall_time_ms": 20_001}, defaults, maxima)
    assert "limits.wall_time_ms=20001 exceeds the server's maximum of 20000" in str(err.value)


def test_session_ids_are_unguessable_and_owned():
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) >= 22 for i in ids)

    async def scenario() -> None:
        reg = SessionRegistry()
        s = Session(id=new_session_id(), owner="alice", sandbox=None, limits=SessionLimits())
        reg.add(s)
        assert reg.get(s.id, "alice") is s
        with pytest.raises(SessionNotFound):
            reg.get(s.id, "bob")
        async with s.claim():
            with pytest.raises(SessionBusy):
                s.claim()

    asyncio.run(scenario())


def test_expiry_idle_and_lifetime():
    async def scenario() -> None:
        s = Session(
            id="x",
            owner="a",
            sandbox=None,
            limits=SessionLimits(idle_timeout_s=5, lifetime_s=60),
        )
        t = s.created
        assert s.expiry(t + 1) is None
        assert s.expiry(t + 6) == "idle"
        async with s.claim():
            assert s.expiry(t + 6) is None  # running is not idle
            assert s.expiry(t + 61) == "lifetime"

    asyncio.run(scenario())


def test_workspace_paths():
    assert _workspace_path("a/b.txt") == "a/b.txt"
    assert _workspace_path("./a//b") == "a/b"
    for bad in ("", "/etc/passwd", "../x", "a/../../x", "a/../b", "x\x00y", "."):
        with pytest.raises(DaemonError):
            _workspace_path(bad)


def test_result_frame_conversion():
    frame = {
        "id": "d1",
        "type": "result",
        "verdict": "ERROR",
        "stdout": "hi\n",
        "value": None,
        "is_final_answer": False,
        "final_answer": None,
        "error": {
            "type": "ZeroDivisionError",
            "message": "division by zero",
            "line": 2,
            "source_line": "1/0",
        },
        "state": [{"name": "x", "type": "int", "repr": "1", "json": 1, "has_json": True}],
        "truncated": False,
        "usage": {"wall_ms": 3, "cpu_ms": 2, "peak_memory_bytes": 100, "output_bytes": 3},
    }
    r = convert.execute_result(events.result(frame, output_cap=1 << 20))
    assert r.verdict == pb.VERDICT_ERROR and r.error.line == 2 and r.state[0].json == "1"
    assert r.usage.peak_memory_bytes == 100 and not r.session_lost
    assert not r.HasField("value")


def test_every_verdict_maps_to_the_proto() -> None:
    # Hostile result frames are refused by the channel core (tests/unit/test_channel_protocol.py);
    # convert only maps, so every verdict the core accepts must exist in corral.v1.Verdict.
    for verdict in Verdict:
        done = events.ExecuteResult(id="x", result=Result(verdict=verdict), usage=events.Usage())
        assert pb.Verdict.Name(convert.execute_result(done).verdict) == f"VERDICT_{verdict.value}"


def test_metrics_text_format():
    m = DaemonMetrics()
    m.verdicts.inc(verdict="OK")
    m.verdicts.inc(verdict="OK")
    m.open_latency.observe(0.003)
    m.add_gauge("corral_pool_warm", "Warm.", lambda: 2)
    text = m.registry.render()
    assert 'corral_verdicts_total{verdict="OK"} 2' in text
    assert 'corral_session_open_seconds_bucket{le="0.005"} 1' in text
    assert 'corral_session_open_seconds_bucket{le="0.0025"} 0' in text
    assert "corral_session_open_seconds_count 1" in text
    assert "# TYPE corral_pool_warm gauge\ncorral_pool_warm 2" in text
    c = Counter("c", "h", ("l",))
    c.inc(l='a"b\n')
    assert 'c{l="a\\"b\\n"} 1' in "\n".join(c.render())
    h = Histogram("h", "h", buckets=(1.0,))
    h.observe(5)
    assert 'h_bucket{le="+Inf"} 1' in "\n".join(h.render())


def test_log_formatters_carry_context():
    import json as _json
    import logging

    from executor.daemon.logs import JsonFormatter, KeyValueFormatter

    record = logging.makeLogRecord(
        {"name": "corral.daemon", "levelname": "INFO", "msg": "session opened"}
    )
    record.session_id = "abc123"
    record.output = "x" * 1000
    kv = KeyValueFormatter().format(record)
    assert 'msg="session opened"' in kv and 'session_id="abc123"' in kv
    assert len(kv) < 600  # long values are truncated
    doc = _json.loads(JsonFormatter().format(record))
    assert doc["msg"] == "session opened" and doc["session_id"] == "abc123"
