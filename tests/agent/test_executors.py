"""The local and process executors: the interpreter without a daemon or Docker."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from agent import CodeAgent, ScriptedModel, tool
from agent.cli import DEMO_ANSWER, main
from agent.errors import AgentError, InvalidArgument, SessionClosed
from agent.executors import (
    LocalExecutor,
    ProcessExecutor,
    ProcessSession,
    resolve_executor,
)
from agent.results import Verdict


@tool
def double(x: int) -> int:
    """Double a number.

    Args:
        x: the number
    """
    return 2 * x


@tool
def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: the key
    """
    raise KeyError(f"no entry {key!r}")


@pytest.fixture(params=["local", "process"])
def session(request: pytest.FixtureRequest) -> Iterator[Any]:
    executor = resolve_executor(request.param)
    s = executor.open(tools=[double, lookup], variables={"seed": 5}, limits={"wall_time_ms": 3000})
    try:
        yield s
    finally:
        s.close()


def test_state_persists_and_tools_call_back(session: Any) -> None:
    r = session.run("y = double(seed)\nprint('y is', y)\ny + 1")
    assert r.verdict == Verdict.OK, r.error
    assert r.stdout == "y is 10\n"
    assert r.python_value == 11
    assert session.run("y * 3").python_value == 30
    assert session.get_variables(["y"])["y"].json == 10


def test_tool_errors_are_raised_in_the_snippet(session: Any) -> None:
    r = session.run("try:\n    lookup('k')\nexcept KeyError as e:\n    out = str(e)\nout")
    assert r.verdict == Verdict.OK, r.error
    assert "no entry" in r.python_value


def test_policy_and_final_answer(session: Any) -> None:
    r = session.run("().__class__")
    assert r.verdict == Verdict.POLICY_DENIED
    r = session.run("final_answer(double(21))")
    assert r.is_final_answer and r.answer == 42


def test_timeout_keeps_state(session: Any) -> None:
    session.run("kept = 7")
    r = session.run("while True:\n    pass")
    assert r.verdict == Verdict.TIMEOUT
    assert session.run("kept").python_value == 7


def test_workspace_files_and_escapes(session: Any) -> None:
    assert session.upload("data/in.txt", "hello") == 5
    r = session.run(
        "with open('data/in.txt') as f:\n    t = f.read()\nopen('out.txt', 'w').write(t.upper())"
    )
    assert r.verdict == Verdict.OK, r.error
    assert session.download("out.txt") == b"HELLO"
    with pytest.raises(InvalidArgument):
        session.upload("../escape.txt", "x")


def test_closed_session_refuses_work(session: Any) -> None:
    session.close()
    with pytest.raises(SessionClosed, match="open a new one"):
        session.run("1")


def test_process_memory_limit_is_a_verdict() -> None:
    with ProcessExecutor().open(limits={"memory_bytes": 300 << 20}) as s:
        r = s.run("x = bytearray(2_000_000_000)")
        assert r.verdict == Verdict.MEMORY_LIMIT
        assert s.run("1 + 1").python_value == 2


def test_process_child_is_killed_past_its_deadline() -> None:
    s = ProcessExecutor().open(limits={"wall_time_ms": 30_000})
    assert isinstance(s, ProcessSession)
    pid = s._proc.pid
    r = s.run("while True:\n    pass", timeout=1.0)
    assert r.verdict == Verdict.SANDBOX_LOST and r.session_lost
    assert s.lost
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: the process is gone
    assert not s.workspace.exists()
    s.close()


def test_process_child_has_no_secrets_in_its_environment() -> None:
    os.environ["CORRAL_TEST_SECRET"] = "hunter2"
    try:
        s = ProcessExecutor().open()
    finally:
        del os.environ["CORRAL_TEST_SECRET"]
    with s:
        assert isinstance(s, ProcessSession)
        with open(f"/proc/{s._proc.pid}/environ", "rb") as fh:
            environ = fh.read()
    assert b"CORRAL_TEST_SECRET" not in environ and b"hunter2" not in environ


def test_unknown_import_is_a_clear_error() -> None:
    with pytest.raises(InvalidArgument):
        LocalExecutor().open(imports=["os.*", 5])  # type: ignore[list-item]


def test_unknown_executor_name_says_what_exists() -> None:
    with pytest.raises(InvalidArgument, match="local, process"):
        resolve_executor("docker")


def test_missing_interpreter_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fault (an install without the interpreter) cannot be produced otherwise here.
    monkeypatch.setitem(sys.modules, "executor.interpreter", None)
    with pytest.raises(AgentError, match=r"pip install 'corral\[daemon\]'"):
        LocalExecutor().open()


@pytest.mark.parametrize("executor", ["local", "process"])
def test_code_agent_runs_on_an_executor(executor: str) -> None:
    model = ScriptedModel(
        [
            "Thought: double it\n```py\nv = double(21)\nprint(v)\n```",
            "Thought: done\n```py\nfinal_answer(v)\n```",
        ]
    )
    with CodeAgent(tools=[double], model=model, executor=executor) as agent:
        assert agent.run("double 21") == 42
    assert agent.logs[0].observations is not None and "42" in agent.logs[0].observations


def test_agent_reopens_a_lost_process_session() -> None:
    model = ScriptedModel(
        [
            "```py\nwhile True:\n    pass\n```",
            "```py\nfinal_answer(3)\n```",
        ]
    )
    agent = CodeAgent(model=model, executor="process", limits={"wall_time_ms": 500}, max_steps=3)
    with agent:
        first = agent._ensure_session()
        assert agent.run("loop") == 3
        assert agent.session is first  # TIMEOUT keeps the session (soft timeout)
    assert agent.logs[0].result is not None
    assert agent.logs[0].result.verdict == Verdict.TIMEOUT


def test_demo_local_needs_no_daemon(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--local", "--target", "127.0.0.1:1"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"Final answer: {DEMO_ANSWER}" in out


def test_client_and_executor_are_exclusive() -> None:
    from agent.client import Client

    with Client("127.0.0.1:1") as client, pytest.raises(AgentError, match="not both"):
        CodeAgent(model=ScriptedModel([]), client=client, executor="local")


def test_process_workspace_files_are_bounded() -> None:
    with ProcessExecutor().open(limits={"workspace_bytes": 1 << 20}) as s:
        r = s.run("with open('big.txt', 'w') as f:\n    f.write('x' * (2 << 20))")
        assert r.verdict == Verdict.ERROR
        assert r.error is not None and "File too large" in r.error.message
        assert s.run("1").python_value == 1  # the child survived
