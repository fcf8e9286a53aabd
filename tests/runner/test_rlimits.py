"""rlimits: the one place turning limits into kernel limits (checked in a child process)."""

from __future__ import annotations

import json
import subprocess
import sys

from executor.runner.rlimits import AS_FLOOR_BYTES, AS_HEADROOM_BYTES, address_space_bytes
from tests.runner.conftest import REPO

MiB = 1 << 20


def _child(code: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_address_space_is_memory_minus_headroom_with_a_floor() -> None:
    assert address_space_bytes(512 * MiB) == 512 * MiB - AS_HEADROOM_BYTES
    assert address_space_bytes(2048 * MiB) == 2048 * MiB - AS_HEADROOM_BYTES
    assert address_space_bytes(64 * MiB) == AS_FLOOR_BYTES  # never below what imports need


def test_apply_rlimits_sets_address_space_and_no_core() -> None:
    got = _child(
        "import json, resource\n"
        "from executor.runner.rlimits import apply_rlimits\n"
        "applied = apply_rlimits({'memory_bytes': 512 << 20})\n"
        "try:\n    bytearray(1 << 30)\n    big = 'allocated'\nexcept MemoryError:\n    big = 'MemoryError'\n"
        "print(json.dumps({'as': resource.getrlimit(resource.RLIMIT_AS)[0],"
        " 'core': resource.getrlimit(resource.RLIMIT_CORE), 'big': big, 'applied': applied}))\n"
    )
    assert got["as"] == 448 * MiB
    assert got["core"] == [0, 0]
    assert got["big"] == "MemoryError"
    assert got["applied"] == {"as_bytes": 448 * MiB, "core_bytes": 0}


def test_cpu_budget_arms_soft_limit_and_lifts_it_after() -> None:
    got = _child(
        "import json, resource\n"
        "from executor.runner.rlimits import cpu_budget\n"
        "with cpu_budget(2500):\n    inside = resource.getrlimit(resource.RLIMIT_CPU)\n"
        "after = resource.getrlimit(resource.RLIMIT_CPU)\n"
        "print(json.dumps({'inside': inside, 'after': after, 'inf': resource.RLIM_INFINITY}))\n"
    )
    soft, hard = got["inside"]  # type: ignore[misc]
    assert 3 <= soft <= 5  # used so far (< 1 s) + 2.5 s, rounded up to whole seconds
    assert hard == got["inf"]  # the hard limit is never lowered: later snippets need room
    assert got["after"] == [got["inf"], got["inf"]]
