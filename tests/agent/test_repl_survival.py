"""`corral repl` on sessions that survive: :commands, and the session kept on errors.

Checkpoints need the runner side of issue #11: the daemon here is the real
service over the fake runner (tests/daemon/fake_runner.py).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import pytest

from agent import Client, cli
from tests.daemon.fake_runner import FakeDaemon, fake_daemon_in_thread


@pytest.fixture
def fake() -> Iterator[FakeDaemon]:
    with fake_daemon_in_thread() as handle:
        yield handle


def test_repl_commands_checkpoint_rollback_and_help(fake):
    with Client(fake.target) as client:
        s = client.session()
        out = io.StringIO()
        s.run("x = 1")
        cli.repl_command(s, ":checkpoint", out)
        cp = out.getvalue().strip()
        assert cp.startswith("cp_")
        s.run("x = 2")
        cli.repl_command(s, f":rollback {cp}", out)
        assert s.run("x").python_value == 1
        cli.repl_command(s, ":checkpoints", out)
        assert f"{cp}  " in out.getvalue()
        cli.repl_command(s, ":interrupt", out)
        assert "nothing was running" in out.getvalue()
        cli.repl_command(s, ":nope", out)
        assert "unknown command ':nope'; :help lists them" in out.getvalue()
        cli.repl_command(s, ":help", out)
        assert ":rollback ID" in out.getvalue()


def test_piped_repl_runs_commands_between_snippets(fake, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("x = 20\n:checkpoint\n:rollback nope\nx + 22\n"))
    assert cli.main(["repl", "--target", fake.target]) == 0
    captured = capsys.readouterr()
    assert captured.out == "42\n"
    assert "cp_" in captured.err
    assert "error: NOT_FOUND: checkpoint 'nope' not found in this session" in captured.err
