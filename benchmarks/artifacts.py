"""Benchmark: a 640x480 figure returned as an artifact vs saved and downloaded.

Through a real daemon (real gRPC on a loopback port, a real hardened
container), in one session, alternating the two ways each round so both see
the same machine load:

1. **artifact**: the snippet draws the figure and calls `plt.show()`; the PNG
   streams back in the Execute call (`Result.artifacts`). One round trip.
2. **save + download**: the same snippet ends with `fig.savefig("fig.png")`
   instead; the client then calls `Session.download("fig.png")`. Two round
   trips.

Both render the same figure at the same size and dpi, so the difference is
the transport: the artifact path base64-encodes the PNG in a container frame
and checks it (size, PNG magic) in the daemon; the download path writes it to
the workspace tmpfs, then reads it back over a second RPC.

    python benchmarks/artifacts.py [--rounds N] [--json PATH]
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

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIGURE = (
    "fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)\n"
    "ax.plot(xs, [x * x for x in xs])\n"
    "ax.set_title('y = x^2')\n"
)
AS_ARTIFACT = FIGURE + "plt.show()\n"
AS_FILE = FIGURE + "fig.savefig('fig.png')\nplt.close(fig)\n"
IMPORTS = ["matplotlib", "matplotlib.*"]
LIMITS = {"wall_time_ms": 60_000, "cpu_time_ms": 60_000}


def _stats(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000.0 for s in samples_s)
    p90 = ms[min(len(ms) - 1, max(0, round(0.9 * len(ms)) - 1))]
    return {"n": len(ms), "p50_ms": statistics.median(ms), "p90_ms": p90, "min_ms": ms[0]}


def run(rounds: int) -> dict[str, Any]:
    import docker

    from agent import Client
    from executor.daemon.testing import running_daemon
    from executor.sandbox.image import ensure_image

    docker_client = docker.from_env()
    image = ensure_image(client=docker_client)
    artifact_s: list[float] = []
    download_s: list[float] = []
    sizes: dict[str, int] = {}
    with (
        running_daemon(
            image=image,
            instance_id=f"bench-art-{uuid.uuid4().hex[:8]}",
            docker_client=docker_client,
            pool_warm=1,
            pool_max=2,
            max_wall_time_ms=60_000,
            max_cpu_time_ms=60_000,
            metrics_address="0",
        ) as daemon,
        Client(daemon.target) as client,
        client.session(imports=IMPORTS, limits=LIMITS) as session,
    ):
        warm = session.run("import matplotlib.pyplot as plt\nxs = list(range(100))\n" + AS_FILE)
        assert warm.ok, warm.error
        for _ in range(rounds):
            t0 = time.perf_counter()
            result = session.run(AS_ARTIFACT)
            artifact_s.append(time.perf_counter() - t0)
            assert result.ok and len(result.artifacts) == 1, result.error
            sizes["artifact"] = len(result.artifacts[0].data)

            t0 = time.perf_counter()
            result = session.run(AS_FILE)
            data = session.download("fig.png")
            download_s.append(time.perf_counter() - t0)
            assert result.ok and not result.artifacts and data.startswith(b"\x89PNG"), result.error
            sizes["file"] = len(data)
    art, down = _stats(artifact_s), _stats(download_s)
    return {
        "image": image,
        "rounds": rounds,
        "png_bytes": sizes,
        "artifact": art,
        "save_and_download": down,
        "ratio_p50": art["p50_ms"] / down["p50_ms"],
    }


def report(results: dict[str, Any]) -> str:
    art, down = results["artifact"], results["save_and_download"]
    lines = [
        f"640x480 figure, {results['rounds']} rounds each, alternating, one session "
        f"(PNG {results['png_bytes'].get('artifact', 0)} bytes)",
        "",
        "| way | p50 ms | p90 ms | min ms |",
        "|---|---|---|---|",
        f"| artifact (plt.show(), streamed in Execute) | {art['p50_ms']:.1f} | "
        f"{art['p90_ms']:.1f} | {art['min_ms']:.1f} |",
        f"| savefig to workspace + DownloadFile | {down['p50_ms']:.1f} | "
        f"{down['p90_ms']:.1f} | {down['min_ms']:.1f} |",
        "",
        f"ratio artifact / save+download (p50): {results['ratio_p50']:.2f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    results = run(args.rounds)
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
