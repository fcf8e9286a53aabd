"""Interrupts, checkpoints and rollback inside the real hardened container, under each runtime.

The runner's new frames (wt/FRAMES-NEW.md) driven over the raw channel with the
driver: tini is PID 1, the supervisor its child, the runner and the stopped
checkpoint copies below it, all under the container's pids and memory limits.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import pytest

from executor.sandbox.driver import Sandbox, SandboxGone, SandboxRequestError
from proto.limits import MiB, SessionLimits
from tests.runner.sandboxes import SandboxFactory

pytestmark = pytest.mark.docker

SPIN = "n = 0\nwhile True:\n    n = n + 1\n"


def _session(factory: SandboxFactory, limits: SessionLimits | None = None) -> Sandbox:
    limits = limits or SessionLimits(wall_time_ms=30_000)
    sb = factory.start(limits)
    sb.init(limits=limits.runner_limits(), authorized_imports=["numpy", "numpy.*", "math"])
    return sb


def _run(sb: Sandbox, code: str) -> Any:
    return sb.execute(code, timeout=60).result


def _value(sb: Sandbox, code: str) -> Any:
    result = _run(sb, code)
    assert result.verdict == "OK", result
    return result.value.json if result.value else None


def _checkpoint(sb: Sandbox) -> str:
    answer = sb.request({"type": "checkpoint"}, 30)
    assert answer.frame_type == "checkpoint", answer
    return str(answer.checkpoint_id)


def _rollback(sb: Sandbox, cp: str) -> None:
    assert sb.request({"type": "rollback", "checkpoint_id": cp}, 30).frame_type == "ack"


def _interrupted(sb: Sandbox, code: str, after_s: float) -> Any:
    """Run code in a thread and interrupt it from here after `after_s` seconds."""
    box: list[Any] = []
    worker = threading.Thread(target=lambda: box.append(_run(sb, code)))
    worker.start()
    time.sleep(after_s)
    sb.interrupt()
    worker.join(60)
    assert box, "the interrupted snippet never returned"
    return box[0]


def test_interrupt_keeps_state(factory: SandboxFactory) -> None:
    sb = _session(factory, SessionLimits(wall_time_ms=120_000))
    _value(sb, "kept = {'a': 1}")
    result = _interrupted(sb, SPIN, 0.5)
    assert result.verdict == "INTERRUPTED"
    assert _value(sb, "kept") == {"a": 1}
    assert _value(sb, "n > 0") is True


def test_rollback_restores_the_whole_interpreter_state(factory: SandboxFactory) -> None:
    sb = _session(factory)
    sb.request(
        {"type": "write_file", "path": "notes.txt", "data_b64": base64.b64encode(b"v1").decode()},
        10,
    )
    _value(
        sb,
        "import numpy as np\nimport math\n"
        "class Acc:\n    def __init__(self):\n        self.total = 0\n"
        "def step(a):\n    a.total = a.total + 1\n    return a.total\n"
        "acc = Acc()\nstep(acc)\narr = np.ones(1000)\n",
    )
    cp = _checkpoint(sb)
    _value(sb, "step(acc)\narr[:] = 7\ndef step(a):\n    return -1\ndel math\nnew = 1")
    sb.request(
        {"type": "write_file", "path": "notes.txt", "data_b64": base64.b64encode(b"v2").decode()},
        10,
    )
    for _ in range(2):  # twice to the same checkpoint
        _rollback(sb, cp)
        assert _value(sb, "acc.total") == 1
        assert _value(sb, "float(arr.sum())") == 1000.0
        assert _value(sb, "step(Acc())") == 1
        assert _value(sb, "math.floor(2.5)") == 2
        assert _run(sb, "new").error.type == "NameError"
        assert sb.read_file("notes.txt") == b"v1"
        _value(sb, "acc.total = 50")
    listing = sb.request({"type": "list_checkpoints"}, 10).items
    assert [c.checkpoint_id for c in listing] == [cp]
    assert sb.request({"type": "drop_checkpoint", "checkpoint_id": cp}, 10).frame_type == "ack"
    assert list(sb.request({"type": "list_checkpoints"}, 10).items) == []
    with pytest.raises(SandboxRequestError, match="unknown checkpoint"):
        sb.request({"type": "rollback", "checkpoint_id": cp}, 10)
    assert _value(sb, "acc.total") == 50


def test_numpy_state_of_100_mb(factory: SandboxFactory) -> None:
    sb = _session(factory, SessionLimits(memory_bytes=1024 * MiB, wall_time_ms=60_000))
    _value(sb, "import numpy as np\nbig = np.arange(12_500_000, dtype=np.float64)")  # 100 MB
    cp = _checkpoint(sb)
    _value(sb, "big *= 2")
    assert _value(sb, "float(big[-1])") == 2 * 12_499_999.0
    _rollback(sb, cp)
    assert _value(sb, "float(big[-1])") == 12_499_999.0


def test_limits_give_error_frames_and_the_session_stays(factory: SandboxFactory) -> None:
    limits = SessionLimits(max_checkpoints=3, pids=64, memory_bytes=512 * MiB)
    sb = _session(factory, limits)
    for _ in range(3):
        _checkpoint(sb)
    for _ in range(30):  # a checkpoint bomb
        with pytest.raises(SandboxRequestError, match="max_checkpoints"):
            sb.request({"type": "checkpoint"}, 10)
    assert _value(sb, "1 + 1") == 2

    sb2 = _session(factory, SessionLimits(pids=12, wall_time_ms=30_000))
    refused = 0
    for _ in range(12):
        try:
            _checkpoint(sb2)
        except SandboxRequestError as exc:
            assert "pids" in str(exc)
            refused += 1
    assert refused > 0
    assert _value(sb2, "2 + 2") == 4

    sb3 = _session(factory, SessionLimits(memory_bytes=512 * MiB, wall_time_ms=30_000))
    _value(sb3, "blob = 'x' * (120 * 1024 * 1024)\nlen(blob)")
    with pytest.raises(SandboxRequestError, match="memory_bytes"):
        for _ in range(6):  # memory growth through checkpoints
            _checkpoint(sb3)
    # The reserve is kept from the session: growing into it is MEMORY_LIMIT, not an OOM kill.
    result = _run(sb3, "more = 'y' * (250 * 1024 * 1024)")
    assert result.verdict == "MEMORY_LIMIT", result
    assert _value(sb3, "len(blob)") == 120 * MiB


def test_container_ends_when_stdin_closes(factory: SandboxFactory, docker_client: Any) -> None:
    sb = _session(factory)
    cp = _checkpoint(sb)
    _checkpoint(sb)
    _rollback(sb, cp)  # the first runner is gone; tini's child (the supervisor) is not
    _checkpoint(sb)
    assert _value(sb, "3") == 3
    sb.close_stdin()
    deadline = time.monotonic() + 30
    gone = False
    while time.monotonic() < deadline:
        try:
            state = docker_client.api.inspect_container(sb.container_id)["State"]
        except Exception:  # removed (auto_remove)
            gone = True
            break
        if not state.get("Running"):
            gone = True
            break
        time.sleep(0.2)
    assert gone, "the container kept running after stdin closed"
    with pytest.raises(SandboxGone):
        sb.recv(10)
