"""`corrald`: the operator's command (serve, doctor, build-image, probe, seccomp, fuzz).

Each subcommand lives in the module that owns it and registers itself through
an `add_parser(subparsers)` function, so this file stays a table.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (module, description) — each module defines add_parser(subparsers), which
# sets `func` on its parser: func(args) -> exit code.
SUBCOMMANDS: tuple[str, ...] = (
    "executor.daemon.cli",  # serve, doctor
    "executor.sandbox.image",  # build-image
    "executor.sandbox.probe",  # probe --raw FILE (operator only)
    "executor.sandbox.seccomp_tool",  # seccomp generate | record | verify
    "executor.fuzz.cli",  # fuzz
    "executor.local",  # run (in-process snippet run, no Docker)
    "executor.fleet",  # fleet nginx-config (many daemons behind a proxy)
    "executor.bench.load",  # bench load (load scenarios against a daemon)
)


DESCRIPTION = """\
corrald: the Corral executor daemon and its operator tools.

Start with `corrald doctor` (checks Docker, the sandbox image and container
confinement), then `corrald serve` (the gRPC API agents connect to; loopback
and no auth by default). `corrald COMMAND --help` describes each command;
`corrald serve --help` lists every setting with its unit, default, environment
variable and TOML key.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corrald",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # subcommand not built into this install
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
