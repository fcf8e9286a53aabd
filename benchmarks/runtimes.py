"""Benchmark: the same daemon and sandbox under runc and under runsc (gVisor), in one run.

For each runtime, against the same image on the same engine:

- cold sandbox ready: `Sandbox.start` + init (no pool), what a pool refill costs;
- warm open: OpenSession from a full warm pool (gRPC, daemon as a subprocess),
  each sample after the previous session's container is gone and the pool refilled;
- trivial snippet (`1`) through gRPC, p50 / p99;
- a compute snippet (pure-Python loop, ~50 ms on CPython), p50;
- sessions per second (open, one snippet, close) from 4 concurrent clients;
- host memory per warm sandbox: the container's memory cgroup (usage minus
  file page cache; gVisor's Sentry and gofer are inside it) plus the PSS of
  its processes outside that cgroup (the containerd shim), found by the
  container id on their command line.

Both daemons run at the same time and the samples alternate between them
(runc, runsc, runc, ...), so both runtimes see the same background load: on a
shared machine that matters more than anything measured here. Prints each
runtime's numbers and runsc / runc ratios. Targets (issue 12):
warm snippet round trip under runsc <= 1.3x runc; warm open <= 1.2x runc.
runsc must be registered (`corrald setup-runtime gvisor`).

    python benchmarks/runtimes.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
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
    bench_sustained_daemon,
    daemon_flags,
    summary_ms,
)
from executor.daemon.testing import DaemonProcess  # noqa: E402
from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE  # noqa: E402
from proto import executor_pb2 as pb  # noqa: E402
from proto import executor_pb2_grpc as pb_grpc  # noqa: E402
from proto.limits import SessionLimits  # noqa: E402

RUNTIMES = ("runc", "runsc")
COMPUTE = "total = 0\nfor i in range(300000):\n    total += i * i\ntotal"
TARGET_SNIPPET_RATIO = 1.3
TARGET_OPEN_RATIO = 1.2
SETTLE_S = 3.0  # quiet time before each latency measurement
CGROUP_MEMORY = Path("/sys/fs/cgroup/memory/docker")


def settle(
    client: Any,
    instance: str,
    stub: pb_grpc.ExecutorStub,
    timeout: float = 120,
    quiet_s: float | None = None,
) -> None:
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
    time.sleep(SETTLE_S if quiet_s is None else quiet_s)


def bench_cold(client: Any, image: str, instance: str, samples: int) -> dict[str, list[float]]:
    """Cold sandbox ready (start + init, no pool), runtimes interleaved sample by sample."""
    from executor.sandbox.driver import Sandbox

    labels = {LABEL_MANAGED: "1", LABEL_INSTANCE: instance, LABEL_ROLE: "bench"}
    limits = SessionLimits()
    out: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    for _ in range(samples):
        for runtime in RUNTIMES:
            t = time.perf_counter()
            sb = Sandbox.start(client, image, limits, labels=labels, runtime=runtime)
            sb.init(limits=limits.runner_limits())
            out[runtime].append(time.perf_counter() - t)
            sb.destroy()
    return out


def bench_interleaved(
    stubs: dict[str, pb_grpc.ExecutorStub], code: str, n: int, warmup: int
) -> dict[str, list[float]]:
    """One session per runtime; the same snippet alternately on each, so both see one load."""
    sids = {r: stub.OpenSession(pb.OpenSessionRequest()).session_id for r, stub in stubs.items()}
    out: dict[str, list[float]] = {r: [] for r in stubs}
    for i in range(n + warmup):
        for r, stub in stubs.items():
            req = pb.ExecuteRequest(start=pb.ExecuteStart(session_id=sids[r], code=code))
            t = time.perf_counter()
            list(stub.Execute(iter([req])))
            dt = time.perf_counter() - t
            if i >= warmup:
                out[r].append(dt)
    for r, stub in stubs.items():
        stub.CloseSession(pb.CloseSessionRequest(session_id=sids[r]))
    return out


def bench_open_interleaved(
    client: Any, instances: dict[str, str], stubs: dict[str, pb_grpc.ExecutorStub], n: int
) -> dict[str, list[float]]:
    """OpenSession from a full, quiet warm pool, alternating runtimes."""
    out: dict[str, list[float]] = {r: [] for r in stubs}
    for _ in range(n):
        for r, stub in stubs.items():
            settle(client, instances[r], stub, quiet_s=0.2)
            t = time.perf_counter()
            sid = stub.OpenSession(pb.OpenSessionRequest()).session_id
            out[r].append(time.perf_counter() - t)
            stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
    return out


def bench_sessions_interleaved(
    targets: dict[str, str], seconds: float, rounds: int
) -> dict[str, dict[str, Any]]:
    """Sessions/s with 4 clients, in alternating rounds of seconds/rounds per runtime."""
    totals = {r: {"cycles": 0, "seconds": 0.0, "errors": 0} for r in targets}
    for _ in range(rounds):
        for r, target in targets.items():
            got = bench_sustained_daemon(target, 4, seconds / rounds)
            totals[r]["cycles"] += got["cycles"]
            totals[r]["seconds"] += got["seconds"]
            totals[r]["errors"] += got["errors"]
    return {
        r: {**t, "per_s": round(t["cycles"] / t["seconds"], 3) if t["seconds"] else 0.0}
        for r, t in totals.items()
    }


def _cgroup_bytes(container_id: str) -> tuple[int, set[int]]:
    """(usage minus file page cache, pids in the cgroup) of a container's memory cgroup.

    Only file-backed cache is left out: under gVisor the sandbox's own memory
    lives in the Sentry's memfd, which cgroup v1 accounts as shmem (part of
    "cache"), so subtracting all of the cache would hide it.
    """
    base = CGROUP_MEMORY / container_id
    usage = int((base / "memory.usage_in_bytes").read_text())
    stat = dict(
        (k, int(v))
        for k, v in (line.split() for line in (base / "memory.stat").read_text().splitlines())
    )
    files = stat.get("total_active_file", 0) + stat.get("total_inactive_file", 0)
    pids = {int(p) for p in (base / "cgroup.procs").read_text().split()}
    return usage - files, pids


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


def run(quick: bool = False) -> dict[str, Any]:
    import docker

    from executor.sandbox.image import ensure_image
    from executor.sandbox.runtimes import RUNSC, engine_runtimes

    client = docker.from_env(max_pool_size=32)
    if RUNSC not in engine_runtimes(client):
        raise SystemExit("runsc is not registered: run `corrald setup-runtime gvisor` as root")
    image = ensure_image(client=client)
    n_open, n_snip, n_cold, n_comp, secs = (
        (10, 100, 3, 10, 8.0) if quick else (30, 300, 8, 20, 24.0)
    )
    tag = uuid.uuid4().hex[:8]
    instances = {r: f"bench-{r}-{tag}" for r in RUNTIMES}
    results: dict[str, Any] = {"image": image, "cpus": psutil.cpu_count()}
    try:
        cold = bench_cold(client, image, instances["runc"], n_cold)
        with contextlib.ExitStack() as stack:
            daemons = {
                r: stack.enter_context(
                    DaemonProcess(
                        *daemon_flags(image, instances[r], warm=WARM, max_containers=16),
                        f"--runtime={r}",
                    )
                )
                for r in RUNTIMES
            }
            channels = {r: grpc.insecure_channel(d.target) for r, d in daemons.items()}
            stubs = {r: pb_grpc.ExecutorStub(ch) for r, ch in channels.items()}
            for r in RUNTIMES:
                settle(client, instances[r], stubs[r])
            memory = {r: host_memory_per_sandbox(client, instances[r]) for r in RUNTIMES}
            snippet = bench_interleaved(stubs, "1", n_snip, warmup=10)
            compute = bench_interleaved(stubs, COMPUTE, n_comp, warmup=2)
            warm_open = bench_open_interleaved(client, instances, stubs, n_open)
            for r in RUNTIMES:
                settle(client, instances[r], stubs[r])
            sessions = bench_sessions_interleaved(
                {r: d.target for r, d in daemons.items()}, secs, rounds=4
            )
            for ch in channels.values():
                ch.close()
    finally:
        for instance in instances.values():
            for c in client.containers.list(
                all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={instance}"]}
            ):
                try:
                    c.remove(force=True)
                except Exception:
                    pass
    for r in RUNTIMES:
        results[r] = {
            "cold_ready": summary_ms(cold[r]),
            "warm_open": summary_ms(warm_open[r]),
            "snippet": summary_ms(snippet[r]),
            "compute": summary_ms(compute[r]),
            "sessions_per_s": sessions[r]["per_s"],
            "sustained_errors": sessions[r]["errors"],
            "memory": memory[r],
        }
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
        f"\nmemory counts the container's cgroup (no file cache) plus PSS of processes "
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
