"""What an agent remembers: one record per step, and how it reads back.

Two views of the same records: `steps` are the fine-grained logs (input
messages, model output, code, observations, tool calls, error, timing, token
usage); `to_messages()` is the conversation the model sees next (system
prompt, task, then per step one assistant message and one observation
message). Keeping the records primary means the messages can be rebuilt
differently (e.g. summarised) without losing what happened.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from agent.models import Message, TokenUsage
from agent.results import Artifact, Result

RETRY_HINT = (
    "Now let's retry: take care not to repeat previous errors! Try a different approach if needed."
)


@dataclass
class ToolCallRecord:
    name: str
    arguments: Any
    id: str = ""
    result: Any = None
    error: str | None = None


@dataclass
class ActionStep:
    step_number: int
    input_messages: list[Message] = field(default_factory=list)
    model_output: str = ""
    code: str | None = None  # the code action (CodeAgent, python_interpreter)
    observations: str = ""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    error: str | None = None  # fed back to the model in the observation message
    start_time: float = field(default_factory=time.time)
    end_time: float | None = None
    token_usage: TokenUsage | None = None
    result: Result | None = None  # the sandbox's Result of `code`
    is_final_answer: bool = False
    final_answer: Any = None
    # The model asked for the tool calls through the endpoint's function
    # calling: they go back as an assistant `tool_calls` message and one
    # `role: tool` message per call, carrying its id.
    native_tool_calls: bool = False
    # Runs of managed agents called during this step (agent.managed.ManagedRun).
    managed_runs: list[Any] = field(default_factory=list)
    # Figures/images the step's code produced that the model sees (within the
    # agent's per-step budget), as OpenAI-compatible image content parts.
    observation_images: list[Artifact] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return (self.end_time or time.time()) - self.start_time

    def observation_message(self) -> Message:
        parts = []
        if self.observations:
            parts.append("Observation:\n" + self.observations)
        if self.error:
            parts.append("Error:\n" + self.error + "\n" + RETRY_HINT)
        text = "\n".join(parts) or "Observation:\n(no output)"
        if not self.observation_images:
            return {"role": "user", "content": text}
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        for image in self.observation_images:
            content.append({"type": "image_url", "image_url": {"url": image.data_url()}})
        return {"role": "user", "content": content}

    def messages(self) -> list[Message]:
        """This step as chat messages: the model's turn, then what it observed."""
        if not (self.native_tool_calls and self.tool_calls):
            return [{"role": "assistant", "content": self.model_output}, self.observation_message()]
        calls = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": _arguments_text(call.arguments)},
            }
            for call in self.tool_calls
        ]
        out: list[Message] = [
            {"role": "assistant", "content": self.model_output or None, "tool_calls": calls}
        ]
        for call in self.tool_calls:
            if call.error is not None:
                content = "Error:\n" + call.error + "\n" + RETRY_HINT
            else:
                content = call.result if isinstance(call.result, str) else repr(call.result)
            out.append({"role": "tool", "tool_call_id": call.id, "content": content})
        return out


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    try:
        return json.dumps(arguments)
    except (TypeError, ValueError):
        return json.dumps(repr(arguments))


@dataclass
class FinalAnswerStep:
    """The extra model call made when max_steps ran out without an answer."""

    input_messages: list[Message]
    model_output: str = ""
    final_answer: Any = None
    token_usage: TokenUsage | None = None


@dataclass
class AgentMemory:
    system_prompt: str = ""
    task: str = ""
    steps: list[ActionStep] = field(default_factory=list)
    final_step: FinalAnswerStep | None = None

    def reset(self, system_prompt: str, task: str) -> None:
        self.system_prompt = system_prompt
        self.task = task
        self.steps = []
        self.final_step = None

    def to_messages(self) -> list[Message]:
        messages: list[Message] = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": "New task:\n" + self.task},
        ]
        for step in self.steps:
            messages.extend(step.messages())
        return messages

    @property
    def token_usage(self) -> TokenUsage:
        total = TokenUsage()
        for step in self.steps:
            if step.token_usage is not None:
                total = total + step.token_usage
        if self.final_step is not None and self.final_step.token_usage is not None:
            total = total + self.final_step.token_usage
        return total


def format_step(step: ActionStep) -> str:
    """A readable block for one step (used by `replay` and the CLI)."""
    lines = [f"━━ Step {step.step_number} " + "━" * 40]
    if step.model_output:
        lines += ["Model output:", _indent(step.model_output.strip())]
    if step.code:
        lines += ["Code:", _indent(step.code.strip())]
    for call in step.tool_calls:
        lines.append(f"Tool call: {call.name}({call.arguments!r})")
    for run in step.managed_runs:
        lines.append(f"Managed agent {run.agent!r}, task: {run.task}")
        for sub in run.steps:
            lines.append(_indent(format_step(sub)))
        if run.error:
            lines.append(f"    Managed agent {run.agent!r} failed: {run.error}")
        else:
            lines.append(f"    Managed agent {run.agent!r} answered: {run.final_answer!r}")
    if step.observations:
        lines += ["Observation:", _indent(step.observations.rstrip())]
    if step.error:
        lines += ["Error:", _indent(step.error.rstrip())]
    if step.is_final_answer:
        lines.append(f"Final answer: {step.final_answer}")
    usage = step.token_usage
    tokens = f", tokens in/out {usage.input_tokens}/{usage.output_tokens}" if usage else ""
    lines.append(f"[{step.duration:.2f}s{tokens}]")
    return "\n".join(lines)


def replay(memory: AgentMemory, file: TextIO | None = None) -> None:
    out = file or sys.stdout
    print(f"Task: {memory.task}", file=out)
    for step in memory.steps:
        print(format_step(step), file=out)
    if memory.final_step is not None:
        print("━━ Final answer after max_steps " + "━" * 26, file=out)
        print(_indent(memory.final_step.model_output.strip()), file=out)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
