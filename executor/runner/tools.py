"""Tool stubs: callables inside the sandbox that forward the call to the client.

A tool lives on the client (it may use the network or secrets the sandbox
never sees). Inside the sandbox the snippet gets a stub with the tool's name,
signature and docstring; calling it sends a `tool_call` frame and blocks on
the channel until the matching `tool_result` arrives. The tool's value comes
back as JSON; a tool error is raised in the snippet as a builtin exception of
the same name when that name is in `SAFE_ERRORS`, else as RuntimeError. No
answer within the session's tool timeout raises TimeoutError in the snippet.

While a stub waits, the snippet's wall-clock timer is paused (time spent in a
client's tool is bounded by the tool timeout, not charged to the snippet) and
the interrupting signals are held, so a signal cannot tear a frame apart.
Answers arrive through the `inbox` the snippet's reader thread fills
(executor/runner/reader.py); an interrupt of the snippet wakes the wait, the
call is abandoned and the snippet ends with `interrupt_exception()`.

Standard library only: this module runs inside the sandbox image.
"""

from __future__ import annotations

import inspect
import json
import keyword
import queue
import signal
import time
from collections.abc import Callable
from typing import Any

from executor.runner.channel import Channel, signals_held
from executor.runner.reader import INTERRUPTED
from proto.tools import TYPE_TO_PY
from proto.values import from_wire, to_wire

# Error types a tool may raise into the snippet by name: ordinary Exception
# subclasses a snippet may reasonably catch. Anything else (including every
# BaseException such as SystemExit or KeyboardInterrupt) becomes RuntimeError.
SAFE_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        ArithmeticError,
        AssertionError,
        AttributeError,
        ConnectionError,
        FileExistsError,
        FileNotFoundError,
        IndexError,
        KeyError,
        LookupError,
        NotImplementedError,
        OverflowError,
        PermissionError,
        RuntimeError,
        TimeoutError,
        TypeError,
        UnicodeError,
        ValueError,
        ZeroDivisionError,
    )
}


MAX_ABANDONED = 1024  # timed-out call ids remembered, to drop their late answers quietly
MAX_ERROR_MESSAGE = 4096  # characters of a tool error message shown to the snippet


class ToolBroker:
    """Sends tool calls for the current execute request and waits for answers."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.request_id: str | None = None
        self.timeout_s = 30.0
        self.before_call: Callable[[], None] = lambda: None  # flush output first
        self._counter = 0
        self.abandoned: set[str] = set()  # call ids whose answer came too late
        self.inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.interrupt_exception: Callable[[], BaseException] = lambda: KeyboardInterrupt()

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Forward one call and return its value (or raise its error) in the snippet."""
        if self.request_id is None:
            raise RuntimeError(f"tool {name!r} can only be called while a snippet runs")
        wire_args, wire_kwargs = to_wire(list(args)), to_wire(kwargs)
        try:
            json.dumps([wire_args, wire_kwargs], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"arguments of tool {name!r} must be JSON data (str, int, float, bool, "
                f"None, bytes, list, dict with str keys): {exc}"
            ) from None
        self._counter += 1
        call_id = f"{self.request_id}.{self._counter}"
        self.before_call()
        with signals_held(), _paused_wall_timer():
            self.channel.send(
                {
                    "type": "tool_call",
                    "id": self.request_id,
                    "call_id": call_id,
                    "name": name,
                    "args": wire_args,
                    "kwargs": wire_kwargs,
                }
            )
            answer = self._wait(call_id, name)
        if answer is INTERRUPTED:
            raise self.interrupt_exception()
        return _unpack(answer, name)

    def _wait(self, call_id: str, name: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                frame = self.inbox.get(timeout=max(0.0, remaining))
            except queue.Empty:
                self._abandon(call_id)
                return {
                    "ok": False,
                    "error": {
                        "type": "TimeoutError",
                        "message": f"tool {name!r} did not answer within {self.timeout_s:g} s",
                    },
                }
            if frame is INTERRUPTED:
                self._abandon(call_id)
                return frame
            if frame.get("call_id") == call_id:
                return frame
            if frame.get("call_id") in self.abandoned:
                continue  # a late answer to a call that already timed out
            self.channel.send(
                {
                    "type": "error",
                    "id": frame.get("id") if isinstance(frame.get("id"), str) else None,
                    "message": f"unexpected tool_result for call {frame.get('call_id')!r} "
                    f"while waiting for the result of tool call {call_id!r}",
                }
            )

    def _abandon(self, call_id: str) -> None:
        if len(self.abandoned) >= MAX_ABANDONED:
            self.abandoned.clear()
        self.abandoned.add(call_id)


class _paused_wall_timer:
    """Stop the ITIMER_REAL soft timeout while waiting for a tool, resume it after."""

    def __enter__(self) -> None:
        self._saved = signal.setitimer(signal.ITIMER_REAL, 0)

    def __exit__(self, *exc: object) -> None:
        value, interval = self._saved
        if value > 0:
            signal.setitimer(signal.ITIMER_REAL, value, interval)


def _unpack(answer: dict[str, Any], name: str) -> Any:
    if answer.get("ok") is True:
        return from_wire(answer.get("value"))
    error = answer.get("error")
    etype, message = "RuntimeError", f"tool {name!r} failed"
    if isinstance(error, dict):
        if isinstance(error.get("type"), str):
            etype = error["type"]
        if isinstance(error.get("message"), str):
            message = error["message"][:MAX_ERROR_MESSAGE]
    cls = SAFE_ERRORS.get(etype)
    if cls is None:
        raise RuntimeError(f"{etype}: {message}")
    raise cls(message)


def make_stub(broker: ToolBroker, decl: dict[str, Any]) -> Callable[..., Any]:
    """Build the snippet-side callable for one tool declaration.

    The declaration is `{name, description, inputs: {arg: {type, description,
    nullable?}}, output_type}` (proto/frames.md). Raises ValueError for a
    declaration that does not describe a valid Python callable.
    """
    name = decl.get("name")
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"tool name {name!r} is not a Python identifier")
    if name.startswith("_"):
        raise ValueError(f"tool name {name!r} must not start with '_'")
    inputs = decl.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise ValueError(f"tool {name!r}: inputs must be an object")
    params: list[inspect.Parameter] = []
    arg_docs: list[str] = []
    seen_default = False
    for arg, spec in inputs.items():
        if not isinstance(arg, str) or not arg.isidentifier() or keyword.iskeyword(arg):
            raise ValueError(f"tool {name!r}: input name {arg!r} is not a Python identifier")
        spec = spec if isinstance(spec, dict) else {}
        tname = TYPE_TO_PY.get(str(spec.get("type", "any")), "Any")
        nullable = bool(spec.get("nullable"))
        if nullable:
            seen_default = True
        default = None if nullable or seen_default else inspect.Parameter.empty
        params.append(
            inspect.Parameter(
                arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=tname
            )
        )
        arg_docs.append(f"    {arg} ({tname}): {spec.get('description', '')!s}")
    signature = inspect.Signature(
        params, return_annotation=TYPE_TO_PY.get(str(decl.get("output_type", "any")), "Any")
    )

    def stub(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{name}(): {exc}") from None
        return broker.call(name, bound.args, bound.kwargs)

    description = str(decl.get("description", ""))
    doc = description
    if arg_docs:
        doc += "\n\nArgs:\n" + "\n".join(arg_docs)
    stub.__name__ = name
    stub.__qualname__ = name
    stub.__doc__ = doc
    stub.__signature__ = signature  # type: ignore[attr-defined]
    return stub
