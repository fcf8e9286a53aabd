"""The agent loop inside the sandbox, without handing over the keys.

    agent = CodeAgent(tools=[...], model=OpenAICompatibleModel(...), client=Client(...))
    answer = run_in_sandbox(agent, "task")      # or: corral agent --in-sandbox TASK

The whole agentic system (the loop, its managed agents) runs inside a Corral
sandbox as plain CPython in the hardened container
(`executor/runner/agent_sandbox.py`); each code action still goes through
the restricted interpreter there, one interpreter per agent. What needs the
network or secrets stays here: every model call arrives as a call of the
`corral_model` tool and runs on this side with the agent's own model (API
key included), and every tool call runs here as usual. So the sandbox keeps
no network and never sees the key.

The host treats what comes out as hostile: `corral_model` checks the
messages it is given (shape, roles, size), answers at most
`max_model_calls` calls per run (a compromised loop cannot spend the key
freely), and knows only the agents it was built with. The run record (steps,
managed runs) is read back from the session's workspace, size-capped and
type-checked, into `agent.memory`, so `agent.logs` and `agent.replay()` work
as for a local run.

Time: the session's `wall_time_ms` bounds the loop's own computing (model and
tool time are not counted, as for any tool call), `tool_timeout_ms` each
model call; the daemon bounds the tool time of one snippet (10 minutes by
default), hence of one run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from agent import prompts
from agent.errors import AgentError, InvalidArgument, ModelError, ToolError
from agent.executors import Executor
from agent.memory import RETRY_HINT, ActionStep
from agent.models import Model, TokenUsage
from agent.parsing import CODE_FORMAT_HELP
from agent.results import Result, Verdict
from agent.tools import Tool

AGENT_MODULE = "executor.runner.agent_sandbox"
RECORD_FILE = "corral_agent_run.json"
MAX_RECORD_BYTES = 8 << 20
MAX_MESSAGES_CHARS = 4 << 20  # of one corral_model call's messages, in all
MODEL_TOOL = "corral_model"
# The loop runs as one snippet: its own computing must fit its wall time.
DEFAULT_LIMITS = {"wall_time_ms": 120_000, "cpu_time_ms": 120_000, "tool_timeout_ms": 300_000}
ADVICE = {
    Verdict.SYNTAX_ERROR.value: "Fix the syntax.",
    Verdict.POLICY_DENIED.value: "The sandbox does not allow this; use another way (no names "
    "starting with '_', only the authorized imports).",
    Verdict.TIMEOUT.value: "The code ran out of time; make it faster or do less per step.",
}


class ModelRelayTool(Tool):
    """`corral_model`: the sandboxed loop's model calls, answered here with the real models."""

    name = MODEL_TOOL
    description = "Ask the agent's language model (runs on the host)."
    inputs = {
        "messages": {"type": "array", "description": "chat messages {role, content}"},
        "stop_sequences": {"type": "array", "description": "stop strings", "nullable": True},
        "agent": {"type": "string", "description": "managed agent name", "nullable": True},
    }
    output_type = "object"

    def __init__(self, models: dict[str, Model], max_calls: int) -> None:
        super().__init__()
        self.models = models
        self.max_calls = max_calls
        self.calls = 0
        self.usage: dict[str, TokenUsage] = {}

    def forward(  # type: ignore[override]
        self,
        messages: list[Any],
        stop_sequences: list[Any] | None = None,
        agent: str | None = None,
    ) -> dict[str, Any]:
        self.calls += 1
        if self.calls > self.max_calls:
            raise ToolError(f"the run used up its {self.max_calls} model calls (max_model_calls)")
        model = self.models.get(agent or "")
        if model is None:
            raise ToolError(f"no agent named {agent!r} in this run")
        checked = _check_messages(messages)
        stops = [s for s in (stop_sequences or ()) if isinstance(s, str) and s][:4]
        try:
            message = model.generate(checked, stop_sequences=stops or None)
        except ModelError as exc:
            raise ToolError(f"the model failed: {exc}") from None
        usage = message.token_usage or TokenUsage()
        self.usage[agent or ""] = self.usage.get(agent or "", TokenUsage()) + usage
        return {
            "content": message.content,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
        }


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise ToolError("messages must be a non-empty list")
    out, size = [], 0
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise ToolError("each message must be {role: system|user|assistant, content: str}")
        content = m.get("content")
        if not isinstance(content, str):
            raise ToolError("each message's content must be text")
        size += len(content)
        out.append({"role": m["role"], "content": content})
    if size > MAX_MESSAGES_CHARS:
        raise ToolError(f"the messages exceed {MAX_MESSAGES_CHARS} characters")
    return out


def _own_tools(agent: Any) -> list[Tool]:
    from agent.managed import ManagedAgentTool

    return [t for t in agent.tools.values() if not isinstance(t, ManagedAgentTool)]


def _spec(agent: Any, team: dict[str, Any]) -> dict[str, Any]:
    """The JSON the sandboxed loop runs from; registers the agent's tools and model in `team`."""
    name = agent.name or ""
    if name in team["models"]:
        raise AgentError(f"two agents are named {name!r}; give managed agents distinct names")
    team["models"][name] = agent.model
    for t in _own_tools(agent):
        known = team["tools"].setdefault(t.name, t)
        if known is not t:
            raise AgentError(
                f"two agents have different tools named {t.name!r}; tool names must be unique "
                "across the agents of one sandboxed run"
            )
    team["imports"].update(agent.authorized_imports)
    return {
        "name": name,
        "description": agent.description or "",
        "task": "",
        "system_prompt": agent.system_prompt,
        "max_steps": agent.max_steps,
        "imports": list(agent.authorized_imports),
        "tools": [t.name for t in _own_tools(agent)],
        "stop_sequences": ["Observation:", "Calling tools:"],
        "format_help": CODE_FORMAT_HELP,
        "final_answer_prompt": prompts.FINAL_ANSWER_PROMPT,
        "retry_hint": RETRY_HINT,
        "advice": ADVICE,
        "max_observation_chars": agent.max_observation_chars,
        "wall_time_s": 10.0,
        "max_total_steps": agent.max_total_steps,
        "managed": [_spec(child, team) for child in agent.managed_agents.values()],
    }


def run_in_sandbox(
    agent: Any,
    task: str,
    *,
    executor: Executor | None = None,
    limits: dict[str, int] | None = None,
    max_model_calls: int | None = None,
    on_output: Callable[[str], None] | None = None,
) -> Any:
    """Run the CodeAgent `agent` (with its managed agents) inside a sandbox; returns the answer.

    The session comes from `executor` (default: the agent's, i.e. its client's
    daemon). `on_output` receives the loop's progress lines as they arrive.
    """
    from agent.agents import CodeAgent, describe_failure

    if not isinstance(agent, CodeAgent):
        raise AgentError("run_in_sandbox runs a CodeAgent (its loop is the code-action loop)")
    where = executor or agent.executor
    if where is None:
        raise AgentError("run_in_sandbox needs a daemon: build the agent with client=Client(...)")
    team: dict[str, Any] = {"models": {}, "tools": {}, "imports": set()}
    spec = _spec(agent, team)
    spec["task"] = task
    budget = max_model_calls or (agent.max_total_steps + 1 + len(team["models"]))
    relay = ModelRelayTool(team["models"], budget)
    tools: dict[str, Tool] = team["tools"]
    if MODEL_TOOL in tools:
        raise AgentError(f"{MODEL_TOOL!r} is reserved for the sandboxed agent's model calls")
    session = _open(
        where,
        imports=[AGENT_MODULE, *sorted(team["imports"])],
        tools=[relay, *tools.values()],
        limits=dict(limits or {}),
    )
    try:
        session.set_variables({"corral_spec": spec})
        table = ", ".join(f"{n!r}: {n}" for n in tools)
        code = (
            "import json\n"
            f"from {AGENT_MODULE} import run_agent\n"
            f"record = run_agent(corral_spec, {MODEL_TOOL}, {{{table}}})\n"
            f"with open({RECORD_FILE!r}, 'w') as f:\n"
            "    f.write(record)\n"
            "final_answer(json.loads(record)['final_answer'])\n"
        )
        result: Result | None = None
        for item in session.stream(code):
            if isinstance(item, Result):
                result = item
            elif on_output is not None and isinstance(item, str):
                on_output(item)
        assert result is not None
        if not result.is_final_answer:
            raise AgentError(f"the sandboxed agent failed: {describe_failure(result)}")
        raw = session.download(RECORD_FILE)
    finally:
        session.close()
    if len(raw) > MAX_RECORD_BYTES:
        raise AgentError(f"the sandboxed agent's record exceeds {MAX_RECORD_BYTES} bytes")
    try:
        record = json.loads(raw)
        agent.memory.reset(agent.system_prompt, task)
        agent.memory.steps = _steps(record.get("steps"))
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise AgentError(f"the sandboxed agent's record is malformed: {exc}") from exc
    return result.answer


_CAP = re.compile(r"limits\.(\w+)=\d+ exceeds the server's maximum of (\d+)")


def _open(where: Executor, *, imports: list[str], tools: list[Tool], limits: dict[str, int]) -> Any:
    """Open the session with generous defaults, lowered to a daemon's caps when it refuses them.

    Limits the caller gave are never changed: a refusal of those is raised.
    """
    wanted = {**DEFAULT_LIMITS, **limits}
    for _ in range(len(wanted) + 1):
        try:
            return where.open(
                imports=imports, tools=tools, limits=wanted, labels={"agent": "in-sandbox"}
            )
        except InvalidArgument as exc:
            match = _CAP.search(str(exc))
            if match is None or match.group(1) in limits or match.group(1) not in wanted:
                raise
            wanted[match.group(1)] = int(match.group(2))
    raise AgentError("cannot agree on the session's limits with the daemon")


def _steps(raw: Any) -> list[ActionStep]:
    """ActionSteps from the sandbox's record (untrusted: every field type-checked)."""
    from agent.managed import ManagedRun

    if not isinstance(raw, list):
        raise TypeError("steps must be a list")
    steps = []
    for s in raw:
        if not isinstance(s, dict):
            raise TypeError("a step must be an object")
        step = ActionStep(step_number=int(s.get("step_number", 0)))
        step.model_output = _text(s.get("model_output"))
        step.code = _text(s.get("code")) or None
        step.observations = _text(s.get("observations"))
        step.error = _text(s.get("error")) or None
        step.is_final_answer = bool(s.get("is_final_answer"))
        step.final_answer = s.get("final_answer")
        step.token_usage = TokenUsage(int(s.get("input_tokens", 0)), int(s.get("output_tokens", 0)))
        step.start_time = float(s.get("start_time") or 0.0)
        step.end_time = float(s.get("end_time") or step.start_time)
        for run in s.get("managed_runs") or ():
            if not isinstance(run, dict):
                raise TypeError("a managed run must be an object")
            step.managed_runs.append(
                ManagedRun(
                    agent=_text(run.get("agent")),
                    task=_text(run.get("task")),
                    steps=_steps(run.get("steps") or []),
                    final_answer=run.get("final_answer"),
                    error=_text(run.get("error")) or None,
                )
            )
        steps.append(step)
    return steps


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
