"""The runner inside the real hardened container, driven through the driver.

With the restricted interpreter (what the daemon runs) and, for the
container layer alone, raw CPython started by `corrald probe --raw`.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from executor.sandbox import LABEL_INSTANCE
from executor.sandbox.driver import Sandbox, SandboxRequestError
from executor.sandbox.events import ToolCall
from executor.sandbox.probe import run_probe
from proto.limits import MiB, SessionLimits
from proto.results import Result
from tests.runner.sandboxes import SandboxFactory

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
GRACE_S = 10.0  # hard timeout beyond the soft one, generous for a loaded machine


def _session(factory: SandboxFactory, limits: SessionLimits | None = None, **init: Any) -> Sandbox:
    limits = limits or SessionLimits(wall_time_ms=5000)
    sb = factory.start(limits)
    assert sb.ready is not None and sb.ready.interpreter is True
    sb.init(limits=limits.runner_limits(), **init)
    return sb


def _run(sb: Sandbox, code: str, **kw: Any) -> Result:
    return sb.execute(code, timeout=kw.pop("timeout", 30.0), **kw).result


def _json(result: Result) -> Any:
    assert result.value is not None, result
    return result.value.json


def test_round_trip(factory: SandboxFactory) -> None:
    sb = _session(factory)
    chunks: list[str] = []
    done = sb.execute(
        "x = 6 * 7\nprint('hi from the sandbox')\nx", timeout=30, on_output=chunks.append
    )
    result = done.result
    assert result.verdict == "OK"
    assert result.value is not None and result.value.json == 42
    assert result.stdout == "hi from the sandbox\n"
    assert "".join(chunks) == "hi from the sandbox\n"
    assert done.usage.peak_memory_bytes > 0


def test_state_across_snippets(factory: SandboxFactory) -> None:
    sb = _session(factory, variables={"base": 10})
    _run(sb, "def f(v):\n    return v + base\ncounter = f(1)")
    _run(sb, "counter = f(counter)")
    result = _run(sb, "counter")
    assert _json(result) == 21
    assert {v.name for v in sb.get_vars()} >= {"base", "counter"}


def test_soft_timeout_keeps_state(factory: SandboxFactory) -> None:
    sb = _session(factory, SessionLimits(wall_time_ms=1000))
    _run(sb, "kept = [1, 2, 3]")
    result = _run(sb, "while True:\n    pass\n", timeout=1.0 + GRACE_S)
    assert result.verdict == "TIMEOUT"
    assert _json(_run(sb, "kept")) == [1, 2, 3]


def test_allocation_past_memory_limit_is_memory_limit(factory: SandboxFactory) -> None:
    limits = SessionLimits(memory_bytes=384 * MiB, wall_time_ms=20_000)
    sb = _session(factory, limits)
    _run(sb, "kept = 'still here'")
    # Larger than the container's memory: RLIMIT_AS makes it a MemoryError, so
    # the runner survives instead of the cgroup OOM killer taking the container.
    result = _run(sb, "big = bytearray(512 * 1024 * 1024)")
    assert result.verdict == "MEMORY_LIMIT", result
    assert sb.ping()
    assert _json(_run(sb, "kept")) == "still here"


def test_growing_allocation_is_memory_limit(factory: SandboxFactory) -> None:
    limits = SessionLimits(memory_bytes=384 * MiB, wall_time_ms=30_000)
    sb = _session(factory, limits)
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(8 * 1024 * 1024))\n"
    result = _run(sb, code, timeout=30 + GRACE_S)
    assert result.verdict == "MEMORY_LIMIT", result
    assert sb.ping()


def test_cpu_burner_is_cpu_limit(factory: SandboxFactory) -> None:
    limits = SessionLimits(cpu_time_ms=1000, wall_time_ms=60_000)
    sb = _session(factory, limits)
    _run(sb, "kept = 5")
    done = sb.execute("n = 0\nwhile True:\n    n += 1\n", timeout=60 + GRACE_S)
    assert done.result.verdict == "CPU_LIMIT", done
    assert done.usage.cpu_ms >= 900
    assert _json(_run(sb, "kept")) == 5  # session state survives


def test_output_streams_in_order(factory: SandboxFactory) -> None:
    sb = _session(factory)
    chunks: list[str] = []
    result = _run(sb, "for i in range(2000):\n    print(i)\n", on_output=chunks.append)
    expected = "".join(f"{i}\n" for i in range(2000))
    assert "".join(chunks) == expected
    assert result.stdout == expected
    assert len(chunks) > 1


def test_output_cap(factory: SandboxFactory) -> None:
    sb = _session(factory, SessionLimits(output_bytes=1000))
    chunks: list[str] = []
    result = _run(sb, "for i in range(1000):\n    print('z' * 50)\n", on_output=chunks.append)
    assert len("".join(chunks).encode()) <= 1000
    assert len(result.stdout.encode()) <= 1000
    assert result.truncated is True
    assert result.verdict == "OUTPUT_TRUNCATED"


def test_tool_call_through_the_container(factory: SandboxFactory) -> None:
    tool = {
        "name": "lookup",
        "description": "Look a key up on the client.",
        "inputs": {"key": {"type": "string", "description": "the key"}},
        "output_type": "integer",
    }
    sb = _session(factory, tools=[tool])
    calls: list[ToolCall] = []

    def on_tool_call(call: ToolCall) -> dict[str, Any]:
        calls.append(call)
        if call.args == ["missing"]:
            return {"ok": False, "error": {"type": "KeyError", "message": "missing"}}
        return {"ok": True, "value": len(call.args[0])}

    code = "a = lookup('four')\ntry:\n    lookup('missing')\nexcept KeyError:\n    a += 100\na"
    result = _run(sb, code, on_tool_call=on_tool_call)
    assert _json(result) == 104
    assert [c.name for c in calls] == ["lookup", "lookup"]


def test_files_in_workspace(factory: SandboxFactory) -> None:
    sb = _session(factory)
    sb.write_file("in/data.txt", b"payload")
    assert sb.read_file("in/data.txt") == b"payload"
    with pytest.raises(SandboxRequestError, match="workspace"):
        sb.read_file("../etc/passwd")
    with pytest.raises(SandboxRequestError):
        sb.read_file("/etc/passwd")


def test_runner_exits_when_stdin_closes(factory: SandboxFactory, docker_client: Any) -> None:
    """The daemon dying closes the attach stream: the container goes away by itself."""
    sb = _session(factory)
    sb.close_stdin()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not factory.containers_of(factory.cases[-1]):
            break
        time.sleep(0.2)
    assert factory.containers_of(factory.cases[-1]) == []


def test_runner_exits_when_stdin_closes_during_a_snippet(factory: SandboxFactory) -> None:
    """Even a busy snippet does not keep an orphaned container alive until its timeout."""
    sb = _session(factory, SessionLimits(wall_time_ms=120_000, cpu_time_ms=120_000))
    sb.send({"type": "execute", "id": "busy", "code": "while True:\n    pass\n"})
    time.sleep(0.5)
    sb.close_stdin()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and factory.containers_of(factory.cases[-1]):
        time.sleep(0.2)
    assert factory.containers_of(factory.cases[-1]) == []


# -- raw mode (container layer alone), only through the operator's probe -------


def test_raw_mode_via_probe(
    docker_client: Any, sandbox_image: str, test_instance_id: str, runtime: str
) -> None:
    code = "import os, ctypes\nprint(os.getuid())\nctypes.CDLL(None).prctl(39, 0, 0, 0, 0)"
    result = run_probe(
        code,
        image=sandbox_image,
        client=docker_client,
        instance=test_instance_id,
        runtime=runtime,
    )
    assert result["verdict"] == "OK"
    assert result["runtime"] == runtime
    assert result["stdout"] == "65534\n"
    assert result["value"]["json"] == 1  # PR_GET_NO_NEW_PRIVS
    left = docker_client.containers.list(
        all=True,
        filters={"label": [f"{LABEL_INSTANCE}={test_instance_id}", "io.corral.role=probe"]},
    )
    assert left == []


def test_raw_probe_sees_the_runtimes_kernel(
    docker_client: Any, sandbox_image: str, test_instance_id: str, runtime: str
) -> None:
    """Under gVisor the sandbox's kernel is gVisor's own, never the host's."""
    result = run_probe(
        "import os\nos.uname().release",
        image=sandbox_image,
        client=docker_client,
        instance=test_instance_id,
        runtime=runtime,
    )
    kernel = result["value"]["json"]
    if runtime == "runsc":
        assert kernel != platform.release()
    else:
        assert kernel == platform.release()


def test_raw_memory_bomb_ends_with_verdict(
    docker_client: Any, sandbox_image: str, test_instance_id: str, runtime: str
) -> None:
    result = run_probe(
        "x = bytearray(4 << 30)",
        image=sandbox_image,
        client=docker_client,
        instance=test_instance_id,
        limits=SessionLimits(memory_bytes=384 * MiB),
        runtime=runtime,
    )
    assert result["verdict"] == "MEMORY_LIMIT"


def test_raw_cpu_burner_ends_with_verdict(
    docker_client: Any, sandbox_image: str, test_instance_id: str, runtime: str
) -> None:
    result = run_probe(
        "while True:\n    pass\n",
        image=sandbox_image,
        client=docker_client,
        instance=test_instance_id,
        limits=SessionLimits(cpu_time_ms=1000, wall_time_ms=30_000),
        runtime=runtime,
    )
    assert result["verdict"] == "CPU_LIMIT"


def test_probe_command_line(
    tmp_path: Path, sandbox_image: str, test_instance_id: str, runtime: str
) -> None:
    script = tmp_path / "probe.py"
    script.write_text(
        "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), 2)\n"
        "    reached = True\nexcept OSError:\n    reached = False\nreached\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "executor.cli",
            "probe",
            "--raw",
            str(script),
            "--image",
            sandbox_image,
            "--instance",
            test_instance_id,
            "--runtime",
            runtime,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["verdict"] == "OK"
    assert result["runtime"] == runtime
    assert result["value"]["json"] is False  # no network in the container


def test_probe_requires_raw_flag(tmp_path: Path) -> None:
    script = tmp_path / "p.py"
    script.write_text("1")
    proc = subprocess.run(
        [sys.executable, "-m", "executor.cli", "probe", str(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--raw" in proc.stderr
