"""The interpreter's exception tree.

Two families, kept apart on purpose:

- `ControlFlow` (a `BaseException`) ends a snippet and must never be swallowed
  by it. The policy rewrites every `except` handler to re-raise these first and
  wraps every `with` so an `__exit__` returning True cannot hide them either.
  The snippet never gets a name bound to these classes.
- `InterpreterError` (an `Exception`) is for the *host*: misuse of the public
  API (bad variable names, bad options). It never reaches a snippet.

Standard library only: this module is copied into the sandbox image.
"""

from __future__ import annotations

from typing import Any


class ControlFlow(BaseException):
    """Ends the snippet; a snippet's `except`/`with` cannot catch it."""


class FinalAnswer(ControlFlow):
    """Raised by the built-in `final_answer(value)`."""

    def __init__(self, value: Any) -> None:
        super().__init__("final_answer")
        self.value = value


class TimeoutInterrupt(ControlFlow):
    """The wall-clock soft timeout expired (raised by the alarm or the watchdog)."""


class CpuLimitExceeded(ControlFlow):
    """The CPU-time limit expired; the runner's SIGXCPU handler raises it.

    When it surfaces inside `Interpreter.run` the verdict is CPU_LIMIT and the
    session's state is kept.
    """


class PolicyViolation(ControlFlow):
    """A runtime refusal (import, computed attribute name, write, builtin use).

    Uncatchable so that `try: ... except Exception: pass` around a refused
    operation still ends with verdict POLICY_DENIED instead of silently
    continuing: a refusal is a message for the model, not a recoverable error.
    """


class ResourceLimit(ControlFlow):
    """A size guard tripped (huge `**`, `<<`): verdict MEMORY_LIMIT."""


class PolicyError(Exception):
    """Compile-time refusal of a construct, with the snippet line that holds it."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class InterpreterError(Exception):
    """Misuse of the interpreter's public API by host code."""


class InvalidVariableName(InterpreterError, ValueError):
    """`set_variables` was given a name a snippet could not use or must not rebind."""


class UnsafeImportError(InterpreterError, ValueError):
    """A never-importable module was authorized without the explicit unsafe option."""
