"""Churn benchmark: N workers open a session, run 3 snippets, close, for S seconds.

Issue #10 measured 40 of 320 opens failing (RESOURCE_EXHAUSTED after the 10 s
open wait) with 8 workers for 60 s while the pool was mostly empty: refill
concurrency, not the engine, was the bottleneck, and waiters were not served in
order. This script reports the failed opens (the target is zero), open latency
(p50/p99/max) and sessions per second, next to the baseline measured in the
same run: how many hardened containers per second this engine starts with 1,
2, 4 and 8 starts at a time (`--starts`), which is the ceiling for sustained
churn (each session consumes one container) and what `refill_concurrency`
should be sized from.

The daemon runs as a `corrald serve` subprocess with its default pool
settings unless flags say otherwise.
Usage: python benchmarks/churn.py [--workers 8] [--seconds 60] [--starts] [--json PATH]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from proto import executor_pb2 as pb  # noqa: E402
from proto import executor_pb2_grpc as pb_grpc  # noqa: E402

SNIPPETS = ("x = 1", "y = x + 1\ny", "print(y * 2)")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _run_snippet(stub: pb_grpc.ExecutorStub, session_id: str, code: str) -> str:
    request = pb.ExecuteRequest(start=pb.ExecuteStart(session_id=session_id, code=code))
    verdict = ""
    for response in stub.Execute(iter([request]), timeout=60):
        if response.HasField("result"):
            verdict = pb.Verdict.Name(response.result.verdict)
    return verdict


def churn(target: str, workers: int, seconds: float, metadata: Any = None) -> dict[str, Any]:
    """Open, 3 snippets, close, from `workers` threads for `seconds`; counts every failure."""
    stop = time.monotonic() + seconds
    lock = threading.Lock()
    opens: list[float] = []
    failed: dict[str, int] = {}
    bad_verdicts: dict[str, int] = {}
    sessions = 0

    def worker() -> None:
        nonlocal sessions
        channel = grpc.insecure_channel(target)
        stub = pb_grpc.ExecutorStub(channel)
        try:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    sid = stub.OpenSession(
                        pb.OpenSessionRequest(), metadata=metadata, timeout=120
                    ).session_id
                except grpc.RpcError as exc:
                    with lock:
                        key = f"open {exc.code().name}: {(exc.details() or '')[:160]}"
                        failed[key] = failed.get(key, 0) + 1
                    continue
                took = time.perf_counter() - t0
                try:
                    for code in SNIPPETS:
                        verdict = _run_snippet(stub, sid, code)
                        if verdict != "VERDICT_OK":
                            with lock:
                                bad_verdicts[verdict] = bad_verdicts.get(verdict, 0) + 1
                finally:
                    stub.CloseSession(pb.CloseSessionRequest(session_id=sid), timeout=60)
                with lock:
                    opens.append(took)
                    sessions += 1
        finally:
            channel.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, name=f"churn-{i}") for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    n_failed = sum(failed.values())
    return {
        "workers": workers,
        "seconds": round(elapsed, 1),
        "opens": len(opens) + n_failed,
        "failed_opens": n_failed,
        "failures": failed,
        "bad_verdicts": bad_verdicts,
        "sessions": sessions,
        "sessions_per_s": round(sessions / elapsed, 2) if elapsed else 0.0,
        "open_p50_ms": round(pct(opens, 50) * 1000, 1),
        "open_p99_ms": round(pct(opens, 99) * 1000, 1),
        "open_max_ms": round(max(opens, default=float("nan")) * 1000, 1),
    }


def start_rates(
    image: str, instance: str, levels: tuple[int, ...] = (1, 2, 4, 8)
) -> dict[int, Any]:
    """Hardened containers (runner ready) per second this engine starts, per concurrency."""
    import docker

    from executor.daemon.channel import AsyncSandbox
    from executor.sandbox import LABEL_INSTANCE, LABEL_ROLE
    from proto.limits import SessionLimits

    client = docker.from_env(max_pool_size=32)
    labels = {LABEL_INSTANCE: instance, LABEL_ROLE: "bench"}
    out: dict[int, Any] = {}
    for conc in levels:
        n = max(8, 2 * conc)
        made: list[Any] = []
        took: list[float] = []

        def one(_: int, made: list[Any] = made, took: list[float] = took) -> None:
            t = time.perf_counter()
            made.append(AsyncSandbox.start(client, image, SessionLimits(), labels=labels))
            took.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(conc) as ex:
            list(ex.map(one, range(n)))
        elapsed = time.perf_counter() - t0
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda s: s.destroy(), made))
        out[conc] = {
            "starts_per_s": round(n / elapsed, 2),
            "start_p50_s": round(pct(took, 50), 2),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--starts", action="store_true", help="also measure raw start rates")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("serve_flags", nargs="*", help="extra `corrald serve` flags (after --)")
    args = parser.parse_args(argv)

    from executor.daemon.testing import DaemonProcess
    from executor.sandbox.image import ensure_image

    image = ensure_image()
    instance = f"bench-churn-{uuid.uuid4().hex[:8]}"
    report: dict[str, Any] = {}
    if args.starts:
        report["start_rates"] = start_rates(image, instance)
    flags = [
        "--listen=127.0.0.1:0",
        f"--image={image}",
        f"--instance-id={instance}",
        "--no-self-check",
        "--metrics-address=0",
        *args.serve_flags,
    ]
    with DaemonProcess(*flags) as d:
        report["churn"] = churn(d.target, args.workers, args.seconds)
    r = report["churn"]
    print(
        f"churn: {r['workers']} workers x {r['seconds']} s: {r['opens']} opens, "
        f"{r['failed_opens']} failed; {r['sessions_per_s']} sessions/s; open p50 "
        f"{r['open_p50_ms']} ms, p99 {r['open_p99_ms']} ms, max {r['open_max_ms']} ms"
    )
    for reason, count in r["failures"].items():
        print(f"  failed x{count}: {reason}")
    if r["bad_verdicts"]:
        print(f"  snippets not OK: {r['bad_verdicts']}")
    for conc, s in report.get("start_rates", {}).items():
        ratio = r["sessions_per_s"] / s["starts_per_s"] if s["starts_per_s"] else float("nan")
        print(
            f"baseline: {conc} concurrent raw starts: {s['starts_per_s']} containers/s "
            f"(p50 {s['start_p50_s']} s); churn/raw = {ratio:.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if r["failed_opens"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
