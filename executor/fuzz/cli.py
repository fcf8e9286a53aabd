"""`corrald fuzz`: attack a daemon with the corpus and generated snippets, write a report.

    corrald fuzz                              # start a daemon, corpus + 200 generated
    corrald fuzz --count 5000 --budget 1800   # the long run (`make fuzz`)
    corrald fuzz --target 127.0.0.1:50051 --token T   # a daemon that is already running

Exit code: 0 when there was no escape, crash, hang or leak; 1 otherwise;
2 when the run could not start (bad corpus, daemon did not come up).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from executor.fuzz.campaign import Campaign, CampaignConfig, ContainerCounter, SnippetResult
from executor.fuzz.canaries import CANARY_ENV, Canaries
from executor.fuzz.corpus import CLASSES, DEFAULT_CORPUS_DIR, CorpusError, load_corpus
from executor.fuzz.generator import Snippet, corpus_snippets, generated_snippets
from executor.fuzz.launch import DaemonProcess, LaunchError, start_daemon
from executor.fuzz.report import write_reports
from executor.fuzz.target import Target, TargetError

log = logging.getLogger("corral.fuzz")

EXIT_OK, EXIT_FAILED, EXIT_CANNOT_RUN = 0, 1, 2


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "fuzz",
        help="attack a daemon with malicious snippets and write a report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--target",
        help="address of a running daemon (default: start one). To check its environment "
        f"canary, export the same {CANARY_ENV}=<secret> to that daemon and to this command",
    )
    p.add_argument(
        "--token", default=os.environ.get("CORRAL_TOKEN"), help="bearer token (env CORRAL_TOKEN)"
    )
    p.add_argument(
        "--corpus", type=Path, default=DEFAULT_CORPUS_DIR, help="corpus directory (*.toml)"
    )
    p.add_argument(
        "--classes", help=f"comma-separated classes to run (default all: {', '.join(CLASSES)})"
    )
    p.add_argument(
        "--only", action="append", default=[], metavar="ID", help="run only these snippet ids"
    )
    p.add_argument(
        "--no-corpus", action="store_true", help="skip the corpus, run generated snippets only"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the generated snippets (default 0)")
    p.add_argument("--count", type=int, default=200, help="generated snippets (default 200)")
    p.add_argument(
        "--budget", type=float, default=600.0, help="time budget in seconds (default 600)"
    )
    p.add_argument("--out", type=Path, default=Path("fuzz-report"), help="report directory")
    p.add_argument("--pool-warm", type=int, default=2, help="warm pool of a daemon we start")
    p.add_argument(
        "--self-check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the daemon's confinement self-check at start (daemon we start only)",
    )
    p.add_argument(
        "--container-check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="count the daemon's containers through Docker after each snippet",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no per-snippet progress lines")
    p.set_defaults(func=cmd_fuzz)


def _progress(quiet: bool) -> Any:
    counter = itertools.count(1)

    def show(r: SnippetResult) -> None:
        n = next(counter)
        if quiet and r.status == "pass":
            return
        mark = {"pass": "ok  ", "mismatch": "warn", "fail": "FAIL"}[r.status]
        print(f"[{n:5d}] {mark} {r.verdict:16s} {r.wall_s:6.2f}s {r.cls:18s} {r.id}", flush=True)
        for p in r.problems:
            print(f"         {p}", flush=True)

    return show


def cmd_fuzz(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        entries = load_corpus(
            args.corpus, classes=args.classes.split(",") if args.classes else None
        )
    except CorpusError as exc:
        print(f"corrald fuzz: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    if args.count < 0 or args.budget <= 0:
        print("corrald fuzz: --count must be >= 0 and --budget > 0", file=sys.stderr)
        return EXIT_CANNOT_RUN
    config = CampaignConfig(
        seed=args.seed,
        count=args.count,
        budget_s=args.budget,
        check_containers=args.container_check,
    )
    with Canaries() as canaries:
        if args.target and os.environ.get(CANARY_ENV):
            # The operator exported the same canary to the external daemon.
            canaries.env_value = os.environ[CANARY_ENV]
        values = canaries.placeholders()
        snippets = [] if args.no_corpus else corpus_snippets(entries, values)
        n_corpus = len(snippets)
        generated = generated_snippets(entries, values, seed=args.seed, count=args.count)
        stream: Iterable[Snippet] = itertools.chain(snippets, generated)
        if args.only:
            wanted = set(args.only)
            stream = (s for s in stream if s.id in wanted)
        meta = {
            "seed": args.seed,
            "count": args.count,
            "budget_s": args.budget,
            "corpus": n_corpus,
            "corpus_dir": str(args.corpus),
            "classes": sorted({e.cls for e in entries}),
        }
        daemon: DaemonProcess | None = None
        try:
            if args.target:
                address = args.target
            else:
                print("corrald fuzz: starting a daemon (canary in its environment)...", flush=True)
                daemon = start_daemon(
                    extra_env=canaries.daemon_env(),
                    log_path=args.out / "daemon.log",
                    pool_warm=args.pool_warm,
                    self_check=args.self_check,
                )
                address = daemon.target
            target = Target(address, token=args.token)
            try:
                target.wait_ready(60)
                campaign = Campaign(
                    target,
                    canaries,
                    config,
                    daemon_alive=daemon.alive if daemon else None,
                    progress=_progress(args.quiet),
                )
                result = campaign.run(stream)
            finally:
                target.close()
        except (LaunchError, TargetError) as exc:
            print(f"corrald fuzz: {exc}", file=sys.stderr)
            if daemon is not None:
                daemon.stop()
            return EXIT_CANNOT_RUN
        if daemon is not None:
            code = daemon.stop()
            if code not in (0, None):
                result.final_problems.append(f"daemon exited with code {code} on SIGTERM")
            if config.check_containers:
                result.final_problems.extend(_leftovers(daemon.instance_id))
        json_path, md_path = write_reports(result, args.out, meta)
    fails = len(result.failures)
    print(
        f"corrald fuzz: {len(result.results)} snippets, {fails} failures, "
        f"{len(result.mismatches)} mismatches, {len(result.final_problems)} final problems; "
        f"report: {md_path} and {json_path}"
    )
    return EXIT_OK if result.ok else EXIT_FAILED


def _leftovers(instance_id: str, wait_s: float = 20.0) -> list[str]:
    """After the daemon stopped, none of its containers may remain."""
    try:
        counter = ContainerCounter(instance_id)
    except Exception as exc:
        return [f"cannot check leftover containers: {exc}"]
    deadline = time.monotonic() + wait_s
    while True:
        n = counter.count()
        if n == 0:
            return []
        if time.monotonic() > deadline:
            return [
                f"container leak: {n} containers of instance {instance_id} remain after the daemon stopped"
            ]
        time.sleep(0.5)
