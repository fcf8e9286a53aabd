"""Agents: CodeAgent (actions are Python snippets) and ToolCallingAgent (JSON tool calls).

Both run the same loop over a Corral session: ask the model, read an action,
run it, record the step, feed the observation (or the error) back, until a
final answer or `max_steps` (then one more model call asks for the answer
without tools). Tools always run on the client: in a CodeAgent the snippet
calls them through the session's tool callback, in a ToolCallingAgent the
agent calls them directly. A session the agent opened itself (from `client=`)
is reopened if its sandbox is lost; a session passed in is never replaced.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

from agent import prompts, wire
from agent.client import Client, Session
from agent.errors import AgentError, CorralError, ToolError
from agent.executors import AgentSession, DaemonExecutor, Executor, resolve_executor
from agent.managed import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_TOTAL_STEPS,
    MANAGER_TOOL_TIMEOUT_MS,
    ManagedAgentTool,
    StepBudget,
    check_team,
)
from agent.memory import ActionStep, AgentMemory, FinalAnswerStep, ToolCallRecord, replay
from agent.models import Message, Model, ToolCallRequest
from agent.parsing import FormatError, extract_code, parse_tool_calls, truncate
from agent.results import Artifact, Result, Verdict
from agent.tools import FinalAnswerTool, Tool
from proto.imports import DEFAULT_IMPORTS
from proto.limits import SessionLimits


def default_imports_text() -> str:
    """The modules every session may import, as told to the model.

    The interpreter's own allowlist (proto/imports.py, the authority), so the
    prompt never promises a module the sandbox refuses.
    """
    return ", ".join(DEFAULT_IMPORTS)


def _limits_dict(limits: Mapping[str, int] | SessionLimits | None) -> dict[str, int]:
    if limits is None:
        return {}
    if isinstance(limits, SessionLimits):
        return {k: v for k, v in limits.to_dict().items() if v}
    return dict(limits)


def _has_limit(limits: Mapping[str, int] | SessionLimits | None, key: str) -> bool:
    return bool(_limits_dict(limits).get(key))


CODE_STOP_SEQUENCES = ["Observation:", "Calling tools:"]
TOOL_STOP_SEQUENCES = ["Observation:"]


def format_observation(result: Result, max_chars: int) -> str:
    """What the model sees of a snippet run: printed logs, then the last value."""
    logs = result.stdout
    if logs and not logs.endswith("\n"):
        logs += "\n"
    if result.truncated:
        logs += "[output truncated: print less]\n"
    text = "Execution logs:\n" + logs
    if result.ok:
        shown = result.final_answer if result.is_final_answer else result.value
        text += "Last output from code snippet:\n" + (shown.repr if shown else "None")
    return truncate(text, max_chars)


# Type names of the values the interpreter turns into an artifact when they are the
# final answer (PIL's Image and its per-format subclasses, matplotlib's Figure).
IMAGE_VALUE_TYPES = frozenset(
    {"Image", "PngImageFile", "JpegImageFile", "GifImageFile", "BmpImageFile", "Figure"}
)


def final_answer_of(result: Result) -> Any:
    """The answer of a `final_answer(...)` snippet: an `Artifact` when it was an image."""
    answer = result.final_answer
    if answer is not None and answer.type in IMAGE_VALUE_TYPES and result.artifacts:
        last = result.artifacts[-1]  # the answer's image is made after every other one
        if isinstance(last, Artifact):
            return last
    return result.answer


def select_images(result: Result, max_images: int, max_bytes: int) -> tuple[list[Artifact], str]:
    """The raster images of a step that fit its budget, and a note listing every artifact.

    Images beyond `max_images` or the `max_bytes` total are named in the note
    (so the model knows they exist) but not attached; SVG is never attached
    (vision endpoints take PNG, JPEG, GIF and WebP).
    """
    chosen: list[Artifact] = []
    lines: list[str] = []
    used = 0
    for art in result.artifacts:
        if not isinstance(art, Artifact):
            continue
        fits = (
            art.mime_type in ("image/png", "image/jpeg", "image/gif")
            and len(chosen) < max_images
            and used + len(art.data) <= max_bytes
        )
        if fits:
            chosen.append(art)
            used += len(art.data)
            lines.append(art.describe("attached below"))
        else:
            lines.append(art.describe("not shown: over this step's image budget"))
    note = ("\nArtifacts:\n" + "\n".join(lines)) if lines else ""
    return chosen, note


def describe_failure(result: Result) -> str:
    """An error message for the model: what failed and what to change."""
    err = result.error
    if err is not None and len(err.frames) > 1 and err.traceback:
        # Frames across snippets: the model sees where, in its own earlier code.
        return f"Code execution failed ({result.verdict.value}):\n{err.traceback}"
    where = ""
    if err and err.line:
        where = f" at line {err.line}" + (f": {err.source_line}" if err.source_line else "")
    detail = f"{err.type}: {err.message}" if err else str(result.verdict)
    advice = {
        Verdict.SYNTAX_ERROR: "Fix the syntax.",
        Verdict.POLICY_DENIED: "The sandbox does not allow this; use another way (no names "
        "starting with '_', only the authorized imports).",
        Verdict.TIMEOUT: "The code ran out of time; make it faster or do less per step.",
        Verdict.CPU_LIMIT: "The code used too much CPU time; make it cheaper.",
        Verdict.MEMORY_LIMIT: "The code used too much memory; work with smaller data.",
        Verdict.SANDBOX_LOST: "The sandbox was lost; its variables are gone.",
        Verdict.INTERNAL: "The sandbox failed internally; try again differently.",
    }.get(result.verdict, "")
    text = f"Code execution failed{where} ({result.verdict.value}): {detail}"
    if result.session_lost and result.verdict != Verdict.SANDBOX_LOST:
        text += "\nThe sandbox was lost; variables from earlier steps are gone."
    return text + (f"\n{advice}" if advice else "")


class MultiStepAgent:
    """The loop shared by both agents; subclasses define `system_prompt` and `_step`.

    Where code runs: `client=` (a daemon session per agent), `executor=`
    ("process", "local", a Client or an Executor: see agent.executors), or
    `session=` (a session you own). `managed_agents=` (agents with `name=` and
    `description=`) become callable tools, bounded by `max_depth` and
    `max_total_steps` (see agent.managed). `add_base_tools=True` adds the
    default toolbox (agent.toolbox). `run_in_sandbox(agent, task)`
    (agent.sandboxed) runs a CodeAgent's whole loop inside the sandbox.
    """

    def __init__(
        self,
        tools: Iterable[Any] = (),
        model: Model | None = None,
        *,
        client: Client | None = None,
        session: Session | AgentSession | None = None,
        executor: Any = None,
        max_steps: int = 10,
        authorized_imports: Iterable[str] = (),
        limits: Mapping[str, int] | SessionLimits | None = None,
        max_observation_chars: int = 20_000,
        on_step: Callable[[ActionStep], None] | None = None,
        name: str | None = None,
        description: str | None = None,
        managed_agents: Iterable[MultiStepAgent] = (),
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_total_steps: int = DEFAULT_MAX_TOTAL_STEPS,
        add_base_tools: bool = False,
        rollback_on_error: bool = False,
        max_observation_images: int = 4,
        max_observation_image_bytes: int = 4 << 20,
    ) -> None:
        if model is None:
            raise AgentError("an agent needs a model (e.g. OpenAICompatibleModel or ScriptedModel)")
        if max_steps < 1:
            raise AgentError("max_steps must be at least 1")
        self.model = model
        self.client = client
        self.session: Session | AgentSession | None = session
        self._owns_session = session is None
        if executor is not None and client is not None:
            raise AgentError("give an agent client= or executor=, not both")
        # Where snippets run: a daemon session (client=), "local", "process" or an
        # Executor (see agent.executors). None with session= given: that session only.
        self.executor: Executor | None = (
            resolve_executor(executor)
            if executor is not None
            else DaemonExecutor(client)
            if client is not None
            else None
        )
        self.tools = wire.tool_table(tools)
        if add_base_tools:  # web_search, visit_webpage, transcriber (agent.toolbox)
            from agent.toolbox import base_tools

            for extra in base_tools():
                self.tools.setdefault(extra.name, extra)
        self.authorized_imports = list(authorized_imports)
        self.limits = limits
        self.max_steps = max_steps
        self.max_observation_chars = max_observation_chars
        # Per-step budget of figures/images shown to the model as image content parts
        # (0 images: text-only models; the observation then only lists them).
        self.max_observation_images = max_observation_images
        self.max_observation_image_bytes = max_observation_image_bytes
        self.on_step = on_step
        # Checkpoint before each code step and roll a failed step back, so the next
        # step sees the state before the failure (issue #11).
        self.rollback_on_error = rollback_on_error
        self.memory = AgentMemory()
        if session is not None:
            missing = sorted(set(self.tools) - set(session.tools))
            if missing:
                raise AgentError(
                    f"tools {missing} are not in the given session; open the session with "
                    "tools=... or pass client= instead of session="
                )
            self.tools = {**session.tools, **self.tools}
        # Managed agents (see agent.managed): callable from snippets like tools.
        self.name = name
        self.description = description
        self.max_total_steps = max_total_steps
        self._budget: StepBudget | None = None
        self._current_step: ActionStep | None = None
        team = list(managed_agents)
        self.managed_agents: dict[str, MultiStepAgent] = {}
        if team:
            check_team(self, team, max_depth)
            self.managed_agents = {a.name or "": a for a in team}
            calls = [ManagedAgentTool(a, self) for a in team]
            if session is not None:
                raise AgentError(
                    "an agent with managed agents opens its own session: pass client= or "
                    "executor= instead of session="
                )
            self.tools.update({t.name: t for t in calls})
            if not _has_limit(limits, "tool_timeout_ms"):
                # A managed agent's whole run is one tool call of this agent's session.
                self.limits = {**_limits_dict(limits), "tool_timeout_ms": MANAGER_TOOL_TIMEOUT_MS}

    # -- session ----------------------------------------------------------

    def _ensure_session(self) -> Session | AgentSession:
        if self.session is not None and not (self.session.lost or self.session.closed):
            return self.session
        if not self._owns_session:
            raise AgentError("the agent's session is closed or lost; give the agent a new one")
        if self.executor is None:
            raise AgentError(
                "this agent needs a Corral client= (a daemon) to run code, or "
                "executor='process' (no Docker) or 'local' (trusted models), or session="
            )
        self.session = self.executor.open(
            imports=self.authorized_imports,
            tools=list(self.tools.values()),
            limits=self.limits,
            labels={"agent": type(self).__name__},
        )
        return self.session

    def fork(self) -> MultiStepAgent:
        """A branch of this agent: its memory copied, its session forked (for tree search).

        The fork owns its new session (an independent container rebuilt from
        this one's history; see `Session.fork`) and closes it with close().
        """
        clone = copy.copy(self)
        clone.memory = copy.deepcopy(self.memory)
        clone.tools = dict(self.tools)
        usable = self.session is not None and not (self.session.lost or self.session.closed)
        clone.session = None
        if usable and self.session is not None:
            fork = getattr(self.session, "fork", None)
            if fork is None:
                raise AgentError(
                    "fork() needs a daemon session: this agent's executor cannot copy a "
                    "session (use executor=Client(...))"
                )
            clone.session = fork()
        clone._owns_session = True
        if clone.session is None and clone.client is None and self.session is not None:
            clone.client = getattr(self.session, "client", None)
        return clone

    def close(self) -> None:
        """Close the session if the agent opened it (and those of its managed agents)."""
        for managed in self.managed_agents.values():
            managed.close()
        if self._owns_session and self.session is not None:
            session, self.session = self.session, None
            session.close()

    def __enter__(self) -> MultiStepAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- memory -----------------------------------------------------------

    @property
    def system_prompt(self) -> str:
        raise NotImplementedError

    @property
    def logs(self) -> list[ActionStep]:
        """Per-step records of the last run."""
        return self.memory.steps

    def write_memory_to_messages(self) -> list[Message]:
        """The chat messages the model sees: system, task, then (assistant, observation) per step."""
        return self.memory.to_messages()

    def replay(self, file: TextIO | None = None) -> None:
        """Print the last run step by step."""
        replay(self.memory, file)

    # -- the loop ---------------------------------------------------------

    def run(
        self,
        task: str,
        *,
        max_steps: int | None = None,
        variables: Mapping[str, Any] | None = None,
        budget: StepBudget | None = None,
    ) -> Any:
        """Solve `task`; returns the final answer.

        `variables` (JSON values) are set in the session before the first step.
        `budget` is given by a manager: the steps left for the whole team.
        """
        managed = budget is not None
        self._budget = budget if budget is not None else StepBudget(self.max_total_steps)
        self.memory.reset(self.system_prompt, task)
        if variables:
            self._ensure_session().set_variables(variables)
        try:
            for number in range(1, (max_steps or self.max_steps) + 1):
                if not self._budget.take():
                    if managed:
                        raise AgentError(
                            f"the team's total step limit ({self._budget.limit}, "
                            "max_total_steps) is used up"
                        )
                    break
                step = ActionStep(
                    step_number=number, input_messages=self.write_memory_to_messages()
                )
                self.memory.steps.append(step)
                self._current_step = step
                try:
                    self._step(step)
                finally:
                    step.end_time = time.time()
                    if self.on_step is not None:
                        self.on_step(step)
                if step.is_final_answer:
                    return step.final_answer
        finally:
            self._current_step = None
        return self._answer_without_tools(task)

    def _step(self, step: ActionStep) -> None:
        raise NotImplementedError

    def _answer_without_tools(self, task: str) -> Any:
        messages = [
            *self.write_memory_to_messages(),
            {"role": "user", "content": prompts.FINAL_ANSWER_PROMPT.format(task=task)},
        ]
        message = self.model.generate(messages)
        answer = message.content.strip()
        self.memory.final_step = FinalAnswerStep(
            input_messages=messages,
            model_output=message.content,
            final_answer=answer,
            token_usage=message.token_usage,
        )
        return answer


class CodeAgent(MultiStepAgent):
    """An agent whose actions are Python snippets run in a Corral session.

    Tools are reachable from the snippets as functions (their calls come back
    to this process); `authorized_imports` extends the sandbox's import list.
    """

    @property
    def system_prompt(self) -> str:
        signatures = [t.python_signature() for t in self.tools.values()]
        signatures.append(prompts.FINAL_ANSWER_SIGNATURE)
        imports = default_imports_text()
        if self.authorized_imports:
            imports += ", and: " + ", ".join(self.authorized_imports)
        return prompts.CODE_AGENT_SYSTEM.format(
            authorized_imports=imports, tool_signatures="\n\n".join(signatures)
        )

    def _step(self, step: ActionStep) -> None:
        message = self.model.generate(step.input_messages, stop_sequences=CODE_STOP_SEQUENCES)
        step.model_output = message.content
        step.token_usage = message.token_usage
        try:
            code = extract_code(message.content)
        except FormatError as exc:
            step.error = str(exc)
            return
        step.code = code
        session = self._ensure_session()
        checkpoint = _checkpoint_or_none(session) if self.rollback_on_error else None
        result = session.run(code)
        step.result = result
        step.observations = format_observation(result, self.max_observation_chars)
        step.observation_images, note = select_images(
            result, self.max_observation_images, self.max_observation_image_bytes
        )
        step.observations += note
        if checkpoint is not None:
            step.observations += _undo_if_failed(session, checkpoint, result)
        if result.is_final_answer:
            step.is_final_answer = True
            step.final_answer = final_answer_of(result)
            return
        if not result.ok:
            step.error = describe_failure(result)
        if result.session_lost and session.lost and not self._owns_session:
            raise AgentError(f"the sandbox session was lost: {describe_failure(result)}")


def _checkpoint_or_none(session: AgentSession) -> str | None:
    checkpoint = getattr(session, "checkpoint", None)
    if checkpoint is None:
        return None  # this executor keeps no checkpoints (local, process)
    try:
        return str(checkpoint())
    except CorralError:
        return None  # e.g. max_checkpoints reached: the step runs without a safety net


def _undo_if_failed(session: Any, checkpoint: str, result: Result) -> str:
    """Roll a failed step back (or recover a lost session to the checkpoint); a note for the model."""
    note = ""
    try:
        if result.session_lost:
            session.recover()
            note = "\n(The sandbox was lost; the state was restored to before this step.)"
        elif not result.ok and not result.is_final_answer:
            session.rollback(checkpoint)
            note = "\n(This step failed; its changes to the state were rolled back.)"
        session.drop_checkpoint(checkpoint)
    except CorralError as exc:
        note = note or f"\n(Could not roll this step back: {exc})"
    return note


class PythonInterpreterTool(Tool):
    """Runs code in the agent's Corral session (the ToolCallingAgent's code tool)."""

    name = "python_interpreter"
    description = (
        "Run Python code in a sandboxed, stateful session and get its printed output and "
        "the value of its last expression."
    )
    inputs = {"code": {"type": "string", "description": "The Python code to run."}}
    output_type = "string"

    def __init__(self, agent: MultiStepAgent) -> None:
        super().__init__()
        self.agent = agent
        self.last_result: Result | None = None

    def forward(self, code: str) -> str:  # type: ignore[override]
        result = self.agent._ensure_session().run(code)
        self.last_result = result
        observation = format_observation(result, self.agent.max_observation_chars)
        if not result.ok:
            raise ToolError(observation + "\n" + describe_failure(result))
        return observation


class ToolCallingAgent(MultiStepAgent):
    """An agent whose actions are tool calls (native function calling or JSON in text).

    Tools run here, on the client; `python_interpreter` (present when the agent
    has a client or session) runs code in a Corral session; `final_answer`
    ends the run.
    """

    def __init__(
        self, tools: Iterable[Any] = (), model: Model | None = None, **kwargs: Any
    ) -> None:
        super().__init__(tools, model, **kwargs)
        self.final_answer_tool = FinalAnswerTool()
        self.interpreter: PythonInterpreterTool | None = None
        if self.executor is not None or self.session is not None:
            self.interpreter = PythonInterpreterTool(self)

    @property
    def all_tools(self) -> dict[str, Tool]:
        table: dict[str, Tool] = dict(self.tools)
        if self.interpreter is not None:
            table[self.interpreter.name] = self.interpreter
        table[self.final_answer_tool.name] = self.final_answer_tool
        return table

    @property
    def system_prompt(self) -> str:
        descriptions = []
        for t in self.all_tools.values():
            args = ", ".join(
                f"{a} ({s['type']}{', optional' if s.get('nullable') else ''}): {s.get('description', '')}"
                for a, s in t.inputs.items()
            )
            descriptions.append(f"- {t.name}: {t.description}\n    Arguments: {args or 'none'}")
        return prompts.TOOL_CALLING_SYSTEM.format(tool_descriptions="\n".join(descriptions))

    def _step(self, step: ActionStep) -> None:
        tools = self.all_tools
        schemas = [t.to_openai_schema() for t in tools.values()]
        message = self.model.generate(
            step.input_messages,
            stop_sequences=TOOL_STOP_SEQUENCES,
            tools=schemas if self.model.supports_native_tools else None,
        )
        step.token_usage = message.token_usage
        step.model_output = message.content
        calls = message.tool_calls
        step.native_tool_calls = bool(calls) and all(c.id for c in calls)
        if not calls:
            try:
                calls = parse_tool_calls(message.content)
            except FormatError as exc:
                step.error = str(exc)
                return
        if not message.content.strip() and not step.native_tool_calls:
            step.model_output = "Calling tools:\n" + json.dumps(
                [{"name": c.name, "arguments": c.arguments} for c in calls], default=repr
            )
        observations: list[str] = []
        errors: list[str] = []
        for call in calls:
            record = ToolCallRecord(name=call.name, arguments=call.arguments, id=call.id)
            step.tool_calls.append(record)
            self._call_tool(step, tools, call, record)
            if record.error is not None:
                errors.append(f"Tool {call.name!r} failed: {record.error}")
            elif step.is_final_answer:
                break
            else:
                text = record.result if isinstance(record.result, str) else repr(record.result)
                observations.append(text if len(calls) == 1 else f"{call.name}: {text}")
        step.observations = truncate("\n".join(observations), self.max_observation_chars)
        step.error = "\n".join(errors) or None

    def _call_tool(
        self,
        step: ActionStep,
        tools: dict[str, Tool],
        call: ToolCallRequest,
        record: ToolCallRecord,
    ) -> None:
        tool = tools.get(call.name)
        if tool is None:
            record.error = f"there is no tool named {call.name!r}; tools: {', '.join(tools)}"
            return
        try:
            args = tool.validate_arguments(call.arguments)
        except ToolError as exc:
            record.error = str(exc)
            return
        if tool is self.final_answer_tool:
            step.is_final_answer = True
            step.final_answer = record.result = args.get("answer")
            return
        is_interpreter = self.interpreter is not None and tool is self.interpreter
        if is_interpreter:
            step.code = args.get("code")
        try:
            record.result = tool.forward(**args)
        except Exception as exc:  # reported to the model, which may retry
            record.error = (
                str(exc) if isinstance(exc, ToolError) else f"{type(exc).__name__}: {exc}"
            )
        finally:
            if is_interpreter and self.interpreter is not None:
                step.result = self.interpreter.last_result
