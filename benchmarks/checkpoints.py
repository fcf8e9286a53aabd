"""Benchmark: checkpoint and rollback of a session holding 100 MB of numpy state.

Over the raw channel (the driver) in a real hardened container:

1. `checkpoint` round trip after a snippet that wrote to the state (an agent's
   step); each round then drops it (timed too), so one is held at a time;
2. `rollback` round trip to one checkpoint, after a snippet that writes to the
   state each round (the rollback must undo it);
3. the baseline a caller has without checkpoints: open a fresh container and
   replay the snippets that built the state (start, init, replay);
4. the memory cost per checkpoint, read from the container's memory cgroup:
   idle (nothing written after the checkpoint: page tables and the copy's own
   pages) and after the session rewrites its 100 MB array in place (every page
   of it then exists twice).

Target: checkpoint and rollback p50 <= 10 ms. Usage:

    python benchmarks/checkpoints.py [--rounds N] [--runtime runsc] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE
from proto.limits import MiB, SessionLimits

TARGET_P50_MS = 10.0
STATE_SNIPPETS = [
    "import numpy as np",
    "state = np.arange(12_500_000, dtype=np.float64)  # 100 MB",
    "def score(a):\n    return float(a[::1000].sum())",
    "class Agent:\n    def __init__(self):\n        self.steps = 0",
    "agent = Agent()\nhistory = [score(state)]",
]
STEP = "state[:4096] += 1.0\nagent.steps = agent.steps + 1"
LIMITS = SessionLimits(memory_bytes=2048 * MiB, wall_time_ms=60_000, pids=128)


def _stats(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000.0 for s in samples_s)
    p99 = ms[min(len(ms) - 1, max(0, round(0.99 * len(ms)) - 1))]
    return {"n": len(ms), "p50_ms": statistics.median(ms), "p99_ms": p99, "min_ms": ms[0]}


@contextmanager
def _runtime(name: str | None) -> Iterator[None]:
    """Run containers with another OCI runtime (e.g. runsc) for this benchmark only."""
    if not name:
        yield
        return
    from executor.sandbox import hardening

    original = hardening.container_config

    def with_runtime(*args: Any, **kwargs: Any) -> dict[str, Any]:
        cfg = original(*args, **kwargs)
        cfg["runtime"] = name
        return cfg

    hardening.container_config = with_runtime  # type: ignore[assignment]
    try:
        yield
    finally:
        hardening.container_config = original  # type: ignore[assignment]


def _memory_usage(client: Any, container_id: str) -> int:
    """The container's memory cgroup usage (page cache and tmpfs included), bytes."""
    path = Path(f"/sys/fs/cgroup/memory/docker/{container_id}/memory.usage_in_bytes")
    try:
        return int(path.read_text())
    except OSError:
        stats = client.api.stats(container_id, stream=False)
        return int(stats["memory_stats"]["usage"])


def _settled_usage(client: Any, container_id: str) -> int:
    time.sleep(0.5)
    return _memory_usage(client, container_id)


def run(rounds: int = 200, baseline_rounds: int = 5, runtime: str | None = None) -> dict[str, Any]:
    import docker

    from executor.sandbox.driver import Sandbox
    from executor.sandbox.image import ensure_image

    client = docker.from_env()
    image = ensure_image(client=client)
    labels = {
        LABEL_MANAGED: "1",
        LABEL_INSTANCE: f"bench-{uuid.uuid4().hex[:12]}",
        LABEL_ROLE: "bench",
    }
    results: dict[str, Any] = {"image": image, "runtime": runtime or "runc", "rounds": rounds}

    def open_session() -> Any:
        sb = Sandbox.start(client, image, LIMITS, labels=labels)
        sb.init(limits=LIMITS.runner_limits(), authorized_imports=["numpy", "numpy.*"])
        for code in STATE_SNIPPETS:
            result = sb.execute(code, timeout=60)
            assert result.result.verdict == "OK", result
        return sb

    def request(sb: Any, frame: dict[str, Any]) -> Any:
        return sb.request(frame, 30.0)

    with _runtime(runtime):
        sb = open_session()
        try:
            # 1. checkpoint (+ drop, untimed, to hold exactly one)
            samples = []
            drops = []
            for i in range(rounds + 5):
                assert sb.execute(STEP, timeout=60)["verdict"] == "OK"  # an agent's step
                t0 = time.perf_counter()
                cp = request(sb, {"type": "checkpoint"}).checkpoint_id
                took = time.perf_counter() - t0
                t0 = time.perf_counter()
                request(sb, {"type": "drop_checkpoint", "checkpoint_id": cp})
                dropped = time.perf_counter() - t0
                if i >= 5:
                    samples.append(took)
                    drops.append(dropped)
            results["checkpoint"] = _stats(samples)
            results["drop_checkpoint"] = _stats(drops)

            # 2. rollback after a step that changed the state
            steps_at_checkpoint = sb.execute("agent.steps", timeout=60)["value"]["json"]
            cp = request(sb, {"type": "checkpoint"}).checkpoint_id
            samples = []
            for i in range(rounds + 5):
                assert sb.execute(STEP, timeout=60)["verdict"] == "OK"
                t0 = time.perf_counter()
                request(sb, {"type": "rollback", "checkpoint_id": cp})
                took = time.perf_counter() - t0
                if i >= 5:
                    samples.append(took)
            steps = sb.execute("agent.steps", timeout=60)["value"]["json"]
            assert steps == steps_at_checkpoint, f"rollback did not undo the steps ({steps})"
            results["rollback"] = _stats(samples)
            request(sb, {"type": "drop_checkpoint", "checkpoint_id": cp})

            # 4. memory cost per checkpoint
            base = _settled_usage(client, sb.container_id)
            held = 4
            for _ in range(held):
                request(sb, {"type": "checkpoint"})
            idle = _settled_usage(client, sb.container_id)
            sb.execute("state += 1.0", timeout=60)  # rewrites every page of the array
            rewritten = _settled_usage(client, sb.container_id)
            results["memory"] = {
                "session_bytes": base,
                "checkpoints_held": held,
                "idle_cost_per_checkpoint_bytes": (idle - base) // held,
                "after_rewriting_100mb_bytes": rewritten - idle,
            }
        finally:
            sb.destroy()

        # 3. baseline: a fresh container and the replay of the snippets
        samples = []
        for _ in range(baseline_rounds):
            t0 = time.perf_counter()
            fresh = open_session()
            samples.append(time.perf_counter() - t0)
            fresh.destroy()
        results["fresh_and_replay"] = _stats(samples)

    results["targets"] = {
        "checkpoint_p50_le_10ms": results["checkpoint"]["p50_ms"] <= TARGET_P50_MS,
        "rollback_p50_le_10ms": results["rollback"]["p50_ms"] <= TARGET_P50_MS,
    }
    results["ratios"] = {
        "replay_over_rollback_p50": results["fresh_and_replay"]["p50_ms"]
        / results["rollback"]["p50_ms"]
    }
    return results


def render(results: dict[str, Any]) -> str:
    rows = [
        ("checkpoint (after a step, 100 MB state)", "checkpoint"),
        ("rollback (after a step that wrote)", "rollback"),
        ("drop_checkpoint", "drop_checkpoint"),
        ("baseline: fresh container + replay", "fresh_and_replay"),
    ]
    lines = [
        f"image {results['image']}, runtime {results['runtime']}",
        f"{'measurement':40} {'n':>5} {'p50 ms':>10} {'p99 ms':>10}",
    ]
    for label, key in rows:
        s = results[key]
        lines.append(f"{label:40} {s['n']:>5} {s['p50_ms']:>10.3f} {s['p99_ms']:>10.3f}")
    m = results["memory"]
    t = results["targets"]

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    lines += [
        "",
        f"checkpoint p50 <= {TARGET_P50_MS:g} ms: {verdict(t['checkpoint_p50_le_10ms'])}; "
        f"rollback p50 <= {TARGET_P50_MS:g} ms: {verdict(t['rollback_p50_le_10ms'])}",
        f"fresh container + replay / rollback (p50): "
        f"{results['ratios']['replay_over_rollback_p50']:.0f}x",
        f"memory: session {m['session_bytes'] / MiB:.1f} MiB; idle cost per checkpoint "
        f"{m['idle_cost_per_checkpoint_bytes'] / MiB:.2f} MiB ({m['checkpoints_held']} held); "
        f"after the session rewrote its 100 MB array: +{m['after_rewriting_100mb_bytes'] / MiB:.1f}"
        " MiB (the pages then exist twice; one copy per held checkpoint generation)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--baseline-rounds", type=int, default=5)
    parser.add_argument("--runtime", help="OCI runtime for the containers, e.g. runsc")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.rounds, args.baseline_rounds, args.runtime)
    print(render(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
