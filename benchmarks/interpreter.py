"""Interpreter benchmark: raw CPython vs Corral's Interpreter vs smolagents' LocalPythonExecutor.

A script, not a test. Each compute snippet runs three ways in this one process:
`exec(compile(src))` on fresh globals (raw CPython), `Interpreter.run(src)`
(policy check + compile + guarded exec + state summary), and smolagents'
`LocalPythonExecutor(src)` (an AST-walking evaluator). Times are best-of-N
process CPU seconds (robust on a shared machine); CPython and Corral runs are
interleaved; ratios are geometric means over the snippets.

Targets (issue 2): within 1.5x of raw CPython, at least 40x faster than
LocalPythonExecutor, both by geometric mean.

    python benchmarks/interpreter.py [--repeat N] [--json PATH]

`run() -> dict` returns the same data for benchmarks/report.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from executor.interpreter import Interpreter, Limits, Verdict

# CPU time of this process, not wall time: the benchmark machine is shared, and
# time spent waiting for a core says nothing about the interpreter.
CLOCK = time.process_time

TARGET_VS_CPYTHON = 1.5  # ours / raw CPython, geometric mean, at most
TARGET_VS_SMOLAGENTS = 40.0  # smolagents / ours, geometric mean, at least

SNIPPETS: dict[str, str] = {
    "loops": """
total = 0
for i in range(600):
    for j in range(150):
        total += i * j % 7
total
""",
    "function_calls": """
def add(a, b):
    return a + b

def mul_add(a, b, c):
    return add(a * b, c)

acc = 0
for i in range(30000):
    acc = mul_add(i, 3, acc) % 1000003
acc
""",
    "recursion": """
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
fib(21)
""",
    "comprehensions": """
squares = [x * x for x in range(20000)]
evens = {x: x // 2 for x in squares if x % 2 == 0}
uniq = {x % 97 for x in squares}
nested = [[i + j for j in range(40)] for i in range(300)]
len(squares) + len(evens) + len(uniq) + sum(map(sum, nested))
""",
    "string_building": """
parts = []
for i in range(12000):
    parts.append(f"item-{i}:{i * 3}")
text = ",".join(parts)
words = text.split(",")
upper = "".join(w.upper()[:3] for w in words)
len(text) + len(upper)
""",
    "dict_list_work": """
counts = {}
for i in range(30000):
    key = "k" + str(i % 211)
    counts[key] = counts.get(key, 0) + 1
ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
stack = []
for k, v in ranked:
    stack.append(v)
    if len(stack) > 50:
        stack.pop(0)
sum(stack)
""",
    "class_methods": """
class Vec:
    def __init__(self, x, y):
        self.x = x
        self.y = y

    def add(self, other):
        return Vec(self.x + other.x, self.y + other.y)

    def dot(self, other):
        return self.x * other.x + self.y * other.y

acc = Vec(0, 0)
step = Vec(1, 2)
dots = 0
for i in range(12000):
    acc = acc.add(step)
    dots += acc.dot(step)
dots
""",
    "tuple_unpacking": """
pairs = [(i, i * 2) for i in range(25000)]
sx = sy = 0
for a, b in pairs:
    sx, sy = sx + a, sy + b
swapped = [(b, a) for a, b in pairs]
first, rest = swapped[0], swapped[1:]  # no `a, *b =`: LocalPythonExecutor fails on it
sx + sy + first[0] + len(rest)
""",
    "generator_expressions": """
squares = (i * i for i in range(50000) if i % 3)
total = sum(x for x in squares if x % 5)
pairs = sum(a * b for a, b in zip(range(20000), range(20000, 0, -1)))
total + pairs
""",
    "exceptions": """
def safe_div(a, b):
    try:
        return a / b
    except ZeroDivisionError:
        return 0.0

s = 0.0
for i in range(20000):
    s += safe_div(i, i % 4)
s
""",
}


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = CLOCK()
        fn()
        best = min(best, CLOCK() - t0)
    return best


def best_of_interleaved(fns: list[Callable[[], Any]], repeat: int) -> list[float]:
    """Best-of-N for several functions, alternating them so load spikes hit all alike."""
    best = [math.inf] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = CLOCK()
            fn()
            best[i] = min(best[i], CLOCK() - t0)
    return best


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _raw(src: str) -> Callable[[], Any]:
    def go() -> None:
        exec(compile(src, "<bench>", "exec"), {"__name__": "__bench__"})

    return go


def _ours(src: str) -> Callable[[], Any]:
    interp = Interpreter(limits=Limits(wall_time_s=120.0))
    check = interp.run(src)
    if check.verdict is not Verdict.OK:
        raise RuntimeError(f"benchmark snippet failed in Corral: {check.verdict} {check.error}")

    def go() -> None:
        interp.run(src)

    return go


def _smolagents(src: str) -> Callable[[], Any] | None:
    try:
        from smolagents.local_python_executor import LocalPythonExecutor
    except ImportError:
        return None
    executor = LocalPythonExecutor(additional_authorized_imports=[], timeout_seconds=None)
    executor.send_tools({})

    def go() -> None:
        executor(src)

    return go


def run(repeat: int = 9, smolagents_repeat: int = 2) -> dict[str, Any]:
    """Measure every snippet three ways; return a JSON-safe dict of times and ratios."""
    rows: list[dict[str, Any]] = []
    for name, src in SNIPPETS.items():
        raw, ours = best_of_interleaved([_raw(src), _ours(src)], repeat)
        smol_fn = _smolagents(src)
        smol = best_of(smol_fn, smolagents_repeat) if smol_fn else None
        rows.append(
            {
                "snippet": name,
                "cpython_s": raw,
                "corral_s": ours,
                "smolagents_s": smol,
                "corral_vs_cpython": ours / raw,
                "smolagents_vs_corral": (smol / ours) if smol else None,
            }
        )
    vs_cpython = geomean([float(r["corral_vs_cpython"]) for r in rows])
    smol_ratios = [float(r["smolagents_vs_corral"]) for r in rows if r["smolagents_vs_corral"]]
    vs_smol = geomean(smol_ratios) if smol_ratios else None
    return {
        "benchmark": "interpreter",
        "machine": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "repeat": repeat,
        "rows": rows,
        "geomean_corral_vs_cpython": vs_cpython,
        "geomean_smolagents_vs_corral": vs_smol,
        "targets": {
            "corral_vs_cpython_max": TARGET_VS_CPYTHON,
            "smolagents_vs_corral_min": TARGET_VS_SMOLAGENTS,
        },
        "pass_vs_cpython": vs_cpython <= TARGET_VS_CPYTHON,
        "pass_vs_smolagents": vs_smol is not None and vs_smol >= TARGET_VS_SMOLAGENTS,
    }


def format_table(data: dict[str, Any]) -> str:
    """The results as a Markdown table plus the two target lines."""
    lines = [
        "| snippet | CPython (ms) | Corral (ms) | smolagents (ms) | Corral/CPython | smolagents/Corral |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in data["rows"]:
        smol = f"{r['smolagents_s'] * 1e3:.1f}" if r["smolagents_s"] else "n/a"
        smol_ratio = f"{r['smolagents_vs_corral']:.0f}x" if r["smolagents_vs_corral"] else "n/a"
        lines.append(
            f"| {r['snippet']} | {r['cpython_s'] * 1e3:.2f} | {r['corral_s'] * 1e3:.2f} | "
            f"{smol} | {r['corral_vs_cpython']:.2f}x | {smol_ratio} |"
        )
    vs_c = data["geomean_corral_vs_cpython"]
    vs_s = data["geomean_smolagents_vs_corral"]
    lines.append("")
    lines.append(
        f"geomean Corral/CPython: {vs_c:.2f}x (target <= {TARGET_VS_CPYTHON}x): "
        f"{'PASS' if data['pass_vs_cpython'] else 'FAIL'}"
    )
    smol_text = f"{vs_s:.0f}x" if vs_s else "n/a (smolagents not installed)"
    lines.append(
        f"geomean smolagents/Corral: {smol_text} (target >= {TARGET_VS_SMOLAGENTS:.0f}x): "
        f"{'PASS' if data['pass_vs_smolagents'] else 'FAIL'}"
    )
    m = data["machine"]
    lines.append(f"machine: {m['platform']}, {m['cpus']} CPUs, Python {m['python']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="best-of-N for CPython and Corral")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    data = run(repeat=args.repeat)
    print(format_table(data))
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2))
    return 0 if data["pass_vs_cpython"] and data["pass_vs_smolagents"] else 1


if __name__ == "__main__":
    sys.exit(main())
