"""Agents on sessions that survive (issue #11): rollback_on_error, fork, the smolagents executor.

Checkpoints need the runner side of issue #11, so these run the real client
and the real daemon service over the fake runner of tests/daemon/fake_runner.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent import Client
from agent.agents import CodeAgent
from agent.models import ScriptedModel
from tests.daemon.fake_runner import FakeDaemon, fake_daemon_in_thread


@pytest.fixture
def fake() -> Iterator[FakeDaemon]:
    with fake_daemon_in_thread() as handle:
        yield handle


@pytest.fixture
def client(fake) -> Iterator[Client]:
    c = Client(fake.target)
    yield c
    c.close()


def test_rollback_on_error_undoes_a_failed_step(client):
    model = ScriptedModel(
        [
            "```py\nx = 1\n```",
            "```py\nx = 2\ny = 1 / 0\n```",  # fails half-way: x = 2 must not survive
            "```py\nx\n```",
            "x is 1.",
        ]
    )
    with CodeAgent(model=model, client=client, max_steps=3, rollback_on_error=True) as agent:
        agent.run("keep x")
        failed, after = agent.logs[1], agent.logs[2]
        assert failed.error and "rolled back" in failed.observations
        assert after.result is not None and after.result.python_value == 1
        assert agent.session is not None and agent.session.checkpoints() == []  # none left


def test_without_rollback_the_failed_step_leaks_into_the_next(client):
    model = ScriptedModel(
        ["```py\nx = 1\n```", "```py\nx = 2\ny = 1 / 0\n```", "```py\nx\n```", "2"]
    )
    with CodeAgent(model=model, client=client, max_steps=3) as agent:
        agent.run("keep x")
        assert agent.logs[2].result is not None and agent.logs[2].result.python_value == 2


def test_agent_fork_branches_memory_and_session(client):
    model = ScriptedModel(["```py\nx = 1\n```", "x is 1."])
    with CodeAgent(model=model, client=client, max_steps=1) as agent:
        agent.run("set x")
        branch = agent.fork()
        try:
            assert branch.session is not None and agent.session is not None
            assert branch.session.id != agent.session.id
            assert branch.logs[0].code == agent.logs[0].code and branch.memory is not agent.memory
            branch.session.run("x = 99")
            assert agent.session.run("x").python_value == 1
            assert branch.session.run("x").python_value == 99
        finally:
            branch.close()


def test_smolagents_executor_checkpoint_and_rollback(client):
    pytest.importorskip("smolagents")
    from agent.integrations.smolagents import CorralExecutor

    executor = CorralExecutor(client=client)
    executor.send_tools({})
    executor("x = 1")
    cp = executor.checkpoint()
    executor("x = 5")
    executor.rollback(cp)
    assert executor("x").output == 1
    assert [c.checkpoint_id for c in executor.checkpoints()] == [cp]
    executor.drop_checkpoint(cp)
    executor.cleanup()
