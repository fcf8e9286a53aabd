"""Fleet benchmark: three daemons behind nginx against a direct connection, same run.

Three `corrald serve` processes on this machine's one Docker engine, nginx in
front (the configuration `corrald fleet nginx-config` renders). Measured with
the Corral client, as users call it:

(a) sessions per second (open, one snippet, close) from concurrent clients:
    direct to one daemon; direct to all three (the clients spread their opens
    themselves, no proxy); through the proxy (opens balanced by nginx). The
    three runs alternate in rounds (ABC, CBA, ...) so a change in machine load
    during the run weighs on each alike;
(b) snippet round trip (`1 + 1`) p50/p99 on one session direct and one through
    the proxy, interleaved so both see the same machine load.

Ratios: against the direct connection to one daemon (what a fleet buys on
this host) and against the clients spreading themselves (what the proxy costs). On one host the
daemons share the engine and the CPUs, so (a) shows the proxy's cost and how
much one engine gives, not how a fleet of hosts scales.
Usage: python benchmarks/fleet.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent import Client  # noqa: E402
from executor.fleet import LocalFleet  # noqa: E402
from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED  # noqa: E402

DAEMONS = 3


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"p50_ms": round(pct(ms, 50), 3), "p99_ms": round(pct(ms, 99), 3), "n": len(ms)}


def sustained(
    targets: list[str], clients: int, seconds: float, settle: Callable[[], None]
) -> dict[str, Any]:
    """Open, run `1`, close, from `clients` threads for `seconds`; client i dials targets[i % n]."""
    settle()
    counts = [0] * clients
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        with Client(targets[i % len(targets)]) as client:
            while time.monotonic() < stop:
                try:
                    with client.session() as s:
                        s.run("1")
                    counts[i] += 1
                except Exception as exc:  # counted, the run goes on
                    errors.append(type(exc).__name__)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    return {
        "seconds": elapsed,
        "cycles": sum(counts),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
    }


def merged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = sum(r["seconds"] for r in runs)
    cycles = sum(r["cycles"] for r in runs)
    return {
        "per_s": round(cycles / seconds, 3),
        "cycles": cycles,
        "seconds": round(seconds, 1),
        "errors": sum(r["errors"] for r in runs),
        "error_samples": sorted({e for r in runs for e in r["error_samples"]})[:3],
    }


def snippets(direct: str, proxy: str, n: int) -> dict[str, list[float]]:
    """`1 + 1` round trips on one session per path, interleaved."""
    out: dict[str, list[float]] = {"direct": [], "proxy": []}
    with Client(direct) as d, Client(proxy) as p, d.session() as sd, p.session() as sp:
        for s in (sd, sp):
            for _ in range(10):  # warm-up
                s.run("1 + 1")
        for _ in range(n):
            for name, s in (("direct", sd), ("proxy", sp)):
                t = time.perf_counter()
                s.run("1 + 1")
                out[name].append(time.perf_counter() - t)
    return out


def wait_warm(targets: list[str], warm: int, timeout: float = 120) -> None:
    """Until every daemon has `warm` containers ready (so each run starts alike)."""
    deadline = time.monotonic() + timeout
    for target in targets:
        with Client(target) as c:
            while c.stats().warm < warm and time.monotonic() < deadline:
                time.sleep(0.2)


def run(
    *,
    snippet_samples: int = 200,
    sustained_s: float = 8.0,
    rounds: int = 2,
    clients: int = 6,
    warm: int = 4,
) -> dict[str, Any]:
    import docker

    from executor.sandbox.image import ensure_image

    engine = docker.from_env()
    image = ensure_image(client=engine)
    prefix = f"bench-fleet-{uuid.uuid4().hex[:8]}"
    flags = (
        f"--image={image}",
        f"--pool-warm={warm}",
        f"--pool-max={3 * warm}",
        "--refill-concurrency=2",
        "--open-wait-s=60",
        "--shutdown-drain-s=5",
    )
    results: dict[str, Any] = {
        "daemons": DAEMONS,
        "clients": clients,
        "sustained_s": sustained_s * rounds,
    }
    try:
        with (
            tempfile.TemporaryDirectory(prefix="corral-fleet-") as state,
            LocalFleet(Path(state), count=DAEMONS, prefix=prefix, daemon_flags=flags) as fleet,
        ):
            routes = fleet.routes

            def settle() -> None:
                wait_warm(routes, warm)

            lat = snippets(routes[0], fleet.target, snippet_samples)
            paths = {
                "direct_one": routes[:1],
                "direct_spread": routes,
                "proxy": [fleet.target],
            }
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in paths}
            order = list(paths)
            for i in range(rounds):
                for name in order if i % 2 == 0 else order[::-1]:
                    runs[name].append(sustained(paths[name], clients, sustained_s, settle))
            rates = {name: merged(r) for name, r in runs.items()}
    finally:
        for instance in (f"{prefix}-{i}" for i in range(DAEMONS)):
            for c in engine.containers.list(
                all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={instance}"]}
            ):
                try:
                    c.remove(force=True)
                except Exception:
                    pass
    base = rates["direct_one"]["per_s"] or float("nan")
    spread = rates["direct_spread"]["per_s"] or float("nan")
    results["sessions_per_s"] = {
        name: {
            **r,
            "ratio_vs_direct_one": round(r["per_s"] / base, 2),
            "ratio_vs_direct_spread": round(r["per_s"] / spread, 2),
        }
        for name, r in rates.items()
    }
    d, p = summary_ms(lat["direct"]), summary_ms(lat["proxy"])
    results["snippet"] = {
        "direct": d,
        "proxy": p,
        "p50_ratio": round(p["p50_ms"] / d["p50_ms"], 2),
        "p99_ratio": round(p["p99_ms"] / d["p99_ms"], 2),
    }
    return results


def table(results: dict[str, Any]) -> str:
    rates, snip = results["sessions_per_s"], results["snippet"]
    rows = [
        "| measure | direct, one daemon | direct, spread over 3 | nginx, 3 daemons "
        "| nginx / one daemon | nginx / spread |",
        "|---|---|---|---|---|---|",
        "| sessions/s (open, `1`, close; "
        f"{results['clients']} clients) | {rates['direct_one']['per_s']:.2f} | "
        f"{rates['direct_spread']['per_s']:.2f} | {rates['proxy']['per_s']:.2f} | "
        f"{rates['proxy']['ratio_vs_direct_one']:.2f}x | "
        f"{rates['proxy']['ratio_vs_direct_spread']:.2f}x |",
        f"| snippet `1 + 1` p50 | {snip['direct']['p50_ms']:.2f} ms | | "
        f"{snip['proxy']['p50_ms']:.2f} ms | {snip['p50_ratio']:.2f}x | |",
        f"| snippet `1 + 1` p99 | {snip['direct']['p99_ms']:.2f} ms | | "
        f"{snip['proxy']['p99_ms']:.2f} ms | {snip['p99_ratio']:.2f}x | |",
    ]
    errors = sum(r["errors"] for r in rates.values())
    rows.append("")
    rows.append(f"errors during the sustained runs: {errors}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter runs")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    kwargs: dict[str, Any] = {}
    if args.quick:
        kwargs = {"snippet_samples": 50, "sustained_s": 5.0, "rounds": 1}
    results = run(**kwargs)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
