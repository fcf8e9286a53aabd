"""Benchmark: the persistent runner's attach channel against Docker's own per-call paths.

In one run, against the same image on the same engine:

1. Per-snippet round trip over the attach channel (a warm sandbox running the
   runner; `Sandbox.execute` of a trivial snippet, and a bare ping) against
   `docker exec` of the same snippet (`python3 -c`) in that same container.
2. Container ready time (`Sandbox.start` until the runner's `ready` frame)
   against `docker run --rm IMAGE python3 -c pass`.

Prints median and p99 of each and their ratios. Targets: channel round trip
p50 <= 1 ms and >= 50x faster than `docker exec`. Usage:

    python benchmarks/container.py [--rounds N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE
from proto.limits import SessionLimits

SNIPPET = "1 + 1"
TARGET_CHANNEL_P50_MS = 1.0
TARGET_EXEC_RATIO = 50.0


def _stats(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000.0 for s in samples_s)
    p99 = ms[min(len(ms) - 1, max(0, round(0.99 * len(ms)) - 1))]
    return {"n": len(ms), "p50_ms": statistics.median(ms), "p99_ms": p99, "min_ms": ms[0]}


def _time(fn: Callable[[], Any], rounds: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def run(rounds: int = 300, exec_rounds: int = 20, start_rounds: int = 8) -> dict[str, Any]:
    """Measure everything once; return a JSON-safe dict of stats, ratios and verdicts."""
    import docker

    from executor.sandbox.driver import Sandbox
    from executor.sandbox.image import ensure_image

    client = docker.from_env()
    image = ensure_image(client=client)
    instance = f"bench-{uuid.uuid4().hex[:12]}"
    labels = {LABEL_MANAGED: "1", LABEL_INSTANCE: instance, LABEL_ROLE: "bench"}
    limits = SessionLimits()
    results: dict[str, Any] = {"image": image, "snippet": SNIPPET}
    try:
        sb = Sandbox.start(client, image, limits, labels=labels)
        try:
            sb.init(limits=limits.runner_limits())
            results["channel_execute"] = _stats(
                _time(lambda: sb.execute(SNIPPET, timeout=10.0), rounds)
            )
            results["channel_ping"] = _stats(_time(lambda: sb.ping(5.0), rounds))
            container = client.containers.get(sb.container_id)

            def docker_exec() -> None:
                code, _ = container.exec_run(["python3", "-c", SNIPPET])
                if code != 0:
                    raise RuntimeError(f"docker exec failed with exit code {code}")

            results["docker_exec"] = _stats(_time(docker_exec, exec_rounds, warmup=1))
        finally:
            sb.destroy()

        def start_ready() -> None:
            Sandbox.start(client, image, limits, labels=labels).destroy()

        def docker_run() -> None:
            client.containers.run(
                image, ["python3", "-c", "pass"], remove=True, labels=labels, network_mode="none"
            )

        results["sandbox_ready"] = _stats(_time(start_ready, start_rounds, warmup=1))
        results["docker_run"] = _stats(_time(docker_run, start_rounds, warmup=1))
    finally:
        for c in client.containers.list(
            all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"}
        ):
            try:
                c.remove(force=True)
            except docker.errors.DockerException:
                pass
    chan = results["channel_execute"]["p50_ms"]
    results["ratios"] = {
        "exec_over_channel_p50": results["docker_exec"]["p50_ms"] / chan,
        "exec_over_ping_p50": results["docker_exec"]["p50_ms"] / results["channel_ping"]["p50_ms"],
        "docker_run_over_ready_p50": results["docker_run"]["p50_ms"]
        / results["sandbox_ready"]["p50_ms"],
    }
    results["targets"] = {
        # The channel itself: one frame each way over the attach stream.
        "channel_p50_le_1ms": results["channel_ping"]["p50_ms"] <= TARGET_CHANNEL_P50_MS,
        # A whole snippet (channel + restricted interpreter) against docker exec of it.
        "snippet_ge_50x_docker_exec": results["ratios"]["exec_over_channel_p50"]
        >= TARGET_EXEC_RATIO,
        # Informational: the full snippet round trip, interpreter included.
        "snippet_p50_le_1ms": chan <= TARGET_CHANNEL_P50_MS,
    }
    return results


def render(results: dict[str, Any]) -> str:
    rows = [
        ("channel: execute trivial snippet", "channel_execute"),
        ("channel: ping (frame round trip)", "channel_ping"),
        ("docker exec python3 -c (same snippet)", "docker_exec"),
        ("Sandbox.start until ready", "sandbox_ready"),
        ("docker run --rm python3 -c pass", "docker_run"),
    ]
    lines = [
        f"image {results['image']}",
        f"{'measurement':40} {'n':>5} {'p50 ms':>10} {'p99 ms':>10}",
    ]
    for label, key in rows:
        s = results[key]
        lines.append(f"{label:40} {s['n']:>5} {s['p50_ms']:>10.3f} {s['p99_ms']:>10.3f}")
    r = results["ratios"]
    t = results["targets"]

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    lines += [
        "",
        f"channel round trip (ping) p50 {results['channel_ping']['p50_ms']:.3f} ms"
        f"   (target <= {TARGET_CHANNEL_P50_MS:g} ms: {verdict(t['channel_p50_le_1ms'])})",
        f"docker exec / snippet over channel (p50): {r['exec_over_channel_p50']:.0f}x"
        f"   (target >= {TARGET_EXEC_RATIO:.0f}x: {verdict(t['snippet_ge_50x_docker_exec'])})",
        f"docker exec / ping (p50): {r['exec_over_ping_p50']:.0f}x",
        f"snippet round trip p50 {results['channel_execute']['p50_ms']:.3f} ms incl. the"
        f" interpreter (<= {TARGET_CHANNEL_P50_MS:g} ms: {verdict(t['snippet_p50_le_1ms'])})",
        f"docker run / Sandbox ready (p50): {r['docker_run_over_ready_p50']:.2f}x"
        " (ready includes hardening, attach and the interpreter import)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="channel round trips")
    parser.add_argument("--exec-rounds", type=int, default=20, help="docker exec calls")
    parser.add_argument("--start-rounds", type=int, default=8, help="container starts of each kind")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.rounds, args.exec_rounds, args.start_rounds)
    print(render(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
