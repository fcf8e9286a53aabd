"""`corrald serve` and `corrald doctor`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from executor.daemon import config as config_mod
from executor.daemon import doctor, logs
from executor.daemon.errors import ConfigError

log = logging.getLogger("corral.daemon")


def _load(args: argparse.Namespace) -> config_mod.DaemonConfig | None:
    try:
        return config_mod.load(args)
    except ConfigError as exc:
        print(f"corrald: {exc}", file=sys.stderr)
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if cfg is None:
        return 2
    logs.configure(cfg.log_level, cfg.log_format)
    if cfg.self_check:
        checks, image = doctor.run_checks(
            image=cfg.image, limits=cfg.default_limits, runtime=cfg.runtime
        )
        if not doctor.all_ok(checks):
            print(doctor.format_table(checks), file=sys.stderr)
            print(
                "corrald: the self-check failed; refusing to serve (see `corrald doctor`)",
                file=sys.stderr,
            )
            return 3
        runtime = doctor.resolved_runtime(checks)
        log.info("self-check passed", extra={"image": image, "runtime": runtime})
        cfg = cfg.replace(image=image, runtime=runtime)
    from executor.daemon.server import serve

    try:
        return asyncio.run(serve(cfg))
    except ConfigError as exc:
        print(f"corrald: {exc}", file=sys.stderr)
        return 2


def cmd_doctor(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if cfg is None:
        return 2
    checks, _ = doctor.run_checks(image=cfg.image, limits=cfg.default_limits, runtime=cfg.runtime)
    checks += doctor.running_daemon_checks(cfg.metrics_address)
    print(doctor.format_table(checks))
    return 0 if doctor.all_ok(checks) else 1


def add_parser(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the executor daemon",
        description="Run the gRPC executor daemon. Every flag also reads CORRAL_<FLAG> "
        "from the environment and the TOML file given by --config.",
    )
    config_mod.add_arguments(serve)
    serve.set_defaults(func=cmd_serve)
    doc = subparsers.add_parser(
        "doctor",
        help="check Docker, the sandbox image and container confinement",
    )
    config_mod.add_arguments(doc)
    doc.set_defaults(func=cmd_doctor)
