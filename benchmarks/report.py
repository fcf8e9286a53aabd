"""Run the interpreter, container and daemon benchmarks; write one Markdown report with plots.

    python benchmarks/report.py                 # run all three, write benchmarks/results/
    python benchmarks/report.py --quick         # fewer samples where a benchmark offers it
    python benchmarks/report.py --from-json     # re-render from the saved <name>.json files
    python benchmarks/report.py --sweep 1,2,4,8 # also sessions/s against concurrency

Each benchmark module provides `run() -> dict` (and `main(argv)` with
`--json PATH`). A benchmark that is missing or fails is reported as such; the
others still run. Output: benchmarks/results/REPORT.md, <name>.json, and PNG
plots (matplotlib, Agg backend): latency distributions, session open warm
against cold, throughput against concurrency, interpreter per-snippet times.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BENCHMARKS: tuple[tuple[str, str], ...] = (
    ("interpreter", "benchmarks.interpreter"),
    ("container", "benchmarks.container"),
    ("daemon", "benchmarks.daemon"),
    ("load", "benchmarks.load"),
    ("density", "benchmarks.density"),
)
QUICK_KWARGS: dict[str, dict[str, Any]] = {
    "interpreter": {"repeat": 3, "smolagents_repeat": 1},
    "container": {"rounds": 100, "exec_rounds": 8, "start_rounds": 4},
    "daemon": {
        "open_samples": 10,
        "cold_samples": 3,
        "snippets": 50,
        "sustained_s": 6.0,
        "rss_warm": 4,
    },
    "load": {
        "rounds": 1,
        "single_n": 100,
        "c16_n": 30,
        "open_samples": 8,
        "burst_clients": 16,
        "steady_snippets": 10,
    },
    "density": {"sessions": 24, "warm": 4, "every": 8, "active_seconds": 5.0},
}


# -- running ------------------------------------------------------------------------------


def run_benchmark(name: str, module_name: str, *, quick: bool) -> dict[str, Any]:
    """{"status": "ok"|"missing"|"failed", "results": dict, "error": str, "seconds": float}."""
    started = time.monotonic()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name in (module_name, module_name.rsplit(".", 1)[0]):
            return {"status": "missing", "error": f"{module_name} is not in this checkout"}
        return {"status": "failed", "error": f"import failed: {exc}"}
    run = getattr(module, "run", None)
    if not callable(run):
        return {"status": "failed", "error": f"{module_name} has no run() function"}
    kwargs = _accepted(run, QUICK_KWARGS.get(name, {})) if quick else {}
    try:
        results = run(**kwargs)
    except Exception as exc:  # a broken benchmark must not hide the others
        return {
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=8),
            "seconds": round(time.monotonic() - started, 1),
        }
    if not isinstance(results, dict):
        return {"status": "failed", "error": f"run() returned {type(results).__name__}, not a dict"}
    return {"status": "ok", "results": results, "seconds": round(time.monotonic() - started, 1)}


def _accepted(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    params = inspect.signature(fn).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def concurrency_sweep(levels: Iterable[int], seconds: float) -> dict[str, Any]:
    """Sessions/s (open, one snippet, close) at several client counts, one daemon for all."""
    import uuid

    from benchmarks import daemon as bd
    from executor.sandbox.image import ensure_image

    image = ensure_image()
    instance = f"bench-sweep-{uuid.uuid4().hex[:8]}"
    points = []
    levels = sorted(set(levels))
    with bd.DaemonProcess(*bd.daemon_flags(image, instance, warm=8, max_containers=16)) as d:
        for n in levels:
            r = bd.bench_sustained_daemon(d.target, n, seconds)
            points.append({"clients": n, **r})
    return {"points": points, "seconds_per_level": seconds}


# -- extracting numbers ---------------------------------------------------------------------


def latency_rows(
    all_results: Mapping[str, Mapping[str, Any]],
) -> list[tuple[str, dict[str, float]]]:
    """(label, {"p50_ms", "p99_ms", ...}) for every latency summary found, labelled by path."""
    rows: list[tuple[str, dict[str, float]]] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            if "p50_ms" in node and isinstance(node["p50_ms"], int | float):
                rows.append(
                    (prefix, {k: float(v) for k, v in node.items() if isinstance(v, int | float)})
                )
                return
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)

    for name, res in all_results.items():
        walk(name, res)
    return rows


def ratio_rows(all_results: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Every ratio, speedup, geomean and target verdict found, as (path, value)."""
    keys = ("ratio", "speedup", "geomean", "over", "target", "faster", "slower", "pass")
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(node, bool | int | float) and any(k in prefix.lower() for k in keys):
            if isinstance(node, bool):
                rows.append((prefix, "PASS" if node else "FAIL"))
            else:
                rows.append((prefix, f"{node:.3g}"))

    for name, res in all_results.items():
        walk(name, res)
    return rows


def interpreter_series(res: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """{snippet: {way: seconds}} from the interpreter benchmark, whatever its exact layout.

    Looks for a mapping (or list of mappings with a "name") whose values hold
    numbers for at least two ways (e.g. cpython / corral / smolagents).
    """
    candidates: list[Any] = [
        res.get(k) for k in ("snippets", "per_snippet", "results", "rows", "table")
    ]
    for cand in candidates:
        series: dict[str, dict[str, float]] = {}
        if isinstance(cand, Mapping):
            items = list(cand.items())
        elif isinstance(cand, list):
            items = [
                (str(r.get("name", r.get("snippet", i))), r)
                for i, r in enumerate(cand)
                if isinstance(r, Mapping)
            ]
        else:
            continue
        for name, row in items:
            if isinstance(row, Mapping):
                nums = {
                    k: float(v)
                    for k, v in row.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
                times = {k: v for k, v in nums.items() if k.endswith("_s")}
                if len(times) >= 2:
                    nums = times  # seconds only: ratios in the same row are another unit
                if len(nums) >= 2:
                    series[str(name)] = nums
        if series:
            return series
    return {}


# -- plots -----------------------------------------------------------------------------------


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency(rows: list[tuple[str, dict[str, float]]], path: Path) -> bool:
    rows = [r for r in rows if r[1].get("p50_ms", 0) > 0]
    if not rows:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.5))
    labels = [r[0] for r in rows]
    p50 = [r[1]["p50_ms"] for r in rows]
    p99 = [max(r[1].get("p99_ms", r[1]["p50_ms"]), r[1]["p50_ms"]) for r in rows]
    low = [min(r[1].get("min_ms", r[1]["p50_ms"]), r[1]["p50_ms"]) for r in rows]
    y = list(range(len(rows)))
    ax.barh(y, p50, color="#4c72b0", label="p50")
    ax.errorbar(
        p50,
        y,
        xerr=[[a - b for a, b in zip(p50, low)], [b - a for a, b in zip(p50, p99)]],
        fmt="none",
        ecolor="black",
        capsize=3,
        label="min .. p99",
    )
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds (log scale)")
    ax.set_title("Latency distributions (p50 bar, min..p99 whiskers)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_open(daemon: Mapping[str, Any], path: Path) -> bool:
    o = daemon.get("open")
    if not isinstance(o, Mapping):
        return False
    named = [
        ("warm pool (daemon)", o.get("warm_pool")),
        ("cold hardened sandbox", o.get("cold_sandbox_ready")),
        ("cold docker run", o.get("cold_docker_run")),
    ]
    parts: list[tuple[str, Mapping[str, float]]] = [
        (k, v) for k, v in named if isinstance(v, Mapping) and "p50_ms" in v
    ]
    if not parts:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = list(range(len(parts)))
    ax.bar([i - 0.2 for i in x], [v["p50_ms"] for _, v in parts], width=0.4, label="p50")
    ax.bar(
        [i + 0.2 for i in x],
        [v.get("p99_ms", v["p50_ms"]) for _, v in parts],
        width=0.4,
        label="p99",
    )
    ax.set_xticks(x, [k for k, _ in parts])
    ax.set_yscale("log")
    ax.set_ylabel("ms (log scale)")
    ax.set_title("Session open: warm pool vs cold start")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_throughput(daemon: Mapping[str, Any], sweep: Mapping[str, Any] | None, path: Path) -> bool:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    drawn = False
    if sweep and sweep.get("points"):
        pts = sweep["points"]
        ax.plot(
            [p["clients"] for p in pts],
            [p["per_s"] for p in pts],
            marker="o",
            label="daemon: open+run+close",
        )
        drawn = True
    u = daemon.get("sustained") if isinstance(daemon, Mapping) else None
    if isinstance(u, Mapping):
        clients = u.get("clients", 0)
        d = u.get("daemon_sessions", {})
        r = u.get("raw_create_start_remove", {})
        if isinstance(d, Mapping) and "per_s" in d:
            ax.scatter(
                [clients], [d["per_s"]], marker="s", s=60, label=f"daemon ({clients} clients)"
            )
            drawn = True
        if isinstance(r, Mapping) and "per_s" in r:
            ax.scatter(
                [clients], [r["per_s"]], marker="^", s=60, label="raw docker create/start/remove"
            )
            drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("sessions per second")
    ax.set_title("Throughput against concurrency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_interpreter(series: Mapping[str, Mapping[str, float]], path: Path) -> bool:
    if not series:
        return False
    ways = sorted({w for row in series.values() for w in row})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    names = list(series)
    width = 0.8 / len(ways)
    for i, way in enumerate(ways):
        vals = [series[n].get(way, math.nan) for n in names]
        ax.bar([j + i * width for j in range(len(names))], vals, width=width, label=way)
    ax.set_xticks(
        [j + 0.4 - width / 2 for j in range(len(names))], names, rotation=30, ha="right", fontsize=8
    )
    ax.set_yscale("log")
    ax.set_title("Interpreter benchmark per snippet (log scale)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _cdf(ax: Any, values: list[float], label: str, **kw: Any) -> None:
    xs = sorted(values)
    n = len(xs)
    ax.plot(xs, [(i + 1) / n for i in range(n)], label=f"{label} (n={n})", **kw)


def plot_load_latency(load: Mapping[str, Any], path: Path) -> bool:
    """CDFs of snippet latency at 1, 16 and 64 concurrent sessions (before and after)."""
    ba = load.get("before_after")
    if not isinstance(ba, Mapping):
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    colors = {"1": "#4c72b0", "16": "#dd8452", "64": "#55a868"}
    for side, style in (("before", "--"), ("after", "-")):
        for key, n in (("single", "1"), ("c16", "16")):
            raw = ba.get(side, {}).get(key, {}).get("raw_ms")
            if raw:
                _cdf(ax, raw, f"{n} sessions, {side}", ls=style, color=colors[n])
    steady = load.get("steady64", {}).get("raw_ms")
    if steady:
        _cdf(ax, steady, "64 sessions, after", color=colors["64"])
    burst = load.get("burst", {}).get("first_ms")
    if burst:
        _cdf(ax, burst, "64 at once: open + first snippet", color="#c44e52", ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("ms (log scale)")
    ax.set_ylabel("fraction of snippets")
    ax.set_title("Snippet latency at 1, 16 and 64 concurrent sessions (CDF)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_density(density: Mapping[str, Any], path: Path) -> bool:
    """Memory per warm container and per idle session; host memory against sessions held."""
    if "warm_container_cgroup_mib" not in density:
        return False
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    parts = [
        ("cgroup (all)", "warm_container_cgroup_mib", "idle_session_cgroup_mib"),
        ("cgroup minus cache", "warm_container_cgroup_rss_mib", "idle_session_cgroup_rss_mib"),
        ("containerd-shim RSS", "warm_container_shim_rss_mib", "idle_session_shim_rss_mib"),
    ]
    x = list(range(len(parts)))
    ax1.bar(
        [i - 0.2 for i in x], [float(density.get(w) or 0) for _, w, _ in parts], 0.4, label="warm"
    )
    ax1.bar(
        [i + 0.2 for i in x],
        [float(density.get(i_) or 0) for _, _, i_ in parts],
        0.4,
        label="idle session",
    )
    ax1.set_xticks(x, [p[0] for p in parts], fontsize=8)
    ax1.set_ylabel("MiB per container")
    ax1.set_title("Memory per container")
    ax1.legend(fontsize=8)
    samples = [s for s in density.get("samples", []) if isinstance(s, Mapping)]
    if samples:
        ax2.plot(
            [s["sessions"] for s in samples],
            [s["mem_available_mib"] / 1024 for s in samples],
            marker=".",
            label="host MemAvailable (GiB)",
        )
        ax2.plot(
            [s["sessions"] for s in samples],
            [(s["cgroup_usage_mib_total"] + s["shim_rss_mib_total"]) / 1024 for s in samples],
            marker=".",
            label="containers + shims (GiB)",
        )
        ax2.set_xlabel("idle sessions held")
        ax2.set_ylabel("GiB")
        ax2.set_title("Host memory against sessions held")
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_churn(churn: Mapping[str, Any], path: Path) -> bool:
    """The daemon's RSS, fds and threads over a churn run."""
    samples = churn.get("daemon", {}).get("samples") if isinstance(churn, Mapping) else None
    if not samples:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    t = [s["t_s"] for s in samples]
    ax.plot(t, [s["rss_mib"] for s in samples], color="#4c72b0", label="RSS (MiB)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS MiB", color="#4c72b0")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(t, [s["fds"] for s in samples], color="#dd8452", label="open fds")
    ax2.plot(t, [s["threads"] for s in samples], color="#55a868", label="threads")
    ax2.set_ylabel("fds / threads")
    ax2.set_ylim(bottom=0)
    ax2.legend(fontsize=8, loc="lower right")
    sc = churn.get("scenario", {})
    ax.set_title(
        f"Daemon over a {churn.get('elapsed_s', 0):.0f} s churn ({sc.get('concurrency')} clients, "
        f"{churn.get('sessions_done')} sessions)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def churn_lines(churn: Mapping[str, Any]) -> list[str]:
    d = churn.get("daemon", {})
    s = churn.get("snippet", {})
    if not d.get("samples"):
        return []
    return [
        "",
        "## Churn (`corrald bench load --duration`)",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| duration | {churn.get('elapsed_s')} s |",
        f"| sessions opened and closed | {churn.get('sessions_done')} ({churn.get('sessions_per_s')}/s) |",
        f"| snippets, p50 / p99 ms | {churn.get('snippets')}, {s.get('p50_ms')} / {s.get('p99_ms')} |",
        f"| errors | {churn.get('errors')} |",
        f"| daemon RSS start / end / max MiB | {d['rss_mib_start']} / {d['rss_mib_end']} / {d['rss_mib_max']} |",
        f"| RSS growth over the second half MiB | {d['rss_mib_second_half_growth']} |",
        f"| daemon fds start / end / max | {d['fds_start']} / {d['fds_end']} / {d['fds_max']} |",
        f"| fd growth over the second half | {d['fds_second_half_growth']} |",
        f"| load average before / after | {churn.get('load_before')} / {churn.get('load_after')} |",
    ]


# -- the Markdown ------------------------------------------------------------------------------


def render(
    runs: Mapping[str, Mapping[str, Any]],
    plots: Mapping[str, str],
    meta: Mapping[str, Any],
    sweep: Mapping[str, Any] | None = None,
    churn: Mapping[str, Any] | None = None,
) -> str:
    ok = {n: r["results"] for n, r in runs.items() if r.get("status") == "ok"}
    lines = [
        "# Corral benchmark report",
        "",
        f"Generated {meta['when']} on {meta['machine']} ({meta['cpus']} CPUs), Python {meta['python']}.",
        "Ratios are what matter: every baseline is measured in the same run on the same machine.",
        "",
        "| benchmark | status | seconds |",
        "|---|---|---:|",
    ]
    for name, r in runs.items():
        status = r.get("status", "?")
        detail = "" if status == "ok" else f": {r.get('error', '')}"
        lines.append(f"| {name} | {status}{detail} | {r.get('seconds', '')} |")
    ratios = ratio_rows(ok)
    if ratios:
        lines += ["", "## Ratios and targets", "", "| measure | value |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in ratios]
    lat = latency_rows(ok)
    if lat:
        lines += [
            "",
            "## Latencies",
            "",
            "| measure | p50 ms | p99 ms | n |",
            "|---|---:|---:|---:|",
        ]
        for label, s in lat:
            n = int(s["n"]) if "n" in s else ""
            lines.append(
                f"| {label} | {s['p50_ms']:.3f} | {s.get('p99_ms', float('nan')):.3f} | {n} |"
            )
    series = interpreter_series(ok.get("interpreter", {}))
    if series:
        ways = sorted({w for row in series.values() for w in row})
        lines += ["", "## Interpreter per snippet", "", "| snippet | " + " | ".join(ways) + " |"]
        lines.append("|---|" + "---:|" * len(ways))
        for name, row in series.items():
            lines.append(
                f"| {name} | " + " | ".join(f"{row.get(w, float('nan')):.4g}" for w in ways) + " |"
            )
    if sweep and sweep.get("points"):
        lines += [
            "",
            "## Throughput against concurrency (open, one snippet, close)",
            "",
            "| clients | sessions/s |",
            "|---:|---:|",
        ]
        lines += [f"| {p['clients']} | {p['per_s']:.2f} |" for p in sweep["points"]]
    if churn:
        lines += churn_lines(churn)
    if plots:
        lines += ["", "## Plots", ""]
        for title, file in plots.items():
            lines += [f"### {title}", "", f"![{title}]({file})", ""]
    for name, r in runs.items():
        if r.get("status") == "failed" and r.get("traceback"):
            lines += ["", f"## {name}: failure", "", "```", r["traceback"], "```"]
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    runs: Mapping[str, Mapping[str, Any]],
    out: Path,
    sweep: Mapping[str, Any] | None = None,
    churn: Mapping[str, Any] | None = None,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    ok = {n: r["results"] for n, r in runs.items() if r.get("status") == "ok"}
    plots: dict[str, str] = {}
    if plot_latency(latency_rows(ok), out / "latency.png"):
        plots["Latency distributions"] = "latency.png"
    if plot_open(ok.get("daemon", {}), out / "session_open.png"):
        plots["Session open: warm vs cold"] = "session_open.png"
    if plot_throughput(ok.get("daemon", {}), sweep, out / "throughput.png"):
        plots["Throughput against concurrency"] = "throughput.png"
    if plot_interpreter(interpreter_series(ok.get("interpreter", {})), out / "interpreter.png"):
        plots["Interpreter per snippet"] = "interpreter.png"
    if plot_load_latency(ok.get("load", {}), out / "load_latency.png"):
        plots["Snippet latency at 1, 16 and 64 sessions"] = "load_latency.png"
    if plot_density(ok.get("density", {}), out / "density.png"):
        plots["Memory per session"] = "density.png"
    if churn and plot_churn(churn, out / "churn.png"):
        plots["Daemon RSS and fds over time (churn)"] = "churn.png"
    if sweep:
        runs = {**runs, "concurrency sweep": {"status": "ok", "results": {}}}
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    path = out / "REPORT.md"
    path.write_text(render(runs, plots, meta, sweep, churn), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="output directory")
    parser.add_argument("--only", action="append", default=[], help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    parser.add_argument("--from-json", action="store_true", help="re-render from saved <name>.json")
    parser.add_argument("--sweep", help="comma-separated client counts for a throughput sweep")
    parser.add_argument("--sweep-seconds", type=float, default=8.0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    runs: dict[str, dict[str, Any]] = {}
    for name, module in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        saved = args.out / f"{name}.json"
        if args.from_json:
            if saved.exists():
                runs[name] = {
                    "status": "ok",
                    "results": json.loads(saved.read_text()),
                    "seconds": "saved",
                }
            else:
                runs[name] = {"status": "missing", "error": f"no saved results at {saved}"}
            continue
        print(f"running benchmark {name}...", flush=True)
        runs[name] = run_benchmark(name, module, quick=args.quick)
        if runs[name]["status"] == "ok":
            args.out.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(runs[name]["results"], indent=2, default=str) + "\n")
        else:
            print(f"  {name}: {runs[name]['status']}: {runs[name].get('error')}", flush=True)
    sweep = None
    saved_sweep = args.out / "sweep.json"
    if args.from_json and saved_sweep.exists():
        sweep = json.loads(saved_sweep.read_text())
    if args.sweep:
        try:
            sweep = concurrency_sweep([int(x) for x in args.sweep.split(",")], args.sweep_seconds)
            saved_sweep.write_text(json.dumps(sweep, indent=2) + "\n")
        except Exception as exc:  # the sweep is optional: report, keep the rest
            print(f"concurrency sweep failed: {exc}", flush=True)
    churn_path = args.out / "churn.json"  # written by `corrald bench load --duration ... --json`
    churn = json.loads(churn_path.read_text()) if churn_path.exists() else None
    path = write_report(runs, args.out, sweep, churn)
    print(f"wrote {path}")
    return 0 if all(r["status"] != "failed" for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
