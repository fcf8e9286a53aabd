"""`corrald bench load`: run a load scenario against a daemon and report latency and resources.

A scenario is a number of concurrent clients, each of which opens a session,
runs `snippets` snippets drawn from a weighted mix, and closes it, over and
over, until `sessions` sessions are done or `duration` seconds have passed
(whichever comes first; 0 means "no bound" for either, not both). `--burst`
instead starts `concurrency` clients behind a barrier that each open a session
and run one snippet at the same instant.

    corrald bench load --concurrency 16 --snippets 200 --sessions 16
    corrald bench load --burst --concurrency 64 --pool-warm 64
    corrald bench load --duration 600 --concurrency 4 --snippets 5   # churn
    corrald bench load --target 127.0.0.1:50051 ...                   # a running daemon

Without `--target` the tool starts `corrald serve` itself (through
executor.daemon.testing.DaemonProcess), samples the daemon's resident memory,
open file descriptors and threads from /proc/<pid> while the scenario runs, and
removes every container of that daemon at the end. Output: a table, and with
`--json PATH` the full result (latency summaries, raw samples for plots, the
resource time series, the load average before and after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Snippet mixes by name: (code, weight). "trivial" is the latency probe of the
# benchmarks; "mixed" adds printing, a little compute and state.
MIXES: dict[str, tuple[tuple[str, int], ...]] = {
    "trivial": (("1", 1),),
    "mixed": (
        ("1", 6),
        ("x = [i * i for i in range(200)]\nsum(x)", 2),
        ("print('hello ' * 20)", 1),
        ("d = {str(i): i for i in range(100)}\nlen(d)", 1),
    ),
}
RAW_CAP = 50_000  # raw latency samples kept in the JSON (for distribution plots)


@dataclass(frozen=True)
class Scenario:
    concurrency: int = 4
    sessions: int = 0  # total sessions to open (0 = until duration)
    snippets: int = 10  # snippets per session
    duration_s: float = 0.0  # 0 = until `sessions` are done
    mix: str = "trivial"
    burst: bool = False  # concurrency clients open + run one snippet at the same instant
    rpc: str = "auto"  # "execute", "run" (unary, when the daemon has it) or "auto"
    warmup: int = 0  # snippets per session not counted (the first of a fresh container)
    timeout_s: float = 60.0  # per call

    def check(self) -> None:
        if self.concurrency < 1:
            raise ValueError("--concurrency must be at least 1")
        if not self.burst and self.sessions <= 0 and self.duration_s <= 0:
            raise ValueError("give --sessions or --duration (or --burst)")
        if self.mix not in MIXES:
            raise ValueError(f"unknown --mix {self.mix!r}; choose from {sorted(MIXES)}")
        if self.rpc not in ("auto", "execute", "run"):
            raise ValueError("--rpc must be auto, execute or run")


@dataclass
class Recorder:
    snippet_s: list[float] = field(default_factory=list)
    open_s: list[float] = field(default_factory=list)
    first_s: list[float] = field(default_factory=list)  # burst: open + first snippet
    close_s: list[float] = field(default_factory=list)
    sessions_done: int = 0
    errors: list[str] = field(default_factory=list)
    verdicts: dict[str, int] = field(default_factory=dict)

    def error(self, where: str, exc: BaseException) -> None:
        self.errors.append(f"{where}: {type(exc).__name__}: {exc}"[:300])


# -- statistics --------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile by nearest rank on the sorted values (nan when empty)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50_ms": round(pct(ms, 50), 3),
        "p90_ms": round(pct(ms, 90), 3),
        "p99_ms": round(pct(ms, 99), 3),
        "max_ms": round(max(ms), 3),
        "min_ms": round(min(ms), 3),
        "mean_ms": round(sum(ms) / len(ms), 3),
    }


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# -- daemon resources from /proc ---------------------------------------------------------------


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_sample(pid: int) -> dict[str, float] | None:
    """RSS (MiB), open fds and threads of a process, from /proc/<pid> (None when gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rss_kib = threads = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return {"rss_mib": round(rss_kib / 1024, 2), "fds": fds, "threads": threads}


class Sampler:
    """Samples a pid every `interval` seconds in a thread until stopped."""

    def __init__(self, pid: int | None, interval: float = 1.0) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="corral-bench-sampler", daemon=True)

    def _take(self) -> None:
        if self.pid is None:
            return
        s = proc_sample(self.pid)
        if s is not None:
            s["t_s"] = round(time.monotonic() - self._t0, 2)
            s["load1"] = loadavg()[0] if loadavg() else float("nan")
            self.samples.append(s)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def __enter__(self) -> Sampler:
        self._t0 = time.monotonic()
        self._take()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._take()

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {"pid": self.pid, "samples": []}
        first, last = self.samples[0], self.samples[-1]
        tail = self.samples[len(self.samples) // 2 :]  # after warm-up: the flatness check
        return {
            "pid": self.pid,
            "rss_mib_start": first["rss_mib"],
            "rss_mib_end": last["rss_mib"],
            "rss_mib_max": max(s["rss_mib"] for s in self.samples),
            "fds_start": first["fds"],
            "fds_end": last["fds"],
            "fds_max": max(s["fds"] for s in self.samples),
            "threads_max": max(s["threads"] for s in self.samples),
            "rss_mib_second_half_growth": round(tail[-1]["rss_mib"] - tail[0]["rss_mib"], 2),
            "fds_second_half_growth": tail[-1]["fds"] - tail[0]["fds"],
            "samples": self.samples,
        }


# -- the scenario ------------------------------------------------------------------------------


class Client:
    """One gRPC channel and the calls a load client makes (generated stubs, grpc.aio)."""

    def __init__(self, target: str, scenario: Scenario, has_run: bool) -> None:
        import grpc

        from proto import executor_pb2 as pb
        from proto import executor_pb2_grpc as pb_grpc

        self.pb = pb
        self.channel = grpc.aio.insecure_channel(target)
        self.stub = pb_grpc.ExecutorStub(self.channel)
        self.timeout = scenario.timeout_s
        self.use_run = scenario.rpc == "run" or (scenario.rpc == "auto" and has_run)

    async def open(self) -> str:
        resp = await self.stub.OpenSession(self.pb.OpenSessionRequest(), timeout=self.timeout)
        return str(resp.session_id)

    async def run(self, session_id: str, code: str) -> str:
        """The verdict name of one snippet."""
        pb = self.pb
        start = pb.ExecuteStart(session_id=session_id, code=code)
        if self.use_run:
            result = await self.stub.Run(start, timeout=self.timeout)  # type: ignore[attr-defined]
        else:
            result = None
            call = self.stub.Execute(iter([pb.ExecuteRequest(start=start)]), timeout=self.timeout)
            async for resp in call:
                if resp.WhichOneof("kind") == "result":
                    result = resp.result
            if result is None:
                raise RuntimeError("Execute ended without a result")
        return str(pb.Verdict.Name(result.verdict).removeprefix("VERDICT_"))

    async def close_session(self, session_id: str) -> None:
        await self.stub.CloseSession(
            self.pb.CloseSessionRequest(session_id=session_id), timeout=self.timeout
        )

    async def aclose(self) -> None:
        await self.channel.close()


def _daemon_has_run() -> bool:
    from proto import executor_pb2_grpc as pb_grpc

    return hasattr(pb_grpc.ExecutorStub, "Run") or "Run" in getattr(
        pb_grpc.ExecutorServicer, "__dict__", {}
    )


async def _steady(scenario: Scenario, target: str, rec: Recorder) -> float:
    codes = [c for c, _ in MIXES[scenario.mix]]
    weights = [w for _, w in MIXES[scenario.mix]]
    has_run = _daemon_has_run()
    clients = [Client(target, scenario, has_run) for _ in range(scenario.concurrency)]
    started = time.monotonic()
    deadline = started + scenario.duration_s if scenario.duration_s > 0 else float("inf")
    budget = [scenario.sessions if scenario.sessions > 0 else sys.maxsize]

    async def worker(client: Client, seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            t = time.perf_counter()
            try:
                sid = await client.open()
            except Exception as exc:
                rec.error("open", exc)
                await asyncio.sleep(0.05)
                continue
            rec.open_s.append(time.perf_counter() - t)
            try:
                for i in range(scenario.snippets):
                    if time.monotonic() >= deadline:
                        break
                    code = rng.choices(codes, weights)[0]
                    t = time.perf_counter()
                    verdict = await client.run(sid, code)
                    dt = time.perf_counter() - t
                    rec.verdicts[verdict] = rec.verdicts.get(verdict, 0) + 1
                    if i >= scenario.warmup:
                        rec.snippet_s.append(dt)
            except Exception as exc:
                rec.error("run", exc)
            t = time.perf_counter()
            try:
                await client.close_session(sid)
                rec.close_s.append(time.perf_counter() - t)
                rec.sessions_done += 1
            except Exception as exc:
                rec.error("close", exc)

    try:
        await asyncio.gather(*(worker(c, i) for i, c in enumerate(clients)))
    finally:
        for c in clients:
            await c.aclose()
    return time.monotonic() - started


async def _burst(scenario: Scenario, target: str, rec: Recorder) -> float:
    """`concurrency` clients, each on its own channel, connected first, then released at once."""
    has_run = _daemon_has_run()
    clients = [Client(target, scenario, has_run) for _ in range(scenario.concurrency)]
    for c in clients:
        await c.channel.channel_ready()
    gate = asyncio.Event()
    sessions: list[str] = []

    async def one(client: Client) -> None:
        await gate.wait()
        t = time.perf_counter()
        try:
            sid = await client.open()
            rec.open_s.append(time.perf_counter() - t)
            sessions.append(sid)
            verdict = await client.run(sid, "1")
            rec.first_s.append(time.perf_counter() - t)
            rec.verdicts[verdict] = rec.verdicts.get(verdict, 0) + 1
        except Exception as exc:
            rec.error("burst", exc)

    tasks = [asyncio.create_task(one(c)) for c in clients]
    await asyncio.sleep(0.1)  # every task is parked on the gate
    started = time.monotonic()
    gate.set()
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    for sid, c in zip(sessions, clients):
        try:
            await c.close_session(sid)
            rec.sessions_done += 1
        except Exception as exc:
            rec.error("close", exc)
    for c in clients:
        await c.aclose()
    return elapsed


def run_scenario(scenario: Scenario, target: str, pid: int | None = None) -> dict[str, Any]:
    """Run one scenario against `target`; sample `pid` (the daemon) when given."""
    scenario.check()
    rec = Recorder()
    load_before = loadavg()
    cpu_before = proc_cpu_s(pid) if pid is not None else None
    client_cpu = time.process_time()
    with Sampler(pid, interval=1.0 if scenario.duration_s < 120 else 5.0) as sampler:
        coro = _burst if scenario.burst else _steady
        elapsed = asyncio.run(coro(scenario, target, rec))
    client_cpu = time.process_time() - client_cpu
    cpu_after = proc_cpu_s(pid) if pid is not None else None
    calls = max(1, len(rec.snippet_s) + len(rec.open_s) + len(rec.close_s))
    out: dict[str, Any] = {
        "scenario": asdict(scenario),
        "target": target,
        "elapsed_s": round(elapsed, 3),
        "load_before": load_before,
        "load_after": loadavg(),
        "sessions_done": rec.sessions_done,
        "sessions_per_s": round(rec.sessions_done / elapsed, 3) if elapsed > 0 else 0.0,
        "snippets": len(rec.snippet_s),
        "snippets_per_s": round(len(rec.snippet_s) / elapsed, 2) if elapsed > 0 else 0.0,
        "snippet": summary_ms(rec.snippet_s),
        "open": summary_ms(rec.open_s),
        "close": summary_ms(rec.close_s),
        "verdicts": rec.verdicts,
        "errors": len(rec.errors),
        "error_samples": sorted(set(rec.errors))[:5],
        "daemon": sampler.summary(),
        # CPU per call (snippets + opens + closes) hardly depends on how busy the host
        # is, unlike latency: the number to compare across runs on a shared machine.
        "client_cpu_ms_per_call": round(client_cpu * 1000 / calls, 3),
        "raw": {
            "snippet_ms": [round(v * 1000, 3) for v in rec.snippet_s[:RAW_CAP]],
            "open_ms": [round(v * 1000, 3) for v in rec.open_s[:RAW_CAP]],
        },
    }
    if cpu_before is not None and cpu_after is not None:
        out["daemon"]["cpu_ms_per_call"] = round((cpu_after - cpu_before) * 1000 / calls, 3)
    if scenario.burst:
        out["first"] = summary_ms(rec.first_s)
        out["raw"]["first_ms"] = [round(v * 1000, 3) for v in rec.first_s]
    return out


# -- a daemon of our own -----------------------------------------------------------------------


def daemon_flags(
    image: str, instance: str, warm: int, max_containers: int, extra: Sequence[str] = ()
) -> list[str]:
    return [
        "--listen=127.0.0.1:0",
        f"--image={image}",
        f"--instance-id={instance}",
        "--no-self-check",
        "--metrics-address=0",
        f"--pool-warm={warm}",
        f"--pool-max={max_containers}",
        f"--refill-concurrency={max(1, min(4, warm))}",
        "--open-wait-s=120",
        *extra,
    ]


def remove_instance_containers(instance: str) -> int:
    """Force-remove every container labelled with this daemon instance (ours only)."""
    import docker

    from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED

    client = docker.from_env()
    removed = 0
    try:
        for c in client.containers.list(
            all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={instance}"]}
        ):
            try:
                c.remove(force=True)
                removed += 1
            except Exception:
                pass
    finally:
        client.close()
    return removed


@contextmanager
def own_daemon(
    warm: int, max_containers: int, extra: Sequence[str] = (), env: dict[str, str] | None = None
) -> Iterator[Any]:
    """A `corrald serve` subprocess with a fresh instance id; its containers removed after."""
    from executor.daemon.testing import DaemonProcess
    from executor.sandbox.image import ensure_image

    image = ensure_image()
    instance = f"bench-load-{uuid.uuid4().hex[:10]}"
    try:
        with DaemonProcess(
            *daemon_flags(image, instance, warm, max_containers, extra), env=env
        ) as d:
            yield d
    finally:
        remove_instance_containers(instance)


def wait_warm(target: str, at_least: int, timeout: float = 300.0) -> None:
    """Until the daemon's pool holds `at_least` warm containers and none is starting."""
    import grpc

    from proto import executor_pb2 as pb
    from proto import executor_pb2_grpc as pb_grpc

    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.ExecutorStub(channel)
        deadline = time.monotonic() + timeout
        while True:
            stats = stub.GetStats(pb.GetStatsRequest())
            if stats.warm >= at_least and stats.starting == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the pool did not reach {at_least} warm containers in time")
            time.sleep(0.05)


# -- output ------------------------------------------------------------------------------------


def table(r: dict[str, Any]) -> str:
    sc = r["scenario"]
    kind = "burst" if sc["burst"] else f"{sc['snippets']} snippets/session"
    rows: list[tuple[str, str]] = [
        ("scenario", f"{sc['concurrency']} clients, {kind}, mix={sc['mix']}"),
        ("elapsed", f"{r['elapsed_s']:.2f} s"),
        ("load average (1/5/15) before / after", f"{r['load_before']} / {r['load_after']}"),
        ("sessions done, per second", f"{r['sessions_done']}, {r['sessions_per_s']:.2f}/s"),
        ("errors", f"{r['errors']} {r['error_samples'][:2] if r['errors'] else ''}".strip()),
    ]
    for name in ("snippet", "open", "first", "close"):
        s = r.get(name)
        if s and s.get("n"):
            rows.append(
                (
                    f"{name} latency p50 / p99 / max (n)",
                    f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f} / {s['max_ms']:.2f} ms ({s['n']})",
                )
            )
    d = r.get("daemon", {})
    if d.get("samples"):
        rows.append(
            (
                "daemon RSS start / end / max",
                f"{d['rss_mib_start']} / {d['rss_mib_end']} / {d['rss_mib_max']} MiB",
            )
        )
        rows.append(
            ("daemon fds start / end / max", f"{d['fds_start']} / {d['fds_end']} / {d['fds_max']}")
        )
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)} | {v}" for k, v in rows)


# -- CLI ---------------------------------------------------------------------------------------


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    return Scenario(
        concurrency=args.concurrency,
        sessions=args.sessions,
        snippets=args.snippets,
        duration_s=args.duration,
        mix=args.mix,
        burst=args.burst,
        rpc=args.rpc,
        warmup=args.warmup,
    )


def cmd_load(args: argparse.Namespace) -> int:
    scenario = scenario_from_args(args)
    try:
        scenario.check()
    except ValueError as exc:
        print(f"corrald bench load: {exc}", file=sys.stderr)
        return 2
    if args.target:
        result = run_scenario(scenario, args.target)
    else:
        warm = args.pool_warm or (scenario.concurrency if scenario.burst else 4)
        pool_max = max(args.pool_max or 0, warm + scenario.concurrency)
        with own_daemon(warm, pool_max) as d:
            wait_warm(d.target, warm)
            result = run_scenario(scenario, d.target, d.proc.pid)
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["errors"] else 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("bench", help="load tools (bench load)")
    sub = p.add_subparsers(dest="bench_command", required=True, metavar="TOOL")
    q = sub.add_parser(
        "load",
        help="run a load scenario against a daemon",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--target", help="host:port of a running daemon (default: start one)")
    q.add_argument("--concurrency", type=int, default=4, help="concurrent clients")
    q.add_argument("--sessions", type=int, default=0, help="sessions to run in total")
    q.add_argument("--snippets", type=int, default=10, help="snippets per session")
    q.add_argument("--duration", type=float, default=0.0, help="seconds to run (churn)")
    q.add_argument("--mix", default="trivial", choices=sorted(MIXES), help="snippet mix")
    q.add_argument("--burst", action="store_true", help="all clients open + run at once")
    q.add_argument("--rpc", default="auto", choices=("auto", "execute", "run"))
    q.add_argument("--warmup", type=int, default=0, help="uncounted snippets per session")
    q.add_argument("--pool-warm", type=int, default=0, help="own daemon: warm containers")
    q.add_argument("--pool-max", type=int, default=0, help="own daemon: containers in total")
    q.add_argument("--json", metavar="PATH", help="also write the full result as JSON")
    q.set_defaults(func=cmd_load)
