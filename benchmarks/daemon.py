"""Daemon benchmark: warm-pool open, snippet round trip, sustained sessions/s, memory.

Each number is printed next to a baseline measured in the same run on the same
machine, because only the ratios carry over to other hosts:

(a) OpenSession from the warm pool vs a cold `docker run` of the same image
    (and vs a cold hardened sandbox with its runner ready, what an open would
    cost without a pool);
(b) a trivial snippet through gRPC vs the same snippet on the raw container
    channel (the driver directly), plus a bare frame ping;
(c) sessions per second (open, one snippet, close) from 4 concurrent clients
    vs the raw hardened-container create/start/remove rate with 4 threads;
(d) the daemon's resident memory with 16 warm containers.

The daemon runs as a `corrald serve` subprocess, as users run it.
Usage: python benchmarks/daemon.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import psutil  # noqa: E402

from executor.daemon.testing import DaemonProcess  # noqa: E402
from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE  # noqa: E402
from proto import executor_pb2 as pb  # noqa: E402
from proto import executor_pb2_grpc as pb_grpc  # noqa: E402
from proto.limits import SessionLimits  # noqa: E402

WARM = 8  # warm containers of the benchmarked daemon


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"p50_ms": round(pct(ms, 50), 3), "p99_ms": round(pct(ms, 99), 3), "n": len(ms)}


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def daemon_flags(image: str, instance: str, warm: int, max_containers: int) -> list[str]:
    return [
        "--listen=127.0.0.1:0",
        f"--image={image}",
        f"--instance-id={instance}",
        "--no-self-check",
        "--metrics-address=0",
        f"--pool-warm={warm}",
        f"--pool-max={max_containers}",
        f"--refill-concurrency={min(4, warm)}",
    ]


def _wait_warm(
    stub: pb_grpc.ExecutorStub, at_least: int, destroyed: int = 0, timeout: float = 120
) -> None:
    """Until the pool is full and quiet: no container start or destroy competes.

    The baselines are measured on an idle engine, so the daemon's samples are
    too; the background refill cost shows up in (c), where it belongs.
    """
    deadline = time.monotonic() + timeout
    while True:
        stats = stub.GetStats(pb.GetStatsRequest())
        if (
            stats.warm >= at_least
            and stats.starting == 0
            and stats.containers_destroyed >= destroyed
        ):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the pool did not refill in time")
        time.sleep(0.02)


def bench_open(stub: pb_grpc.ExecutorStub, samples: int) -> list[float]:
    out = []
    destroyed = 0
    for _ in range(samples):
        _wait_warm(stub, WARM, destroyed)
        t = time.perf_counter()
        sid = stub.OpenSession(pb.OpenSessionRequest()).session_id
        out.append(time.perf_counter() - t)
        stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
        destroyed = stub.GetStats(pb.GetStatsRequest()).containers_destroyed + 1
    return out


def bench_cold(client: Any, image: str, instance: str, samples: int) -> dict[str, list[float]]:
    from executor.sandbox.driver import Sandbox

    labels = {LABEL_MANAGED: "1", LABEL_INSTANCE: instance, LABEL_ROLE: "bench"}
    docker_run, sandbox_open = [], []
    limits = SessionLimits()
    for _ in range(samples):
        docker_run.append(
            timed(lambda: client.containers.run(image, ["true"], remove=True, labels=labels))
        )

        t = time.perf_counter()
        sb = Sandbox.start(client, image, limits, labels=labels)
        sb.init(limits=limits.runner_limits())
        sandbox_open.append(time.perf_counter() - t)
        sb.destroy()
    return {"docker_run": docker_run, "sandbox": sandbox_open}


def bench_snippets(stub: pb_grpc.ExecutorStub, n: int) -> list[float]:
    _wait_warm(stub, WARM)
    sid = stub.OpenSession(pb.OpenSessionRequest()).session_id
    _wait_warm(stub, WARM - 1)
    req = pb.ExecuteRequest(start=pb.ExecuteStart(session_id=sid, code="1"))
    out = []
    for i in range(n + 10):
        dt = timed(lambda: list(stub.Execute(iter([req]))))
        if i >= 10:  # warm-up
            out.append(dt)
    stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
    return out


def bench_raw_channel(client: Any, image: str, instance: str, n: int) -> dict[str, list[float]]:
    from executor.sandbox.driver import Sandbox

    labels = {LABEL_MANAGED: "1", LABEL_INSTANCE: instance, LABEL_ROLE: "bench"}
    limits = SessionLimits()
    sb = Sandbox.start(client, image, limits, labels=labels)
    try:
        sb.init(limits=limits.runner_limits())
        execs, pings = [], []
        for i in range(n + 10):
            dt = timed(lambda: sb.execute("1", timeout=10))
            dp = timed(lambda: sb.ping(5))
            if i >= 10:
                execs.append(dt)
                pings.append(dp)
        return {"execute": execs, "ping": pings}
    finally:
        sb.destroy()


def _concurrent(clients: int, seconds: float, cycle: Callable[[], None]) -> dict[str, Any]:
    stop = time.monotonic() + seconds
    counts = [0] * clients
    errors: list[str] = []

    def worker(i: int) -> None:
        while time.monotonic() < stop:
            try:
                cycle()
                counts[i] += 1
            except Exception as exc:  # reported, not fatal
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                time.sleep(0.05)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    return {
        "per_s": round(sum(counts) / elapsed, 3),
        "cycles": sum(counts),
        "seconds": round(elapsed, 2),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
    }


def bench_sustained_daemon(target: str, clients: int, seconds: float) -> dict[str, Any]:
    channel = grpc.insecure_channel(target)
    stub = pb_grpc.ExecutorStub(channel)

    def cycle() -> None:
        sid = stub.OpenSession(pb.OpenSessionRequest(), timeout=60).session_id
        req = pb.ExecuteRequest(start=pb.ExecuteStart(session_id=sid, code="1"))
        list(stub.Execute(iter([req]), timeout=60))
        stub.CloseSession(pb.CloseSessionRequest(session_id=sid))

    try:
        return _concurrent(clients, seconds, cycle)
    finally:
        channel.close()


def bench_sustained_raw(
    client: Any, image: str, instance: str, clients: int, seconds: float
) -> dict[str, Any]:
    from executor.sandbox.driver import Sandbox

    labels = {LABEL_MANAGED: "1", LABEL_INSTANCE: instance, LABEL_ROLE: "bench"}
    limits = SessionLimits()

    def cycle() -> None:
        sb = Sandbox.start(client, image, limits, labels=labels)
        sb.destroy()

    return _concurrent(clients, seconds, cycle)


def run(
    *,
    open_samples: int = 30,
    cold_samples: int = 8,
    snippets: int = 200,
    sustained_s: float = 20.0,
    clients: int = 4,
    rss_warm: int = 16,
) -> dict[str, Any]:
    import docker

    from executor.sandbox.image import ensure_image

    client = docker.from_env(max_pool_size=32)
    image = ensure_image(client=client)
    instance = f"bench-{uuid.uuid4().hex[:10]}"
    results: dict[str, Any] = {"image": image, "cpus": psutil.cpu_count()}
    try:
        with DaemonProcess(*daemon_flags(image, instance, warm=WARM, max_containers=16)) as d:
            channel = grpc.insecure_channel(d.target)
            stub = pb_grpc.ExecutorStub(channel)
            warm_open = bench_open(stub, open_samples)
            snippet = bench_snippets(stub, snippets)
            _wait_warm(stub, WARM)
            sustained = bench_sustained_daemon(d.target, clients, sustained_s)
            channel.close()
        cold = bench_cold(client, image, instance, cold_samples)
        raw = bench_raw_channel(client, image, instance, snippets)
        raw_rate = bench_sustained_raw(client, image, instance, clients, sustained_s)
        with DaemonProcess(*daemon_flags(image, instance, rss_warm, rss_warm)) as d16:
            rss = psutil.Process(d16.proc.pid).memory_info().rss
    finally:
        for c in client.containers.list(
            all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={instance}"]}
        ):
            try:
                c.remove(force=True)
            except Exception:
                pass

    a = summary_ms(warm_open)
    a_cold = summary_ms(cold["docker_run"])
    a_sandbox = summary_ms(cold["sandbox"])
    results["open"] = {
        "warm_pool": a,
        "cold_docker_run": a_cold,
        "cold_sandbox_ready": a_sandbox,
        "speedup_p50_vs_docker_run": round(a_cold["p50_ms"] / a["p50_ms"], 1),
        "speedup_p50_vs_cold_sandbox": round(a_sandbox["p50_ms"] / a["p50_ms"], 1),
    }
    b = summary_ms(snippet)
    results["snippet"] = {
        "grpc": b,
        "raw_channel_execute": summary_ms(raw["execute"]),
        "raw_channel_ping": summary_ms(raw["ping"]),
    }
    results["sustained"] = {
        "daemon_sessions": sustained,
        "raw_create_start_remove": raw_rate,
        "ratio": round(sustained["per_s"] / raw_rate["per_s"], 3) if raw_rate["per_s"] else None,
        "clients": clients,
    }
    results["memory"] = {"warm_containers": rss_warm, "daemon_rss_mib": round(rss / 2**20, 1)}
    return results


def table(r: dict[str, Any]) -> str:
    o, s, u, m = r["open"], r["snippet"], r["sustained"], r["memory"]
    rows = [
        ("measure", "corral", "baseline", "ratio", "target"),
        (
            "(a) open p50 / p99 (ms)",
            f"{o['warm_pool']['p50_ms']:.2f} / {o['warm_pool']['p99_ms']:.2f}",
            f"docker run {o['cold_docker_run']['p50_ms']:.0f} / {o['cold_docker_run']['p99_ms']:.0f}",
            f"{o['speedup_p50_vs_docker_run']}x",
            "<= 5 ms, >= 100x",
        ),
        (
            "    vs cold hardened sandbox",
            "",
            f"{o['cold_sandbox_ready']['p50_ms']:.0f} / {o['cold_sandbox_ready']['p99_ms']:.0f}",
            f"{o['speedup_p50_vs_cold_sandbox']}x",
            "",
        ),
        (
            "(b) snippet p50 / p99 (ms)",
            f"{s['grpc']['p50_ms']:.2f} / {s['grpc']['p99_ms']:.2f}",
            f"raw {s['raw_channel_execute']['p50_ms']:.2f} / {s['raw_channel_execute']['p99_ms']:.2f}"
            f" (ping {s['raw_channel_ping']['p50_ms']:.2f})",
            f"+{s['grpc']['p50_ms'] - s['raw_channel_execute']['p50_ms']:.2f} ms",
            "<= 2 ms",
        ),
        (
            f"(c) sessions/s, {u['clients']} clients",
            f"{u['daemon_sessions']['per_s']:.2f}",
            f"raw {u['raw_create_start_remove']['per_s']:.2f}",
            f"{u['ratio'] * 100:.0f}%" if u["ratio"] is not None else "n/a",
            ">= 85%",
        ),
        (f"(d) daemon RSS, {m['warm_containers']} warm", f"{m['daemon_rss_mib']} MiB", "", "", ""),
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(5)]
    lines = []
    for i, row in enumerate(rows):
        lines.append(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))
        if i == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        results = run(open_samples=10, cold_samples=3, snippets=50, sustained_s=6.0, rss_warm=4)
    else:
        results = run()
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
