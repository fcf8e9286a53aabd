"""Managed agents: an agent called by another agent like a tool.

    researcher = CodeAgent(tools=[...], model=m, name="researcher",
                           description="Finds facts; give it a precise question.")
    manager = CodeAgent(model=m, executor="process", managed_agents=[researcher])
    manager.run("...")   # the manager's snippets may call researcher(task="...")

A managed agent becomes a `ManagedAgentTool` in its manager's tool table:
name and description from the agent, a `task` argument and an optional
`additional_args` object (JSON values the agent receives as variables in
its own session and is told about). It runs its own loop in its own session
(opened from its own executor, else from the manager's), on the client like
any tool, so it can use its own tools and secrets. Its answer returns as the
tool's result; its steps are recorded in the manager's current step
(`ActionStep.managed_runs`) and shown nested by `replay()`.

Limits: the tree of managers is at most `max_depth` deep (checked when the
manager is built, cycles refused), and every step of every agent in one run
draws from one budget of `max_total_steps`. A managed agent that fails
(model error, budget spent, its own error) makes the call fail in the
manager's snippet with a message naming the agent and the cause.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.errors import AgentError, ToolError
from agent.results import Artifact
from agent.tools import Tool, _check_name
from proto.values import to_wire

if TYPE_CHECKING:
    from agent.agents import MultiStepAgent
    from agent.memory import ActionStep, FinalAnswerStep
    from agent.models import TokenUsage

DEFAULT_MAX_DEPTH = 3
DEFAULT_MAX_TOTAL_STEPS = 50
# A managed agent's run happens inside its manager's tool call: the manager's
# session waits this long for it unless its limits say otherwise (the daemon's
# default ceiling for tool_timeout_ms).
MANAGER_TOOL_TIMEOUT_MS = 300_000


class StepBudget:
    """Steps left for every agent of one run (manager and managed agents together)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise AgentError("max_total_steps must be at least 1")
        self.limit = limit
        self.used = 0

    def take(self) -> bool:
        """Spend one step; False when none is left."""
        if self.used >= self.limit:
            return False
        self.used += 1
        return True


@dataclass
class ManagedRun:
    """One call of a managed agent, as recorded in its manager's step."""

    agent: str
    task: str
    steps: list[ActionStep] = field(default_factory=list)
    final_step: FinalAnswerStep | None = None
    final_answer: Any = None
    error: str | None = None
    token_usage: TokenUsage | None = None


class ManagedAgentTool(Tool):
    """A managed agent as a tool of its manager."""

    output_type = "any"

    def __init__(self, agent: MultiStepAgent, manager: MultiStepAgent) -> None:
        self.agent = agent
        self.manager = manager
        self.name = agent.name or ""
        self.description = (
            f"{agent.description}\n"
            f"Give it a complete task in `task` (it does not see your conversation); "
            f"`additional_args` (a dict of JSON values) become variables in its session."
        )
        self.inputs = {
            "task": {"type": "string", "description": "the task, stated completely"},
            "additional_args": {
                "type": "object",
                "description": "extra inputs (JSON values) the agent gets as variables",
                "nullable": True,
            },
        }
        super().__init__()

    def forward(self, task: str, additional_args: dict[str, Any] | None = None) -> Any:  # type: ignore[override]
        agent, manager = self.agent, self.manager
        record = ManagedRun(agent=self.name, task=task)
        step = manager._current_step
        if step is not None:
            step.managed_runs.append(record)
        if agent.executor is None and agent.session is None:
            agent.executor = manager.executor  # its own session, from the manager's executor
        full_task = task
        if additional_args:
            names = ", ".join(sorted(additional_args))
            full_task += f"\nYou have these variables in your session: {names}."
        try:
            answer = agent.run(full_task, variables=additional_args, budget=manager._budget)
        except Exception as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            raise ToolError(
                f"managed agent {self.name!r} failed: {record.error}. Solve the task another "
                "way or give it a simpler task."
            ) from exc
        finally:
            record.steps = list(agent.memory.steps)
            record.final_step = agent.memory.final_step
            record.token_usage = agent.memory.token_usage
        record.final_answer = answer
        if isinstance(answer, Artifact):
            return answer  # an image: crosses into the manager's snippet as its bytes
        try:
            json.dumps(to_wire(answer))
        except (TypeError, ValueError):
            answer = repr(answer)  # crosses into the manager's snippet as text
        return answer


def check_team(manager: MultiStepAgent, agents: list[MultiStepAgent], max_depth: int) -> None:
    """Names usable and unique, no cycles, depth within `max_depth`."""
    names: set[str] = set(manager.tools)
    for agent in agents:
        if not agent.name:
            raise AgentError(
                f"a managed {type(agent).__name__} needs name= and description= (its manager "
                "calls it by name)"
            )
        try:
            _check_name(agent.name)
        except ToolError as exc:
            raise AgentError(f"managed agent name: {exc}") from None
        if not agent.description:
            raise AgentError(f"managed agent {agent.name!r} needs a description= for its manager")
        if agent.name in names:
            raise AgentError(
                f"managed agent name {agent.name!r} clashes with another tool or agent; rename it"
            )
        names.add(agent.name)
    depth = 1 + max(_depth(a, (id(manager),), max_depth) for a in agents)
    if depth > max_depth:
        raise AgentError(
            f"managed agents nest {depth} levels deep; the limit is max_depth={max_depth}"
        )


def _depth(agent: MultiStepAgent, path: tuple[int, ...], max_depth: int) -> int:
    if id(agent) in path:
        raise AgentError(
            f"agent {agent.name or type(agent).__name__!r} manages itself (directly or through "
            "another agent); managed agents must form a tree"
        )
    children = agent.managed_agents
    if not children or len(path) > max_depth:
        return 0
    return 1 + max(_depth(c, (*path, id(agent)), max_depth) for c in children.values())
