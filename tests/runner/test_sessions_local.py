"""Interrupts, checkpoints and rollback of the runner as a local process (no Docker).

The frames are those of proto/frames.md and wt/FRAMES-NEW.md: `interrupt`,
`checkpoint`, `rollback`, `drop_checkpoint`, `list_checkpoints`.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proto.frames import encode
from tests.runner.conftest import RunnerProcess

MiB = 1 << 20
SEARCH_TOOL = {
    "name": "search",
    "description": "Search the web.",
    "inputs": {"query": {"type": "string", "description": "what to look for"}},
    "output_type": "string",
}
SPIN = "n = 0\nwhile True:\n    n = n + 1\n"


@pytest.fixture(params=["interpreter", "raw"])
def proc(request: pytest.FixtureRequest, workspace: Path) -> Iterator[RunnerProcess]:
    r = RunnerProcess(workspace, raw=request.param == "raw")
    assert r.recv()["type"] == "ready"
    yield r
    r.close()


@pytest.fixture
def session(runner: RunnerProcess) -> RunnerProcess:
    runner.init(authorized_imports=["math", "numpy", "numpy.*"], limits={"wall_time_ms": 20_000})
    return runner


def _start(r: RunnerProcess, code: str) -> str:
    rid = r.new_id()
    r.send({"type": "execute", "id": rid, "code": code})
    return rid


def _result(r: RunnerProcess, rid: str, timeout: float = 20.0) -> dict[str, Any]:
    while True:
        frame = r.recv(timeout)
        if frame["type"] == "result":
            assert frame["id"] == rid
            return frame
        assert frame["type"] in ("output", "tool_call"), frame


def _value(r: RunnerProcess, expr: str) -> Any:
    result, _ = r.execute(expr)
    assert result["verdict"] == "OK", result
    return result["value"]["json"] if result["value"] else None


def _checkpoint(r: RunnerProcess) -> str:
    answer = r.request({"type": "checkpoint"})
    assert answer["type"] == "checkpoint", answer
    assert isinstance(answer["checkpoint_id"], str) and answer["checkpoints"] >= 1
    return str(answer["checkpoint_id"])


def _rollback(r: RunnerProcess, cp: str) -> None:
    answer = r.request({"type": "rollback", "checkpoint_id": cp})
    assert answer["type"] == "ack", answer


# -- interrupt ---------------------------------------------------------------


def test_interrupt_keeps_state(proc: RunnerProcess) -> None:
    proc.init(limits={"wall_time_ms": 60_000})
    proc.execute("kept = [1, 2, 3]")
    rid = _start(proc, SPIN)
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send({"type": "interrupt", "id": rid})
    result = _result(proc, rid)
    assert time.monotonic() - t0 < 10  # far below the 60 s wall-time limit
    assert result["verdict"] == "INTERRUPTED"
    assert result["error"]["type"] == "Interrupted"
    assert _value(proc, "kept") == [1, 2, 3]
    assert _value(proc, "n > 0") is True  # the loop's progress is kept too


def test_interrupt_right_after_execute_still_interrupts(runner: RunnerProcess) -> None:
    runner.init(limits={"wall_time_ms": 60_000})
    rid = _start(runner, SPIN)
    runner.send({"type": "interrupt", "id": rid})  # may land before the snippet starts
    assert _result(runner, rid)["verdict"] == "INTERRUPTED"
    assert _value(runner, "1 + 1") == 2


def test_interrupt_while_waiting_for_a_tool(proc: RunnerProcess) -> None:
    proc.init(tools=[SEARCH_TOOL], limits={"tool_timeout_ms": 60_000, "wall_time_ms": 60_000})
    proc.execute("before = 1")
    rid = _start(proc, "after = search('x')")
    call = proc.recv()
    assert call["type"] == "tool_call"
    proc.send({"type": "interrupt", "id": rid})
    result = _result(proc, rid)
    assert result["verdict"] == "INTERRUPTED"
    # The late answer to the abandoned call is dropped quietly.
    proc.send({"type": "tool_result", "id": rid, "call_id": call["call_id"], "ok": True})
    assert _value(proc, "before") == 1
    assert proc.request({"type": "ping"})["type"] == "pong"


def test_interrupt_storm_costs_nothing(runner: RunnerProcess) -> None:
    runner.init(limits={"wall_time_ms": 60_000})
    # Between snippets, for unknown ids, malformed: all ignored, none answered.
    storm = b"".join(
        encode(f)
        for f in [{"type": "interrupt", "id": f"x{i}"} for i in range(3000)]
        + [{"type": "interrupt"}, {"type": "interrupt", "id": 7}]
    )
    runner.send_bytes(storm)
    assert runner.request({"type": "ping"})["type"] == "pong"
    # During a snippet: thousands for the wrong id do not interrupt it...
    rid = _start(runner, "total = 0\nfor i in range(300000):\n    total = total + i\ntotal")
    runner.send_bytes(b"".join(encode({"type": "interrupt", "id": "nope"}) for _ in range(3000)))
    result = _result(runner, rid)
    assert result["verdict"] == "OK" and result["value"]["json"] == sum(range(300000))
    # ...and thousands for the right one give one result.
    rid = _start(runner, SPIN)
    time.sleep(0.2)
    frame = encode({"type": "interrupt", "id": rid})
    runner.send_bytes(frame * 3000)
    assert _result(runner, rid)["verdict"] == "INTERRUPTED"
    assert runner.request({"type": "ping"})["type"] == "pong"  # nothing else was queued


def test_requests_during_a_snippet_wait_their_turn(runner: RunnerProcess) -> None:
    runner.init()
    rid = _start(runner, "import time\ntime.sleep(0.5)\nx = 5")
    runner.send({"type": "get_vars", "id": "g", "names": ["x"]})
    assert _result(runner, rid)["verdict"] in ("OK", "POLICY_DENIED")
    answer = runner.recv()
    assert answer["id"] == "g"


# -- checkpoints and rollback -------------------------------------------------


def test_rollback_restores_variables_functions_classes_modules(session: RunnerProcess) -> None:
    session.execute(
        "import math\n"
        "class Point:\n"
        "    def __init__(self, x):\n"
        "        self.x = x\n"
        "def f(v):\n"
        "    return v * 2\n"
        "p = Point(3)\n"
        "items = [1, 2]\n"
    )
    cp = _checkpoint(session)
    session.execute(
        "items.append(3)\n"
        "p.x = 99\n"
        "def f(v):\n"
        "    return -v\n"
        "class Point:\n"
        "    pass\n"
        "del math\n"
        "extra = 'new'\n"
    )
    assert _value(session, "f(2)") == -2
    _rollback(session, cp)
    assert _value(session, "items") == [1, 2]
    assert _value(session, "p.x") == 3
    assert _value(session, "f(2)") == 4
    assert _value(session, "Point(5).x") == 5
    assert _value(session, "math.sqrt(16)") == 4.0
    result, _ = session.execute("extra")
    assert result["verdict"] == "ERROR" and result["error"]["type"] == "NameError"


def test_rollback_twice_to_the_same_checkpoint(session: RunnerProcess) -> None:
    session.execute("counter = 10")
    cp = _checkpoint(session)
    session.execute("counter = counter + 1")
    _rollback(session, cp)
    assert _value(session, "counter") == 10
    session.execute("counter = counter + 5")
    _rollback(session, cp)
    assert _value(session, "counter") == 10
    listing = session.request({"type": "list_checkpoints"})
    assert [c["checkpoint_id"] for c in listing["checkpoints"]] == [cp]


def test_rollback_keeps_later_checkpoints_and_threads_work(session: RunnerProcess) -> None:
    session.execute("stage = 1")
    cp1 = _checkpoint(session)
    session.execute("stage = 2")
    cp2 = _checkpoint(session)
    _rollback(session, cp1)
    assert _value(session, "stage") == 1
    _rollback(session, cp2)  # a checkpoint taken after cp1 is still reachable
    assert _value(session, "stage") == 2
    # The woken runner streams output (flusher thread) and takes interrupts (reader).
    rid = _start(session, "print('tick')\n" + SPIN)
    first = session.recv()
    assert first == {"type": "output", "id": rid, "data": "tick\n"}
    session.send({"type": "interrupt", "id": rid})
    assert _result(session, rid)["verdict"] == "INTERRUPTED"
    assert _value(session, "stage") == 2


def test_rollback_restores_numpy_arrays(session: RunnerProcess) -> None:
    pytest.importorskip("numpy")
    session.execute("import numpy as np\na = np.arange(1_000_000, dtype=np.float64)")
    cp = _checkpoint(session)
    session.execute("a[:] = 0\nb = a + 1")
    assert _value(session, "float(a.sum())") == 0.0
    _rollback(session, cp)
    assert _value(session, "float(a.sum())") == float(sum(range(1_000_000)))


def test_rollback_restores_workspace_files(session: RunnerProcess, workspace: Path) -> None:
    def write(path: str, data: bytes) -> None:
        answer = session.request(
            {"type": "write_file", "path": path, "data_b64": base64.b64encode(data).decode()}
        )
        assert answer["type"] == "ack", answer

    write("a.txt", b"original")
    write("dir/inner.bin", b"\x00\x01")
    cp = _checkpoint(session)
    write("a.txt", b"changed")
    write("b.txt", b"new file")
    (workspace / "dir" / "inner.bin").unlink()
    _rollback(session, cp)
    assert (workspace / "a.txt").read_bytes() == b"original"
    assert (workspace / "dir" / "inner.bin").read_bytes() == b"\x00\x01"
    assert not (workspace / "b.txt").exists()


def test_drop_and_list(session: RunnerProcess) -> None:
    cps = [_checkpoint(session) for _ in range(3)]
    listing = session.request({"type": "list_checkpoints"})["checkpoints"]
    assert [c["checkpoint_id"] for c in listing] == cps
    assert all(isinstance(c["created_ms"], int) and c["created_ms"] > 0 for c in listing)
    assert session.request({"type": "drop_checkpoint", "checkpoint_id": cps[1]})["type"] == "ack"
    listing = session.request({"type": "list_checkpoints"})["checkpoints"]
    assert [c["checkpoint_id"] for c in listing] == [cps[0], cps[2]]
    for bad in ("rollback", "drop_checkpoint"):
        err = session.request({"type": bad, "checkpoint_id": cps[1]})
        assert err["type"] == "error" and "unknown checkpoint" in err["message"]
    err = session.request({"type": "rollback", "checkpoint_id": 5})
    assert err["type"] == "error"
    assert _value(session, "1") == 1


def test_checkpoint_before_init_is_refused(runner: RunnerProcess) -> None:
    err = runner.request({"type": "checkpoint"})
    assert err["type"] == "error" and "init" in err["message"]


def test_max_checkpoints(runner: RunnerProcess) -> None:
    runner.init(limits={"max_checkpoints": 2})
    _checkpoint(runner)
    _checkpoint(runner)
    for _ in range(50):  # a checkpoint bomb: each one refused, nothing piles up
        err = runner.request({"type": "checkpoint"})
        assert err["type"] == "error" and "max_checkpoints" in err["message"]
    assert len(runner.request({"type": "list_checkpoints"})["checkpoints"]) == 2
    assert _value(runner, "2 + 2") == 4


def test_pids_limit_refuses_checkpoints(runner: RunnerProcess) -> None:
    runner.init(limits={"pids": 10})
    answers = [runner.request({"type": "checkpoint"}) for _ in range(10)]
    refused = [a for a in answers if a["type"] == "error"]
    assert refused and "pids" in refused[0]["message"]
    held = len(runner.request({"type": "list_checkpoints"})["checkpoints"])
    assert 0 < held < 10
    assert _value(runner, "3") == 3


def test_memory_growth_through_checkpoints_is_refused(runner: RunnerProcess) -> None:
    runner.init(limits={"memory_bytes": 512 * MiB, "wall_time_ms": 20_000})
    runner.execute("blob = 'x' * (120 * 1024 * 1024)")
    answers = [runner.request({"type": "checkpoint"}, timeout=30) for _ in range(6)]
    refused = [a for a in answers if a["type"] == "error"]
    assert refused, answers
    assert "memory_bytes" in refused[0]["message"]
    # What the checkpoints reserve is not available to the session: a snippet
    # that grows into it gets MEMORY_LIMIT, and the session stays usable.
    result, _ = runner.execute("more = 'y' * (200 * 1024 * 1024)")
    assert result["verdict"] == "MEMORY_LIMIT", result
    assert _value(runner, "len(blob)") == 120 * MiB
    # Dropping the checkpoints gives the memory back.
    for c in runner.request({"type": "list_checkpoints"})["checkpoints"]:
        runner.request({"type": "drop_checkpoint", "checkpoint_id": c["checkpoint_id"]})
    result, _ = runner.execute("more = 'y' * (200 * 1024 * 1024)\nlen(more)")
    assert result["verdict"] == "OK", result


def _processes_of(workspace: Path) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        if str(workspace).encode() in cmdline and b") Z" not in state:
            pids.append(int(entry))
    return pids


def test_no_process_outlives_the_channel(workspace: Path) -> None:
    r = RunnerProcess(workspace)
    try:
        assert r.recv()["type"] == "ready"
        r.init()
        cp = _checkpoint(r)
        _checkpoint(r)
        _rollback(r, cp)  # old runner gone, checkpoints now children of the supervisor
        _checkpoint(r)
        assert len(_processes_of(workspace)) == 5  # supervisor, runner, three checkpoints
        assert r.proc.stdin is not None
        r.proc.stdin.close()
        assert r.proc.wait(10) == 0
        deadline = time.monotonic() + 10
        while _processes_of(workspace) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_of(workspace) == []
    finally:
        r.close()


def test_shutdown_ends_the_supervisor(runner: RunnerProcess) -> None:
    runner.init()
    cp = _checkpoint(runner)
    _rollback(runner, cp)
    runner.send({"type": "shutdown"})
    assert runner.proc.wait(10) == 0


def test_supervisor_follows_the_working_runner_across_rollbacks(workspace: Path) -> None:
    r = RunnerProcess(workspace, raw=True)  # raw: the snippet can tell its pid
    try:
        first = r.recv()["pid"]
        r.init()
        cp = _checkpoint(r)
        _rollback(r, cp)
        _rollback(r, cp)
        working = _value(r, "import os\nos.getpid()")
        assert working != first
        deadline = time.monotonic() + 10
        while first in _processes_of(workspace) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first not in _processes_of(workspace)  # handed over and gone
        assert r.proc.poll() is None  # the supervisor stays
        # The working runner dies (as under an OOM kill): the supervisor ends too,
        # so the daemon sees the sandbox end instead of a silent channel.
        os.kill(working, 9)
        assert r.proc.wait(10) == 128 + 9
    finally:
        r.close()


def test_rollback_to_a_killed_checkpoint_is_an_error(workspace: Path) -> None:
    r = RunnerProcess(workspace, raw=True)
    try:
        assert r.recv()["type"] == "ready"
        r.init()
        r.execute("x = 1")
        cp = _checkpoint(r)
        working = _value(r, "import os\nos.getpid()")
        copies = set(_processes_of(workspace)) - {r.proc.pid, working}
        assert len(copies) == 1
        os.kill(copies.pop(), 9)  # as if the kernel had killed it
        r.execute("x = 2")
        err = r.request({"type": "rollback", "checkpoint_id": cp})
        assert err["type"] == "error" and "gone" in err["message"]
        assert _value(r, "x") == 2
        assert r.request({"type": "list_checkpoints"})["checkpoints"] == []
    finally:
        r.close()
