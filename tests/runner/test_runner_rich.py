"""The runner's rich-output frames, over pipes (no Docker): stderr, artifacts, tracebacks."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runner.conftest import RunnerProcess

IMPORTS = ["PIL", "PIL.*", "matplotlib", "matplotlib.*"]


@pytest.fixture
def proc(workspace: Path) -> Iterator[RunnerProcess]:
    r = RunnerProcess(workspace)
    assert r.recv()["type"] == "ready"
    yield r
    r.close()


def test_stderr_frames_are_marked_and_keep_their_order(proc: RunnerProcess) -> None:
    proc.init(limits={"wall_time_ms": 10_000})
    code = "import sys\nprint('a')\nprint('b', file=sys.stderr)\nprint('c')"
    result, before = proc.execute(code)
    assert result["stdout"] == "a\nc\n" and result["stderr"] == "b\n"
    assert [(f.get("stream", "stdout"), f["data"]) for f in before] == [
        ("stdout", "a\n"),
        ("stderr", "b\n"),
        ("stdout", "c\n"),
    ]


def test_each_artifact_is_its_own_frame_and_the_result_holds_no_bytes(
    proc: RunnerProcess,
) -> None:
    proc.init(authorized_imports=IMPORTS, limits={"wall_time_ms": 20_000})
    code = (
        "from PIL import Image\nprint('one')\ndisplay(Image.new('RGB', (30, 20)))\n"
        "print('two')\ndisplay(Image.new('L', (5, 4)))"
    )
    result, before = proc.execute(code, timeout=30)
    assert result["verdict"] == "OK", result["error"]
    assert "artifacts" not in result
    assert [f["type"] for f in before] == ["output", "artifact", "output", "artifact"]
    arts = [f for f in before if f["type"] == "artifact"]
    assert [(a["name"], a["metadata"]) for a in arts] == [
        ("image-1", {"width": 30, "height": 20}),
        ("image-2", {"width": 5, "height": 4}),
    ]
    assert all(base64.b64decode(a["data_b64"]).startswith(b"\x89PNG") for a in arts)


def test_artifact_limits_come_from_init(proc: RunnerProcess) -> None:
    proc.init(
        authorized_imports=IMPORTS,
        limits={"wall_time_ms": 20_000, "max_artifacts": 1, "max_artifact_bytes": 2048},
    )
    code = "from PIL import Image\nfor i in range(3):\n    display(Image.new('RGB', (8, 8)))\n"
    result, before = proc.execute(code, timeout=30)
    assert [f["type"] for f in before].count("artifact") == 1
    assert "max_artifacts" in result["stderr"]
    # Per-snippet limits only lower: 0 artifacts is not a request, 1 stays 1.
    result, before = proc.execute(code, timeout=30, limits={"max_artifacts": 5})
    assert [f["type"] for f in before].count("artifact") == 1


def test_memory_error_names_the_sessions_memory_limit(proc: RunnerProcess) -> None:
    proc.init(limits={"memory_bytes": 512 << 20})
    result, _ = proc.execute("big = bytearray(2 << 30)")
    assert result["verdict"] == "MEMORY_LIMIT"
    assert "536870912 bytes" in result["error"]["message"]
    assert "memory_bytes" in result["error"]["message"]


def test_error_frames_reach_the_result_frame(proc: RunnerProcess) -> None:
    proc.init()
    proc.execute("def inner(x):\n    return 1 / x\n")
    result, _ = proc.execute("inner(0)")
    error = result["error"]
    assert [(f["snippet"], f["line"], f["function"]) for f in error["frames"]] == [
        (2, 1, "<module>"),
        (1, 2, "inner"),
    ]
    assert error["traceback"].endswith("ZeroDivisionError: division by zero")
