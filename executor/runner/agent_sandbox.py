"""The agent loop inside the sandbox (`corral agent --in-sandbox`, `agent.sandboxed`).

The host opens an ordinary session that authorizes this one module and
runs one snippet: `run_agent(spec, corral_model, tools)`. From there the
agent loop runs here, as plain CPython inside the hardened container (this
module is runner code, not snippet code), and:

- every model call is a call of the `corral_model` tool stub, so it travels
  back to the host over the tool-call channel; the host holds the API key
  and the network, the sandbox never does;
- every tool call likewise goes to the host through its stub;
- every code action of the model runs in a fresh restricted `Interpreter`
  (one per agent: a managed agent has its own), never as plain Python, with
  the spec's imports minus this package (the model cannot reach
  `run_agent` or anything else under `executor`).

Nothing here widens what the session allows: a nested Interpreter enforces
the same policy, and code the model writes could have been a snippet.

Module surface: `run_agent` only (names are looked up by snippets through a
module proxy); every import happens inside the functions. Standard library
and the interpreter only: this module runs inside the sandbox image.
"""

from typing import Any

FENCE = r"```(?:py|python|python3)[ \t]*\n(.*?)(?:\n?```|\Z)"
CODE_TAG = r"<code>(.*?)(?:</code>|\Z)"
MAX_AGENTS = 32  # managed agents in one spec, all levels together


def run_agent(spec: Any, model: Any, tools: Any = None) -> str:
    """Run the agent `spec` describes; returns its run record as JSON text.

    spec (JSON from the host): task, system_prompt, max_steps, imports,
    stop_sequences, format_help, final_answer_prompt, retry_hint, advice
    {verdict: text}, max_observation_chars, wall_time_s, max_total_steps,
    tools: [names this agent may call], managed: [spec with name and
    description], name. model: the `corral_model` stub. tools: {name: stub},
    for every agent of the spec.
    """
    import json
    import sys

    if not isinstance(spec, dict):
        raise TypeError("spec must be a dict")
    tools = dict(tools or {})
    for name, fn in tools.items():
        if not isinstance(name, str) or not callable(fn):
            raise TypeError("tools must map names to callables")
    # Shared by every agent of the run: steps left, agents made, and the outer
    # snippet's output stream (progress lines; a nested interpreter swaps sys.stdout).
    budget = {"left": int(spec.get("max_total_steps") or 50), "agents": 0, "out": sys.stdout}
    record = _Loop(spec, model, tools, budget, depth=0).run(str(spec.get("task", "")))
    return json.dumps(record, default=repr)


class _Loop:
    """One agent's loop: model -> code -> restricted interpreter -> observation."""

    def __init__(
        self,
        spec: dict[str, Any],
        model: Any,
        tools: dict[str, Any],
        budget: dict[str, Any],
        depth: int,
    ) -> None:
        budget["agents"] += 1
        if budget["agents"] > MAX_AGENTS:
            raise ValueError(f"more than {MAX_AGENTS} agents in one run")
        self.spec = spec
        self.model = model
        self.all_tools = tools
        allowed = spec.get("tools")
        self.tools = {n: f for n, f in tools.items() if allowed is None or n in allowed}
        self.budget = budget
        self.depth = depth
        self.name = str(spec.get("name") or "")
        self.steps: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None

    def _interpreter(self) -> Any:
        from executor.interpreter import Interpreter, Limits

        imports = tuple(
            m
            for m in self.spec.get("imports") or ()
            if isinstance(m, str) and m != "*" and not m.startswith("executor")
        )
        callables = dict(self.tools)
        for sub in self.spec.get("managed") or ():
            callables[str(sub["name"])] = self._managed_call(sub)
        return Interpreter(
            authorized_imports=imports,
            tools=callables,
            limits=Limits(wall_time_s=float(self.spec.get("wall_time_s") or 10.0)),
            print_callback=None,
        )

    def _managed_call(self, sub: dict[str, Any]) -> Any:
        loop = self

        def call(task: str, additional_args: Any = None) -> Any:
            if not isinstance(task, str):
                raise TypeError("task must be a string")
            child = _Loop(sub, loop.model, loop.all_tools, loop.budget, loop.depth + 1)
            full = task
            if additional_args:
                if not isinstance(additional_args, dict):
                    raise TypeError("additional_args must be a dict")
                full += "\nYou have these variables: " + ", ".join(sorted(additional_args))
            run = {"agent": child.name, "task": task}
            if loop.current is not None:
                loop.current.setdefault("managed_runs", []).append(run)
            try:
                record = child.run(full, variables=additional_args)
            except Exception as exc:
                run["error"] = f"{type(exc).__name__}: {exc}"
                raise RuntimeError(
                    f"managed agent {child.name!r} failed: {run['error']}. Solve the task "
                    "another way or give it a simpler task."
                ) from None
            run.update(record)
            return record["final_answer"]

        call.__name__ = str(sub["name"])
        call.__doc__ = str(sub.get("description", ""))
        return call

    def _ask(self, messages: list[dict[str, Any]], stop: Any) -> dict[str, Any]:
        answer = self.model(messages=messages, stop_sequences=stop, agent=self.name or None)
        if not isinstance(answer, dict) or not isinstance(answer.get("content"), str):
            raise TypeError("corral_model must return {'content': str, ...}")
        return answer

    def run(self, task: str, variables: Any = None) -> dict[str, Any]:
        import time

        spec = self.spec
        interp = self._interpreter()
        if variables:
            interp.set_variables(variables)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": str(spec.get("system_prompt", ""))},
            {"role": "user", "content": "New task:\n" + task},
        ]
        stop = spec.get("stop_sequences") or None
        max_chars = int(spec.get("max_observation_chars") or 20_000)
        try:
            for number in range(1, int(spec.get("max_steps") or 10) + 1):
                if self.budget["left"] <= 0:
                    if self.depth:
                        raise RuntimeError(
                            "the team's total step limit (max_total_steps) is used up"
                        )
                    break
                self.budget["left"] -= 1
                step: dict[str, Any] = {"step_number": number, "start_time": time.time()}
                self.steps.append(step)
                self.current = step
                self._print(f"[{self.name or 'agent'}] step {number}")
                answer = self._ask(messages, stop)
                step["model_output"] = answer["content"]
                step["input_tokens"] = int(answer.get("input_tokens") or 0)
                step["output_tokens"] = int(answer.get("output_tokens") or 0)
                self._act(interp, step, max_chars)
                step["end_time"] = time.time()
                messages.append({"role": "assistant", "content": answer["content"]})
                messages.append(_observation_message(step, str(spec.get("retry_hint", ""))))
                if step.get("is_final_answer"):
                    return self._record(step.get("final_answer"))
            prompt = str(spec.get("final_answer_prompt", "Give your final answer to: {task}"))
            final_messages = [*messages, {"role": "user", "content": prompt.format(task=task)}]
            answer = self._ask(final_messages, None)
            record = self._record(answer["content"].strip())
            record["final_step"] = {"model_output": answer["content"]}
            return record
        finally:
            self.current = None
            interp.close()

    def _act(self, interp: Any, step: dict[str, Any], max_chars: int) -> None:
        import re

        text = step["model_output"]
        blocks = [b.strip("\n") for b in re.findall(FENCE, text, re.DOTALL | re.I)]
        if not blocks:
            blocks = [b.strip("\n") for b in re.findall(CODE_TAG, text, re.DOTALL)]
        blocks = [b for b in blocks if b.strip()]
        if not blocks:
            step["error"] = str(self.spec.get("format_help", "Answer with a ```py code block."))
            return
        step["code"] = code = "\n\n".join(blocks)
        result = interp.run(code)
        step["verdict"] = str(result.verdict)
        logs = result.stdout
        if logs and not logs.endswith("\n"):
            logs += "\n"
        if result.truncated:
            logs += "[output truncated: print less]\n"
        observation = "Execution logs:\n" + logs
        if result.ok:
            shown = result.final_answer if result.is_final_answer else result.value
            observation += "Last output from code snippet:\n" + (shown.repr if shown else "None")
        step["observations"] = _truncate(observation, max_chars)
        if result.is_final_answer:
            step["is_final_answer"] = True
            fa = result.final_answer
            step["final_answer"] = None if fa is None else (fa.json if fa.has_json else fa.repr)
        elif not result.ok:
            err = result.error
            where = f" at line {err.line}" if err and err.line else ""
            detail = f"{err.type}: {err.message}" if err else str(result.verdict)
            advice = (self.spec.get("advice") or {}).get(str(result.verdict), "")
            step["error"] = f"Code execution failed{where} ({result.verdict}): {detail}" + (
                f"\n{advice}" if advice else ""
            )

    def _record(self, answer: Any) -> dict[str, Any]:
        return {"agent": self.name, "final_answer": answer, "steps": self.steps}

    def _print(self, text: str) -> None:
        self.budget["out"].write(text + "\n")  # the outer snippet's output: live progress


def _observation_message(step: dict[str, Any], retry_hint: str) -> dict[str, Any]:
    parts = []
    if step.get("observations"):
        parts.append("Observation:\n" + step["observations"])
    if step.get("error"):
        parts.append("Error:\n" + step["error"] + ("\n" + retry_hint if retry_hint else ""))
    return {"role": "user", "content": "\n".join(parts) or "Observation:\n(no output)"}


def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    return f"{text[:half]}\n... [{len(text) - 2 * half} characters cut] ...\n{text[-half:]}"
