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


SERVE_DESCRIPTION = """\
Run the Corral executor daemon: a gRPC API (default 127.0.0.1:50051) that
runs agents' Python snippets in warm, locked-down Docker containers.

Every setting below can be given three ways; later ones win:
  TOML file   --config corrald.toml      (key = flag name with _, e.g. pool_warm = 4;
                                          limits in [default_limits] / [max_limits],
                                          tokens in [tokens])
  environment CORRAL_<KEY>               (e.g. CORRAL_POOL_WARM=4)
  flag        --<key-with-dashes>        (e.g. --pool-warm 4)
Each entry shows: meaning. [unit; type; default; env variable; TOML key]
"""

SERVE_EPILOG = """\
examples:
  corrald serve                                   loopback, no auth, 4 warm containers
  corrald serve --listen 127.0.0.1:0 --ready-file /run/corrald.json
                                                  free port, written to the ready file
  corrald serve --listen 0.0.0.0:50051 --token alice=$(openssl rand -hex 24) \\
      --tls-cert server.pem --tls-key server.key  network: tokens and TLS are required

Signals: SIGTERM/SIGINT drain (running snippets get --shutdown-drain-s), a second
one exits at once. Check the host first with `corrald doctor`.
"""


def add_parser(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the executor daemon (the gRPC API agents connect to)",
        description=SERVE_DESCRIPTION,
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_mod.add_arguments(serve)
    serve.set_defaults(func=cmd_serve)
    doc = subparsers.add_parser(
        "doctor",
        help="check Docker, the sandbox image and container confinement",
        description="Check that Docker answers, the sandbox image builds or exists, and a "
        "container is confined as Corral requires (the same check `serve` runs first). "
        "Exit code 0 when every check passes. Takes the same settings as `serve`.",
    )
    config_mod.add_arguments(doc)
    doc.set_defaults(func=cmd_doctor)
