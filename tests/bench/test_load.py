"""`corrald bench load`: a tiny scenario against a real daemon reports every field.

Functional only: nothing here asserts how fast anything is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from executor.bench import load
from executor.cli import build_parser
from executor.daemon.testing import DaemonHandle, running_daemon


@pytest.fixture(scope="module")
def daemon(docker_client, sandbox_image, test_instance_id) -> Iterator[DaemonHandle]:
    with running_daemon(
        image=sandbox_image,
        instance_id=test_instance_id,
        docker_client=docker_client,
        pool_warm=2,
        pool_max=4,
    ) as handle:
        yield handle


def test_steady_scenario_reports_latency_rate_errors_and_daemon_resources(daemon):
    scenario = load.Scenario(concurrency=2, sessions=2, snippets=3, mix="mixed")
    # The daemon runs in this process (a thread): its /proc entry is ours.
    r = load.run_scenario(scenario, daemon.target, pid=os.getpid())
    assert r["errors"] == 0, r["error_samples"]
    assert r["sessions_done"] == 2
    assert r["snippets"] == 6
    assert r["sessions_per_s"] > 0
    for name in ("snippet", "open", "close"):
        s = r[name]
        assert s["n"] > 0
        assert 0 < s["p50_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert sum(r["verdicts"].values()) == 6 and set(r["verdicts"]) == {"OK"}
    d = r["daemon"]
    assert d["pid"] == os.getpid() and d["samples"]
    assert d["rss_mib_end"] > 0 and d["fds_end"] > 0 and d["threads_max"] >= 1
    assert len(r["raw"]["snippet_ms"]) == 6
    assert len(r["load_before"]) == 3
    json.dumps(r)  # the JSON output is plain data
    text = load.table(r)
    assert "snippet latency p50 / p99" in text and "daemon fds" in text


def test_burst_opens_all_clients_and_runs_a_first_snippet(daemon):
    r = load.run_scenario(load.Scenario(concurrency=2, burst=True), daemon.target)
    assert r["errors"] == 0, r["error_samples"]
    assert r["first"]["n"] == 2 and r["open"]["n"] == 2
    assert r["sessions_done"] == 2  # closed after the burst
    assert r["daemon"] == {"pid": None, "samples": []}  # no pid given: nothing sampled


def test_errors_are_counted_not_raised(daemon):
    # A session that does not exist: every run fails, the tool reports it.
    scenario = load.Scenario(concurrency=1, sessions=1, snippets=1)

    async def bad_open(self: load.Client) -> str:
        return "no-such-session"

    original = load.Client.open
    load.Client.open = bad_open  # type: ignore[method-assign]
    try:
        r = load.run_scenario(scenario, daemon.target)
    finally:
        load.Client.open = original  # type: ignore[method-assign]
    assert r["errors"] >= 1
    assert any("NOT_FOUND" in e or "not" in e.lower() for e in r["error_samples"])


def test_cli_is_registered_and_rejects_an_unbounded_scenario(capsys):
    args = build_parser().parse_args(["bench", "load", "--concurrency", "2"])
    assert args.func is load.cmd_load
    assert args.func(args) == 2
    assert "give --sessions or --duration" in capsys.readouterr().err


def test_percentiles_and_proc_sample():
    assert load.pct([3.0, 1.0, 2.0], 50) == 2.0
    assert load.summary_ms([]) == {"n": 0}
    s = load.proc_sample(os.getpid())
    assert s is not None and s["rss_mib"] > 0 and s["fds"] > 0
    assert load.proc_sample(2**22 + 12345) is None
