"""Sessions benchmark (issue #11): fork and recover against opening and replaying.

A session gets 20 snippets of agent-like history (variables, a tool call with
its recorded result, a function, a comprehension, a small pandas-free data
structure). Then, each next to its baseline measured in the same run:

(a) fork: `ForkSession` (a warm container + the daemon replaying the history
    with recorded tool results) vs the client opening a fresh session and
    sending the same 20 snippets itself (20 Execute round trips, tools called
    again); target p50 <= 1.5 s;
(b) recover: `RecoverSession` after the container is killed (replay up to the
    last checkpoint: all 20 snippets when the runner supports checkpoints and
    one was taken at the end; else the state at open) vs the same baseline.

Checkpoint and rollback latencies are the runner side's benchmark. The daemon
runs as a `corrald serve` subprocess, as users run it.
Usage: python benchmarks/sessions.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent import Client  # noqa: E402
from agent.errors import CorralError  # noqa: E402
from benchmarks.daemon import daemon_flags, pct  # noqa: E402
from executor.daemon.testing import DaemonProcess, running_daemon  # noqa: E402
from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED  # noqa: E402

WARM = 6
TARGET_FORK_P50_S = 1.5


def lookup(key: str) -> str:
    """A tool with a side effect the replay must not repeat.

    Args:
        key: what to look up.
    """
    lookup.calls += 1  # type: ignore[attr-defined]
    return f"value-{key}"


lookup.calls = 0  # type: ignore[attr-defined]

HISTORY: list[str] = [
    "rows = []",
    "for i in range(200):\n    rows.append({'id': i, 'v': i * i % 97})",
    "total = sum(r['v'] for r in rows)",
    "doc = lookup('config')",
    "def score(r):\n    return r['v'] * 2 + len(doc)",
    "scores = [score(r) for r in rows]",
    "best = max(scores)",
    "import math\nroots = [math.sqrt(s) for s in scores]",
    "index = {r['id']: r for r in rows}",
    "subset = [index[i] for i in range(0, 200, 7)]",
    "class Acc:\n    def __init__(self):\n        self.n = 0\n    def add(self, x):\n        self.n += x",
    "acc = Acc()\nfor s in scores:\n    acc.add(s)",
    "words = ' '.join(str(s) for s in scores[:50]).split()",
    "counts = {}\nfor w in words:\n    counts[w] = counts.get(w, 0) + 1",
    "pairs = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]",
    "text = doc.upper() + str(best)",
    "matrix = [[i * j for j in range(30)] for i in range(30)]",
    "trace = sum(matrix[i][i] for i in range(30))",
    "import json\nblob = json.dumps(pairs)",
    "summary = {'total': total, 'best': best, 'trace': trace, 'n': acc.n}",
]


def build_history(client: Client) -> Any:
    s = client.session(tools=[lookup])
    for code in HISTORY:
        r = s.run(code)
        if not r.ok:
            raise RuntimeError(f"history snippet failed: {r.error}")
    return s


def replay_by_client(client: Client) -> Any:
    s = client.session(tools=[lookup])
    for code in HISTORY:
        s.run(code)
    return s


def quiet(client: Client, timeout: float = 120) -> None:
    """Until the pool is full and no container starts: both sides measured on a quiet engine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = client.stats()
        if st.warm >= WARM and st.starting == 0:
            return
        time.sleep(0.02)
    raise RuntimeError("the pool did not refill in time")


def run(samples: int = 15) -> dict[str, Any]:
    import docker

    from executor.sandbox.image import ensure_image

    docker_client = docker.from_env()
    image = ensure_image(client=docker_client)
    instance = f"bench-{uuid.uuid4().hex[:10]}"
    out: dict[str, Any] = {"image": image, "history": len(HISTORY), "samples": samples}
    try:
        with (
            DaemonProcess(*daemon_flags(image, instance, warm=WARM, max_containers=16)) as d,
            Client(d.target) as client,
        ):
            parent = build_history(client)
            expected = parent.run("summary").python_value
            fork_s, base_s, recover_s = [], [], []
            calls_before = lookup.calls  # type: ignore[attr-defined]
            for _ in range(samples):
                quiet(client)
                t = time.perf_counter()
                child = parent.fork()
                fork_s.append(time.perf_counter() - t)
                assert child.run("summary").python_value == expected
                child.close()
                quiet(client)
                t = time.perf_counter()
                again = replay_by_client(client)
                base_s.append(time.perf_counter() - t)
                again.close()
            out["tool_calls_during_forks"] = (
                lookup.calls - calls_before - samples  # type: ignore[attr-defined]
            )
            parent.close()
        # Recovery needs the session's container id to kill it: an in-process daemon.
        with (
            running_daemon(
                image=image, instance_id=instance, docker_client=docker_client, pool_warm=WARM
            ) as handle,
            Client(handle.target) as client,
        ):
            parent = build_history(client)
            checkpointed = True
            try:
                parent.checkpoint()
            except CorralError:
                checkpointed = False  # the runner in this tree cannot checkpoint yet
            out["recover_replays_history"] = checkpointed
            for _ in range(max(3, samples // 3)):
                held = handle.daemon.sessions.get(parent.id, "anonymous")
                docker_client.api.kill(held.sandbox.container_id)
                r = parent.run("1")
                assert r.session_lost, r
                quiet(client)
                t = time.perf_counter()
                parent.recover()
                recover_s.append(time.perf_counter() - t)
                if not checkpointed:  # put the history back for the next sample
                    for code in HISTORY:
                        parent.run(code)
            parent.close()
    finally:
        for c in docker_client.containers.list(
            all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={instance}"]}
        ):
            c.remove(force=True)
    for name, values in (("fork", fork_s), ("open_and_replay", base_s), ("recover", recover_s)):
        out[name] = {
            "p50_ms": round(pct(values, 50) * 1000, 1),
            "p99_ms": round(pct(values, 99) * 1000, 1),
            "n": len(values),
        }
    return out


def table(r: dict[str, Any]) -> str:
    fork, base, rec = r["fork"], r["open_and_replay"], r["recover"]
    verdict = "pass" if fork["p50_ms"] <= TARGET_FORK_P50_S * 1000 else "missed"
    lines = [
        f"Sessions benchmark: {r['history']} snippets of history, {r['samples']} samples",
        "",
        "| measure | p50 | p99 | baseline p50 (open + client replays) | ratio | target |",
        "|---|---:|---:|---:|---:|---|",
        f"| fork | {fork['p50_ms']} ms | {fork['p99_ms']} ms | {base['p50_ms']} ms | "
        f"{base['p50_ms'] / max(fork['p50_ms'], 1e-6):.2f}x | p50 <= 1.5 s: {verdict} |",
        f"| recover | {rec['p50_ms']} ms | {rec['p99_ms']} ms | {base['p50_ms']} ms | "
        f"{base['p50_ms'] / max(rec['p50_ms'], 1e-6):.2f}x | |",
        "",
        f"tool calls repeated by forks: {r['tool_calls_during_forks']} (must be 0)",
        "recover replays the history: "
        + (
            "yes (a checkpoint was taken after it)"
            if r["recover_replays_history"]
            else "no: the runner in this tree cannot checkpoint, so recover returns to the "
            "state at open (a fresh container only)"
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    args = parser.parse_args(argv)
    results = run(samples=5 if args.quick else 15)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
