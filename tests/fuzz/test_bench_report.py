"""benchmarks/report.py renders one Markdown report with ratio tables and PNG plots.

The benchmarks themselves are slow scripts (run by `make bench`); here the
report is rendered from saved results shaped like theirs, including a missing
benchmark, which must be reported as missing rather than break the report.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402

CONTAINER = {
    "image": "corral-sandbox:x",
    "channel_execute": {"n": 100, "p50_ms": 0.6, "p99_ms": 1.4, "min_ms": 0.4},
    "channel_ping": {"n": 100, "p50_ms": 0.25, "p99_ms": 0.5, "min_ms": 0.2},
    "docker_exec": {"n": 8, "p50_ms": 110.0, "p99_ms": 150.0, "min_ms": 100.0},
    "ratios": {"exec_over_channel_p50": 183.0},
    "targets": {"channel_p50_le_1ms": True, "snippet_ge_50x_docker_exec": True},
}
DAEMON = {
    "open": {
        "warm_pool": {"p50_ms": 3.0, "p99_ms": 6.0, "n": 10},
        "cold_docker_run": {"p50_ms": 600.0, "p99_ms": 800.0, "n": 3},
        "cold_sandbox_ready": {"p50_ms": 900.0, "p99_ms": 1100.0, "n": 3},
        "speedup_p50_vs_docker_run": 200.0,
    },
    "sustained": {
        "daemon_sessions": {"per_s": 3.1},
        "raw_create_start_remove": {"per_s": 3.4},
        "ratio": 0.91,
        "clients": 4,
    },
}


def test_report_from_saved_results(tmp_path: Path) -> None:
    (tmp_path / "container.json").write_text(json.dumps(CONTAINER))
    (tmp_path / "daemon.json").write_text(json.dumps(DAEMON))
    assert report.main(["--from-json", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "REPORT.md").read_text()
    assert "| interpreter | missing" in md
    assert "| container.ratios.exec_over_channel_p50 | 183 |" in md
    assert "| container.targets.channel_p50_le_1ms | PASS |" in md
    assert "| daemon.sustained.ratio | 0.91 |" in md
    assert "| daemon.open.warm_pool | 3.000 | 6.000 | 10 |" in md
    for png in ("latency.png", "session_open.png", "throughput.png"):
        data = (tmp_path / png).read_bytes()
        assert data.startswith(b"\x89PNG"), png
        assert f"]({png})" in md
    assert not (tmp_path / "interpreter.png").exists()


def test_interpreter_series_reads_the_interpreter_benchmark_rows() -> None:
    res = {
        "rows": [
            {
                "snippet": "loops",
                "cpython_s": 0.01,
                "corral_s": 0.012,
                "smolagents_s": 0.9,
                "corral_vs_cpython": 1.2,
            }
        ],
        "geomean_corral_vs_cpython": 1.2,
        "pass_vs_cpython": True,
    }
    assert report.interpreter_series(res) == {
        "loops": {"cpython_s": 0.01, "corral_s": 0.012, "smolagents_s": 0.9}
    }
    rows = dict(report.ratio_rows({"interpreter": res}))
    assert rows["interpreter.geomean_corral_vs_cpython"] == "1.2"
    assert rows["interpreter.pass_vs_cpython"] == "PASS"


def test_interpreter_series_reads_per_snippet_tables() -> None:
    res = {
        "snippets": [{"name": "loops", "cpython_s": 0.01, "corral_s": 0.012, "smolagents_s": 0.9}]
    }
    assert report.interpreter_series(res) == {
        "loops": {"cpython_s": 0.01, "corral_s": 0.012, "smolagents_s": 0.9}
    }


def test_a_failing_benchmark_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    broken = types.ModuleType("benchmarks.broken_for_test")

    def run() -> dict[str, object]:
        raise RuntimeError("docker went away")

    broken.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "benchmarks.broken_for_test", broken)
    outcome = report.run_benchmark("broken", "benchmarks.broken_for_test", quick=True)
    assert outcome["status"] == "failed"
    assert "RuntimeError: docker went away" in outcome["error"]
    assert (
        report.run_benchmark("nope", "benchmarks.no_such_bench", quick=True)["status"] == "missing"
    )
