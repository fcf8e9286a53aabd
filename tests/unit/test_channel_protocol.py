"""The container channel's protocol core, fed hostile byte strings without Docker.

Every attack of tests/container/test_hostile.py appears here as bytes: what a
compromised runner could write to its stdout, wrapped in the engine's
multiplexed stream. The same class runs inside the blocking driver, the
daemon's asyncio channel and the seccomp tool, so these hold for all three.
"""

from __future__ import annotations

import json
import math
import socket
import struct
from typing import Any

import pytest

from executor.sandbox import events
from executor.sandbox.errors import (
    FrameSchemaError,
    SandboxError,
    SandboxGone,
    SandboxProtocolError,
    SandboxRequestError,
    SandboxTimeout,
)
from executor.sandbox.protocol import (
    OUTPUT_SLACK,
    STDERR_TAIL_BYTES,
    TOOL_TRANSIT_CREDIT_S,
    ChannelProtocol,
    StreamDemux,
)
from executor.sandbox.seccomp_tool import _read_multiplexed
from proto.frames import DEFAULT_MAX_FRAME, FrameDecoder, decode_body
from proto.limits import SessionLimits

READY = {"type": "ready", "pid": 7, "python": "3.11.2", "interpreter": True}
USAGE = {"wall_ms": 1, "cpu_ms": 1, "peak_memory_bytes": 1, "output_bytes": 0}


def result(rid: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "result",
        "id": rid,
        "verdict": "OK",
        "stdout": "",
        "value": None,
        "is_final_answer": False,
        "final_answer": None,
        "error": None,
        "state": [],
        "truncated": False,
        "usage": USAGE,
        **fields,
    }


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def mux(payload: bytes, stream: int = 1) -> bytes:
    """`payload` as one chunk of Docker's multiplexed stream."""
    return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(payload)) + payload


def raw_frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def frame(obj: dict[str, Any]) -> bytes:
    return mux(raw_frame(json.dumps(obj).encode()))


def sent(data: bytes) -> dict[str, Any]:
    """The frame the core wants written (no multiplexing on stdin)."""
    (size,) = struct.unpack(">I", data[:4])
    assert len(data) == 4 + size
    return decode_body(data[4:])


def drain(proto: ChannelProtocol) -> list[events.Event]:
    out = []
    while (ev := proto.next_event()) is not None:
        out.append(ev)
    return out


def ready_channel(clock: Clock | None = None, **kw: Any) -> ChannelProtocol:
    proto = ChannelProtocol(clock=clock or Clock(), **kw)
    proto.receive_data(frame(READY))
    assert isinstance(proto.next_event(), events.Ready)
    return proto


def executing(
    clock: Clock | None = None, timeout: float = 10.0, **kw: Any
) -> tuple[ChannelProtocol, str]:
    proto = ready_channel(clock)
    out = sent(proto.execute("1", timeout=timeout, **kw))
    assert out["type"] == "execute" and out["code"] == "1"
    return proto, out["id"]


def assert_broken(proto: ChannelProtocol, kind: type[SandboxError]) -> None:
    """The channel refuses everything with the first error, forever."""
    with pytest.raises(kind):
        proto.next_event()
    with pytest.raises(kind):
        proto.request({"type": "ping"}, 1)
    with pytest.raises(kind):
        proto.receive_data(frame({"type": "pong", "id": "q1"}))


# -- the multiplexed stream ------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"this is ",  # text where a header belongs
        bytes([0, 0, 0, 0, 0, 0, 0, 1]),  # stdin stream
        bytes([3, 0, 0, 0, 0, 0, 0, 1]),  # no such stream
        bytes([1, 0, 1, 0, 0, 0, 0, 1]),  # the zero bytes are not zero
    ],
)
def test_garbage_header_breaks_the_channel(header: bytes) -> None:
    proto = ChannelProtocol()
    with pytest.raises(SandboxProtocolError, match="multiplexed"):
        proto.receive_data(header + b"x")
    assert_broken(proto, SandboxProtocolError)


def test_zero_length_chunks_are_skipped() -> None:
    proto = ChannelProtocol()
    proto.receive_data(mux(b"") * 3 + mux(b"", 2) + frame(READY))
    assert drain(proto) == [events.Ready(pid=7, python="3.11.2", interpreter=True)]


def test_demux_keeps_no_payload() -> None:
    demux = StreamDemux()
    pieces = list(demux.feed(mux(b"a" * 100_000) + mux(b"e", 2) + mux(b"bc")[:10]))
    assert [(s, bytes(p)) for s, p in pieces] == [(1, b"a" * 100_000), (2, b"e"), (1, b"bc"[:2])]


def test_stderr_flood_keeps_a_bounded_tail() -> None:
    proto = ready_channel()
    chunk = mux(b"e" * (1 << 20), 2)
    for _ in range(32):
        proto.receive_data(chunk)
    proto.receive_data(mux(b"the end", 2))
    assert len(proto.stderr_tail) == STDERR_TAIL_BYTES
    assert proto.stderr_tail.endswith("the end")
    assert proto.next_event() is None  # stderr is no frame


def test_end_of_stream_is_gone_with_the_stderr_tail() -> None:
    proto = ChannelProtocol()
    proto.receive_data(mux(b"bye from the fake runner", 2))
    with pytest.raises(SandboxGone, match="bye from the fake runner"):
        proto.receive_data(b"")
    assert_broken(proto, SandboxGone)


# -- frames ------------------------------------------------------------------------


def test_oversized_length_fails_before_the_body() -> None:
    proto = ChannelProtocol(max_frame=1 << 20)
    with pytest.raises(SandboxProtocolError, match="exceeds"):
        proto.receive_data(mux(struct.pack(">I", 0x7FFFFFFF)))  # the header alone
    assert_broken(proto, SandboxProtocolError)


def test_a_frame_just_under_the_cap_is_buffered_then_decoded() -> None:
    proto = ChannelProtocol(max_frame=1000)
    body = json.dumps({**READY, "python": "p" * 200}).encode()
    data = mux(raw_frame(body))
    for i in range(len(data)):
        proto.receive_data(data[i : i + 1])
    assert [ev.python for ev in drain(proto) if isinstance(ev, events.Ready)] == ["p" * 200]


def test_decoder_memory_stays_below_one_frame() -> None:
    decoder = FrameDecoder(1000)
    with pytest.raises(Exception, match="exceeds"):
        decoder.feed(struct.pack(">I", 1001) + b"x" * 10)
    assert decoder.pending <= 14


@pytest.mark.parametrize(
    "body",
    [
        b"",  # zero-length frame
        b"hello",
        b"\xff\xfe not utf-8",
        b"[1, 2]",  # not an object
        b'{"no_type": 1}',
        b'{"type": 5}',
        b'{"type": "ready", "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
    ],
)
def test_bad_frame_bodies(body: bytes) -> None:
    proto = ChannelProtocol()
    with pytest.raises(SandboxProtocolError):
        proto.receive_data(mux(raw_frame(body)))
    assert_broken(proto, SandboxProtocolError)


def test_garbage_instead_of_frames() -> None:
    proto = ChannelProtocol()
    with pytest.raises(SandboxProtocolError):
        proto.receive_data(mux(b"this is not a frame at all " * 40))


# -- ready -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "match"),
    [
        ({"type": "pong", "id": "x"}, "ready frame first"),
        ({"type": "ready", "pid": "one", "python": 3}, "pid"),
        ({"type": "ready", "pid": 0, "python": "3", "interpreter": True}, "pid"),
        ({"type": "ready", "pid": 5, "python": "3", "interpreter": "yes"}, "interpreter"),
    ],
)
def test_bad_first_frame(first: dict[str, Any], match: str) -> None:
    proto = ChannelProtocol()
    with pytest.raises(SandboxProtocolError, match=match):
        proto.receive_data(frame(first))


@pytest.mark.parametrize("raw", [True, False])
def test_runner_mode_must_match(raw: bool) -> None:
    proto = ChannelProtocol(expect_interpreter=not raw)
    with pytest.raises(SandboxProtocolError, match="not what was asked"):
        proto.receive_data(frame({**READY, "interpreter": raw}))


def test_nothing_before_ready_times_out() -> None:
    clock = Clock()
    proto = ChannelProtocol(clock=clock)
    proto.expect_ready(2.0)
    clock.now += 2.5
    assert proto.time_left() < 0
    assert "no ready frame" in str(proto.timed_out())
    assert_broken(proto, SandboxTimeout)


# -- requests ----------------------------------------------------------------------


def test_request_ids_and_typed_answers() -> None:
    proto = ready_channel()
    first = sent(proto.request({"type": "get_vars", "names": []}, 5))
    state = [{"name": "x", "type": "int", "repr": "1", "json": 1, "has_json": True}]
    proto.receive_data(frame({"type": "vars", "id": first["id"], "state": state}))
    answer = proto.next_event()
    assert answer == events.Vars(
        id=first["id"],
        state=(events.Variable(name="x", type="int", repr="1", json=1, has_json=True),),
    )
    second = sent(proto.request({"type": "read_file", "path": "a"}, 5))
    assert second["id"] != first["id"]
    proto.receive_data(frame({"type": "file", "id": second["id"], "data_b64": "cGF5bG9hZA=="}))
    assert proto.next_event() == events.File(id=second["id"], data=b"payload")


def test_error_answer_leaves_the_channel_usable() -> None:
    proto = ready_channel()
    rid = sent(proto.request({"type": "set_vars", "variables": {"_x": 1}}, 5))["id"]
    proto.receive_data(frame({"type": "error", "id": rid, "message": "bad name _x"}))
    with pytest.raises(SandboxRequestError, match="bad name"):
        proto.next_event()
    rid = sent(proto.request({"type": "ping"}, 5))["id"]
    proto.receive_data(frame({"type": "pong", "id": rid}))
    assert proto.next_event() == events.Pong(id=rid)


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ({"type": "pong", "id": "someone-else"}, "expected the answer to request"),
        ({"type": "ack", "id": None}, "expected the answer to request"),
        ({"type": "error", "message": "no id"}, "expected the answer to request"),
        ({"type": "ack", "id": "q1"}, "expected a 'pong'"),
        ({"type": "result", "id": "q1"}, "expected a 'pong'"),
        ({"type": "tool_call", "id": "q1"}, "expected a 'pong'"),
    ],
)
def test_wrong_answers_break_the_channel(answer: dict[str, Any], match: str) -> None:
    proto = ready_channel()
    assert sent(proto.request({"type": "ping"}, 5))["id"] == "q1"
    with pytest.raises(SandboxProtocolError, match=match):
        proto.receive_data(frame(answer))
    assert_broken(proto, SandboxProtocolError)


def test_unsolicited_frames_are_violations() -> None:
    proto = ready_channel()
    with pytest.raises(SandboxProtocolError, match="no request in flight"):
        proto.receive_data(frame({"type": "pong", "id": "q1"}))


def test_two_answers_in_one_read_are_a_violation() -> None:
    proto = ready_channel()
    rid = sent(proto.request({"type": "ping"}, 5))["id"]
    with pytest.raises(SandboxProtocolError, match="no request in flight"):
        proto.receive_data(frame({"type": "pong", "id": rid}) * 2)


def test_one_request_at_a_time_is_the_callers_error_not_the_runners() -> None:
    proto = ready_channel()
    proto.request({"type": "ping"}, 5)
    with pytest.raises(SandboxError, match="ping is in flight"):
        proto.request({"type": "ping"}, 5)
    with pytest.raises(SandboxError, match="in flight"):
        proto.execute("1", timeout=5)
    assert proto.broken is None


def test_request_timeout() -> None:
    clock = Clock()
    proto = ready_channel(clock)
    proto.request({"type": "get_vars", "names": []}, 10)
    clock.now += 9
    assert proto.time_left() == pytest.approx(1)
    clock.now += 2
    assert "no answer to get_vars from the sandbox within 10 s" in str(proto.timed_out())
    assert_broken(proto, SandboxTimeout)


def test_init_sets_the_output_cap() -> None:
    proto = ready_channel()
    rid = sent(proto.request({"type": "init", "limits": {"output_bytes": 100}}, 5))["id"]
    assert proto.output_cap == SessionLimits().output_bytes  # only once acknowledged
    proto.receive_data(frame({"type": "ack", "id": rid}))
    assert proto.next_event() == events.Ack(id=rid)
    assert proto.output_cap == 100


def test_outgoing_frames_are_size_checked() -> None:
    proto = ready_channel()
    proto.max_frame = 100
    with pytest.raises(SandboxError, match="too large"):
        proto.request({"type": "set_vars", "variables": {"x": "y" * 200}}, 5)
    assert proto.broken is None and not proto.busy


@pytest.mark.parametrize(
    ("kind", "answer", "expected"),
    [
        (
            "checkpoint",
            {"type": "checkpoint", "checkpoint_id": "c1", "checkpoints": 2},
            events.Checkpoint(id="q1", checkpoint_id="c1", checkpoints=2),
        ),
        ("rollback", {"type": "ack"}, events.Ack(id="q1")),
        ("drop_checkpoint", {"type": "ack"}, events.Ack(id="q1")),
        (
            "list_checkpoints",
            {"type": "checkpoints", "checkpoints": [{"checkpoint_id": "c1", "created_ms": 5}]},
            events.Checkpoints(id="q1", items=(events.CheckpointInfo("c1", 5),)),
        ),
    ],
)
def test_checkpoint_answers_are_typed(kind: str, answer: dict[str, Any], expected: Any) -> None:
    proto = ready_channel()
    proto.request({"type": kind, "checkpoint_id": "c1"}, 5)
    proto.receive_data(frame({**answer, "id": "q1"}))
    assert proto.next_event() == expected


@pytest.mark.parametrize(
    "answer",
    [
        {"type": "checkpoint", "id": "q1", "checkpoint_id": 5, "checkpoints": 1},
        {"type": "checkpoint", "id": "q1", "checkpoint_id": "c", "checkpoints": -1},
        {"type": "checkpoints", "id": "q1", "checkpoints": {"c": 1}},
        {"type": "checkpoints", "id": "q1", "checkpoints": [{"checkpoint_id": "c"}]},
        {"type": "vars", "id": "q1", "state": {"x": 1}},
        {"type": "vars", "id": "q1", "state": [{"name": "x"}]},
        {"type": "vars", "id": "q1", "state": [{}] * 10_001},
        {"type": "file", "id": "q1", "data_b64": "not base64!"},
        {"type": "file", "id": "q1"},
        {"type": "unknown", "id": "q1"},
    ],
)
def test_generic_request_answers_are_schema_checked(answer: dict[str, Any]) -> None:
    proto = ready_channel()
    proto.request({"type": "some_new_request"}, 5)  # any answer type is allowed...
    with pytest.raises(SandboxProtocolError):  # ...but each is checked
        proto.receive_data(frame(answer))


# -- execute -----------------------------------------------------------------------


def test_execute_conversation_split_at_every_byte() -> None:
    """Each phase of a conversation, cut in two at every byte boundary, gives the same events."""
    rid = "q1"
    value = {"type": "int", "repr": "2", "json": 2, "has_json": True}
    call = {"type": "tool_call", "id": rid, "call_id": "c1", "name": "t", "args": [1], "kwargs": {}}
    phases = [
        frame(READY),  # then the daemon sends execute
        frame({"type": "output", "id": rid, "data": "before\n"}) + frame(call),  # then tool_result
        frame({"type": "output", "id": rid, "data": "after\n"})
        + frame(result(rid, stdout="before\nafter\n", value=value)),
    ]
    for phase, data in enumerate(phases):
        for cut in range(len(data) + 1):
            proto = ChannelProtocol(clock=Clock())
            seen: list[events.Event] = []
            for i, whole in enumerate(phases):
                for piece in (whole[:cut], whole[cut:]) if i == phase else (whole,):
                    if piece:
                        proto.receive_data(piece)
                    seen += drain(proto)
                if i == 0:
                    assert sent(proto.execute("1", timeout=5))["id"] == rid
                elif i == 1:
                    reply = sent(proto.answer_tool_call("c1", {"ok": True, "value": 1}))
                    assert reply == {
                        "type": "tool_result",
                        "id": rid,
                        "call_id": "c1",
                        "ok": True,
                        "value": 1,
                    }
            kinds = [type(e).__name__ for e in seen]
            assert kinds == ["Ready", "Output", "ToolCall", "Output", "ExecuteResult"], (phase, cut)
            done = seen[-1]
            assert isinstance(done, events.ExecuteResult) and done.result.value is not None
            assert done.result.stdout == "before\nafter\n" and done.result.value.json == 2


def test_execute_conversation_byte_by_byte() -> None:
    proto, rid = executing()
    data = frame({"type": "output", "id": rid, "data": "é" * 50}) + frame(result(rid))
    for i in range(len(data)):
        proto.receive_data(data[i : i + 1])
    got = drain(proto)
    assert [type(e) for e in got] == [events.Output, events.ExecuteResult]
    assert not proto.busy


def test_output_flood_is_cut_off() -> None:
    proto, rid = executing()
    chunk = frame({"type": "output", "id": rid, "data": "x" * 65536})
    passed = 0
    with pytest.raises(SandboxProtocolError, match="output"):
        for _ in range(100):
            proto.receive_data(chunk)
            passed += sum(len(e.data) for e in drain(proto) if isinstance(e, events.Output))
    assert passed <= SessionLimits().output_bytes + OUTPUT_SLACK
    assert_broken(proto, SandboxProtocolError)


def test_per_snippet_output_cap_is_lower_only() -> None:
    proto, rid = executing(limits={"output_bytes": 1000})
    with pytest.raises(SandboxProtocolError, match="more than 1000 bytes"):
        proto.receive_data(
            frame({"type": "output", "id": rid, "data": "x" * (1000 + OUTPUT_SLACK + 1)})
        )


@pytest.mark.parametrize(
    "patch",
    [
        {"verdict": "PWNED"},
        {"verdict": None},
        {"stdout": 5},
        {"state": {"x": 1}},
        {"state": [{"name": "x"}]},
        {"state": "x"},
        {"error": "boom"},
        {"error": {"type": "E", "message": "m", "line": -1}},
        {"usage": {**USAGE, "wall_ms": -1}},
        {"usage": {**USAGE, "cpu_ms": "1"}},
        {"usage": {**USAGE, "cpu_ms": True}},
        {"usage": None},
        {"value": {"type": 1, "repr": "x"}},
        {"value": [1]},
        {"truncated": "yes"},
        {"is_final_answer": "yes"},
        {"id": 5},
    ],
)
def test_result_with_wrong_fields(patch: dict[str, Any]) -> None:
    proto, rid = executing()
    with pytest.raises(SandboxProtocolError):
        proto.receive_data(frame({**result(rid), **patch}))
    assert_broken(proto, SandboxProtocolError)


def test_result_strings_are_capped_and_made_valid_utf8() -> None:
    proto, rid = executing(limits={"output_bytes": 1000})
    bad = {
        "type": "t" * 100_000,
        "repr": "r" * 1_000_000 + "\ud800",
        "json": "\udfff",
        "has_json": True,
    }
    proto.receive_data(
        frame(
            result(
                rid,
                stdout="o" * 3_000_000,
                value=bad,
                error={
                    "type": "E",
                    "message": "m" * 1_000_000,
                    "line": 1,
                    "source_line": "s" * 100_000,
                },
                state=[
                    {
                        "name": "n\ud800",
                        "type": "float",
                        "repr": "nan",
                        "json": math.nan,
                        "has_json": True,
                    }
                ],
            )
        )
    )
    done = proto.next_event()
    assert isinstance(done, events.ExecuteResult)
    r = done.result
    assert len(r.stdout) == 1000 and r.truncated is True
    assert r.value is not None and r.error is not None
    assert len(r.value.type) == events.MAX_NAME and len(r.value.repr) == events.MAX_REPR
    assert r.value.has_json is False and r.value.json is None  # a lone surrogate is no JSON
    assert len(r.error.message) == events.MAX_MESSAGE and r.error.source_line is not None
    assert len(r.error.source_line) == events.MAX_SOURCE_LINE
    assert r.state[0].name == "n?" and r.state[0].has_json is False  # NaN is no JSON
    for text in (r.stdout, r.value.repr, r.state[0].name):
        text.encode("utf-8")  # strict: protobuf can carry it


def test_stdout_is_cut_at_a_character_boundary() -> None:
    proto, rid = executing(limits={"output_bytes": 5})
    proto.receive_data(frame(result(rid, stdout="ééé")))
    done = proto.next_event()
    assert isinstance(done, events.ExecuteResult)
    assert done.result.stdout == "éé" and done.result.truncated


def test_frame_for_another_request_during_execute() -> None:
    proto, _ = executing()
    with pytest.raises(SandboxProtocolError, match="another request"):
        proto.receive_data(frame(result("someone-else")))


def test_execute_refused_by_the_runner_keeps_the_channel() -> None:
    proto, rid = executing()
    proto.receive_data(frame({"type": "error", "id": rid, "message": "init first"}))
    with pytest.raises(SandboxRequestError, match="init first"):
        proto.next_event()
    assert not proto.busy and proto.broken is None


@pytest.mark.parametrize(
    "call",
    [
        {"call_id": 7, "name": "t", "args": []},
        {"call_id": "c", "name": "t", "args": "x"},
        {"call_id": "c", "name": None},
        {"call_id": "c", "name": "t", "kwargs": []},
        {"call_id": "c", "name": "t", "args": [math.inf]},
        {"call_id": "c", "name": "t", "kwargs": {"k": "\ud800"}},
    ],
)
def test_tool_call_with_bad_schema(call: dict[str, Any]) -> None:
    proto, rid = executing()
    with pytest.raises(SandboxProtocolError):
        proto.receive_data(frame({"type": "tool_call", "id": rid, **call}))


def test_nothing_but_the_result_while_a_tool_call_is_out() -> None:
    proto, rid = executing()
    call = {"type": "tool_call", "id": rid, "call_id": "c1", "name": "t", "args": [], "kwargs": {}}
    proto.receive_data(frame(call))
    with pytest.raises(SandboxProtocolError, match="while a tool call is out"):
        proto.receive_data(frame({"type": "output", "id": rid, "data": "x"}))


def test_tool_call_storm_gets_every_answer_and_bounded_credit() -> None:
    clock = Clock()
    proto, rid = executing(clock, timeout=2.0)
    call = {"type": "tool_call", "id": rid, "name": "t", "args": [], "kwargs": {}}
    for i in range(12_000):
        proto.receive_data(frame({**call, "call_id": f"c{i}"}))
        ev = proto.next_event()
        assert isinstance(ev, events.ToolCall)
        clock.now += 0.001  # the client's answer takes a millisecond...
        reply = sent(proto.answer_tool_call(ev.call_id, {"ok": True, "value": i}))
        assert reply["call_id"] == f"c{i}" and reply["value"] == i
        clock.now += 0.0001  # ...and the snippet runs a little between calls
    # 1.2 s of snippet time: the hard deadline (2 s) has not passed.
    assert proto.time_left() == pytest.approx(2.0 - 1.2 + 12_000 * TOOL_TRANSIT_CREDIT_S)
    assert proto.tool_time_left == pytest.approx(
        SessionLimits().tool_time_budget_ms / 1000 - 12_000 * (0.001 + TOOL_TRANSIT_CREDIT_S)
    )


def test_deadline_pauses_while_a_tool_call_is_out() -> None:
    clock = Clock()
    proto, rid = executing(clock, timeout=5.0)
    clock.now += 3
    proto.receive_data(frame({"type": "tool_call", "id": rid, "call_id": "c", "name": "t"}))
    assert isinstance(proto.next_event(), events.ToolCall)
    clock.now += 100  # a slow client
    assert proto.time_left() == math.inf
    proto.answer_tool_call("c", {"ok": False, "error": {"type": "KeyError", "message": "k"}})
    assert proto.time_left() == pytest.approx(2 + TOOL_TRANSIT_CREDIT_S)
    clock.now += 2.5
    assert proto.time_left() < 0
    assert "no result from the sandbox within 5 s (tool time not counted)" in str(proto.timed_out())


def test_tool_time_budget() -> None:
    clock = Clock()
    proto, rid = executing(clock, tool_time_budget=10.0)
    call = {"type": "tool_call", "id": rid, "name": "t", "args": [], "kwargs": {}}
    proto.receive_data(frame({**call, "call_id": "a"}))
    proto.next_event()
    clock.now += 6
    proto.answer_tool_call("a", {"ok": True, "value": None})
    proto.receive_data(frame({**call, "call_id": "b"}))
    proto.next_event()
    clock.now += 6
    with pytest.raises(SandboxTimeout, match="tool_time_budget_ms"):
        proto.answer_tool_call("b", {"ok": True, "value": None})
    assert_broken(proto, SandboxTimeout)


def test_tool_result_too_large_becomes_an_error_answer() -> None:
    proto, rid = executing()
    proto.max_frame = 1000
    proto.receive_data(frame({"type": "tool_call", "id": rid, "call_id": "c", "name": "t"}))
    proto.next_event()
    reply = sent(proto.answer_tool_call("c", {"ok": True, "value": "v" * 5000}))
    assert reply["ok"] is False and reply["error"]["message"] == "the tool's result is too large"


def test_interrupt_targets_the_running_execute() -> None:
    proto = ready_channel()
    assert proto.interrupt() == b""  # nothing runs: nothing to send
    rid = sent(proto.execute("while True: pass", timeout=5))["id"]
    assert sent(proto.interrupt()) == {"type": "interrupt", "id": rid}
    proto.receive_data(frame(result(rid, verdict="TIMEOUT")))
    assert isinstance(proto.next_event(), events.ExecuteResult)
    assert proto.interrupt() == b""


def test_result_while_a_tool_call_is_out_ends_the_execute() -> None:
    """After an interrupt the runner may answer while the daemon still waits for a tool."""
    proto, rid = executing()
    proto.receive_data(frame({"type": "tool_call", "id": rid, "call_id": "c", "name": "t"}))
    proto.next_event()
    proto.interrupt()
    proto.receive_data(frame(result(rid)))
    assert isinstance(proto.next_event(), events.ExecuteResult)
    assert proto.answer_tool_call("c", {"ok": True}) == b""  # nothing left to answer
    assert not proto.busy


# -- the seccomp tool's raw runs read through the same demuxer ---------------------


def test_seccomp_tool_reads_the_stream_with_the_core_demuxer() -> None:
    a, b = socket.socketpair()
    try:
        a.sendall(mux(b"out1 ") + mux(b"err", 2) + mux(b"") + mux(b"out2"))
        a.close()
        assert _read_multiplexed(b, 1 << 20) == (b"out1 out2", b"err", False)
    finally:
        b.close()


def test_seccomp_tool_caps_and_stops_on_garbage() -> None:
    a, b = socket.socketpair()
    try:
        a.sendall(mux(b"x" * 5000) + b"garbage!" + mux(b"never"))
        a.close()
        out, err, truncated = _read_multiplexed(b, 1000)
        assert (len(out), err, truncated) == (1000, b"", True)
    finally:
        b.close()
    a, b = socket.socketpair()
    try:
        a.sendall(mux(b"ok") + b"garbage!" + mux(b"never"))
        a.close()
        assert _read_multiplexed(b, 1000) == (b"ok", b"", False)
    finally:
        b.close()


def test_default_max_frame_is_the_codecs() -> None:
    assert ChannelProtocol().max_frame == DEFAULT_MAX_FRAME
    with pytest.raises(FrameSchemaError):
        events.ready({"type": "ready"})
