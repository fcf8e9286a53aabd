"""smolagents' own CodeAgent running every code action in Corral (CorralExecutor)."""

from __future__ import annotations

from typing import Any

import pytest

smolagents = pytest.importorskip("smolagents")

from smolagents.models import ChatMessage as SmolChatMessage  # noqa: E402
from smolagents.models import MessageRole  # noqa: E402
from smolagents.models import Model as SmolModel  # noqa: E402
from smolagents.monitoring import TokenUsage as SmolTokenUsage  # noqa: E402

from agent import Client  # noqa: E402
from agent.integrations.smolagents import CorralExecutor, SmolagentsTool  # noqa: E402

pytestmark = pytest.mark.docker

CALLS: list[str] = []
tool = smolagents.tool


@tool
def get_price(fruit: str) -> int:
    """Price of a fruit in cents, from a price list only the host can read.

    Args:
        fruit: the fruit's name
    """
    CALLS.append(fruit)
    return {"apple": 3, "pear": 5}[fruit]


class ScriptedSmolModel(SmolModel):
    """A smolagents Model that replays code actions and records what it was sent."""

    def __init__(self, responses: list[str]) -> None:
        super().__init__(model_id="scripted")
        self.responses = list(responses)
        self.seen: list[Any] = []

    def generate(  # type: ignore[override]
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: Any = None,
        tools_to_call_from: Any = None,
        **kwargs: Any,
    ) -> SmolChatMessage:
        self.seen.append(messages)
        return SmolChatMessage(
            role=MessageRole.ASSISTANT,
            content=self.responses.pop(0),
            token_usage=SmolTokenUsage(input_tokens=10, output_tokens=10),
        )


def test_smolagents_code_agent_runs_in_corral(daemon: Any) -> None:
    CALLS.clear()
    model = ScriptedSmolModel(
        [
            "Thought: look the apple price up.\n<code>\nprice = get_price('apple')\nprint('apple costs', price)\n</code>",
            "Thought: try a division.\n<code>\nratio = price / 0\n</code>",
            "Thought: the state persisted; answer.\n<code>\nfinal_answer(price * 3)\n</code>",
        ]
    )
    with Client(daemon.target) as client:
        executor = CorralExecutor(client, labels={"test": "smolagents"})
        agent = smolagents.CodeAgent(
            tools=[get_price], model=model, executor=executor, max_steps=5, verbosity_level=0
        )
        try:
            assert agent.run("What do three apples cost?") == 9
            session = executor.session
            assert session is not None
            # the tool ran here, on the client, through the tool callback
            assert CALLS == ["apple"]
            assert sorted(session.tools) == ["get_price"]  # final_answer is Corral's own
            steps = [s for s in agent.memory.steps if type(s).__name__ == "ActionStep"]
            assert "apple costs 3" in (steps[0].observations or "")
            assert steps[1].error is not None and "ZeroDivisionError" in str(steps[1].error)
            assert steps[2].is_final_answer
            # the sandbox never got the tool's source: calling it inside is the stub
            assert session.run("get_price('pear')").python_value == 5
            assert CALLS == ["apple", "pear"]
        finally:
            agent.cleanup()
        assert session.closed


def test_executor_interface_directly(daemon: Any) -> None:
    with CorralExecutor(target=daemon.target) as executor:
        executor.send_variables({"seed": 7})
        executor.send_tools({"get_price": get_price})
        out = executor("print('hi')\nseed * 2")
        assert (out.output, out.logs, out.is_final_answer) == (14, "hi\n", False)
        final = executor("final_answer({'total': seed})")
        assert final.is_final_answer and final.output == {"total": 7}
        with pytest.raises(smolagents.local_python_executor.InterpreterError, match="NameError"):
            executor("undefined_name + 1")
        assert executor.state["_print_outputs"] == ""
        executor.send_variables({"late": 1})  # an open session gets them at once
        assert executor("late + seed").output == 8
        first = executor.session
        executor.send_tools({})  # a different tool set reopens the session
        assert first is not None and first.closed
    assert executor.session is None


def test_smolagents_tool_types_map_to_corral() -> None:
    wrapped = SmolagentsTool(get_price)
    assert wrapped.name == "get_price"
    assert wrapped.inputs == {"fruit": {"type": "string", "description": "the fruit's name"}}
    assert wrapped.output_type == "integer"
    assert wrapped(fruit="pear") == 5


# -- figures (issue #13) ------------------------------------------------------------

FIGURE_IMPORTS = ["matplotlib", "matplotlib.*", "PIL", "PIL.*"]
FIGURE_LIMITS = {"wall_time_ms": 20_000, "cpu_time_ms": 20_000}
PLOT_ACTION = (
    "Thought: plot it.\n<code>\nimport matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)\nax.plot([1, 2, 3], [1, 4, 9])\n"
    "plt.show()\nprint('plotted')\n</code>"
)


def _images_in(messages: list[Any]) -> list[Any]:
    """The image content parts smolagents put into the messages it sent the model."""
    found = []
    for message in messages:
        content = message.content if hasattr(message, "content") else message.get("content")
        if isinstance(content, list):
            found += [part for part in content if part.get("type") == "image"]
    return found


def test_a_smolagents_code_agent_sees_the_figure_its_code_produced(daemon: Any) -> None:
    from smolagents.agent_types import AgentImage

    from agent.integrations.smolagents import CorralCodeAgent

    model = ScriptedSmolModel(
        [
            PLOT_ACTION,
            "Thought: answer with an image.\n<code>\nfrom PIL import Image\n"
            "final_answer(Image.new('RGB', (12, 7), 'blue'))\n</code>",
        ]
    )
    with Client(daemon.target) as client:
        executor = CorralExecutor(client, limits=FIGURE_LIMITS)
        agent = CorralCodeAgent(
            tools=[],
            model=model,
            executor=executor,
            additional_authorized_imports=FIGURE_IMPORTS,
            max_steps=4,
            verbosity_level=0,
        )
        try:
            answer = agent.run("Plot y = x^2, then give me a blue swatch.")
            assert isinstance(answer, AgentImage) and answer.to_raw().size == (12, 7)
            # The figure the first action made reached the model in the second call,
            # as smolagents shows images: the step's observations_images.
            first_step = agent.memory.steps[1]
            assert [im.size for im in first_step.observations_images] == [(640, 480)]
            images = _images_in(model.seen[1])
            assert len(images) == 1 and images[0]["image"].size == (640, 480)
            assert "[figure 1: 640x480 PNG → attached below]" in first_step.observations
        finally:
            executor.cleanup()


def test_a_plain_code_agent_gets_figures_through_the_step_callback(daemon: Any) -> None:
    model = ScriptedSmolModel([PLOT_ACTION, "Thought: done.\n<code>\nfinal_answer(1)\n</code>"])
    with Client(daemon.target) as client:
        executor = CorralExecutor(client, limits=FIGURE_LIMITS)
        agent = smolagents.CodeAgent(
            tools=[],
            model=model,
            executor=executor,
            additional_authorized_imports=FIGURE_IMPORTS,
            step_callbacks=[executor.attach_images],
            max_steps=3,
            verbosity_level=0,
        )
        try:
            assert agent.run("plot") == 1
            assert len(_images_in(model.seen[1])) == 1
        finally:
            executor.cleanup()
