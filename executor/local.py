"""`corrald run`: run one snippet in-process with the restricted interpreter (no Docker).

For development and for trying the policy: the same interpreter the sandbox
runs, without the container around it. Exit code 0 when the verdict is OK or
OUTPUT_TRUNCATED, 1 otherwise (2 for usage errors, as argparse does).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from executor.interpreter import Interpreter, Limits, Result, UnsafeImportError


def add_parser(subparsers: Any) -> None:
    """Register `run` on corrald's subcommand table (see executor/cli.py)."""
    parser = subparsers.add_parser(
        "run",
        help="run a snippet in-process with the restricted interpreter (no Docker)",
        description=__doc__,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-c", "--code", help="the snippet's source text")
    source.add_argument("file", nargs="?", help="a file holding the snippet ('-' for stdin)")
    parser.add_argument("--json", action="store_true", help="print the whole Result as JSON")
    parser.add_argument(
        "--imports",
        nargs="*",
        default=[],
        metavar="MODULE",
        help='extra authorized imports, smolagents-style ("numpy", "numpy.*", "*")',
    )
    parser.add_argument(
        "--timeout", type=float, default=Limits().wall_time_s, help="wall-clock limit, seconds"
    )
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Run the snippet and print its observation."""
    if args.code is not None:
        code: str | bytes = args.code
    elif args.file == "-":
        code = sys.stdin.buffer.read()
    else:
        try:
            with open(args.file, "rb") as fh:
                code = fh.read()
        except OSError as exc:
            print(f"corrald run: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
    try:
        interp = Interpreter(
            authorized_imports=tuple(args.imports),
            limits=Limits(wall_time_s=args.timeout),
            capture_sys_stdout=True,
        )
    except UnsafeImportError as exc:
        print(f"corrald run: {exc}", file=sys.stderr)
        return 2
    result = interp.run(code)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2, default=str))
    else:
        print_human(result)
    return 0 if result.ok else 1


def print_human(result: Result) -> None:
    """stdout as printed, then the value / final answer / error, then the verdict."""
    if result.stdout:
        sys.stdout.write(result.stdout)
        if not result.stdout.endswith("\n"):
            sys.stdout.write("\n")
    if result.is_final_answer and result.final_answer is not None:
        print(f"final answer: {result.final_answer.repr}")
    elif result.value is not None:
        print(result.value.repr)
    if result.error is not None:
        print(f"error: {result.error}", file=sys.stderr)
    suffix = " (output truncated)" if result.truncated else ""
    print(f"verdict: {result.verdict}{suffix}", file=sys.stderr)
