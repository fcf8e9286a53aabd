"""Load benchmark: tail latency, concurrency, bursts, warm open, and the issue #16 targets.

Everything is measured in one run against baselines from the same run,
because the development machine is shared (2 cores) and only ratios carry:

- floor: a bare gRPC echo (unary and bidi stream, generic handlers, no daemon
  work) in a subprocess, and the trivial snippet on the raw container channel;
- before/after: two daemons side by side, "before" with Python's default GC
  (CORRAL_GC_TUNE=0) driven through the streaming Execute, "after" with the
  daemon's GC tuning driven through the unary Run RPC; rounds alternate so the
  host's load falls on both alike; daemon and client CPU per call are reported
  next to latency (CPU hardly depends on the host's load, latency does);
- 1 client and 16 concurrent sessions x 200 snippets, on both daemons;
- warm open (one at a time, the pool refilled between opens);
- 64 clients opening a session and running a first snippet at the same
  instant, pool sized for it (64 warm), then 64 concurrent sessions steady.

The load average is recorded next to every measure. The 10-minute churn (RSS
and fds over time) is `corrald bench load --duration 600`; see README.
Usage: python benchmarks/load.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from executor.bench import load  # noqa: E402

TARGETS = {
    "single_p50_ms": 1.5,
    "single_p99_ms": 4.0,
    "c16_p99_ms": 15.0,
    "burst64_median_ms": 100.0,
    "burst64_slowest_ms": 2000.0,
    "warm_open_p50_ms": 3.0,
}

# -- the gRPC floor: a bare echo server in a subprocess -------------------------------------

ECHO_SERVER = r"""
import asyncio, sys, grpc
async def unary(req, ctx):
    return req
async def bidi(it, ctx):
    async for req in it:
        yield req
async def main():
    h = grpc.method_handlers_generic_handler("echo.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    })
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((h,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()
asyncio.run(main())
"""


def bench_echo(n: int) -> dict[str, Any]:
    import grpc

    proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            unary = ch.unary_unary("/echo.Echo/Unary")
            bidi = ch.stream_stream("/echo.Echo/Bidi")
            payload = b"x" * 64
            u, b = [], []
            for i in range(n + 20):
                t = time.perf_counter()
                unary(payload, timeout=10)
                du = time.perf_counter() - t
                t = time.perf_counter()
                list(bidi(iter([payload]), timeout=10))
                db = time.perf_counter() - t
                if i >= 20:
                    u.append(du)
                    b.append(db)
        return {
            "unary": load.summary_ms(u),
            "bidi": load.summary_ms(b),
            "load": load.loadavg(),
        }
    finally:
        proc.kill()
        proc.wait(10)


def bench_raw_channel(n: int) -> dict[str, Any]:
    """The trivial snippet on the container channel with no daemon (the driver directly)."""
    import docker

    from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE
    from executor.sandbox.driver import Sandbox
    from executor.sandbox.image import ensure_image
    from proto.limits import SessionLimits

    client = docker.from_env()
    instance = f"bench-raw-{os.getpid()}"
    labels = {LABEL_MANAGED: "1", LABEL_INSTANCE: instance, LABEL_ROLE: "bench"}
    limits = SessionLimits()
    sb = Sandbox.start(client, ensure_image(client=client), limits, labels=labels)
    try:
        sb.init(limits=limits.runner_limits())
        out = []
        for i in range(n + 10):
            t = time.perf_counter()
            sb.execute("1", timeout=10)
            if i >= 10:
                out.append(time.perf_counter() - t)
        return {"execute": load.summary_ms(out), "load": load.loadavg()}
    finally:
        sb.destroy()
        load.remove_instance_containers(instance)
        client.close()


# -- before / after -------------------------------------------------------------------------


def _median_of(rounds: list[dict[str, Any]], get: Callable[[dict[str, Any]], float]) -> float:
    return round(statistics.median(get(r) for r in rounds), 3)


def _pooled(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Snippet latencies of all rounds pooled, CPU per call as the median of the rounds."""
    raw = [v / 1000 for r in rounds for v in r["raw"]["snippet_ms"]]
    return {
        "snippet": load.summary_ms(raw),
        "daemon_cpu_ms_per_call": _median_of(rounds, lambda r: r["daemon"]["cpu_ms_per_call"]),
        "client_cpu_ms_per_call": _median_of(rounds, lambda r: r["client_cpu_ms_per_call"]),
        "load1": [r["load_before"][0] for r in rounds],
        "rounds": len(rounds),
        "errors": sum(r["errors"] for r in rounds),
        "raw_ms": [v for r in rounds for v in r["raw"]["snippet_ms"]],
        "daemon_samples": [s for r in rounds for s in r["daemon"].get("samples", [])],
    }


def before_after(rounds: int, single_n: int, c16_n: int) -> dict[str, Any]:
    sides = {
        "before": ({"CORRAL_GC_TUNE": "0"}, "execute"),
        "after": ({"CORRAL_GC_TUNE": "1"}, "run"),
    }
    got: dict[str, dict[str, list[dict[str, Any]]]] = {s: {"single": [], "c16": []} for s in sides}
    with (
        load.own_daemon(17, 40, env=sides["before"][0]) as d_before,
        load.own_daemon(17, 40, env=sides["after"][0]) as d_after,
    ):
        daemons = {"before": d_before, "after": d_after}
        for _ in range(rounds):
            for side, (_, rpc) in sides.items():
                d = daemons[side]
                load.wait_warm(d.target, 17)
                single = load.Scenario(
                    concurrency=1, sessions=1, snippets=single_n, warmup=10, rpc=rpc
                )
                got[side]["single"].append(load.run_scenario(single, d.target, d.proc.pid))
                load.wait_warm(d.target, 17)
                c16 = load.Scenario(concurrency=16, sessions=16, snippets=c16_n, warmup=3, rpc=rpc)
                got[side]["c16"].append(load.run_scenario(c16, d.target, d.proc.pid))
    out: dict[str, Any] = {}
    for side in sides:
        out[side] = {k: _pooled(v) for k, v in got[side].items()}
    for k in ("single", "c16"):
        b, a = out["before"][k]["snippet"], out["after"][k]["snippet"]
        out[f"{k}_p50_ratio_after_over_before"] = round(a["p50_ms"] / b["p50_ms"], 3)
        out[f"{k}_p99_ratio_after_over_before"] = round(a["p99_ms"] / b["p99_ms"], 3)
    return out


# -- warm open, burst, 64 steady -------------------------------------------------------------


def bench_warm_open(samples: int) -> dict[str, Any]:
    import grpc

    from proto import executor_pb2 as pb
    from proto import executor_pb2_grpc as pb_grpc

    out = []
    with load.own_daemon(4, 8) as d, grpc.insecure_channel(d.target) as ch:
        stub = pb_grpc.ExecutorStub(ch)
        for _ in range(samples):
            load.wait_warm(d.target, 4)
            t = time.perf_counter()
            sid = stub.OpenSession(pb.OpenSessionRequest(), timeout=60).session_id
            out.append(time.perf_counter() - t)
            stub.CloseSession(pb.CloseSessionRequest(session_id=sid), timeout=60)
    return {"open": load.summary_ms(out), "raw_ms": [round(v * 1000, 3) for v in out]}


def bench_burst(clients: int, steady_snippets: int) -> dict[str, Any]:
    with load.own_daemon(clients, clients * 2) as d:
        load.wait_warm(d.target, clients, timeout=900)
        burst = load.run_scenario(
            load.Scenario(concurrency=clients, burst=True), d.target, d.proc.pid
        )
        load.wait_warm(d.target, clients, timeout=900)
        steady = load.run_scenario(
            load.Scenario(
                concurrency=clients, sessions=clients, snippets=steady_snippets, warmup=3
            ),
            d.target,
            d.proc.pid,
        )
    return {"burst": burst, "steady": steady}


# -- the run ---------------------------------------------------------------------------------


def run(
    *,
    rounds: int = 3,
    single_n: int = 300,
    c16_n: int = 200,
    open_samples: int = 30,
    burst_clients: int = 64,
    steady_snippets: int = 30,
) -> dict[str, Any]:
    started = load.loadavg()
    echo = bench_echo(single_n)
    raw = bench_raw_channel(single_n)
    ba = before_after(rounds, single_n, c16_n)
    warm_open = bench_warm_open(open_samples)
    burst = bench_burst(burst_clients, steady_snippets)
    b, s = burst["burst"], burst["steady"]
    after = ba["after"]
    targets = {
        "single_p50_ms": after["single"]["snippet"]["p50_ms"],
        "single_p99_ms": after["single"]["snippet"]["p99_ms"],
        "c16_p99_ms": after["c16"]["snippet"]["p99_ms"],
        "burst64_median_ms": b["first"].get("p50_ms", float("nan")),
        "burst64_slowest_ms": b["first"].get("max_ms", float("nan")),
        "warm_open_p50_ms": warm_open["open"]["p50_ms"],
    }
    verdicts = {k: bool(v <= TARGETS[k]) for k, v in targets.items()}
    raw_p50 = raw["execute"]["p50_ms"]
    floor = {
        # What the daemon adds over the channel, and over a bare gRPC round trip of the
        # same shape: comparable across hosts and host loads, unlike the milliseconds.
        "single_after_over_raw_channel_p50": round(
            after["single"]["snippet"]["p50_ms"] / raw_p50, 2
        ),
        "single_after_minus_raw_channel_and_unary_echo_p50_ms": round(
            after["single"]["snippet"]["p50_ms"] - raw_p50 - echo["unary"]["p50_ms"], 3
        ),
        "single_before_minus_raw_channel_and_bidi_echo_p50_ms": round(
            ba["before"]["single"]["snippet"]["p50_ms"] - raw_p50 - echo["bidi"]["p50_ms"], 3
        ),
    }
    verdicts["burst64_no_errors"] = b["errors"] == 0
    return {
        "load_at_start": started,
        "load_at_end": load.loadavg(),
        "floor": {"grpc_echo": echo, "raw_channel": raw},
        "before_after": ba,
        "warm_open": warm_open,
        "burst": {k: v for k, v in b.items() if k != "raw"} | {"first_ms": b["raw"]["first_ms"]},
        "steady64": {
            "snippet": s["snippet"],
            "errors": s["errors"],
            "load_before": s["load_before"],
            "raw_ms": s["raw"]["snippet_ms"],
        },
        "targets": {"measured": targets, "target": TARGETS, "pass": verdicts},
        "over_floor": floor,
    }


def table(r: dict[str, Any]) -> str:
    ba, fl = r["before_after"], r["floor"]

    def cell(s: dict[str, Any]) -> str:
        return f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f}"

    def load1(x: Any) -> str:
        vals = x if isinstance(x, list) else [x]
        return "/".join(f"{v:.1f}" for v in vals)

    rows = [("measure", "p50 / p99 ms", "cpu ms/call d / c", "load1")]
    rows.append(
        (
            "gRPC echo unary (floor)",
            cell(fl["grpc_echo"]["unary"]),
            "",
            load1(fl["grpc_echo"]["load"][0]),
        )
    )
    rows.append(("gRPC echo bidi (floor)", cell(fl["grpc_echo"]["bidi"]), "", ""))
    rows.append(
        (
            "raw channel snippet",
            cell(fl["raw_channel"]["execute"]),
            "",
            load1(fl["raw_channel"]["load"][0]),
        )
    )
    for k, label in (("single", "1 client"), ("c16", "16 sessions x 200")):
        for side in ("before", "after"):
            p = ba[side][k]
            rows.append(
                (
                    f"{label}, {side}",
                    cell(p["snippet"]),
                    f"{p['daemon_cpu_ms_per_call']:.2f} / {p['client_cpu_ms_per_call']:.2f}",
                    load1(p["load1"]),
                )
            )
    rows.append(("warm open", cell(r["warm_open"]["open"]), "", ""))
    b = r["burst"]
    rows.append(
        (
            f"burst {b['scenario']['concurrency']}: open+first snippet (median / slowest)",
            f"{b['first'].get('p50_ms', float('nan')):.1f} / {b['first'].get('max_ms', float('nan')):.1f}",
            f"errors {b['errors']}",
            load1(b["load_before"][0]),
        )
    )
    s = r["steady64"]
    rows.append(
        (
            "64 sessions steady",
            cell(s["snippet"]),
            f"errors {s['errors']}",
            load1(s["load_before"][0]),
        )
    )
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    t = r["targets"]
    lines.append("")
    for k, v in t["measured"].items():
        lines.append(
            f"target {k}: {v} (<= {t['target'][k]}): {'pass' if t['pass'][k] else 'MISSED'}"
        )
    lines.append(f"burst without errors: {t['pass']['burst64_no_errors']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer samples, a burst of 16")
    args = parser.parse_args(argv)
    if args.quick:
        r = run(
            rounds=1, single_n=100, c16_n=30, open_samples=8, burst_clients=16, steady_snippets=10
        )
    else:
        r = run()
    print(table(r))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
