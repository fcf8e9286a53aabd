"""smolagents fit: the sandbox allows exactly what the agent tells the model it may import."""

from __future__ import annotations

from typing import Any

import pytest

smolagents = pytest.importorskip("smolagents")

from agent import Client  # noqa: E402
from agent.integrations.smolagents import (  # noqa: E402
    CorralCodeAgent,
    CorralExecutor,
    ImportMismatch,
)
from tests.agent.test_smolagents_daemon import ScriptedSmolModel  # noqa: E402

NUMPY_SCRIPT = [
    "Thought: numpy is authorized.\n<code>\nimport numpy as np\n"
    "final_answer(int(np.arange(4).sum()))\n</code>"
]


def test_explicit_imports_that_leave_the_agents_out_fail_at_construction() -> None:
    with Client("127.0.0.1:1") as client:  # never contacted
        executor = CorralExecutor(client, additional_authorized_imports=["math"])
        with pytest.raises(ImportMismatch, match=r"import \['numpy'\].*only \['math'\]"):
            CorralCodeAgent(
                tools=[],
                model=ScriptedSmolModel([]),
                executor=executor,
                additional_authorized_imports=["numpy", "math"],
            )


@pytest.mark.docker
def test_plain_code_agent_imports_are_taken_automatically(daemon: Any) -> None:
    with Client(daemon.target) as client:
        executor = CorralExecutor(client)
        agent = smolagents.CodeAgent(
            tools=[],
            model=ScriptedSmolModel(list(NUMPY_SCRIPT)),
            executor=executor,
            additional_authorized_imports=["numpy"],
            max_steps=2,
            verbosity_level=0,
        )
        try:
            assert agent.run("sum of 0..3 with numpy") == 6
            assert executor.additional_authorized_imports == ["numpy"]
        finally:
            agent.cleanup()


@pytest.mark.docker
def test_corral_code_agent_and_the_denied_import_hint(daemon: Any) -> None:
    agent = CorralCodeAgent(
        tools=[],
        model=ScriptedSmolModel(list(NUMPY_SCRIPT)),
        corral_target=daemon.target,
        additional_authorized_imports=["numpy"],
        max_steps=2,
        verbosity_level=0,
    )
    try:
        assert agent.run("sum of 0..3 with numpy") == 6
    finally:
        agent.cleanup()
    with Client(daemon.target) as client, client.session() as s:
        r = s.run("import numpy")
    assert r.error is not None
    assert "imports=['numpy']" in r.error.message
    assert "'numpy.*'" in r.error.message and "--import numpy" in r.error.message
