"""The driver against hostile "runners" inside the real hardened container.

Each fake runner is a `python3 -c` command override in the sandbox image
that misbehaves in one way: garbage, an oversized length, a frame that breaks
the schema, silence, a trickle, a flood, a sudden death. The driver must raise
the right SandboxError within its timeout, keep its memory bounded, and leave
no container behind.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from executor.sandbox.driver import (
    STDERR_TAIL_BYTES,
    Sandbox,
    SandboxError,
    SandboxGone,
    SandboxProtocolError,
    SandboxTimeout,
)
from tests.runner.sandboxes import SandboxFactory

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def runtime() -> str:
    """runc only: these feed the daemon side of the channel hostile bytes; which kernel
    boundary runs the runner does not change what crosses the attach stream."""
    return "runc"


SLACK_S = 10.0  # bound on "raised within the timeout" (the engine may be slow; not a speed test)

PRELUDE = """
import json, os, struct, sys, time
def send(obj):
    body = json.dumps(obj).encode()
    os.write(1, struct.pack('>I', len(body)) + body)
def recv():
    n = struct.unpack('>I', sys.stdin.buffer.read(4))[0]
    return json.loads(sys.stdin.buffer.read(n))
def ready():
    send({"type": "ready", "pid": os.getpid(), "python": "3", "interpreter": True})
RESULT = {"type": "result", "verdict": "OK", "stdout": "", "value": None,
          "is_final_answer": False, "final_answer": None, "error": None, "state": [],
          "truncated": False,
          "usage": {"wall_ms": 1, "cpu_ms": 1, "peak_memory_bytes": 1, "output_bytes": 0}}
"""


def _cmd(body: str) -> list[str]:
    return ["python3", "-c", PRELUDE + body]


def _start_fails(
    factory: SandboxFactory, body: str, exc_type: type[SandboxError], ready_timeout: float = 5.0
) -> SandboxError:
    started = time.monotonic()
    with pytest.raises(exc_type) as info:
        factory.start(command=_cmd(body), ready_timeout=ready_timeout)
    assert time.monotonic() - started < ready_timeout + SLACK_S
    assert factory.containers_of(factory.cases[-1]) == []  # destroyed on the way out
    return info.value


def _started(factory: SandboxFactory, body: str) -> Sandbox:
    return factory.start(command=_cmd("ready()\n" + body), ready_timeout=15.0)


# -- before ready ---------------------------------------------------------------


def test_garbage_instead_of_frames(factory: SandboxFactory) -> None:
    _start_fails(
        factory,
        "os.write(1, b'this is not a frame at all ' * 40)\ntime.sleep(60)",
        SandboxProtocolError,
    )


def test_small_length_then_not_json(factory: SandboxFactory) -> None:
    _start_fails(
        factory, "os.write(1, b'\\x00\\x00\\x00\\x05hello')\ntime.sleep(60)", SandboxProtocolError
    )


def test_oversized_frame_header(factory: SandboxFactory) -> None:
    err = _start_fails(
        factory, "os.write(1, struct.pack('>I', 0x7fffffff))\ntime.sleep(60)", SandboxProtocolError
    )
    assert "exceeds" in str(err)


def test_ready_with_wrong_schema(factory: SandboxFactory) -> None:
    err = _start_fails(
        factory,
        'send({"type": "ready", "pid": "one", "python": 3})\ntime.sleep(60)',
        SandboxProtocolError,
    )
    assert "pid" in str(err)


def test_wrong_first_frame(factory: SandboxFactory) -> None:
    _start_fails(factory, 'send({"type": "pong", "id": "x"})\ntime.sleep(60)', SandboxProtocolError)


def test_nothing_at_all(factory: SandboxFactory) -> None:
    _start_fails(factory, "time.sleep(120)", SandboxTimeout, ready_timeout=2.0)


def test_exits_at_once(factory: SandboxFactory) -> None:
    err = _start_fails(
        factory, "sys.stderr.write('bye from the fake runner'); sys.exit(3)", SandboxGone
    )
    assert "bye from the fake runner" in str(err)  # stderr tail in the message


def test_deeply_nested_json(factory: SandboxFactory) -> None:
    body = (
        "b = b'{\"type\": \"ready\", \"x\": ' + b'[' * 200000 + b']' * 200000 + b'}'\n"
        "os.write(1, struct.pack('>I', len(b)) + b)\ntime.sleep(60)"
    )
    _start_fails(factory, body, SandboxProtocolError)


# -- after ready, during execute ------------------------------------------------


def test_result_with_unknown_verdict(factory: SandboxFactory) -> None:
    sb = _started(
        factory, 'f = recv()\nsend({**RESULT, "id": f["id"], "verdict": "PWNED"})\ntime.sleep(60)'
    )
    with pytest.raises(SandboxProtocolError, match="verdict"):
        sb.execute("1", timeout=10)
    assert sb.ping(timeout=1) is False  # the sandbox stays unusable
    with pytest.raises(SandboxProtocolError):
        sb.recv(1)


@pytest.mark.parametrize(
    "patch",
    [
        '"stdout": 5',
        '"state": {"x": 1}',
        '"state": [{"name": "x"}]',
        '"error": "boom"',
        '"usage": {"wall_ms": -1, "cpu_ms": 0, "peak_memory_bytes": 0, "output_bytes": 0}',
        '"usage": None',
        '"value": {"type": 1, "repr": "x"}',
        '"truncated": "yes"',
    ],
)
def test_result_with_wrong_field_types(factory: SandboxFactory, patch: str) -> None:
    sb = _started(
        factory, f'f = recv()\nsend({{**RESULT, "id": f["id"], {patch}}})\ntime.sleep(60)'
    )
    with pytest.raises(SandboxProtocolError):
        sb.execute("1", timeout=10)


def test_result_strings_are_capped(factory: SandboxFactory) -> None:
    sb = _started(
        factory,
        'f = recv()\nsend({**RESULT, "id": f["id"], "stdout": "o" * 3000000,'
        ' "value": {"type": "t" * 100000, "repr": "r" * 1000000, "json": None, "has_json": False},'
        ' "error": {"type": "E", "message": "m" * 1000000, "line": 1, "source_line": "s" * 100000}})\n'
        "time.sleep(60)",
    )
    result = sb.execute("1", timeout=20, limits={"output_bytes": 1000}).result
    assert len(result.stdout) == 1000 and result.truncated is True
    assert result.value is not None and result.error is not None
    assert len(result.value.type) <= 256
    assert len(result.value.repr) <= 64 << 10
    assert len(result.error.message) <= 64 << 10
    assert result.error.source_line is not None and len(result.error.source_line) <= 4096


def test_frame_for_another_request(factory: SandboxFactory) -> None:
    sb = _started(factory, 'recv()\nsend({**RESULT, "id": "someone-else"})\ntime.sleep(60)')
    with pytest.raises(SandboxProtocolError, match="another request"):
        sb.execute("1", timeout=10)


def test_silence_after_execute(factory: SandboxFactory) -> None:
    sb = _started(factory, "recv()\ntime.sleep(120)")
    started = time.monotonic()
    with pytest.raises(SandboxTimeout):
        sb.execute("1", timeout=2.0)
    assert time.monotonic() - started < 2.0 + SLACK_S


def test_trickle_cannot_extend_the_deadline(factory: SandboxFactory) -> None:
    body = (
        "recv()\nbody = json.dumps({'type': 'pong', 'id': 'x'}).encode()\n"
        "for b in struct.pack('>I', len(body)) + body * 100:\n"
        "    os.write(1, bytes([b]))\n    time.sleep(0.2)\n"
    )
    sb = _started(factory, body)
    started = time.monotonic()
    with pytest.raises(SandboxTimeout):
        sb.execute("1", timeout=2.0)
    assert time.monotonic() - started < 2.0 + SLACK_S


def test_output_flood_is_cut_off(factory: SandboxFactory) -> None:
    sb = _started(
        factory,
        'f = recv()\nwhile True:\n    send({"type": "output", "id": f["id"], "data": "x" * 65536})\n',
    )
    seen: list[int] = []
    with pytest.raises(SandboxProtocolError, match="output"):
        sb.execute("1", timeout=30, on_output=lambda s: seen.append(len(s)))
    assert sum(seen) <= (1 << 20) + 4096  # never more than the session's output cap


def test_death_during_execute(factory: SandboxFactory) -> None:
    sb = _started(factory, "recv()\nos._exit(3)")
    with pytest.raises(SandboxGone):
        sb.execute("1", timeout=10)
    assert sb.inspect_exit() == {"oom_killed": False, "exit_code": 3}


def test_stderr_flood_is_bounded(factory: SandboxFactory) -> None:
    sb = _started(
        factory, "recv()\nfor _ in range(32):\n    os.write(2, b'e' * (1 << 20))\ntime.sleep(60)"
    )
    with pytest.raises(SandboxTimeout):
        sb.execute("1", timeout=3.0)
    assert 0 < len(sb.stderr_tail) <= STDERR_TAIL_BYTES


def test_tool_call_with_bad_schema(factory: SandboxFactory) -> None:
    sb = _started(
        factory,
        'f = recv()\nsend({"type": "tool_call", "id": f["id"], "call_id": 7, "name": "t", "args": "x"})\n'
        "time.sleep(60)",
    )
    calls: list[Any] = []
    with pytest.raises(SandboxProtocolError):
        sb.execute("1", timeout=10, on_tool_call=lambda c: calls.append(c) or {"ok": True})
    assert calls == []  # never handed to the host's tool handler
