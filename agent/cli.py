"""`corral`: run snippets and agents against a Corral daemon from the shell.

    corral exec 'print(1 + 1)'           run one snippet, print its result
    corral exec -f script.py --json      machine-readable result
    corral repl                          a stateful session (stdin, interactive or piped)
    corral agent TASK --model ID --base-url URL
    corral demo                          "Calculate the 100th Fibonacci number", end to end

The daemon address comes from --target, else $CORRAL_TARGET, else
127.0.0.1:50051; the token from --token, else $CORRAL_TOKEN. --wait SECONDS
waits for a daemon that is still starting (`corrald serve & corral exec --wait 60 ...`).

Exit codes (exec; repl/agent/demo use 0 and the 10+ codes):
   0  OK or OUTPUT_TRUNCATED        5  TIMEOUT          9  INTERNAL
   1  ERROR (the snippet raised)     6  CPU_LIMIT       10  daemon unreachable or refused the call
   2  bad command line               7  MEMORY_LIMIT    11  authentication failed (token)
   3  SYNTAX_ERROR                   8  SANDBOX_LOST    12  agent or model failure
   4  POLICY_DENIED
"""

from __future__ import annotations

import argparse
import codeop
import contextlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from agent.agents import CodeAgent, MultiStepAgent, ToolCallingAgent
from agent.client import Client, Session
from agent.errors import AgentError, CorralError, ModelError, PermissionDenied, Unauthenticated
from agent.memory import ActionStep, format_step
from agent.models import Model, OpenAICompatibleModel, ScriptedModel
from agent.results import Result, Verdict

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


def _connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", help="daemon address host:port (env CORRAL_TARGET)")
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
    parser.add_argument("--max-steps", type=int, default=10)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("exec", help="run one snippet and print its result")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("code", nargs="?", help="the snippet")
    src.add_argument("-f", "--file", help="read the snippet from FILE ('-' for stdin)")
    p.add_argument("--json", action="store_true", help="print the whole Result as JSON")
    p.add_argument("--wall-time-ms", type=int, default=0, help="wall-time limit of the snippet")
    _connection_args(p)
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("repl", help="an interactive, stateful session")
    _connection_args(p)
    p.set_defaults(func=cmd_repl)

    p = sub.add_parser("agent", help="solve a task with a CodeAgent and a real model")
    p.add_argument("task")
    p.add_argument("--tool-calling", action="store_true", help="use the ToolCallingAgent instead")
    _model_args(p, required=True)
    _connection_args(p)
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("demo", help=f"'{DEMO_TASK}' end to end (scripted model unless --model)")
    _model_args(p, required=False)
    _connection_args(p)
    p.set_defaults(func=cmd_demo)
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


def _failure_exit(exc: CorralError, err: TextIO) -> int:
    print(f"corral: {exc}", file=err)
    if isinstance(exc, Unauthenticated | PermissionDenied):
        return EXIT_AUTH
    if isinstance(exc, AgentError | ModelError):
        return EXIT_AGENT
    return EXIT_DAEMON


def result_json(result: Result) -> dict[str, Any]:
    d = result.to_dict()
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
        print(for_terminal(f"{result.verdict.value}{where}: {detail}", err), file=err)
        if result.session_lost:
            print("the session's sandbox was lost", file=err)


def _stream_result(session: Session, code: str, out: TextIO, echo: bool) -> Result:
    result: Result | None = None
    for item in session.stream(code):
        if isinstance(item, Result):
            result = item
        elif echo:
            out.write(for_terminal(item, out))
            out.flush()
    assert result is not None  # stream() ends with a Result or raises
    return result


def cmd_exec(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    if args.file:
        try:
            code = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        except OSError as exc:
            print(f"corral: cannot read {args.file}: {exc}", file=err)
            return EXIT_USAGE
    else:
        code = args.code
    limits = {"wall_time_ms": args.wall_time_ms} if args.wall_time_ms else None
    try:
        with _client(args) as client, client.session(imports=args.imports, limits=limits) as s:
            result = _stream_result(s, code, out, echo=not args.json)
    except CorralError as exc:
        status = _failure_exit(exc, err)
        if args.json:
            name = exc.code.name if exc.code is not None else type(exc).__name__
            doc = {"error": {"code": name, "message": str(exc)}, "exit_code": status}
            print(json.dumps(doc, indent=2), file=out)
        return status
    if args.json:
        print(json.dumps(result_json(result), default=repr, indent=2), file=out)
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

    def typed_lines() -> Iterator[str]:
        while True:
            try:
                yield input(current[0] if readline is not None else "")
            except EOFError:
                return

    try:
        with _client(args) as client:
            session = client.session(imports=args.imports, labels={"client": "corral-repl"})
            try:
                if interactive:
                    print(
                        f"Corral session {session.id[:8]} on {client.target}; Ctrl-C stops a "
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
                            result = _stream_result(session, source, out, echo=True)
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
        return client.session(imports=args.imports)


def _print_step(step: ActionStep) -> None:
    print(for_terminal(format_step(step), sys.stdout), flush=True)


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
    print(
        f"Final answer: {answer}\n[{len(agent.logs)} step(s), tokens in/out "
        f"{usage.input_tokens}/{usage.output_tokens}]",
        flush=True,
    )
    return 0


def _endpoint_model(args: argparse.Namespace) -> Model:
    return OpenAICompatibleModel(args.model, args.base_url, api_key_env=args.api_key_env)


def cmd_agent(args: argparse.Namespace) -> int:
    cls = ToolCallingAgent if args.tool_calling else CodeAgent
    return _run_agent_with(cls, _endpoint_model(args), args, args.task)


def cmd_demo(args: argparse.Namespace) -> int:
    model = (
        _endpoint_model(args) if args.model else ScriptedModel(DEMO_SCRIPT, model_id="demo-script")
    )
    return _run_agent_with(CodeAgent, model, args, DEMO_TASK)


def _run_agent_with(
    cls: type[MultiStepAgent], model: Model, args: argparse.Namespace, task: str
) -> int:
    try:
        client = _client(args)
    except CorralError as exc:
        return _failure_exit(exc, sys.stderr)
    agent = cls(
        model=model,
        client=client,
        authorized_imports=args.imports,
        max_steps=args.max_steps,
        on_step=_print_step,
    )
    return _run_agent(agent, task)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
