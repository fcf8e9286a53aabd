"""Managed agents: a CodeAgent calling another agent from its snippets."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from agent import Client, CodeAgent, ScriptedModel, ToolCallingAgent
from agent.errors import AgentError
from agent.models import ChatMessage, ToolCallRequest


def helper_agent(responses: list[str], **kwargs: Any) -> CodeAgent:
    return CodeAgent(
        model=ScriptedModel(responses),
        name="helper",
        description="Multiplies numbers; give it the numbers.",
        **kwargs,
    )


HELPER_SCRIPT = [
    "Thought: multiply\n```py\nv = base * 7\nprint(v)\n```",
    "Thought: answer\n```py\nfinal_answer(v)\n```",
]
MANAGER_SCRIPT = [
    "Thought: ask the helper\n```py\nr = helper(task='multiply base by 7', "
    "additional_args={'base': 6})\nprint('helper said', r)\n```",
    "Thought: done\n```py\nfinal_answer(r + 1)\n```",
]


@pytest.fixture
def client(daemon: Any) -> Iterator[Client]:
    with Client(daemon.target) as c:
        yield c


@pytest.mark.docker
def test_manager_and_managed_agent_on_a_live_daemon(client: Client) -> None:
    helper = helper_agent(HELPER_SCRIPT)
    manager = CodeAgent(model=ScriptedModel(MANAGER_SCRIPT), client=client, managed_agents=[helper])
    with manager:
        assert manager.run("What is 6*7+1?") == 43
        assert manager.session is not None and helper.session is not None
        assert manager.session.id != helper.session.id  # its own session
    step = manager.logs[0]
    assert "helper said 42" in step.observations
    [run] = step.managed_runs
    assert run.agent == "helper" and run.final_answer == 42 and run.error is None
    assert [s.code for s in run.steps] == ["v = base * 7\nprint(v)", "final_answer(v)"]
    system = manager.model.calls_log[0]["messages"][0]["content"]  # type: ignore[attr-defined]
    assert "def helper(task: str, additional_args: dict | None = None) -> Any:" in system
    out = io.StringIO()
    manager.replay(out)
    text = out.getvalue()
    assert "Managed agent 'helper', task: multiply base by 7" in text
    assert "    Code:\n        v = base * 7" in text
    assert "Managed agent 'helper' answered: 42" in text


def test_a_failing_managed_agent_is_a_clear_error_in_the_snippet() -> None:
    helper = helper_agent([])  # its model has nothing to say
    manager = CodeAgent(
        model=ScriptedModel(
            [
                "```py\nhelper(task='anything')\n```",
                "```py\nfinal_answer('gave up')\n```",
            ]
        ),
        executor="local",
        managed_agents=[helper],
    )
    with manager:
        assert manager.run("t") == "gave up"
    step = manager.logs[0]
    assert step.error is not None
    assert "managed agent 'helper' failed: ModelError: ScriptedModel ran out" in step.error
    assert step.managed_runs[0].error is not None


def test_total_step_limit_spans_the_team() -> None:
    looping = ["```py\nx = 1\n```"] * 10
    helper = helper_agent(looping)
    manager = CodeAgent(
        model=ScriptedModel(["```py\nhelper(task='loop')\n```", "The answer is 7."]),
        executor="local",
        managed_agents=[helper],
        max_total_steps=3,
    )
    with manager:
        answer = manager.run("t")
    assert answer == "The answer is 7."  # asked without tools once the budget was spent
    assert len(manager.logs) == 1
    assert len(helper.logs) == 2  # 3 steps in all: 1 of the manager, 2 of the helper
    assert "total step limit (3, max_total_steps)" in (manager.logs[0].error or "")


def test_depth_limit_and_names_are_checked_at_construction() -> None:
    def agent(name: str, *children: CodeAgent) -> CodeAgent:
        return CodeAgent(
            model=ScriptedModel([]),
            name=name,
            description="d",
            managed_agents=list(children),
            executor="local",
        )

    deep = agent("c", agent("b", agent("a")))
    with pytest.raises(AgentError, match="3 levels deep; the limit is max_depth=2"):
        CodeAgent(model=ScriptedModel([]), managed_agents=[deep], max_depth=2)
    with pytest.raises(AgentError, match="needs name= and description="):
        CodeAgent(model=ScriptedModel([]), managed_agents=[CodeAgent(model=ScriptedModel([]))])
    twice = [agent("x"), agent("x")]
    with pytest.raises(AgentError, match="clashes"):
        CodeAgent(model=ScriptedModel([]), managed_agents=twice)


def test_tool_calling_manager_calls_a_managed_agent() -> None:
    helper = helper_agent(HELPER_SCRIPT)
    manager = ToolCallingAgent(
        model=ScriptedModel(
            [
                ChatMessage(
                    tool_calls=[
                        ToolCallRequest(
                            "helper", {"task": "multiply", "additional_args": {"base": 2}}
                        )
                    ]
                ),
                ChatMessage(tool_calls=[ToolCallRequest("final_answer", {"answer": "done"})]),
            ]
        ),
        executor="process",
        managed_agents=[helper],
    )
    with manager:
        assert manager.run("t") == "done"
    assert manager.logs[0].tool_calls[0].result == 14
