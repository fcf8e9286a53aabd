"""`corrald fuzz` end to end against a real daemon: the corpus plus a bounded generated batch.

This is the CI run (the long one is `make fuzz`). It starts the daemon the way
a user does (`python -m executor.cli fuzz`), with the canaries live, and asserts
zero escapes, crashes, hangs and leaks, and that both reports are written. A
second run with a planted "escape" proves the fuzzer would notice one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from executor.fuzz.corpus import CLASSES, load_corpus

ROOT = Path(__file__).resolve().parents[2]
CI_SEED = 20261126
CI_COUNT = 200


def _fuzz(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "executor.cli", "fuzz", "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_corpus_and_generated_batch_have_zero_escapes(
    docker_client: Any, sandbox_image: str, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    proc = _fuzz(
        "--seed", str(CI_SEED), "--count", str(CI_COUNT), "--budget", "1100", "--out", str(out),
        timeout=1400,
    )  # fmt: skip
    assert proc.returncode == 0, f"fuzz failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    data = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    assert data["ok"] is True
    assert data["failures"] == [] and data["final_problems"] == []
    assert data["budget_exhausted"] is False
    assert data["snippets"] == len(load_corpus()) + CI_COUNT
    assert set(CLASSES) <= set(data["counts"]), data["counts"].keys()
    assert "generated" in data["counts"]
    assert all(n == 0 for n in data["escapes_by_class"].values())
    assert "PASS: zero escapes" in md
    for cls in CLASSES:
        assert f"| {cls} | " in md
    assert (out / "daemon.log").stat().st_size > 0


PLANTED = '''class = "introspection"

[[entry]]
id = "planted-shadow-print"
expect = ["OK"]
layers = []
source = "tests/fuzz/test_fuzz_ci.py: shadowing print must not hide the next snippet's marker"
code = """
print = lambda *args: None
"""

[[entry]]
id = "planted-escape"
expect = ["POLICY_DENIED"]
layers = []
source = "tests/fuzz/test_fuzz_ci.py: a harmless snippet that prints the marker, to prove detection"
code = """
print("ESC" + "APED", "planted")
"""

[[entry]]
id = "planted-safe"
expect = ["ERROR"]
layers = []
source = "tests/fuzz/test_fuzz_ci.py: an ordinary error"
code = """
1 / 0
"""
'''


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_a_printed_marker_is_reported_as_an_escape_and_fails_the_run(
    docker_client: Any, sandbox_image: str, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "planted.toml").write_text(PLANTED)
    out = tmp_path / "report"
    proc = _fuzz(
        "--corpus", str(corpus), "--count", "0", "--no-self-check", "--out", str(out), timeout=800
    )
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-2000:]
    data = json.loads((out / "report.json").read_text())
    (failure,) = data["failures"]
    assert failure["id"] == "planted-escape"
    assert any("ESCAPE" in p for p in failure["problems"])
    assert data["statuses"] == {"fail": 1, "pass": 2}
    md = (out / "report.md").read_text()
    assert "planted-escape" in md and 'print("ESC" + "APED", "planted")' in md
    assert "FAIL" in proc.stdout
