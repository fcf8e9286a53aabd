"""executor/daemon/lifecycle.py and the lost-session registry, with no Docker."""

from __future__ import annotations

import pytest

from executor.daemon import lifecycle
from executor.daemon.errors import (
    CheckpointNotFound,
    InvalidArgument,
    SessionNeedsRecovery,
    SessionNotFound,
)
from executor.daemon.sessions import Session, SessionRegistry
from proto.limits import SessionLimits


def test_history_is_bounded_and_stops_whole():
    h = lifecycle.History(max_bytes=100, max_entries=3)
    h.append(lifecycle.execute_entry("x = 1", [], "OK", ""))
    h.append(lifecycle.upload_entry("f", b"x" * 200))  # does not fit: recording stops
    h.append(lifecycle.execute_entry("y = 2", [], "OK", ""))
    assert len(h) == 1 and not h.complete  # never a history with a hole in it
    snap = h.snapshot()
    assert not snap.complete


def test_snapshots_share_entries_and_find_the_line_after_rollbacks():
    h = lifecycle.History()
    a = lifecycle.execute_entry("a = 1", [], "OK", "")
    h.append(a)
    cp1 = lifecycle.Checkpoint("cp_1", "r1", 1, h.snapshot())
    h.append(lifecycle.execute_entry("b = 1", [], "OK", ""))
    cp2 = lifecycle.Checkpoint("cp_2", "r2", 2, h.snapshot())
    cps = {cp.id: cp for cp in (cp1, cp2)}
    assert lifecycle.latest_on_line(cps, h) is cp2
    h.restore(cp1.snapshot)  # rollback to cp1, then a different branch
    h.append(lifecycle.execute_entry("c = 1", [], "OK", ""))
    assert lifecycle.latest_on_line(cps, h) is cp1  # cp2 is on another branch
    assert h.entries[0] is a


def test_checkpoint_ids_are_checked_and_scoped():
    cps = {"cp_a": lifecycle.Checkpoint("cp_a", "r", 0, lifecycle.Snapshot((), True))}
    assert lifecycle.find_checkpoint(cps, "cp_a").runner_id == "r"
    with pytest.raises(CheckpointNotFound):
        lifecycle.find_checkpoint(cps, "cp_b")
    for bad in ("", "x" * 65):
        with pytest.raises(InvalidArgument):
            lifecycle.find_checkpoint(cps, bad)
    assert lifecycle.new_checkpoint_id() != lifecycle.new_checkpoint_id()


def test_runner_checkpoint_ids_are_hostile_input():
    from executor.daemon.errors import SandboxCallFailed

    for answer in ({}, {"checkpoint_id": 5}, {"checkpoint_id": ""}, {"checkpoint_id": "x" * 129}):
        with pytest.raises(SandboxCallFailed):
            lifecycle.runner_checkpoint_id(answer)


def test_deeply_nested_tool_arguments_are_refused_not_fatal():
    deep: list = []
    for _ in range(150):
        deep = [deep]
    from executor.sandbox import events
    from executor.sandbox.errors import FrameSchemaError

    frame = {"type": "tool_call", "id": "q1", "call_id": "q1.1", "name": "f", "args": [deep]}
    call = events.tool_call(frame)
    assert call.refusal is not None and call.refusal["ok"] is False
    assert "nested at most 100 levels" in call.refusal["error"]["message"]
    assert call.args == [] and call.kwargs == {}
    assert events.tool_call({**frame, "args": [[1]]}).refusal is None
    with pytest.raises(FrameSchemaError):  # a broken frame, not the snippet's mistake: fatal
        events.tool_call({**frame, "call_id": 3})


def test_size_text_and_oversized_tool_result():
    assert lifecycle.mib(40 * (1 << 20) + 20) == "40.0 MiB" and lifecycle.mib(8 << 20) == "8 MiB"
    body = lifecycle.oversized_tool_result("fetch", 40 << 20, 8 << 20)
    assert body["error"]["type"] == "ToolError"
    assert body["error"]["message"].startswith("the result of 'fetch' is 40 MiB; the cap is 8 MiB")


def _session(sid: str, owner: str = "alice") -> Session:
    return Session(id=sid, owner=owner, sandbox=None, limits=SessionLimits(idle_timeout_s=60))


def test_lost_sessions_tell_only_their_owner_and_are_bounded():
    reg = SessionRegistry()
    s = _session("s1")
    reg.add(s)
    reg.pop("s1")
    reg.mark_lost(s, "killed")
    with pytest.raises(SessionNeedsRecovery):
        reg.get("s1", "alice")
    with pytest.raises(SessionNotFound):
        reg.get("s1", "mallory")
    with pytest.raises(SessionNotFound):
        reg.get_lost("s1", "mallory")
    assert reg.get_lost("s1", "alice") is s
    for i in range(lifecycle.MAX_LOST_SESSIONS + 10):
        reg.mark_lost(_session(f"x{i}"), "killed")
    assert reg.lost_count() == lifecycle.MAX_LOST_SESSIONS
    assert reg.expired(now=s.last_used + 61) == [] and reg.lost_count() == 0  # idle: forgotten
