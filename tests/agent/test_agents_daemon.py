"""CodeAgent and ToolCallingAgent with ScriptedModel against a real daemon."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agent import AgentError, ChatMessage, Client, CodeAgent, ScriptedModel, ToolCallingAgent, tool
from agent.memory import RETRY_HINT
from agent.models import ToolCallRequest
from agent.parsing import CODE_FORMAT_HELP

pytestmark = pytest.mark.docker

PRICES = {"apple": 3, "pear": 5}


@tool
def price_of(fruit: str) -> int:
    """Price of a fruit in cents, from the shop's private price list.

    Args:
        fruit: the fruit's name, e.g. "apple"
    """
    if fruit not in PRICES:
        raise KeyError(f"no price for {fruit!r}")
    return PRICES[fruit]


@pytest.fixture
def client(daemon: Any) -> Iterator[Client]:
    with Client(daemon.target) as c:
        yield c


def test_code_agent_block_variants_tools_state_and_final_answer(client: Client) -> None:
    model = ScriptedModel(
        [
            "Thought: get the apple price.\n```py\napple = price_of('apple')\nprint('apple', apple)\napple\n```",
            "Thought: and the pear, with a python fence.\n```python\npear = price_of(fruit='pear')\n```",
            "Thought: code tags now.\n<code>\ntotal = apple * 2 + pear\nprint(total)\n</code>",
            "Thought: done.\n```py\nfinal_answer(total)\n```",
        ]
    )
    with CodeAgent(tools=[price_of], model=model, client=client, max_steps=6) as agent:
        assert agent.run("How much do two apples and a pear cost?") == 11
        steps = agent.logs
        assert [s.code for s in steps] == [
            "apple = price_of('apple')\nprint('apple', apple)\napple",
            "pear = price_of(fruit='pear')",
            "total = apple * 2 + pear\nprint(total)",
            "final_answer(total)",
        ]
        assert (
            steps[0].observations == "Execution logs:\napple 3\nLast output from code snippet:\n3"
        )
        assert steps[1].observations == "Execution logs:\nLast output from code snippet:\nNone"
        assert steps[2].observations == "Execution logs:\n11\nLast output from code snippet:\nNone"
        assert steps[3].is_final_answer and steps[3].final_answer == 11
        assert all(s.error is None for s in steps)
        assert steps[0].result is not None and steps[0].result.python_value == 3
        # the system prompt shows the tool as a Python signature and final_answer
        system = model.calls_log[0]["messages"][0]["content"]
        assert "def price_of(fruit: str) -> int:" in system
        assert "def final_answer(answer: Any) -> None:" in system
        assert model.calls_log[0]["stop_sequences"] == ["Observation:", "Calling tools:"]
        # the model saw each observation before its next step
        second_request = model.calls_log[1]["messages"]
        assert second_request[-1] == {
            "role": "user",
            "content": "Observation:\nExecution logs:\napple 3\nLast output from code snippet:\n3",
        }
        assert agent.write_memory_to_messages()[: len(second_request)] == second_request
        session = agent.session
        assert session is not None
    assert session.closed  # the agent closed the session it opened


def test_code_agent_format_error_and_error_feedback(client: Client) -> None:
    model = ScriptedModel(
        [
            "I believe the answer is obvious.",  # no code block
            "```py\nprice_of('banana')\n```",  # the tool raises on the client
            "```py\nimport os\n```",  # refused by the sandbox
            "```py\nx = 10 / 0\n```",  # the snippet raises
            "```py\nprint('recovering')\nfinal_answer(price_of('pear'))\n```",
        ]
    )
    with CodeAgent(tools=[price_of], model=model, client=client, max_steps=5) as agent:
        assert agent.run("Price of a banana, else a pear?") == 5
        errors = [s.error for s in agent.logs]
        assert errors[0] == CODE_FORMAT_HELP
        assert errors[1] is not None and "KeyError" in errors[1] and "banana" in errors[1]
        assert errors[2] is not None and errors[2].startswith("Code execution failed")
        assert "(POLICY_DENIED)" in errors[2]
        assert errors[3] is not None
        assert "at line 1: x = 10 / 0 (ERROR): ZeroDivisionError" in errors[3]
        assert errors[4] is None
        assert agent.logs[4].observations.startswith("Execution logs:\nrecovering\n")
        # errors went back to the model with the retry hint
        feedback = model.calls_log[4]["messages"][-1]["content"]
        assert feedback.startswith("Observation:\nExecution logs:\n")
        assert "ZeroDivisionError" in feedback and feedback.endswith(RETRY_HINT)
        assert model.calls_log[1]["messages"][-1] == {
            "role": "user",
            "content": "Error:\n" + CODE_FORMAT_HELP + "\n" + RETRY_HINT,
        }


def test_code_agent_max_steps_asks_for_a_final_answer(client: Client) -> None:
    model = ScriptedModel(
        [
            "```py\nn = 1\n```",
            "```py\nn = n + 1\nn\n```",
            "After two steps n is 2, so the answer is 2.",
        ]
    )
    with CodeAgent(model=model, client=client, max_steps=2) as agent:
        answer = agent.run("Count to two")
    assert answer == "After two steps n is 2, so the answer is 2."
    assert len(agent.logs) == 2
    final_call = model.calls_log[2]
    assert final_call["tools"] is None and final_call["stop_sequences"] == []
    assert "Task: Count to two" in final_call["messages"][-1]["content"]
    assert agent.memory.final_step is not None


def test_code_agent_on_a_given_session_keeps_it_open(client: Client) -> None:
    with client.session(tools=[price_of], variables={"qty": 4}) as s:
        model = ScriptedModel(["```py\nfinal_answer(qty * price_of('apple'))\n```"])
        agent = CodeAgent(model=model, session=s)
        assert agent.run("4 apples?") == 12
        agent.close()
        assert not s.closed
        assert s.run("qty").python_value == 4

        def discount(cents):  # type: ignore[no-untyped-def]
            return cents // 2

        with pytest.raises(AgentError, match=r"tools \['discount'\] are not in the given session"):
            CodeAgent(tools=[price_of, discount], model=model, session=s)


def test_tool_calling_agent_with_python_interpreter(client: Client) -> None:
    model = ScriptedModel(
        [
            ChatMessage(
                content="",
                tool_calls=[
                    ToolCallRequest(
                        "python_interpreter",
                        {"code": "squares = [i * i for i in range(5)]\nsum(squares)"},
                        "c1",
                    )
                ],
            ),
            'Action:\n{"name": "python_interpreter", "arguments": {"code": "1 / 0"}}',
            'Action:\n{"name": "price_of", "arguments": {"fruit": "pear"}}',
            'Action:\n{"name": "final_answer", "arguments": {"answer": 35}}',
        ]
    )
    with ToolCallingAgent(tools=[price_of], model=model, client=client, max_steps=5) as agent:
        assert agent.run("sum of squares below 5, times a pear's price / 10?") == 35
        first, second, third, _ = agent.logs
        assert first.code == "squares = [i * i for i in range(5)]\nsum(squares)"
        assert first.observations == "Execution logs:\nLast output from code snippet:\n30"
        assert first.result is not None and first.result.python_value == 30
        assert second.error is not None and "ZeroDivisionError" in second.error
        assert third.observations == "5"
        tools = [t["function"]["name"] for t in model.calls_log[0]["tools"]]
        assert tools == ["price_of", "python_interpreter", "final_answer"]


# A C-level loop never returns to the bytecode loop, so the soft timeout cannot
# interrupt it: the daemon's hard timeout kills the container.
UNINTERRUPTIBLE = "sum(range(10**12))"
LOSE_SANDBOX_LIMITS = {"wall_time_ms": 1000, "cpu_time_ms": 20_000}


def test_code_agent_reopens_a_lost_sandbox_it_owns(client: Client) -> None:
    model = ScriptedModel(
        [
            "```py\nkept = 7\n```",
            f"```py\n{UNINTERRUPTIBLE}\n```",
            "```py\nprint('kept' in dir())\nkept\n```",  # a fresh sandbox: kept is gone
            "```py\nfinal_answer('recovered')\n```",
        ]
    )
    with CodeAgent(model=model, client=client, limits=LOSE_SANDBOX_LIMITS, max_steps=4) as agent:
        first_session = None

        def remember(step: Any) -> None:
            nonlocal first_session
            if step.step_number == 1:
                first_session = agent.session

        agent.on_step = remember
        assert agent.run("survive") == "recovered"
        lost_step = agent.logs[1]
        assert lost_step.result is not None and lost_step.result.session_lost
        assert lost_step.error is not None
        assert "(TIMEOUT)" in lost_step.error
        assert "The sandbox was lost; variables from earlier steps are gone." in lost_step.error
        assert agent.logs[2].error is not None and "NameError" in agent.logs[2].error
        assert first_session is not None and first_session.lost
        assert agent.session is not first_session


def test_code_agent_on_a_given_session_stops_when_it_is_lost(client: Client) -> None:
    with client.session(limits=LOSE_SANDBOX_LIMITS) as s:
        model = ScriptedModel([f"```py\n{UNINTERRUPTIBLE}\n```"])
        agent = CodeAgent(model=model, session=s)
        with pytest.raises(AgentError, match="the sandbox session was lost"):
            agent.run("spin")
        assert s.lost
