"""Run smolagents' CodeAgent with every code action executed in Corral.

    from smolagents import CodeAgent
    from agent.integrations.smolagents import CorralExecutor

    executor = CorralExecutor(target="127.0.0.1:50051")
    agent = CodeAgent(tools=[...], model=model, executor=executor)

smolagents drives an executor through three calls (its `PythonExecutor`
interface): `send_variables` and `send_tools` at the start of each run, then
`executor(code_action) -> CodeOutput(output, logs, is_final_answer)` per step.
Tools are NOT copied into the sandbox (smolagents' remote executors send their
source code): the session gets stubs, and each call comes back to this
process, where the real smolagents tool runs. smolagents' `final_answer` tool
is replaced by Corral's built-in `final_answer`.

Because a session's tools are fixed when it opens, the session opens lazily
at the first code action, and reopens (losing state) if a later run sends a
different set of tools.

Figures and images: a code action's figures (plt.show(), figures left open,
display(image)) come back as artifacts. The model sees them the way
smolagents shows images to vision models, as the step's
`observations_images` (PIL images), set by the step callback
`executor.attach_images` (CorralCodeAgent registers it; add it to a plain
CodeAgent's `step_callbacks`). A snippet whose value or final answer is an
image returns it as smolagents' `AgentImage`, as its own executors do.

Authorized imports: smolagents tells the model which modules it may import
(the agent's `additional_authorized_imports`), so the sandbox must allow the
same ones. Leave the executor's `additional_authorized_imports` unset and it
takes the agent's: at construction with `CorralCodeAgent`, else at the start
of the first run (found from the agent that calls `send_tools`). Given
explicitly, they must cover the agent's: `CorralCodeAgent` refuses a mismatch
at construction, a plain CodeAgent at its first run, naming the modules.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from smolagents.agent_types import AgentImage
from smolagents.agents import CodeAgent
from smolagents.local_python_executor import CodeOutput, InterpreterError, PythonExecutor
from smolagents.memory import ActionStep

from agent.agents import IMAGE_VALUE_TYPES, describe_failure, select_images
from agent.client import Client, Session
from agent.errors import ToolError
from agent.results import Artifact, Result, python_value
from agent.tools import TYPES, Tool
from proto.limits import SessionLimits

__all__ = ["CorralCodeAgent", "CorralExecutor", "ImportMismatch", "SmolagentsTool"]


class ImportMismatch(ValueError):
    """The agent lets the model import modules that the Corral session would refuse."""


def _corral_type(kind: Any) -> tuple[str, bool]:
    """(Corral type, nullable) for a smolagents type ("image"/"audio" cross as "any")."""
    if isinstance(kind, list):
        members = [k for k in kind if k != "null"]
        base, _ = _corral_type(members[0]) if len(members) == 1 else ("any", False)
        return base, len(members) < len(kind)
    return (kind if kind in TYPES else "any"), False


class SmolagentsTool(Tool):
    """A Corral Tool that calls a smolagents Tool (or managed agent) on this side."""

    def __init__(self, smol_tool: Any) -> None:
        self.smol_tool = smol_tool
        self.name = str(smol_tool.name)
        self.description = str(getattr(smol_tool, "description", "") or "")
        inputs: dict[str, dict[str, Any]] = {}
        for arg, spec in (getattr(smol_tool, "inputs", None) or {}).items():
            kind, nullable = _corral_type(spec.get("type", "any"))
            entry: dict[str, Any] = {"type": kind, "description": str(spec.get("description", ""))}
            if nullable or spec.get("nullable"):
                entry["nullable"] = True
            inputs[arg] = entry
        self.inputs = inputs
        self.output_type, _ = _corral_type(getattr(smol_tool, "output_type", "any"))
        super().__init__()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        # smolagents' own __call__ runs setup() and converts agent types (images, audio).
        value = self.smol_tool(*args, **kwargs)
        to_raw = getattr(value, "to_raw", None)  # AgentType wrappers: send the plain value
        return to_raw() if callable(to_raw) and not isinstance(value, str | int | float) else value


class CorralExecutor(PythonExecutor):
    """A smolagents PythonExecutor backed by a Corral session.

    client: a `Client`, or target/token to build one. limits, labels: as for
    `Client.session`. additional_authorized_imports: None (default) takes the
    agent's; a list must include every module the agent authorizes.
    """

    def __init__(
        self,
        client: Client | None = None,
        *,
        target: str | None = None,
        token: str | None = None,
        additional_authorized_imports: Iterable[str] | None = None,
        limits: Mapping[str, int] | SessionLimits | None = None,
        labels: Mapping[str, str] | None = None,
        max_observation_images: int = 4,
        max_observation_image_bytes: int = 4 << 20,
    ) -> None:
        self._owns_client = client is None
        self.client = client if client is not None else Client(target, token=token)
        self._explicit_imports = (
            None if additional_authorized_imports is None else list(additional_authorized_imports)
        )
        self.additional_authorized_imports = list(self._explicit_imports or ())
        self._bound = False
        self.limits = limits
        self.labels = {"framework": "smolagents", **dict(labels or {})}
        self.tools: dict[str, SmolagentsTool] = {}
        self.pending_variables: dict[str, Any] = {}
        self.session: Session | None = None
        self._session_imports: list[str] = []
        # smolagents reads state["_print_outputs"] for the logs of a failed step.
        self.state: dict[str, Any] = {"_print_outputs": ""}
        # The images of the last code action, for `attach_images` (per-step budget).
        self.max_observation_images = max_observation_images
        self.max_observation_image_bytes = max_observation_image_bytes
        self.last_images: list[Artifact] = []

    # -- PythonExecutor interface --------------------------------------

    def bind_agent(self, agent: Any) -> None:
        """Take (or check) the agent's authorized imports. Raises ImportMismatch."""
        wanted = list(getattr(agent, "additional_authorized_imports", None) or ())
        if self._explicit_imports is None:
            self.additional_authorized_imports = wanted
        else:
            missing = sorted(set(wanted) - set(self._explicit_imports))
            if missing:
                raise ImportMismatch(
                    f"the agent lets the model import {missing}, but this CorralExecutor's "
                    f"sandbox allows only {sorted(self._explicit_imports)} beyond the defaults; "
                    "leave CorralExecutor(additional_authorized_imports=...) unset to take the "
                    "agent's, or list the same modules in both"
                )
        if self._bound and self.session is not None and wanted != self._session_imports:
            self._close_session()  # imports are fixed when a session opens
        self._bound = True

    def send_tools(self, tools: dict[str, Any]) -> None:
        if not self._bound:
            # smolagents calls send_tools from the agent's run(): that agent is our caller.
            caller = sys._getframe(1).f_locals.get("self")
            if getattr(caller, "python_executor", None) is self:
                self.bind_agent(caller)
        wanted = {name: SmolagentsTool(t) for name, t in tools.items() if name != "final_answer"}
        if self.session is not None and set(wanted) != set(self.tools):
            self._close_session()  # a session's tools are fixed at open
        self.tools = wanted

    def send_variables(self, variables: dict[str, Any]) -> None:
        if not variables:
            return
        if self.session is not None:
            self.session.set_variables(variables)
        else:
            self.pending_variables.update(variables)

    def __call__(self, code_action: str) -> CodeOutput:
        session = self._ensure_session()
        result = session.run(code_action)
        logs = result.stdout + (f"\n[stderr]\n{result.stderr}" if result.stderr else "")
        self.state["_print_outputs"] = logs
        self.last_images, note = select_images(
            result, self.max_observation_images, self.max_observation_image_bytes
        )
        logs += note
        if result.session_lost:
            self.session = None  # next action gets a fresh sandbox
        if result.is_final_answer:
            answer = _image_output(result, result.final_answer)
            output = answer if answer is not None else result.answer
            return CodeOutput(output=output, logs=logs, is_final_answer=True)
        if not result.ok:
            # smolagents turns this into an AgentExecutionError and shows it to the model.
            raise InterpreterError(describe_failure(result))
        image = _image_output(result, result.value)
        return CodeOutput(
            output=image if image is not None else python_value(result.value),
            logs=logs,
            is_final_answer=False,
        )

    def attach_images(self, memory_step: Any, **_: Any) -> None:
        """Step callback: the last action's images become the step's observations_images.

        smolagents puts a step's `observations_images` into the next model
        call as image content (what vision models read). Registered by
        CorralCodeAgent; add it to a plain CodeAgent's `step_callbacks`.
        """
        if not isinstance(memory_step, ActionStep) or not self.last_images:
            return
        images, self.last_images = self.last_images, []
        pil = [image.to_pil() for image in images]
        memory_step.observations_images = (memory_step.observations_images or []) + pil

    # -- checkpoints (issue #11) -------------------------------------------

    def checkpoint(self) -> str:
        """Save the sandbox state now (e.g. in a step callback); returns its id."""
        return self._ensure_session().checkpoint()

    def rollback(self, checkpoint_id: str) -> None:
        """Return the sandbox state to a checkpoint of this executor's session."""
        if self.session is None:
            raise InterpreterError("no Corral session yet: nothing to roll back")
        self.session.rollback(checkpoint_id)

    def checkpoints(self) -> list[Any]:
        return [] if self.session is None else self.session.checkpoints()

    def drop_checkpoint(self, checkpoint_id: str) -> None:
        if self.session is not None:
            self.session.drop_checkpoint(checkpoint_id)

    def interrupt(self) -> bool:
        """Stop the running action (from another thread); the state is kept."""
        return self.session is not None and self.session.interrupt()

    # -- lifecycle --------------------------------------------------------

    def _ensure_session(self) -> Session:
        if self.session is None or self.session.closed or self.session.lost:
            try:
                self.session = self.client.session(
                    imports=self.additional_authorized_imports,
                    tools=list(self.tools.values()),
                    variables=self.pending_variables or None,
                    limits=self.limits,
                    labels=self.labels,
                )
            except ToolError as exc:
                raise InterpreterError(f"cannot declare the tools to Corral: {exc}") from exc
            self.pending_variables = {}
            self._session_imports = list(self.additional_authorized_imports)
        return self.session

    def _close_session(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            session.close()

    def cleanup(self) -> None:
        """Close the session (and the client if this executor made it)."""
        self._close_session()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> CorralExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def _image_output(result: Result, value: Any) -> AgentImage | None:
    """The value's image as an AgentImage when the value was one (its artifact came last)."""
    if value is None or value.type not in IMAGE_VALUE_TYPES or not result.artifacts:
        return None
    last = result.artifacts[-1]
    if not isinstance(last, Artifact) or last.mime_type == "image/svg+xml":
        return None
    return AgentImage(last.to_pil())


class CorralCodeAgent(CodeAgent):  # type: ignore[misc]
    """smolagents' CodeAgent whose code actions run in Corral.

    `executor` defaults to `CorralExecutor(target=corral_target)`; the
    executor takes this agent's authorized imports, or the constructor raises
    ImportMismatch when an explicit list leaves some out.
    """

    def __init__(
        self,
        *args: Any,
        executor: CorralExecutor | None = None,
        corral_target: str | None = None,
        **kwargs: Any,
    ) -> None:
        corral = executor if executor is not None else CorralExecutor(target=corral_target)
        try:
            corral.bind_agent(_ImportsOf(kwargs.get("additional_authorized_imports")))
        except ImportMismatch:
            if executor is None:
                corral.cleanup()
            raise
        super().__init__(*args, executor=corral, **kwargs)
        corral.bind_agent(self)
        self.step_callbacks.register(ActionStep, corral.attach_images)


class _ImportsOf:
    """What bind_agent reads, before the agent exists."""

    def __init__(self, imports: Iterable[str] | None) -> None:
        self.additional_authorized_imports = list(imports or ())
