"""Agents without a sandbox: ToolCallingAgent with client-side tools, memory, prompts."""

from __future__ import annotations

import io

import pytest

from agent import AgentError, ChatMessage, ScriptedModel, ToolCallingAgent, tool
from agent.memory import RETRY_HINT
from agent.models import ToolCallRequest
from agent.parsing import TOOL_FORMAT_HELP


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers.

    Args:
        a: first factor
        b: second factor
    """
    return a * b


@tool
def flaky(x: str) -> str:
    """Always fails.

    Args:
        x: anything
    """
    raise ConnectionError(f"service down for {x}")


def test_native_tool_calls_then_final_answer() -> None:
    model = ScriptedModel(
        [
            ChatMessage(
                content="", tool_calls=[ToolCallRequest("multiply", {"a": 6, "b": 7}, "c1")]
            ),
            ChatMessage(
                content="", tool_calls=[ToolCallRequest("final_answer", {"answer": 42}, "c2")]
            ),
        ]
    )
    agent = ToolCallingAgent(tools=[multiply], model=model, max_steps=5)
    assert agent.run("What is 6 times 7?") == 42
    assert len(agent.logs) == 2
    first = agent.logs[0]
    assert first.tool_calls[0].name == "multiply" and first.tool_calls[0].result == 42
    assert first.observations == "42"
    assert first.error is None
    assert agent.logs[1].is_final_answer and agent.logs[1].final_answer == 42
    # the model saw the tool schemas (native function calling), with final_answer
    names = [t["function"]["name"] for t in model.calls_log[0]["tools"]]
    assert names == ["multiply", "final_answer"]  # no python_interpreter without a client
    assert model.calls_log[0]["stop_sequences"] == ["Observation:"]


def test_text_tool_calls_validation_and_tool_errors_are_fed_back() -> None:
    model = ScriptedModel(
        [
            "I will just answer: 5",  # no tool call: format error
            'Action:\n{"name": "multiply", "arguments": {"a": "6", "b": 7}}',  # wrong type
            'Action:\n{"name": "nope", "arguments": {}}',  # unknown tool
            'Action:\n{"name": "flaky", "arguments": {"x": "db"}}',  # tool raises
            'Action:\n{"name": "final_answer", "arguments": {"answer": "done"}}',
        ]
    )
    agent = ToolCallingAgent(tools=[multiply, flaky], model=model, max_steps=10)
    assert agent.run("task") == "done"
    errors = [step.error for step in agent.logs]
    assert errors[0] == TOOL_FORMAT_HELP
    assert errors[1] == (
        "Tool 'multiply' failed: tool 'multiply': argument 'a' must be of type integer, got str '6'"
    )
    assert errors[2] == (
        "Tool 'nope' failed: there is no tool named 'nope'; tools: multiply, flaky, final_answer"
    )
    assert errors[3] == "Tool 'flaky' failed: ConnectionError: service down for db"
    assert errors[4] is None
    # each error went back to the model in the next request, with the retry hint
    second_request = model.calls_log[1]["messages"]
    assert second_request[-1] == {
        "role": "user",
        "content": "Error:\n" + TOOL_FORMAT_HELP + "\n" + RETRY_HINT,
    }


def test_write_memory_to_messages_and_replay() -> None:
    model = ScriptedModel(
        [
            'Thought: multiply\nAction:\n{"name": "multiply", "arguments": {"a": 2, "b": 3}}',
            'Action:\n{"name": "final_answer", "arguments": {"answer": 6}}',
        ]
    )
    agent = ToolCallingAgent(tools=[multiply], model=model)
    assert agent.run("2*3?") == 6
    messages = agent.write_memory_to_messages()
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert messages[0]["content"] == agent.system_prompt
    assert "- multiply: Multiply two integers." in messages[0]["content"]
    assert messages[1] == {"role": "user", "content": "New task:\n2*3?"}
    assert messages[2]["content"].startswith("Thought: multiply")
    assert messages[3] == {"role": "user", "content": "Observation:\n6"}
    # what the model was given at step 2 is exactly the memory up to step 1
    assert model.calls_log[1]["messages"] == messages[:4]
    assert agent.logs[1].input_messages == messages[:4]
    step = agent.logs[0]
    assert step.token_usage is not None and step.token_usage.output_tokens > 0
    assert step.end_time is not None and step.duration >= 0
    out = io.StringIO()
    agent.replay(out)
    text = out.getvalue()
    assert "Task: 2*3?" in text
    assert "━━ Step 1" in text and "Tool call: multiply({'a': 2, 'b': 3})" in text
    assert "Final answer: 6" in text


def test_max_steps_then_final_answer_without_tools() -> None:
    model = ScriptedModel(
        [
            'Action:\n{"name": "multiply", "arguments": {"a": 2, "b": 2}}',
            'Action:\n{"name": "multiply", "arguments": {"a": 4, "b": 4}}',
            "The answer is 16.",
        ]
    )
    agent = ToolCallingAgent(tools=[multiply], model=model, max_steps=2)
    assert agent.run("square 2 twice") == "The answer is 16."
    assert len(agent.logs) == 2
    final_request = model.calls_log[2]
    assert final_request["tools"] is None
    assert "You have run out of steps" in final_request["messages"][-1]["content"]
    assert agent.memory.final_step is not None
    assert agent.memory.final_step.final_answer == "The answer is 16."


def test_agent_needs_model_and_client_for_code() -> None:
    with pytest.raises(AgentError, match="needs a model"):
        ToolCallingAgent(tools=[multiply])
    agent = ToolCallingAgent(tools=[multiply], model=ScriptedModel([]))
    assert "python_interpreter" not in agent.all_tools
    with pytest.raises(AgentError, match="needs a Corral client"):
        agent._ensure_session()


def test_code_agent_system_prompt_lists_tools_and_imports() -> None:
    from agent import CodeAgent
    from executor.interpreter.rules import DEFAULT_IMPORTS

    agent = CodeAgent(tools=[multiply], model=ScriptedModel([]), authorized_imports=["numpy"])
    prompt = agent.system_prompt
    assert multiply.python_signature() in prompt
    assert "def final_answer(answer: Any) -> None:" in prompt
    assert ", ".join(DEFAULT_IMPORTS) + ", and: numpy" in prompt
    assert agent.write_memory_to_messages()[0] == {"role": "system", "content": ""}  # before run
