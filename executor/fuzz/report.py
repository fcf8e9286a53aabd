"""The fuzz report: `report.json` (everything) and `report.md` (for people)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from executor.fuzz.campaign import CampaignResult, SnippetResult, summarize

SLOWEST = 15


def to_json(result: CampaignResult, meta: Mapping[str, Any]) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for r in result.results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return {
        "ok": result.ok,
        "meta": dict(meta),
        "daemon": result.daemon,
        "started": result.started,
        "finished": result.finished,
        "duration_s": round(result.finished - result.started, 2),
        "budget_exhausted": result.budget_exhausted,
        "snippets": len(result.results),
        "statuses": statuses,
        "escapes_by_class": _escapes_by_class(result.results),
        "counts": summarize(result.results),
        "final_problems": result.final_problems,
        "failures": [r.to_dict() for r in result.failures],
        "mismatches": [r.to_dict() for r in result.mismatches],
        "slowest": [
            {"id": r.id, "cls": r.cls, "verdict": r.verdict, "wall_s": r.wall_s}
            for r in sorted(result.results, key=lambda r: -r.wall_s)[:SLOWEST]
        ],
        "results": [
            {k: v for k, v in r.to_dict().items() if k not in ("code", "output_excerpt")}
            for r in result.results
        ],
    }


def _escapes_by_class(results: Sequence[SnippetResult]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results:
        out.setdefault(r.cls, 0)
        if r.status == "fail":
            out[r.cls] += 1
    return out


def _fence(code: str) -> str:
    return "```python\n" + code.rstrip("\n").replace("```", "` ` `") + "\n```"


def to_markdown(data: Mapping[str, Any]) -> str:
    meta = data["meta"]
    lines = [
        "# Corral fuzz report",
        "",
        f"- Result: **{'PASS: zero escapes, crashes, hangs or leaks' if data['ok'] else 'FAIL'}**",
        f"- Daemon: `{data['daemon'].get('address', '')}` (instance `{data['daemon'].get('instance_id', '')}`)",
        f"- Snippets: {data['snippets']} ({meta.get('corpus', 0)} corpus, "
        f"{data['snippets'] - min(meta.get('corpus', 0), data['snippets'])} generated); "
        f"seed {meta.get('seed')}, count {meta.get('count')}, budget {meta.get('budget_s')} s",
        f"- Duration: {data['duration_s']} s; started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(data['started']))}",
        f"- Statuses: {', '.join(f'{k} {v}' for k, v in sorted(data['statuses'].items())) or 'none'}",
    ]
    if data["budget_exhausted"]:
        lines.append("- The time budget ran out before every snippet ran.")
    lines += ["", "## Escapes per class", "", "| class | snippets | failures |", "|---|---:|---:|"]
    counts = data["counts"]
    for cls in sorted(counts):
        total = sum(counts[cls].values())
        lines.append(f"| {cls} | {total} | {data['escapes_by_class'].get(cls, 0)} |")
    verdicts = sorted({v for per in counts.values() for v in per})
    lines += [
        "",
        "## Verdicts per class",
        "",
        "| class | " + " | ".join(verdicts) + " |",
        "|---|" + "---:|" * len(verdicts),
    ]
    for cls in sorted(counts):
        lines.append(
            f"| {cls} | " + " | ".join(str(counts[cls].get(v, 0)) for v in verdicts) + " |"
        )
    lines += [
        "",
        "## Slowest snippets",
        "",
        "| id | class | verdict | seconds |",
        "|---|---|---|---:|",
    ]
    for s in data["slowest"]:
        lines.append(f"| {s['id']} | {s['cls']} | {s['verdict']} | {s['wall_s']:.2f} |")
    if data["final_problems"]:
        lines += ["", "## Problems after the run", ""]
        lines += [f"- {p}" for p in data["final_problems"]]
    lines += ["", f"## Failures ({len(data['failures'])})", ""]
    if not data["failures"]:
        lines.append("None.")
    for f in data["failures"]:
        lines += _case(f)
    lines += [
        "",
        f"## Mismatches ({len(data['mismatches'])}): safe, but not the expected verdict",
        "",
    ]
    if not data["mismatches"]:
        lines.append("None.")
    for m in data["mismatches"]:
        lines += _case(m)
    return "\n".join(lines) + "\n"


def _case(r: Mapping[str, Any]) -> list[str]:
    out = [
        f"### {r['id']} ({r['cls']})",
        "",
        f"- Verdict: {r['verdict']}; expected: {', '.join(r['expect']) or 'any safe verdict'}",
        f"- Origin: {r['origin']}"
        + (f"; mutations: {', '.join(r['mutations'])}" if r["mutations"] else ""),
        f"- Source: {r['source']}",
    ]
    out += [f"- Problem: {p}" for p in r["problems"]]
    if r.get("rpc"):
        out.append(f"- gRPC: {r['rpc']}")
    out += ["", _fence(r["code"])]
    if r.get("output_excerpt"):
        out += ["", "Output:", "", "```", r["output_excerpt"].replace("```", "` ` `"), "```"]
    out.append("")
    return out


def write_reports(
    result: CampaignResult, out_dir: Path, meta: Mapping[str, Any]
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = to_json(result, meta)
    json_path = out_dir / "report.json"
    md_path = out_dir / "report.md"
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(to_markdown(data), encoding="utf-8")
    return json_path, md_path
