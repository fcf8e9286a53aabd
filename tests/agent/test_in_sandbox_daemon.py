"""The agent loop inside a sandbox, model calls relayed to a local OpenAI-compatible server."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

pytest.importorskip("openai")

from agent import Client, CodeAgent, OpenAICompatibleModel, ScriptedModel, tool
from agent.cli import main
from agent.errors import AgentError
from agent.sandboxed import run_in_sandbox
from tests.agent.fake_openai import fake_openai

pytestmark = pytest.mark.docker

KEY = "sk-host-only-0123456789"
LIMITS = {"wall_time_ms": 20_000, "cpu_time_ms": 20_000}  # within the test daemon's caps
CALLS: list[str] = []


@tool
def price_of(item: str) -> int:
    """Price of an item, from a list only the host can read.

    Args:
        item: the item's name
    """
    CALLS.append(item)
    return {"apple": 3, "pear": 5}[item]


def test_agent_and_managed_agent_run_in_the_sandbox(daemon: Any) -> None:
    CALLS.clear()
    manager_script = [
        ("text", "Thought: look prices up.\n```py\np = price_of('apple')\nprint('apple', p)\n```"),
        (
            "text",
            "Thought: ask the helper.\n```py\nq = helper(task='multiply by 7', "
            "additional_args={'base': p})\nprint('helper says', q)\n```",
        ),
        ("text", "Thought: done.\n```py\nfinal_answer(q + price_of('pear'))\n```"),
    ]
    helper_script = [
        ("text", "Thought: compute.\n```py\nv = base * 7\n```"),
        ("text", "```py\nfinal_answer(v)\n```"),
    ]
    with (
        fake_openai(manager_script) as boss_llm,
        fake_openai(helper_script) as helper_llm,
        Client(daemon.target) as client,
    ):
        helper = CodeAgent(
            model=OpenAICompatibleModel("helper-model", helper_llm.base_url, api_key=KEY),
            name="helper",
            description="Multiplies `base` by what the task says.",
        )
        agent = CodeAgent(
            tools=[price_of],
            model=OpenAICompatibleModel("boss-model", boss_llm.base_url, api_key=KEY),
            client=client,
            managed_agents=[helper],
        )
        progress: list[str] = []
        answer = run_in_sandbox(agent, "apple*7 + pear?", limits=LIMITS, on_output=progress.append)
        before = client.stats().sessions
    assert answer == 26
    assert CALLS == ["apple", "pear"]  # the tools ran here, called from the sandbox
    assert len(boss_llm.requests) == 3 and len(helper_llm.requests) == 2
    assert all(r["auth"] == f"Bearer {KEY}" for r in boss_llm.requests + helper_llm.requests)
    sent = json.dumps([r["body"] for r in boss_llm.requests])
    assert "apple 3" in sent and "helper says 21" in sent  # observations came from the sandbox
    assert "[agent] step 1" in "".join(progress) and "[helper] step 1" in "".join(progress)
    assert before == 0  # the run's session is closed
    # The run is in the agent's memory, managed run nested.
    assert len(agent.logs) == 3 and agent.logs[0].code == "p = price_of('apple')\nprint('apple', p)"
    [run] = agent.logs[1].managed_runs
    assert run.agent == "helper" and run.final_answer == 21
    assert [s.code for s in run.steps] == ["v = base * 7", "final_answer(v)"]
    out = io.StringIO()
    agent.replay(out)
    assert "Managed agent 'helper' answered: 21" in out.getvalue()


def test_model_code_stays_in_the_restricted_interpreter(daemon: Any) -> None:
    model = ScriptedModel(
        [
            "```py\nimport os\n```",
            "```py\nfrom executor.runner.agent_sandbox import run_agent\n```",
            "```py\nfinal_answer('contained')\n```",
        ]
    )
    with Client(daemon.target) as client:
        agent = CodeAgent(model=model, client=client, authorized_imports=["executor.*"])
        assert run_in_sandbox(agent, "escape?", limits=LIMITS) == "contained"
    assert "POLICY_DENIED" in (agent.logs[0].error or "")
    assert "POLICY_DENIED" in (agent.logs[1].error or "")  # executor.* is never given to it


def test_model_call_budget_and_failures_are_clear(daemon: Any) -> None:
    with Client(daemon.target) as client:
        agent = CodeAgent(model=ScriptedModel(["```py\nx = 1\n```"] * 5), client=client)
        with pytest.raises(AgentError, match=r"used up its 2 model calls \(max_model_calls\)"):
            run_in_sandbox(agent, "loop", limits=LIMITS, max_model_calls=2)


def test_cli_agent_in_sandbox(
    daemon: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_TEST_KEY", KEY)
    script = [
        ("text", "Thought: compute.\n```py\nx = 6 * 7\nprint(x)\n```"),
        ("text", "Thought: done.\n```py\nfinal_answer(x)\n```"),
    ]
    with fake_openai(script) as llm:
        code = main(
            [
                "agent",
                "What is 6*7?",
                "--in-sandbox",
                "--model",
                "m",
                "--base-url",
                llm.base_url,
                "--api-key-env",
                "CORRAL_TEST_KEY",
                "--target",
                daemon.target,
            ]
        )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[agent] step 2" in out
    assert "Final answer: 42\n[2 step(s) in the sandbox" in out
    assert all(r["auth"] == f"Bearer {KEY}" for r in llm.requests)
