"""`corrald run`: run one snippet in-process with the restricted interpreter (no Docker).

For development and for trying the policy: the same interpreter the sandbox
runs, without the container around it. The flags are those of `corral exec`
(a positional FILE here, a positional CODE there; -c CODE and -f FILE in
both): --import MODULE (repeatable), --wall-time-ms MS, --json.

Exit code 0 when the verdict is OK or OUTPUT_TRUNCATED, 1 when the snippet
did not succeed, 2 for a bad command line or an unreadable or non-UTF-8 file
(one line on stderr; nothing was run).
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
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-c", "--code", help="the snippet's source text")
    source.add_argument("file", nargs="?", help="a file holding the snippet ('-' for stdin)")
    source.add_argument("-f", "--file", dest="file_opt", metavar="FILE", help="same as FILE")
    parser.add_argument("--json", action="store_true", help="print the whole Result as JSON")
    parser.add_argument(
        "--import",
        "--imports",  # the old spelling; one module per flag now, so FILE is never swallowed
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help='authorize an extra import (repeatable; "numpy", "numpy.*", "*")',
    )
    parser.add_argument(
        "--wall-time-ms",
        type=_positive_ms,
        default=None,
        metavar="MS",
        help=f"wall-clock limit, milliseconds (default {int(Limits().wall_time_s * 1000)})",
    )
    # The old spelling, in seconds; kept working, not advertised.
    parser.add_argument("--timeout", type=float, default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=run_command)


def _positive_ms(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of ms") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _read_source(path: str) -> str:
    """The snippet's text, or ValueError with a one-line reason."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as fh:
                data = fh.read()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
            "save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def run_command(args: argparse.Namespace) -> int:
    """Run the snippet and print its observation."""
    if args.code is not None:
        code = args.code
    else:
        try:
            code = _read_source(args.file or args.file_opt)
        except ValueError as exc:
            print(f"corrald run: {exc}", file=sys.stderr)
            return 2
    if args.wall_time_ms is not None:
        wall_s = args.wall_time_ms / 1000
    elif args.timeout is not None:
        wall_s = args.timeout
    else:
        wall_s = Limits().wall_time_s
    try:
        interp = Interpreter(
            authorized_imports=tuple(args.imports),
            limits=Limits(wall_time_s=wall_s),
            capture_sys_stdout=True,
        )
    except UnsafeImportError as exc:
        # The interpreter's message names its Python-level escape hatch, which
        # this command deliberately does not offer.
        reason = str(exc).split(";", 1)[0]
        print(f"corrald run: {reason}; no flag of corrald run allows it", file=sys.stderr)
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
