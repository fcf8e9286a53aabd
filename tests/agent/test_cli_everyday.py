"""`corral` and `corrald run` as a new user meets them: exit codes, one vocabulary, one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.cli import (
    EXIT_AGENT,
    EXIT_AUTH,
    EXIT_BY_VERDICT,
    EXIT_DAEMON,
    EXIT_STEP_LIMIT,
    EXIT_USAGE,
    build_parser,
)
from agent.results import Verdict
from tests.agent.test_models import _completion, _Endpoint

REPO = Path(__file__).resolve().parents[2]
LATIN1 = b"print('caf\xe9')\n"


def run(*argv: str, target: str | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORRAL_", "OPENAI_"))}
    env["PYTHONPATH"] = str(REPO)
    if target:
        env["CORRAL_TARGET"] = target
    return subprocess.run(
        [sys.executable, "-m", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=180,
    )


def one_line_error(p: subprocess.CompletedProcess[str], code: int, *parts: str) -> None:
    assert p.returncode == code, p.stderr
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    for part in parts:
        assert part in p.stderr, p.stderr


# ---------------------------------------------------------------- local errors: exit 2


def test_a_non_utf8_file_is_a_one_line_usage_error(tmp_path: Path) -> None:
    script = tmp_path / "latin1.py"
    script.write_bytes(LATIN1)
    p = run("agent.cli", "exec", "-f", str(script), "--target", "127.0.0.1:1")
    one_line_error(p, 2, "latin1.py is not UTF-8 text (byte 0xe9 on line 1); save it as UTF-8")
    p = run("executor.cli", "run", str(script))
    one_line_error(p, 2, "corrald run:", "is not UTF-8 text (byte 0xe9 on line 1)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--wall-time-ms", "-5"], "argument --wall-time-ms: -5 is negative"),
        (["--wall-time-ms", "1.5"], "argument --wall-time-ms: '1.5' is not a whole number"),
        (["--limit", "pids"], "'pids' is not NAME=INT"),
        (["--limit", "pid=8"], "unknown limit 'pid'; known limits: wall_time_ms"),
        (["--limit", "memory_bytes=lots"], "'lots' is not a whole number"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv: list[str], message: str) -> None:
    p = run("agent.cli", "exec", *argv, "print(1)", "--target", "127.0.0.1:1")
    one_line_error(p, 2, "corral exec: ", message, "(see corral exec --help)")


def test_missing_file_and_missing_command() -> None:
    p = run("agent.cli", "exec", "-f", "/nonexistent.py", "--target", "127.0.0.1:1")
    one_line_error(p, 2, "corral: cannot read /nonexistent.py: No such file or directory")
    one_line_error(run("agent.cli"), 2, "corral: the following arguments are required")


def test_unreachable_daemon_is_10_not_2() -> None:
    p = run("agent.cli", "exec", "1", "--target", "127.0.0.1:1")
    one_line_error(p, EXIT_DAEMON, "UNAVAILABLE", "corrald serve")


# ---------------------------------------------------------------- the table agrees


EXPECTED_CODES = {
    0: "OK",
    1: "ERROR",
    2: "bad command line",
    3: "SYNTAX_ERROR",
    4: "POLICY_DENIED",
    5: "TIMEOUT",
    6: "CPU_LIMIT",
    7: "MEMORY_LIMIT",
    8: "SANDBOX_LOST",
    9: "INTERNAL",
    10: "daemon",
    11: "authentication",
    12: "agent or model",
    13: "agent reached",
}


def test_exit_code_table_matches_code_help_and_readme() -> None:
    codes = {v.value: c for v, c in EXIT_BY_VERDICT.items()}
    for code, word in EXPECTED_CODES.items():
        if word in codes:
            assert codes[word] == code
    assert codes[Verdict.OUTPUT_TRUNCATED.value] == 0
    assert (EXIT_USAGE, EXIT_DAEMON, EXIT_AUTH, EXIT_AGENT, EXIT_STEP_LIMIT) == (2, 10, 11, 12, 13)

    help_text = build_parser().format_help()
    for code, word in EXPECTED_CODES.items():
        assert re.search(rf"(^|\s){code}\s+{re.escape(word)}", help_text), (code, word)

    readme = (REPO / "README.md").read_text("utf-8")
    rows = dict(re.findall(r"^\| ([\d, ]+) \| (.+) \|$", readme, re.MULTILINE))
    readme_codes: dict[int, str] = {}
    for numbers, meaning in rows.items():
        names = [n.strip("` ") for n in meaning.split(",")]
        for i, n in enumerate(numbers.split(",")):
            readme_codes[int(n)] = names[i] if len(names) > 1 else meaning
    assert sorted(readme_codes) == sorted(EXPECTED_CODES)
    for code, word in EXPECTED_CODES.items():
        assert word in readme_codes[code], (code, readme_codes[code])


# ---------------------------------------------------------------- one vocabulary


def test_corral_exec_and_corrald_run_share_flag_names(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["exec", "-c", "1", "--import", "numpy", "--import", "pandas", "--wall-time-ms", "2000"]
    )
    assert (args.code_opt, args.imports, args.wall_time_ms) == ("1", ["numpy", "pandas"], 2000)

    from executor.cli import build_parser as corrald_parser

    parser = corrald_parser()
    script = tmp_path / "s.py"
    # the old `--imports numpy file.py` no longer swallows the file
    ns = parser.parse_args(["run", "--imports", "numpy", str(script)])
    assert (ns.imports, ns.file) == (["numpy"], str(script))
    ns = parser.parse_args(["run", "--import", "numpy", "--wall-time-ms", "500", "-f", "x.py"])
    assert (ns.imports, ns.wall_time_ms, ns.file_opt) == (["numpy"], 500, "x.py")
    help_text = parser._subparsers._group_actions[0].choices["run"].format_help()  # type: ignore[union-attr]
    assert "--import MODULE" in help_text and "--wall-time-ms MS" in help_text
    assert "--timeout" not in help_text  # still accepted, no longer advertised


def test_corrald_run_with_the_shared_flags(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("import json\nprint(json.dumps([1]))\n")
    p = run("executor.cli", "run", "--imports", "json", str(script), "--wall-time-ms", "5000")
    assert (p.returncode, p.stdout) == (0, "[1]\n"), p.stderr
    p = run("executor.cli", "run", "--timeout", "5", "-f", str(script))
    assert (p.returncode, p.stdout) == (0, "[1]\n"), p.stderr
    p = run("executor.cli", "run", "--wall-time-ms", "-5", "-c", "1")
    assert p.returncode == 2 and "-5 must be at least 1" in p.stderr
    p = run("executor.cli", "run", "--import", "os", "-c", "1")
    one_line_error(p, 2, "'os' is on the never-import list", "no flag of corrald run allows it")
    assert "unsafe_allow_never_imports" not in p.stderr


# ---------------------------------------------------------------- against a daemon


@pytest.mark.docker
def test_limits_and_imports_refused_by_the_daemon_exit_2(daemon: Any) -> None:
    p = run("agent.cli", "exec", "--limit", "pids=1", "1", target=daemon.target)
    one_line_error(p, 2, "INVALID_ARGUMENT: limit pids=1 is below the minimum of 16")
    p = run("agent.cli", "exec", "--import", "os", "1", target=daemon.target)
    one_line_error(p, 2, "'os' cannot be authorized", "tools=[...]")
    p = run(
        "agent.cli", "exec", "--import", "nunpy", "--limit", "pids=16", "6*7", target=daemon.target
    )
    assert (p.returncode, p.stdout) == (0, "42\n"), p.stderr
    assert p.stderr.startswith("corral: warning: authorized import 'nunpy' names no module")


@pytest.mark.docker
def test_demo_prints_the_final_answer_once(daemon: Any) -> None:
    p = run("agent.cli", "demo", target=daemon.target)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("Final answer") == 1
    assert p.stdout.rstrip().splitlines()[-2] == "Final answer: 354224848179261915075"


@pytest.mark.docker
def test_agent_out_of_steps_says_so_and_exits_13(daemon: Any) -> None:
    endpoint = _Endpoint()
    try:
        endpoint.answers.append((200, _completion("Thought: start.\n```py\nx = 1\nx\n```")))
        endpoint.answers.append((200, _completion("Probably 45.")))
        p = run(
            "agent.cli",
            "agent",
            "Sum 0..9",
            "--model",
            "m",
            "--base-url",
            endpoint.base_url,
            "--max-steps",
            "1",
            target=daemon.target,
        )
    finally:
        endpoint.close()
    assert p.returncode == EXIT_STEP_LIMIT, p.stderr
    assert "Final answer" not in p.stdout
    assert "No final answer: the agent reached its step limit (1 steps; raise --max-steps)" in (
        p.stdout
    )
    assert "The model's last reply: Probably 45." in p.stdout
    assert p.stderr == "corral: step limit of 1 reached without a final answer\n"


@pytest.mark.docker
def test_repl_with_non_utf8_input_exits_2(daemon: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.update(PYTHONPATH=str(REPO), CORRAL_TARGET=daemon.target, PYTHONIOENCODING="utf-8")
    p = subprocess.run(
        [sys.executable, "-m", "agent.cli", "repl"],
        input=b"x = 1\n" + LATIN1,
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert p.returncode == 2
    assert p.stderr.decode() == (
        "corral: standard input is not UTF-8 text (byte 0xe9); pipe UTF-8 (e.g. through "
        "iconv -t utf-8)\n"
    )


@pytest.mark.docker
def test_a_lone_surrogate_in_argv_is_a_usage_error(daemon: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.update(PYTHONPATH=str(REPO), CORRAL_TARGET=daemon.target)
    p = subprocess.run(
        [sys.executable.encode(), b"-m", b"agent.cli", b"exec", b"print('caf\xe9')"],
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert p.returncode == 2, p.stderr
    assert b"code is not valid Unicode text" in p.stderr and b"Traceback" not in p.stderr
