"""Density: host memory per warm and per idle session, and how many idle sessions one host holds.

Starts `corrald serve` (a fresh instance id), then opens sessions one after
another, each running one snippet and then left idle, up to --sessions (500)
with 8 of them kept busy at the end, and samples as it goes:

- each container's cgroup memory (cgroup v1: memory.usage_in_bytes, and the
  same minus page cache), for warm pool containers and for idle sessions;
- the containerd-shim-runc-v2 process of each container (RSS);
- the daemon's RSS, open fds and threads; dockerd's and containerd's;
- the host's MemAvailable (the drop per session is the real cost).

It stops at the first failure and says what broke (the open's error, or the
resource that ran out), or before the host runs short: below --floor-gib of
MemAvailable it stops and reports memory as the limit (the machine is shared).
Every container of its daemon is removed at the end, also on Ctrl-C/SIGTERM.

Usage: python benchmarks/density.py [--sessions 500] [--active 8] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from executor.bench import load  # noqa: E402

MiB = 2**20
CGROUP_MEM = Path("/sys/fs/cgroup/memory/docker")


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def cgroup_memory(container_id: str) -> dict[str, float] | None:
    """Usage and usage minus page cache (MiB) of a container's memory cgroup (v1)."""
    base = CGROUP_MEM / container_id
    try:
        usage = int((base / "memory.usage_in_bytes").read_text())
        stat = dict(
            (k, int(v))
            for k, v in (line.split() for line in (base / "memory.stat").read_text().splitlines())
        )
    except (FileNotFoundError, ValueError):
        return None
    cache = stat.get("total_cache", stat.get("cache", 0))
    return {"usage_mib": usage / MiB, "rss_mib": (usage - cache) / MiB}


def processes() -> list[tuple[int, str, list[str]]]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        out.append((int(entry), comm, [c.decode("utf-8", "replace") for c in cmd if c]))
    return out


def shims_by_container(procs: list[tuple[int, str, list[str]]]) -> dict[str, int]:
    """container id -> pid of its containerd-shim-runc-v2."""
    found = {}
    for pid, comm, cmd in procs:
        if comm.startswith("containerd-shim") and "-id" in cmd:
            i = cmd.index("-id")
            if i + 1 < len(cmd):
                found[cmd[i + 1]] = pid
    return found


def pid_of(procs: list[tuple[int, str, list[str]]], comm: str) -> int | None:
    return next((pid for pid, c, _ in procs if c == comm), None)


def mean(xs: list[float]) -> float:
    return round(sum(xs) / len(xs), 2) if xs else float("nan")


class Density:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.instance = f"bench-density-{uuid.uuid4().hex[:8]}"
        self.samples: list[dict[str, Any]] = []
        self.sessions: list[str] = []
        self.stopped_by = ""
        self.t0 = time.monotonic()

    def container_ids(self, role: str | None = None) -> list[str]:
        import docker

        from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED

        client = docker.from_env()
        try:
            found = client.api.containers(
                filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={self.instance}"]}
            )
        finally:
            client.close()
        return [c["Id"] for c in found]

    def sample(self, daemon_pid: int, stub: Any, note: str = "") -> dict[str, Any]:
        from proto import executor_pb2 as pb

        procs = processes()
        shims = shims_by_container(procs)
        stats = stub.GetStats(pb.GetStatsRequest(), timeout=60)
        ids = self.container_ids()
        cg = [m for cid in ids if (m := cgroup_memory(cid)) is not None]
        shim_rss = [
            s["rss_mib"] for cid in ids if cid in shims if (s := load.proc_sample(shims[cid]))
        ]
        d = load.proc_sample(daemon_pid) or {}
        dockerd = load.proc_sample(pid_of(procs, "dockerd") or -1) or {}
        containerd = load.proc_sample(pid_of(procs, "containerd") or -1) or {}
        row = {
            "t_s": round(time.monotonic() - self.t0, 1),
            "note": note,
            "sessions": len(self.sessions),
            "containers": len(ids),
            "warm": stats.warm,
            "in_use": stats.in_use,
            "mem_available_mib": round(mem_available() / MiB, 1),
            "cgroup_usage_mib_mean": mean([m["usage_mib"] for m in cg]),
            "cgroup_rss_mib_mean": mean([m["rss_mib"] for m in cg]),
            "cgroup_usage_mib_total": round(sum(m["usage_mib"] for m in cg), 1),
            "shim_rss_mib_mean": mean(shim_rss),
            "shim_rss_mib_total": round(sum(shim_rss), 1),
            "daemon_rss_mib": d.get("rss_mib"),
            "daemon_fds": d.get("fds"),
            "daemon_threads": d.get("threads"),
            "dockerd_rss_mib": dockerd.get("rss_mib"),
            "dockerd_fds": dockerd.get("fds"),
            "dockerd_threads": dockerd.get("threads"),
            "containerd_rss_mib": containerd.get("rss_mib"),
            "load1": load.loadavg()[0],
        }
        self.samples.append(row)
        print(
            f"[{row['t_s']:7.1f}s] sessions={row['sessions']:4d} containers={row['containers']:4d} "
            f"avail={row['mem_available_mib']:.0f}MiB cgroup={row['cgroup_usage_mib_mean']}MiB "
            f"shim={row['shim_rss_mib_mean']}MiB daemon={row['daemon_rss_mib']}MiB/"
            f"{row['daemon_fds']}fds/{row['daemon_threads']}thr dockerd={row['dockerd_rss_mib']}MiB/"
            f"{row['dockerd_threads']}thr load={row['load1']} {note}",
            flush=True,
        )
        return row

    def run(self) -> dict[str, Any]:
        import grpc

        from proto import executor_pb2 as pb
        from proto import executor_pb2_grpc as pb_grpc

        a = self.args
        warm = a.warm
        extra = ["--open-wait-s=300", f"--min-available-memory-bytes={int(a.floor_gib * 2**30)}"]
        from executor.daemon.testing import DaemonProcess
        from executor.sandbox.image import ensure_image

        image = ensure_image()
        flags = load.daemon_flags(image, self.instance, warm, a.sessions + warm + 8, extra)
        result: dict[str, Any] = {"instance": self.instance, "target_sessions": a.sessions}
        with DaemonProcess(*flags) as d, grpc.insecure_channel(d.target) as ch:
            stub = pb_grpc.ExecutorStub(ch)
            load.wait_warm(d.target, warm, timeout=600)
            base = self.sample(d.proc.pid, stub, "warm pool only")
            result["daemon_rss_mib_with_warm_pool"] = base["daemon_rss_mib"]
            result["warm_container_cgroup_mib"] = base["cgroup_usage_mib_mean"]
            result["warm_container_cgroup_rss_mib"] = base["cgroup_rss_mib_mean"]
            result["warm_container_shim_rss_mib"] = base["shim_rss_mib_mean"]
            avail0 = mem_available()
            deadline = time.monotonic() + a.max_seconds
            open_ms: list[float] = []
            limits = pb.Limits(idle_timeout_s=3600)
            while len(self.sessions) < a.sessions:
                if time.monotonic() > deadline:
                    self.stopped_by = f"time budget ({a.max_seconds:g} s) reached"
                    break
                if mem_available() < a.floor_gib * 2**30:
                    self.stopped_by = (
                        f"memory: host MemAvailable below the {a.floor_gib} GiB safety floor"
                    )
                    break
                t = time.perf_counter()
                try:
                    sid = stub.OpenSession(
                        pb.OpenSessionRequest(limits=limits), timeout=600
                    ).session_id
                    open_ms.append((time.perf_counter() - t) * 1000)
                    stub.Run(pb.ExecuteStart(session_id=sid, code="x = 1"), timeout=120)
                except grpc.RpcError as exc:
                    self.stopped_by = f"open/run failed: {exc.code().name}: {exc.details()[:300]}"
                    break
                self.sessions.append(sid)
                if len(self.sessions) % a.every == 0:
                    self.sample(d.proc.pid, stub)
            n = len(self.sessions)
            full = self.sample(d.proc.pid, stub, f"{n} idle sessions")
            result["sessions_held"] = n
            result["stopped_by"] = self.stopped_by or "reached the target"
            result["open_ms"] = load.summary_ms([v / 1000 for v in open_ms])
            if n:
                result["host_mib_per_idle_session"] = round((avail0 - mem_available()) / MiB / n, 2)
                result["idle_session_cgroup_mib"] = full["cgroup_usage_mib_mean"]
                result["idle_session_cgroup_rss_mib"] = full["cgroup_rss_mib_mean"]
                result["idle_session_shim_rss_mib"] = full["shim_rss_mib_mean"]
                # Accounted per idle session: its cgroup, its shim, its share of the
                # daemon and of dockerd (MemAvailable is noisy on a shared host).
                result["accounted_mib_per_idle_session"] = round(
                    full["cgroup_usage_mib_mean"]
                    + full["shim_rss_mib_mean"]
                    + max(0.0, full["daemon_rss_mib"] - base["daemon_rss_mib"]) / n
                    + max(0.0, full["dockerd_rss_mib"] - base["dockerd_rss_mib"]) / n,
                    2,
                )
                result["daemon_kib_per_session"] = round(
                    (full["daemon_rss_mib"] - base["daemon_rss_mib"]) * 1024 / n, 1
                )
                result["daemon_fds_per_session"] = round(
                    (full["daemon_fds"] - base["daemon_fds"]) / n, 2
                )
                result["dockerd_kib_per_session"] = round(
                    (full["dockerd_rss_mib"] - base["dockerd_rss_mib"]) * 1024 / n, 1
                )
                result["dockerd_threads_per_session"] = round(
                    (full["dockerd_threads"] - base["dockerd_threads"]) / n, 2
                )
                # 8 active among the idle: snippet latency while the host holds them all.
                active = self.sessions[: a.active]
                lat: list[float] = []
                errors: list[str] = []
                import threading

                def busy(sid: str) -> None:
                    with grpc.insecure_channel(d.target) as c2:
                        s2 = pb_grpc.ExecutorStub(c2)
                        end = time.monotonic() + a.active_seconds
                        while time.monotonic() < end:
                            t = time.perf_counter()
                            try:
                                s2.Run(pb.ExecuteStart(session_id=sid, code="x + 1"), timeout=60)
                                lat.append(time.perf_counter() - t)
                            except grpc.RpcError as exc:
                                errors.append(f"{exc.code().name}: {exc.details()[:200]}")

                threads = [threading.Thread(target=busy, args=(s,)) for s in active]
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()
                result["active"] = {
                    "sessions": len(active),
                    "snippet": load.summary_ms(lat),
                    "errors": len(errors),
                    "error_samples": sorted(set(errors))[:3],
                    "load1": load.loadavg()[0],
                }
                self.sample(d.proc.pid, stub, f"after {len(active)} active")
        result["samples"] = self.samples
        result["load_end"] = load.loadavg()
        return result


def run(
    *,
    sessions: int = 500,
    active: int = 8,
    warm: int = 16,
    every: int = 25,
    floor_gib: float = 3.0,
    max_seconds: float = 1500.0,
    active_seconds: float = 20.0,
) -> dict[str, Any]:
    args = argparse.Namespace(
        sessions=sessions,
        active=active,
        warm=warm,
        every=every,
        floor_gib=floor_gib,
        max_seconds=max_seconds,
        active_seconds=active_seconds,
    )
    return _guarded(Density(args))


def _guarded(density: Density) -> dict[str, Any]:
    """Run with SIGTERM turned into KeyboardInterrupt; always remove the instance's containers."""

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        return density.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        removed = load.remove_instance_containers(density.instance)
        if removed:
            print(f"removed {removed} leftover containers of {density.instance}", flush=True)


def table(r: dict[str, Any]) -> str:
    keys = [
        "sessions_held",
        "stopped_by",
        "warm_container_cgroup_mib",
        "warm_container_cgroup_rss_mib",
        "warm_container_shim_rss_mib",
        "idle_session_cgroup_mib",
        "idle_session_cgroup_rss_mib",
        "idle_session_shim_rss_mib",
        "host_mib_per_idle_session",
        "accounted_mib_per_idle_session",
        "daemon_rss_mib_with_warm_pool",
        "daemon_kib_per_session",
        "daemon_fds_per_session",
        "dockerd_kib_per_session",
        "dockerd_threads_per_session",
    ]
    lines = [f"{k}: {r.get(k)}" for k in keys]
    if "open_ms" in r and r["open_ms"].get("n"):
        o = r["open_ms"]
        lines.append(f"open+refill p50 / p99: {o['p50_ms']:.1f} / {o['p99_ms']:.1f} ms")
    if "active" in r:
        s = r["active"]["snippet"]
        lines.append(
            f"{r['active']['sessions']} active among the idle: snippet p50 / p99 "
            f"{s.get('p50_ms')} / {s.get('p99_ms')} ms, errors {r['active']['errors']}, "
            f"load1 {r['active']['load1']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--active", type=int, default=8)
    parser.add_argument("--warm", type=int, default=16)
    parser.add_argument("--every", type=int, default=25, help="sample every N sessions")
    parser.add_argument("--floor-gib", type=float, default=3.0, help="stop below this MemAvailable")
    parser.add_argument("--max-seconds", type=float, default=1500.0)
    parser.add_argument("--active-seconds", type=float, default=20.0)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    r = _guarded(Density(args))
    print(table(r))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
