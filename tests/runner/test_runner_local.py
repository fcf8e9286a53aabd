"""The runner as a local subprocess speaking frames over pipes (no Docker).

Most behaviour is the same with the restricted interpreter and in raw mode,
so those tests run against both (`mode` fixture); what only one mode does is
tested there.
"""

from __future__ import annotations

import base64
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proto.frames import DEFAULT_MAX_FRAME, encode
from tests.runner.conftest import RunnerProcess

SEARCH_TOOL = {
    "name": "search",
    "description": "Search the web.",
    "inputs": {"query": {"type": "string", "description": "what to look for"}},
    "output_type": "string",
}


@pytest.fixture(params=["interpreter", "raw"])
def proc(request: pytest.FixtureRequest, workspace: Path) -> Iterator[RunnerProcess]:
    r = RunnerProcess(workspace, raw=request.param == "raw")
    ready = r.recv()
    assert ready["type"] == "ready"
    assert ready["interpreter"] is (request.param == "interpreter")
    # The process started is the supervisor; the runner that answers is its child.
    assert _parent_of(ready["pid"]) == r.proc.pid
    yield r
    r.close()


def test_ready_then_round_trip(proc: RunnerProcess) -> None:
    proc.init(limits={"wall_time_ms": 5000})
    result, before = proc.execute("x = 20\nprint('hello')\nx + 22")
    assert result["verdict"] == "OK"
    assert result["stdout"] == "hello\n"
    assert result["value"]["json"] == 42
    assert [f["type"] for f in before] == ["output"]
    assert before[0]["data"] == "hello\n"
    assert {v["name"]: v["json"] for v in result["state"]} == {"x": 20}
    usage = result["usage"]
    assert set(usage) == {"wall_ms", "cpu_ms", "peak_memory_bytes", "output_bytes"}
    assert usage["output_bytes"] == len(b"hello\n")
    assert usage["peak_memory_bytes"] > 1 << 20


def test_state_across_snippets(proc: RunnerProcess) -> None:
    proc.init(variables={"seed": 3})
    proc.execute("def double(v):\n    return 2 * v\nacc = [seed]")
    proc.execute("acc.append(double(acc[-1]))")
    result, _ = proc.execute("acc")
    assert result["value"]["json"] == [3, 6]


def test_output_streams_in_order_before_result(proc: RunnerProcess) -> None:
    proc.init()
    code = "for i in range(3000):\n    print('line', i)\n"
    result, before = proc.execute(code)
    assert result["verdict"] == "OK"
    streamed = "".join(f["data"] for f in before if f["type"] == "output")
    assert streamed == "".join(f"line {i}\n" for i in range(3000))
    assert len(before) > 1  # batched into several frames, not one per print
    assert streamed == result["stdout"]


def test_output_arrives_while_snippet_still_runs(proc: RunnerProcess) -> None:
    """A print before a long computation is streamed at once, not with the result."""
    proc.init(limits={"wall_time_ms": 20000})
    rid = proc.new_id()
    code = "import time\nprint('started')\ntime.sleep(3)\n'done'"
    sent = time.monotonic()
    proc.send({"type": "execute", "id": rid, "code": code})
    first = proc.recv(10)
    assert first == {"type": "output", "id": rid, "data": "started\n"}
    assert time.monotonic() - sent < 2.5  # well before the snippet's 3 s sleep ends
    result = proc.recv(10)
    assert result["type"] == "result" and result["value"]["json"] == "done"


def test_output_cap_per_snippet(proc: RunnerProcess) -> None:
    proc.init(limits={"output_bytes": 1000})
    result, before = proc.execute("for i in range(500):\n    print('x' * 20)\n")
    streamed = "".join(f["data"] for f in before if f["type"] == "output")
    assert len(streamed.encode()) <= 1000
    assert result["truncated"] is True
    assert result["verdict"] == "OUTPUT_TRUNCATED"
    assert result["usage"]["output_bytes"] >= 1000  # what was printed, sent or not


def test_per_snippet_limits_only_lower(proc: RunnerProcess) -> None:
    proc.init(limits={"output_bytes": 100})
    result, before = proc.execute("print('y' * 500)", limits={"output_bytes": 10_000})
    streamed = "".join(f["data"] for f in before if f["type"] == "output")
    assert len(streamed) <= 100
    assert result["truncated"] is True


def test_soft_timeout_keeps_state(proc: RunnerProcess) -> None:
    proc.init(limits={"wall_time_ms": 500})
    proc.execute("kept = 'yes'")
    result, _ = proc.execute("while True:\n    pass\n")
    assert result["verdict"] == "TIMEOUT"
    after, _ = proc.execute("kept")
    assert after["verdict"] == "OK"
    assert after["value"]["json"] == "yes"


def test_cpu_limit_gives_verdict_and_session_survives(proc: RunnerProcess) -> None:
    proc.init(limits={"cpu_time_ms": 1000, "wall_time_ms": 30_000})
    proc.execute("kept = 1")
    result, _ = proc.execute("n = 0\nwhile True:\n    n += 1\n", timeout=30)
    assert result["verdict"] == "CPU_LIMIT"
    assert result["usage"]["cpu_ms"] >= 900
    # The budget is per snippet: the next snippet may spend CPU again.
    again, _ = proc.execute("total = sum(range(10**6))\nkept", timeout=30)
    assert again["verdict"] == "OK" and again["value"]["json"] == 1


def test_memory_error_gives_memory_limit(proc: RunnerProcess) -> None:
    proc.init(limits={"memory_bytes": 512 << 20})
    proc.execute("kept = 2")
    result, _ = proc.execute("big = bytearray(2 << 30)")
    assert result["verdict"] == "MEMORY_LIMIT"
    after, _ = proc.execute("kept")
    assert after["value"]["json"] == 2


def test_tool_call_round_trip(proc: RunnerProcess) -> None:
    proc.init(tools=[SEARCH_TOOL])
    rid = proc.new_id()
    proc.send(
        {"type": "execute", "id": rid, "code": "print('before')\nanswer = search('corral')\nanswer"}
    )
    output = proc.recv()
    assert output["type"] == "output" and output["data"] == "before\n"  # flushed before the call
    call = proc.recv()
    assert call["type"] == "tool_call"
    assert call["id"] == rid
    assert call["name"] == "search"
    assert call["args"] == ["corral"] and call["kwargs"] == {}
    proc.send(
        {
            "type": "tool_result",
            "id": rid,
            "call_id": call["call_id"],
            "ok": True,
            "value": {"hits": 3},
        }
    )
    result = proc.recv()
    assert result["type"] == "result", result
    assert result["value"]["json"] == {"hits": 3}


def test_tool_stub_has_signature_and_doc(proc: RunnerProcess) -> None:
    proc.init(tools=[SEARCH_TOOL])
    result, _ = proc.execute("search()")
    assert result["verdict"] == "ERROR"
    assert result["error"]["type"] == "TypeError"
    assert "query" in result["error"]["message"]


def test_tool_error_is_raised_in_snippet(proc: RunnerProcess) -> None:
    proc.init(tools=[SEARCH_TOOL])
    rid = proc.new_id()
    code = (
        "try:\n    search('x')\nexcept ValueError as e:\n    caught = str(e)\n"
        "try:\n    search('y')\nexcept RuntimeError as e:\n    other = str(e)\n"
    )
    proc.send({"type": "execute", "id": rid, "code": code})
    first = proc.recv()
    proc.send(
        {
            "type": "tool_result",
            "id": rid,
            "call_id": first["call_id"],
            "ok": False,
            "error": {"type": "ValueError", "message": "bad query"},
        }
    )
    second = proc.recv()
    assert second["type"] == "tool_call" and second["call_id"] != first["call_id"]
    proc.send(
        {
            "type": "tool_result",
            "id": rid,
            "call_id": second["call_id"],
            "ok": False,
            "error": {"type": "SystemExit", "message": "nope"},  # not a safe type
        }
    )
    result = proc.recv()
    state = {v["name"]: v["json"] for v in result["state"]}
    assert state == {"caught": "bad query", "other": "SystemExit: nope"}


def test_tool_timeout_raises_timeout_error(proc: RunnerProcess) -> None:
    proc.init(tools=[SEARCH_TOOL], limits={"tool_timeout_ms": 300})
    rid = proc.new_id()
    code = "try:\n    search('slow')\nexcept TimeoutError as e:\n    msg = str(e)\nmsg"
    proc.send({"type": "execute", "id": rid, "code": code})
    call = proc.recv()
    assert call["type"] == "tool_call"
    result = proc.recv(10)  # nobody answers
    assert result["type"] == "result"
    assert "did not answer" in result["value"]["json"]
    # A late answer to the abandoned call is dropped quietly.
    proc.send({"type": "tool_result", "id": rid, "call_id": call["call_id"], "ok": True})
    assert proc.request({"type": "ping"})["type"] == "pong"


def test_tool_wait_does_not_count_against_wall_time(proc: RunnerProcess) -> None:
    proc.init(tools=[SEARCH_TOOL], limits={"wall_time_ms": 800, "tool_timeout_ms": 10_000})
    rid = proc.new_id()
    proc.send({"type": "execute", "id": rid, "code": "r = search('x')\nr"})
    call = proc.recv()
    time.sleep(1.2)  # longer than the snippet's wall time
    proc.send(
        {"type": "tool_result", "id": rid, "call_id": call["call_id"], "ok": True, "value": 5}
    )
    result = proc.recv()
    assert result["verdict"] == "OK" and result["value"]["json"] == 5


def test_request_during_tool_wait_is_answered_after_the_result(proc: RunnerProcess) -> None:
    proc.init(tools=[SEARCH_TOOL])
    rid = proc.new_id()
    proc.send({"type": "execute", "id": rid, "code": "search('x')"})
    call = proc.recv()
    proc.send({"type": "ping", "id": "p1"})
    proc.send(
        {"type": "tool_result", "id": rid, "call_id": call["call_id"], "ok": True, "value": 1}
    )
    assert proc.recv()["type"] == "result"
    assert proc.recv() == {"type": "pong", "id": "p1"}


@pytest.mark.parametrize("how", ["shutdown", "eof"])
def test_exit_while_waiting_for_a_tool(proc: RunnerProcess, how: str) -> None:
    proc.init(tools=[SEARCH_TOOL], limits={"tool_timeout_ms": 60_000})
    proc.send({"type": "execute", "id": "t", "code": "search('x')"})
    assert proc.recv()["type"] == "tool_call"
    if how == "shutdown":
        proc.send({"type": "shutdown"})
    else:
        proc.proc.stdin.close()  # type: ignore[union-attr]
    assert proc.proc.wait(5) == 0


def test_set_and_get_vars(proc: RunnerProcess) -> None:
    proc.init()
    assert proc.request({"type": "set_vars", "variables": {"a": [1, 2], "b": "z"}})["type"] == "ack"
    answer = proc.request({"type": "get_vars", "names": ["a"]})
    assert answer["type"] == "vars"
    assert [(v["name"], v["json"]) for v in answer["state"]] == [("a", [1, 2])]
    everything = proc.request({"type": "get_vars", "names": []})
    assert {v["name"] for v in everything["state"]} == {"a", "b"}


# -- malformed input: an error frame, and the runner keeps serving -------------


def _still_serving(proc: RunnerProcess) -> None:
    assert proc.request({"type": "ping"})["type"] == "pong"


def test_bad_json_gets_error_frame(proc: RunnerProcess) -> None:
    proc.send_bytes(struct.pack(">I", 5) + b"hello")
    err = proc.recv()
    assert err["type"] == "error" and "JSON" in err["message"]
    proc.send_bytes(struct.pack(">I", 5) + b"[1,2]")  # JSON, but not an object
    assert proc.recv()["type"] == "error"
    proc.send_bytes(struct.pack(">I", 2) + b"\xff\xfe")  # not UTF-8
    assert proc.recv()["type"] == "error"
    _still_serving(proc)


def test_unknown_type_and_missing_fields(proc: RunnerProcess) -> None:
    proc.send({"type": "launch_missiles", "id": "u1"})
    err = proc.recv()
    assert err == {"type": "error", "id": "u1", "message": err["message"]}
    assert "launch_missiles" in err["message"]
    proc.send({"type": "ping"})  # no id
    assert proc.recv()["type"] == "error"
    proc.send({"type": "execute", "id": "e0", "code": "1"})  # before init
    assert proc.recv() == {"type": "error", "id": "e0", "message": "send init before this request"}
    proc.init()
    proc.send({"type": "execute", "id": "e1"})  # no code
    err = proc.recv()
    assert err["type"] == "error" and err["id"] == "e1" and "code" in err["message"]
    proc.send({"type": "init", "id": "i2"})  # a runner serves one session
    assert proc.recv()["type"] == "error"
    proc.send({"type": "set_vars", "id": "s1", "variables": ["not", "a", "dict"]})
    assert proc.recv()["type"] == "error"
    _still_serving(proc)


def test_oversized_frame_is_skipped(proc: RunnerProcess) -> None:
    size = DEFAULT_MAX_FRAME + 1
    proc.send_bytes(struct.pack(">I", size))
    err = proc.recv()
    assert err["type"] == "error" and "exceeds" in err["message"]
    proc.send_bytes(b"x" * size)  # the body is skipped, not parsed
    _still_serving(proc)


def test_garbage_length_does_not_crash(proc: RunnerProcess) -> None:
    proc.send_bytes(b"\xff\xff\xff\xff")
    assert proc.recv()["type"] == "error"
    assert proc.proc.poll() is None  # still alive, skipping the announced body
    proc.proc.stdin.close()  # type: ignore[union-attr]
    assert proc.proc.wait(5) == 0


def test_eof_exits_at_once(proc: RunnerProcess) -> None:
    proc.proc.stdin.close()  # type: ignore[union-attr]
    assert proc.proc.wait(5) == 0


def test_eof_while_snippet_runs_exits_at_once(proc: RunnerProcess) -> None:
    proc.init(limits={"wall_time_ms": 60_000})
    proc.send({"type": "execute", "id": "busy", "code": "while True:\n    pass\n"})
    time.sleep(0.3)
    proc.proc.stdin.close()  # type: ignore[union-attr]
    assert proc.proc.wait(5) == 0


def test_shutdown_frame(proc: RunnerProcess) -> None:
    proc.send({"type": "shutdown"})
    assert proc.proc.wait(5) == 0


def test_nothing_a_snippet_prints_reaches_the_channel(workspace: Path) -> None:
    r = RunnerProcess(workspace, raw=True)
    try:
        assert r.recv()["type"] == "ready"
        r.init()
        code = (
            "import os, sys\nos.write(1, b'\\x00\\x00\\x00\\x02{}')\nsys.__stdout__.write('junk')\n"
        )
        result, before = r.execute(code)
        assert result["verdict"] == "OK"
        assert before == []
        _still_serving(r)
    finally:
        r.close()
    assert r.proc.stderr is not None


# -- files --------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_write_and_read_file(proc: RunnerProcess, workspace: Path) -> None:
    ack = proc.request({"type": "write_file", "path": "sub/data.bin", "data_b64": _b64(b"\x00abc")})
    assert ack["type"] == "ack"
    assert (workspace / "sub" / "data.bin").read_bytes() == b"\x00abc"
    answer = proc.request({"type": "read_file", "path": "sub/data.bin"})
    assert answer["type"] == "file"
    assert base64.b64decode(answer["data_b64"]) == b"\x00abc"


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../outside", "sub/../../outside", "", "a\x00b", ".", "escape/x"]
)
def test_file_paths_confined_to_workspace(
    proc: RunnerProcess, workspace: Path, tmp_path: Path, path: str
) -> None:
    outside = tmp_path / "outside_dir"
    outside.mkdir()
    (outside / "x").write_text("secret")
    os.symlink(outside, workspace / "escape")  # a symlink planted inside the workspace
    read = proc.request({"type": "read_file", "path": path})
    assert read["type"] == "error", read
    write = proc.request({"type": "write_file", "path": path, "data_b64": _b64(b"pwned")})
    assert write["type"] == "error", write
    assert (outside / "x").read_text() == "secret"
    assert not (tmp_path / "outside").exists()


def test_symlinked_file_is_not_followed(
    proc: RunnerProcess, workspace: Path, tmp_path: Path
) -> None:
    target = tmp_path / "host_secret"
    target.write_text("secret")
    os.symlink(target, workspace / "link")
    assert proc.request({"type": "read_file", "path": "link"})["type"] == "error"
    assert (
        proc.request({"type": "write_file", "path": "link", "data_b64": _b64(b"x")})["type"]
        == "error"
    )
    assert target.read_text() == "secret"


def test_bad_base64_is_refused(proc: RunnerProcess) -> None:
    answer = proc.request({"type": "write_file", "path": "f", "data_b64": "***"})
    assert answer["type"] == "error" and "base64" in answer["message"]


# -- raw mode only ------------------------------------------------------------


def test_raw_mode_runs_plain_python(raw_runner: RunnerProcess) -> None:
    raw_runner.init()
    result, _ = raw_runner.execute("import os\n__import__('sys').version_info[0]")
    assert result["verdict"] == "OK" and result["value"]["json"] == 3


def test_no_frame_switches_to_raw_mode(runner: RunnerProcess) -> None:
    runner.init()
    for frame in (
        {"type": "init", "raw": True},
        {"type": "execute", "code": "import os", "raw": True},
        {"type": "raw"},
    ):
        answer = runner.request(frame)
        if answer["type"] == "result":
            assert answer["verdict"] == "POLICY_DENIED"
        else:
            assert answer["type"] == "error"


def test_frame_codec_matches_what_the_runner_writes(raw_runner: RunnerProcess) -> None:
    """The runner's frames decode with the shared codec (sanity check of the helper too)."""
    frame = {"type": "ping", "id": "é✓"}
    raw_runner.send_bytes(encode(frame))
    assert raw_runner.recv() == {"type": "pong", "id": "é✓"}


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rfind(b")") + 2 :].split()[1])
