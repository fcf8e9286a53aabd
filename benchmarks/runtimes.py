"""Benchmark: the same daemon and sandbox under runc and under runsc (gVisor), in one run.

For each runtime, against the same image on the same engine:

- cold sandbox ready: `Sandbox.start` + init (no pool), what a pool refill costs;
- warm open: OpenSession from a full warm pool (gRPC, daemon as a subprocess),
  each sample after the previous session's container is gone and the pool refilled;
- trivial snippet (`1`) through gRPC, p50 / p99;
- a compute snippet (pure-Python loop, ~50 ms on CPython), p50;
- sessions per second (open, one snippet, close) from 4 concurrent clients;
- host memory per warm sandbox: the container's memory cgroup (usage minus
  page cache) plus the PSS of its processes outside that cgroup (the
  containerd shim, and gVisor's gofer) found by the container id on their
  command line.

Prints each runtime's numbers and runsc / runc ratios. Targets (issue 12):
warm snippet round trip under runsc <= 1.3x runc; warm open <= 1.2x runc.
runsc must be registered (`corrald setup-runtime gvisor`).

    python benchmarks/runtimes.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import psutil  # noqa: E402

from benchmarks.daemon import (  # noqa: E402
    WARM,
    _wait_warm,
    bench_open,
    bench_snippets,
    bench_sustained_daemon,
    daemon_flags,
    summary_ms,
    timed,
)
from executor.daemon.testing import DaemonProcess  # noqa: E402
from executor.limits import SessionLimits  # noqa: E402
from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE  # noqa: E402
from proto import executor_pb2 as pb  # noqa: E402
from proto import executor_pb2_grpc as pb_grpc  # noqa: E402

RUNTIMES = ("runc", "runsc")
COMPUTE = "total = 0\nfor i in range(300000):\n    total += i * i\ntotal"
TARGET_SNIPPET_RATIO = 1.3
TARGET_OPEN_RATIO = 1.2
SETTLE_S = 3.0  # quiet time before each latency measurement
CGROUP_MEMORY = Path("/sys/fs/cgroup/memory/docker")


def settle(client: Any, instance: str, stub: pb_grpc.ExecutorStub, timeout: float = 120) -> None:
    """Until the pool is full and no container of this daemon is still being removed.

    Starting and removing sandboxes is CPU-heavy (more so under gVisor); a
    latency sample taken meanwhile measures that work, not the round trip.
    """
    _wait_warm(stub, WARM)
    deadline = time.monotonic() + timeout
    while (
        len(client.api.containers(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"}))
        > WARM
    ):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    time.sleep(SETTLE_S)


def bench_cold(client: Any, image: str, instance: str, runtime: str, samples: int) -> list[float]:
    from executor.sandbox.driver import Sandbox

    labels = {LABEL_MANAGED: "1", LABEL_INSTANCE: instance, LABEL_ROLE: "bench"}
    limits = SessionLimits()
    out = []
    for _ in range(samples):
        t = time.perf_counter()
        sb = Sandbox.start(client, image, limits, labels=labels, runtime=runtime)
        sb.init(limits=limits.runner_limits())
        out.append(time.perf_counter() - t)
        sb.destroy()
    return out


def bench_compute(stub: pb_grpc.ExecutorStub, n: int) -> list[float]:
    sid = stub.OpenSession(pb.OpenSessionRequest()).session_id
    req = pb.ExecuteRequest(start=pb.ExecuteStart(session_id=sid, code=COMPUTE))
    out = []
    for i in range(n + 2):
        dt = timed(lambda: list(stub.Execute(iter([req]))))
        if i >= 2:
            out.append(dt)
    stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
    return out


def _cgroup_bytes(container_id: str) -> tuple[int, set[int]]:
    """(usage minus page cache, pids in the cgroup) of a container's memory cgroup."""
    base = CGROUP_MEMORY / container_id
    usage = int((base / "memory.usage_in_bytes").read_text())
    stat = dict(
        (k, int(v))
        for k, v in (line.split() for line in (base / "memory.stat").read_text().splitlines())
    )
    pids = {int(p) for p in (base / "cgroup.procs").read_text().split()}
    return usage - stat.get("total_cache", stat.get("cache", 0)), pids


def host_memory_per_sandbox(client: Any, instance: str) -> dict[str, Any]:
    """Mean host memory of the daemon's warm containers: cgroup + outside processes' PSS."""
    per: list[float] = []
    outside_names: set[str] = set()
    for c in client.api.containers(filters={"label": f"{LABEL_INSTANCE}={instance}"}):
        cid = c["Id"]
        try:
            in_cgroup, pids = _cgroup_bytes(cid)
        except OSError:
            continue
        outside = 0
        for proc in psutil.process_iter(["pid", "cmdline", "name"]):
            try:
                cmd = " ".join(proc.info["cmdline"] or [])
                if cid in cmd and proc.info["pid"] not in pids:
                    outside += proc.memory_full_info().pss
                    outside_names.add(str(proc.info["name"]))
            except (psutil.Error, OSError):
                continue
        per.append((in_cgroup + outside) / 2**20)
    return {
        "mib_per_sandbox": round(statistics.mean(per), 1) if per else None,
        "sandboxes": len(per),
        "outside_cgroup": sorted(outside_names),
    }


def measure(client: Any, image: str, runtime: str, quick: bool) -> dict[str, Any]:
    instance = f"bench-{runtime}-{uuid.uuid4().hex[:8]}"
    n_open, n_snip, n_cold, n_comp, secs = (
        (10, 100, 3, 10, 8.0) if quick else (30, 300, 8, 20, 20.0)
    )
    try:
        cold = bench_cold(client, image, instance, runtime, n_cold)
        flags = [
            *daemon_flags(image, instance, warm=WARM, max_containers=16),
            f"--runtime={runtime}",
        ]
        with DaemonProcess(*flags) as d:
            channel = grpc.insecure_channel(d.target)
            stub = pb_grpc.ExecutorStub(channel)
            settle(client, instance, stub)
            memory = host_memory_per_sandbox(client, instance)
            snippet = bench_snippets(stub, n_snip)
            settle(client, instance, stub)
            compute = bench_compute(stub, n_comp)
            settle(client, instance, stub)
            warm_open = bench_open(stub, n_open)
            settle(client, instance, stub)
            sustained = bench_sustained_daemon(d.target, 4, secs)
            channel.close()
    finally:
        for c in client.containers.list(
            all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={instance}"]}
        ):
            try:
                c.remove(force=True)
            except Exception:
                pass
    return {
        "cold_ready": summary_ms(cold),
        "warm_open": summary_ms(warm_open),
        "snippet": summary_ms(snippet),
        "compute": summary_ms(compute),
        "sessions_per_s": sustained["per_s"],
        "sustained_errors": sustained["errors"],
        "memory": memory,
    }


def run(quick: bool = False) -> dict[str, Any]:
    import docker

    from executor.sandbox.image import ensure_image
    from executor.sandbox.runtimes import RUNSC, engine_runtimes

    client = docker.from_env(max_pool_size=32)
    if RUNSC not in engine_runtimes(client):
        raise SystemExit("runsc is not registered: run `corrald setup-runtime gvisor` as root")
    image = ensure_image(client=client)
    results: dict[str, Any] = {"image": image, "cpus": psutil.cpu_count()}
    for runtime in RUNTIMES:
        results[runtime] = measure(client, image, runtime, quick)
    a, b = results["runc"], results["runsc"]

    def ratio(key: str, stat: str = "p50_ms") -> float:
        return round(b[key][stat] / a[key][stat], 2)

    results["ratios"] = {
        "cold_ready_p50": ratio("cold_ready"),
        "warm_open_p50": ratio("warm_open"),
        "warm_open_p99": ratio("warm_open", "p99_ms"),
        "snippet_p50": ratio("snippet"),
        "snippet_p99": ratio("snippet", "p99_ms"),
        "compute_p50": ratio("compute"),
        "sessions_per_s": round(b["sessions_per_s"] / a["sessions_per_s"], 2)
        if a["sessions_per_s"]
        else None,
        "memory": round(b["memory"]["mib_per_sandbox"] / a["memory"]["mib_per_sandbox"], 2)
        if a["memory"]["mib_per_sandbox"] and b["memory"]["mib_per_sandbox"]
        else None,
    }
    return results


def table(r: dict[str, Any]) -> str:
    a, b, q = r["runc"], r["runsc"], r["ratios"]

    def pq(d: dict[str, float]) -> str:
        return f"{d['p50_ms']:.2f} / {d['p99_ms']:.2f}"

    def verdict(value: float, target: float) -> str:
        return f"≤ {target}x: {'pass' if value <= target else '**missed**'}"

    rows = [
        ("measure", "runc", "runsc (gVisor)", "runsc / runc", "target"),
        ("---", "---:", "---:", "---:", "---"),
        ("cold sandbox ready, p50 / p99 ms", pq(a["cold_ready"]), pq(b["cold_ready"]),
         f"{q['cold_ready_p50']}x", ""),
        ("warm open (gRPC), p50 / p99 ms", pq(a["warm_open"]), pq(b["warm_open"]),
         f"{q['warm_open_p50']}x", verdict(q["warm_open_p50"], TARGET_OPEN_RATIO)),
        ("trivial snippet (gRPC), p50 / p99 ms", pq(a["snippet"]), pq(b["snippet"]),
         f"{q['snippet_p50']}x / {q['snippet_p99']}x", verdict(q["snippet_p50"], TARGET_SNIPPET_RATIO)),
        ("compute snippet (300k-step loop), p50 / p99 ms", pq(a["compute"]), pq(b["compute"]),
         f"{q['compute_p50']}x", ""),
        ("sessions/s (open, snippet, close; 4 clients)", f"{a['sessions_per_s']:.2f}",
         f"{b['sessions_per_s']:.2f}", f"{q['sessions_per_s']}x", ""),
        ("host memory per warm sandbox, MiB", f"{a['memory']['mib_per_sandbox']}",
         f"{b['memory']['mib_per_sandbox']}", f"{q['memory']}x", ""),
    ]  # fmt: skip
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    notes = (
        f"\nmemory counts the container's cgroup (no page cache) plus PSS of processes "
        f"outside it: runc {a['memory']['outside_cgroup']}, runsc {b['memory']['outside_cgroup']}"
    )
    return "\n".join(lines) + notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    results = run(quick=args.quick)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
