"""`corral`: run snippets and agents against a Corral daemon from the shell.

    corral exec 'print(1 + 1)'           run one snippet, print its result
    corral exec -f script.py --json      machine-readable result
    corral exec --import numpy --wall-time-ms 2000 --limit pids=16 -c 'import numpy'
    corral repl                          a stateful session (stdin, interactive or piped)
    corral agent TASK --model ID --base-url URL
    corral demo                          "Calculate the 100th Fibonacci number", end to end
    corral demo --local                  the same with no daemon and no Docker
    corral mcp [--http]                  serve run_python & co. to MCP clients

The daemon address comes from --target (host:port, or a bare host for port
50051), else $CORRAL_TARGET, else 127.0.0.1:50051; the token from --token, else
$CORRAL_TOKEN. --wait SECONDS waits for a daemon that is still starting
(`corrald serve & corral exec --wait 60 ...`). The same names are used by
`corrald run` and the Python API: --import MODULE (repeatable; imports=[...]),
--wall-time-ms MS and --limit NAME=INT (limits={"wall_time_ms": ...}).

Exit codes (exec; repl/agent/demo use 0, 2 and the 10+ codes):
   0  OK or OUTPUT_TRUNCATED        6  CPU_LIMIT        11  authentication failed (token)
   1  ERROR (the snippet raised)     7  MEMORY_LIMIT     12  agent or model failure
   2  bad command line, file or      8  SANDBOX_LOST     13  agent reached --max-steps
      limits (nothing was run)       9  INTERNAL             without a final answer
   3  SYNTAX_ERROR                  10  daemon unreachable or refused the call
   4  POLICY_DENIED
   5  TIMEOUT
"""

from __future__ import annotations

import argparse
import codeop
import contextlib
import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, NoReturn, TextIO

from agent.agents import CodeAgent, MultiStepAgent, ToolCallingAgent
from agent.client import Client, Session
from agent.errors import (
    AgentError,
    CorralError,
    CorralWarning,
    InvalidArgument,
    ModelError,
    PermissionDenied,
    ToolError,
    Unauthenticated,
)
from agent.memory import ActionStep, format_step
from agent.models import Model, OpenAICompatibleModel, ScriptedModel
from agent.results import Artifact, Result, Stderr, Verdict
from proto.limits import LIMIT_FIELDS

EXIT_BY_VERDICT: dict[Verdict, int] = {
    Verdict.OK: 0,
    Verdict.OUTPUT_TRUNCATED: 0,
    Verdict.ERROR: 1,
    Verdict.SYNTAX_ERROR: 3,
    Verdict.POLICY_DENIED: 4,
    Verdict.TIMEOUT: 5,
    Verdict.CPU_LIMIT: 6,
    Verdict.MEMORY_LIMIT: 7,
    Verdict.SANDBOX_LOST: 8,
    Verdict.INTERNAL: 9,
    Verdict.INTERRUPTED: 130,  # as a shell reports Ctrl-C (128 + SIGINT)
}
EXIT_USAGE = 2
EXIT_DAEMON = 10
EXIT_AUTH = 11
EXIT_AGENT = 12
EXIT_STEP_LIMIT = 13

DEMO_TASK = "Calculate the 100th Fibonacci number"
DEMO_ANSWER = 354224848179261915075
# A realistic transcript of a code-writing model solving the demo task: a
# thought, an iterative code action, then (after seeing the observation) the
# final answer.
DEMO_SCRIPT: tuple[str, ...] = (
    "Thought: The 100th Fibonacci number is far beyond 64 bits, but Python integers have "
    "arbitrary precision, so I can compute it exactly. Using F(1) = F(2) = 1, I iterate "
    "100 times, keeping only the last two numbers, and print the result to check it.\n"
    "```py\n"
    "a, b = 0, 1\n"
    "for i in range(100):\n"
    "    a, b = b, a + b\n"
    'print(f"F(100) = {a} ({len(str(a))} digits)")\n'
    "a\n"
    "```",
    "Thought: The loop printed F(100) = 354224848179261915075, a 21-digit number, which "
    "matches the known value (F(100) is about 3.54e20). I'll give it as the final answer.\n"
    "```py\n"
    "final_answer(a)\n"
    "```",
)


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0 (0 means the daemon's default)."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 (the default) or more")
    return value


def limit_assignment(text: str) -> tuple[str, int]:
    """argparse type for --limit NAME=INT (names as in `corral.v1.Limits`)."""
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=INT (e.g. memory_bytes=268435456)")
    if name not in LIMIT_FIELDS:
        raise argparse.ArgumentTypeError(
            f"unknown limit {name!r}; known limits: {', '.join(LIMIT_FIELDS)}"
        )
    return name, non_negative_int(value.strip())


def _limit_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wall-time-ms",
        type=non_negative_int,
        default=0,
        metavar="MS",
        help="wall-clock limit of each snippet, milliseconds (0: the daemon's default)",
    )
    parser.add_argument(
        "--limit",
        dest="limits",
        type=limit_assignment,
        action="append",
        default=[],
        metavar="NAME=INT",
        help=f"any session limit, repeatable ({', '.join(LIMIT_FIELDS)})",
    )


def _limits(args: argparse.Namespace) -> dict[str, int] | None:
    limits = dict(getattr(args, "limits", None) or ())
    if getattr(args, "wall_time_ms", 0):
        limits["wall_time_ms"] = args.wall_time_ms
    return limits or None


class LocalError(InvalidArgument):
    """A problem found before contacting the daemon (unreadable file, ...): exit 2."""


def _connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        help="daemon address host:port, or a bare host for port 50051 (env CORRAL_TARGET)",
    )
    parser.add_argument("--token", help="bearer token (env CORRAL_TOKEN)")
    parser.add_argument("--tls-ca", metavar="PEM", help="use TLS, trusting this CA bundle")
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for the daemon to accept connections (e.g. just after starting it)",
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="authorize an extra import (repeatable; 'numpy', 'numpy.*', '*')",
    )


def _model_args(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--model", required=required, help="model id at the endpoint")
    parser.add_argument(
        "--base-url",
        default="https://api.openai.com/v1",
        help="OpenAI-compatible API root, e.g. http://localhost:11434/v1",
    )
    parser.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key"
    )
    parser.add_argument(
        "--max-steps",
        type=positive_int,
        default=10,
        help="steps before the agent gives up (exit 13 when no final answer came)",
    )
    parser.add_argument(
        "--stream", action="store_true", help="print the model's output as it is generated"
    )
    parser.add_argument(
        "--executor",
        choices=("daemon", "process", "local"),
        default="daemon",
        help="where snippets run: a daemon session (default), the interpreter in a child "
        "process (no Docker), or in this process (trusted models only)",
    )
    parser.add_argument(
        "--local",
        dest="executor",
        action="store_const",
        const="local",
        help="shorthand for --executor local: no daemon, no Docker",
    )


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2): `corral exec: --wall-time-ms: ... (see --help)`."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="corral", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("exec", help="run one snippet and print its result")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("code", nargs="?", help="the snippet")
    src.add_argument("-c", "--code", dest="code_opt", metavar="CODE", help="the snippet")
    src.add_argument("-f", "--file", help="read the snippet from FILE ('-' for stdin), UTF-8")
    p.add_argument("--json", action="store_true", help="print the whole Result as JSON")
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="save figures and images to DIR (one line each: [figure 1: 640x480 PNG → "
        "DIR/figure-1.png]); without it they are only listed",
    )
    _limit_args(p)
    _connection_args(p)
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("repl", help="an interactive, stateful session")
    p.add_argument(
        "--out",
        metavar="DIR",
        default="corral-out",
        help="where figures and images are saved (default: ./corral-out)",
    )
    _limit_args(p)
    _connection_args(p)
    p.set_defaults(func=cmd_repl)

    p = sub.add_parser("agent", help="solve a task with a CodeAgent and a real model")
    p.add_argument("task")
    p.add_argument("--tool-calling", action="store_true", help="use the ToolCallingAgent instead")
    p.add_argument(
        "--in-sandbox",
        action="store_true",
        help="run the agent loop itself inside the sandbox; model calls come back here, "
        "so the API key never enters it",
    )
    _model_args(p, required=True)
    _limit_args(p)
    _connection_args(p)
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("demo", help=f"'{DEMO_TASK}' end to end (scripted model unless --model)")
    _model_args(p, required=False)
    _limit_args(p)
    _connection_args(p)
    p.set_defaults(func=cmd_demo)

    from agent.integrations import mcp as mcp_server  # argparse only: mcp loads when serving

    mcp_server.add_parser(sub, _connection_args)
    return parser


def _client(args: argparse.Namespace) -> Client:
    client = Client(args.target, token=args.token, tls=args.tls_ca)
    if args.wait > 0:
        try:
            client.wait_ready(args.wait)
        except CorralError:
            client.close()
            raise
    return client


def exit_code_for(exc: CorralError) -> int:
    """The exit code of a call that failed (nothing ran, or the agent stopped)."""
    if isinstance(exc, Unauthenticated | PermissionDenied):
        return EXIT_AUTH
    if isinstance(exc, AgentError | ModelError):
        return EXIT_AGENT
    if isinstance(exc, InvalidArgument | ToolError):
        # Refused before anything ran: a bad flag, file, limit or import, said
        # by this process or by the daemon; the command must change.
        return EXIT_USAGE
    return EXIT_DAEMON


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _failure_exit(exc: CorralError, err: TextIO) -> int:
    print(f"corral: {_one_line(str(exc))}", file=err)
    return exit_code_for(exc)


def _print_warnings(session: Session, err: TextIO) -> None:
    for text in session.warnings:
        print(f"corral: warning: {_one_line(text)}", file=err)


def read_source(path: str) -> str:
    """The snippet in FILE ('-' for stdin) as text; LocalError (exit 2) when unreadable."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise LocalError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise LocalError(
            f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
            "save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def result_json(result: Result, saved: dict[str, str] | None = None) -> dict[str, Any]:
    d = result.to_dict()
    # Artifacts as descriptions (and where they were saved), not base64 blobs.
    d["artifacts"] = [
        {
            "name": a.name,
            "mime_type": a.mime_type,
            "bytes": len(a.data),
            "metadata": a.metadata,
            **({"path": saved[a.name]} if saved and a.name in saved else {}),
        }
        for a in result.artifacts
    ]
    d["usage"] = asdict(result.usage)
    d["exit_code"] = EXIT_BY_VERDICT[result.verdict]
    return d


# C0 controls except tab and newline, DEL and C1 controls: a snippet could
# otherwise drive the user's terminal with escape sequences.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def for_terminal(text: str, stream: TextIO) -> str:
    """Sandbox text made inert when it is shown on a terminal (piped output is untouched)."""
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text


def print_result_tail(result: Result, out: TextIO, err: TextIO) -> None:
    """After the streamed output: the value, the final answer, or the error."""
    if result.stdout and not result.stdout.endswith("\n"):
        out.write("\n")
    if result.is_final_answer and result.final_answer is not None:
        print(f"Final answer: {for_terminal(result.final_answer.repr, out)}", file=out)
    elif result.value is not None and result.value.type != "NoneType":
        print(for_terminal(result.value.repr, out), file=out)
    if result.truncated:
        print("[output truncated]", file=err)
    if not result.ok:
        where = f" (line {result.error.line})" if result.error and result.error.line else ""
        detail = f"{result.error.type}: {result.error.message}" if result.error else ""
        if result.error and result.error.frames and result.error.traceback:
            print(for_terminal(result.error.traceback, err), file=err)
        print(for_terminal(f"{result.verdict.value}{where}: {detail}", err), file=err)
        if result.session_lost:
            print("the session's sandbox was lost", file=err)


def _stream_result(
    session: Session,
    code: str,
    out: TextIO,
    echo: bool,
    *,
    err: TextIO | None = None,
    out_dir: str | None = None,
    saved: dict[str, str] | None = None,
) -> Result:
    """Stream a snippet: stdout to `out`, stderr to `err`, one line per artifact.

    Artifacts are saved under `out_dir` when given (`saved` maps name -> path).
    """
    err = err or sys.stderr
    result: Result | None = None
    for item in session.stream(code):
        if isinstance(item, Result):
            result = item
        elif isinstance(item, Artifact):
            path = item.save(out_dir) if out_dir else None
            if path is not None and saved is not None:
                saved[item.name] = str(path)
            if echo:
                out.write(item.describe(path) + "\n")
                out.flush()
        elif isinstance(item, Stderr):
            if echo:
                err.write(for_terminal(item, err))
                err.flush()
        elif echo:
            out.write(for_terminal(item, out))
            out.flush()
    assert result is not None  # stream() ends with a Result or raises
    return result


def cmd_exec(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    try:
        code = read_source(args.file) if args.file else (args.code_opt or args.code or "")
        with (
            _client(args) as client,
            client.session(imports=args.imports, limits=_limits(args)) as s,
        ):
            _print_warnings(s, err)
            saved: dict[str, str] = {}
            result = _stream_result(
                s, code, out, echo=not args.json, err=err, out_dir=args.out, saved=saved
            )
    except CorralError as exc:
        status = _failure_exit(exc, err)
        if args.json:
            name = exc.code.name if exc.code is not None else type(exc).__name__
            doc = {"error": {"code": name, "message": str(exc)}, "exit_code": status}
            print(json.dumps(doc, indent=2), file=out)
        return status
    if args.json:
        print(json.dumps(result_json(result, saved), default=repr, indent=2), file=out)
    else:
        print_result_tail(result, out, err)
    return EXIT_BY_VERDICT[result.verdict]


def _status(source: str) -> str:
    """ "complete", "incomplete" (needs more lines) or "invalid", as the REPL judges it."""
    try:
        code = codeop.compile_command(source + "\n", "<repl>", "single")
    except (SyntaxError, ValueError, OverflowError):
        return "invalid"
    return "incomplete" if code is None else "complete"


def read_blocks(
    lines: Iterator[str], prompt: Callable[[str], None], *, lookahead: bool = False
) -> Iterator[str]:
    """Group input lines into snippets, as the Python REPL does.

    A one-line statement runs at once; a block (def, for, if, decorators) runs
    at a blank line. With lookahead (piped input, where nobody types the blank
    line), a block instead ends at the next unindented line that does not
    continue it (`else:` does), and blank lines inside a block are kept.
    Anything that cannot be completed is sent as is: the sandbox reports its
    SYNTAX_ERROR.
    """
    buffer: list[str] = []
    blank_pending = False
    prompt(">>> ")
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line.strip():
            if buffer and not lookahead:
                yield "\n".join(buffer)
                buffer = []
                prompt(">>> ")
            elif buffer:
                blank_pending = True
            else:
                prompt(">>> ")
            continue
        if (
            buffer
            and not line[0].isspace()
            and _status("\n".join(buffer)) == "complete"
            and _status("\n".join([*buffer, line])) == "invalid"
        ):
            yield "\n".join(buffer)
            buffer = []
        elif blank_pending and buffer:
            buffer.append("")
        blank_pending = False
        buffer.append(line)
        status = _status("\n".join(buffer))
        first = buffer[0].split("#", 1)[0].rstrip()
        opens_block = first.endswith(":") or first.lstrip().startswith("@")
        if status != "incomplete" and not opens_block:
            yield "\n".join(buffer)
            buffer = []
            prompt(">>> ")
        else:
            prompt("... ")
    if buffer:
        yield "\n".join(buffer)


REPL_HELP = """\
:checkpoint        save the session's state; prints its id
:rollback ID       return the state to a checkpoint
:checkpoints       list the checkpoints
:drop ID           drop a checkpoint
:interrupt         stop a snippet left running (Ctrl-C does this for the one you run)
:recover           continue a lost session from its last checkpoint
:help              this text"""
HISTORY_FILE = "~/.corral_history"


def _line_editing() -> Any:
    """readline with a persistent history, or None where it is unavailable."""
    try:
        import readline
    except ImportError:
        return None
    path = os.path.expanduser(HISTORY_FILE)
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(2000)
    return readline


def _save_history(readline: Any) -> None:
    if readline is not None:
        with contextlib.suppress(OSError):
            readline.write_history_file(os.path.expanduser(HISTORY_FILE))


def repl_command(session: Session, line: str, out: TextIO) -> Session | None:
    """Run one `:command`; None when the line is not one."""
    word, _, arg = line.strip().partition(" ")
    arg = arg.strip()
    if word == ":checkpoint":
        print(session.checkpoint(), file=out)
    elif word == ":rollback" and arg:
        session.rollback(arg)
        print(f"rolled back to {arg}", file=out)
    elif word == ":checkpoints":
        for cp in session.checkpoints():
            print(f"{cp.checkpoint_id}  {cp.history} history entries", file=out)
    elif word == ":drop" and arg:
        session.drop_checkpoint(arg)
    elif word == ":interrupt":
        print("interrupted" if session.interrupt() else "nothing was running", file=out)
    elif word == ":recover":
        rec = session.recover()
        print(f"recovered from {rec.checkpoint_id or 'the state at open'}", file=out)
    elif word in (":help", ":?"):
        print(REPL_HELP, file=out)
    else:
        print(f"unknown command {line.strip()[:40]!r}; :help lists them", file=out)
    return session


def cmd_repl(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    interactive = sys.stdin.isatty()
    readline = _line_editing() if interactive else None
    current = [">>> "]

    def prompt(text: str) -> None:
        current[0] = text
        if interactive and readline is None:
            err.write(text)
            err.flush()

    limits = _limits(args)

    def typed_lines() -> Iterator[str]:
        while True:
            try:
                yield input(current[0] if readline is not None else "")
            except EOFError:
                return

    try:
        with _client(args) as client:
            session = client.session(
                imports=args.imports, limits=limits, labels={"client": "corral-repl"}
            )
            _print_warnings(session, err)
            try:
                if interactive:
                    print(
                        f"Corral session {session.id.rpartition('/')[2][:8]} on {client.target}; Ctrl-C stops a "
                        "snippet (the session stays), Ctrl-D exits, :help for commands.",
                        file=err,
                    )
                finished = False
                while not finished:
                    lines = typed_lines() if interactive else iter(sys.stdin.readline, "")
                    try:
                        finished = True
                        for source in read_blocks(lines, prompt, lookahead=not interactive):
                            if source.strip() in ("exit", "quit", "exit()", "quit()"):
                                break
                            if source.lstrip().startswith(":"):
                                try:
                                    repl_command(session, source, err)
                                except CorralError as exc:
                                    print(f"error: {exc}", file=err)
                                continue
                            result = _stream_result(
                                session, source, out, echo=True, err=err, out_dir=args.out
                            )
                            print_result_tail(result, out, err)
                            out.flush()
                            if session.lost:
                                session = _recover_or_reopen(client, session, args, err)
                    except KeyboardInterrupt:
                        # At the prompt: drop the typed block. During a snippet: stream()
                        # already interrupted it; the session and its variables stay.
                        print(
                            "\nKeyboardInterrupt (the session and its variables are kept)", file=err
                        )
                        finished = not interactive
            finally:
                _save_history(readline)
                session.close()
    except CorralError as exc:
        return _failure_exit(exc, err)
    except UnicodeDecodeError as exc:
        print(
            f"corral: standard input is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); "
            "pipe UTF-8 (e.g. through iconv -t utf-8)",
            file=err,
        )
        return EXIT_USAGE
    return 0


def _recover_or_reopen(
    client: Client, session: Session, args: argparse.Namespace, err: TextIO
) -> Session:
    try:
        rec = session.recover()
        where = f"checkpoint {rec.checkpoint_id}" if rec.checkpoint_id else "the state at open"
        print(f"the sandbox was lost; recovered from {where}", file=err)
        return session
    except CorralError as exc:
        print(f"starting a new session (variables are gone): {exc}", file=err)
        return client.session(imports=args.imports, limits=_limits(args))


def _print_step(step: ActionStep) -> None:
    # The final answer is printed once, after the last step (see _run_agent).
    shown = replace(step, is_final_answer=False) if step.is_final_answer else step
    print(for_terminal(format_step(shown), sys.stdout), flush=True)


def _run_agent(agent: MultiStepAgent, task: str) -> int:
    print(f"Task: {task}", flush=True)
    try:
        with agent:
            answer = agent.run(task)
    except CorralError as exc:
        return _failure_exit(exc, sys.stderr)
    finally:
        if agent.client is not None:
            agent.client.close()
    usage = agent.memory.token_usage
    summary = (
        f"[{len(agent.logs)} step(s), tokens in/out {usage.input_tokens}/{usage.output_tokens}]"
    )
    if agent.memory.final_step is not None:
        # No step gave a final answer: what the model said when asked without
        # tools is not an answer the sandbox checked.
        print(
            f"No final answer: the agent reached its step limit ({agent.max_steps} steps; "
            "raise --max-steps).\nThe model's last reply: "
            f"{for_terminal(str(answer), sys.stdout)}\n{summary}",
            flush=True,
        )
        print(
            f"corral: step limit of {agent.max_steps} reached without a final answer",
            file=sys.stderr,
        )
        return EXIT_STEP_LIMIT
    print(f"Final answer: {for_terminal(str(answer), sys.stdout)}\n{summary}", flush=True)
    return 0


def _stream_to_stdout(text: str) -> None:
    sys.stdout.write(for_terminal(text, sys.stdout))
    sys.stdout.flush()


def _endpoint_model(args: argparse.Namespace) -> Model:
    return OpenAICompatibleModel(
        args.model,
        args.base_url,
        api_key_env=args.api_key_env,
        stream_to=_stream_to_stdout if getattr(args, "stream", False) else None,
    )


def cmd_agent(args: argparse.Namespace) -> int:
    cls = ToolCallingAgent if args.tool_calling else CodeAgent
    try:
        model = _endpoint_model(args)
    except CorralError as exc:
        return _failure_exit(exc, sys.stderr)
    if args.in_sandbox:
        return _run_in_sandbox(model, args)
    return _run_agent_with(cls, model, args, args.task)


def _run_in_sandbox(model: Model, args: argparse.Namespace) -> int:
    """`corral agent --in-sandbox`: the loop in a sandbox session, model calls relayed here."""
    from agent.sandboxed import run_in_sandbox

    if args.tool_calling:
        print("corral: --in-sandbox runs the CodeAgent loop; drop --tool-calling", file=sys.stderr)
        return EXIT_USAGE
    where: dict[str, Any] = {}
    try:
        if args.executor != "daemon":
            where["executor"] = args.executor
        else:
            where["client"] = _client(args)
        agent = CodeAgent(
            model=model, authorized_imports=args.imports, max_steps=args.max_steps, **where
        )
    except CorralError as exc:
        return _failure_exit(exc, sys.stderr)
    print(f"Task: {args.task}", flush=True)
    try:
        with agent:
            answer = run_in_sandbox(
                agent, args.task, on_output=lambda text: _stream_to_stdout(text)
            )
    except CorralError as exc:
        return _failure_exit(exc, sys.stderr)
    finally:
        if agent.client is not None:
            agent.client.close()
    for step in agent.logs:
        _print_step(step)
    usage = agent.memory.token_usage
    print(
        f"Final answer: {answer}\n[{len(agent.logs)} step(s) in the sandbox, tokens in/out "
        f"{usage.input_tokens}/{usage.output_tokens}]",
        flush=True,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    model = (
        _endpoint_model(args) if args.model else ScriptedModel(DEMO_SCRIPT, model_id="demo-script")
    )
    return _run_agent_with(CodeAgent, model, args, DEMO_TASK)


def _run_agent_with(
    cls: type[MultiStepAgent], model: Model, args: argparse.Namespace, task: str
) -> int:
    where: dict[str, Any] = {}
    if getattr(args, "executor", "daemon") != "daemon":
        where["executor"] = args.executor
    else:
        try:
            where["client"] = _client(args)
        except CorralError as exc:
            return _failure_exit(exc, sys.stderr)
    try:
        agent = cls(
            model=model,
            **where,
            authorized_imports=args.imports,
            limits=_limits(args),
            max_steps=args.max_steps,
            on_step=_print_step,
        )
    except CorralError as exc:
        if "client" in where:
            where["client"].close()
        return _failure_exit(exc, sys.stderr)
    return _run_agent(agent, task)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The commands print the daemon's warnings themselves, one line each.
    warnings.simplefilter("ignore", CorralWarning)
    try:
        return int(args.func(args))
    except CorralError as exc:  # anything a command did not turn into its own exit code
        return _failure_exit(exc, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
