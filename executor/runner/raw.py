"""Raw mode: plain CPython `exec`, no restricted interpreter.

Only for testing the container layer on its own (`corrald probe --raw FILE`):
the hardened container alone must keep the host safe even when the snippet is
arbitrary Python. The runner enters this mode only from its command line
(`--raw`); no frame can switch it on, and the daemon never starts a runner
with it.

It speaks the same frames and gives the same verdicts as the interpreter for
the limits the runner enforces itself: TIMEOUT (SIGALRM, state kept),
CPU_LIMIT (SIGXCPU through `CpuLimitExceeded`), MEMORY_LIMIT (MemoryError),
and output capped at `output_bytes`.

Standard library only: this module runs inside the sandbox image.
"""

from __future__ import annotations

import ast
import io
import json
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from executor.interpreter.limits import Limits
from proto.results import ErrorInfo, Result, Value, Variable, Verdict


class RawTimeout(BaseException):
    """The soft wall-clock limit of a raw snippet passed."""


class RawCpuLimitExceeded(BaseException):
    """SIGXCPU in raw mode (used when the interpreter package is unavailable)."""


_interrupt_lock = threading.Lock()
_running = [False]  # a raw snippet's SIGALRM handler is installed


def request_interrupt() -> None:
    """End the raw snippet running now as its wall-clock limit would (any thread).

    Simpler than the interpreter's hook: an interrupt that arrives before the
    raw snippet's timer is armed is lost (raw mode is for operator probes only).
    """
    with _interrupt_lock:
        if _running[0]:
            signal.setitimer(signal.ITIMER_REAL, 1e-6, 0.05)


def _cpu_exception_types() -> tuple[type[BaseException], ...]:
    try:
        from executor.interpreter import CpuLimitExceeded
    except ImportError:
        return (RawCpuLimitExceeded,)
    return (CpuLimitExceeded, RawCpuLimitExceeded)


class _Capture(io.TextIOBase):
    """sys.stdout while a raw snippet runs: every write goes to the print callback."""

    def __init__(self, sink: Callable[[str], None], limit: int) -> None:
        self.sink = sink
        self.limit = limit
        self.kept: list[str] = []
        self.kept_bytes = 0
        self.truncated = False

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self.sink(s)  # the output stream counts everything and applies the same cap
        data = s.encode("utf-8", "surrogatepass")
        room = self.limit - self.kept_bytes
        kept = s
        if len(data) > room:
            self.truncated = True
            kept = data[: max(0, room)].decode("utf-8", "ignore")
            data = kept.encode("utf-8", "surrogatepass")
        if data:
            self.kept.append(kept)
            self.kept_bytes += len(data)
        return len(s)


def _value(obj: Any, limits: Limits) -> Value:
    try:
        text = repr(obj)
    except Exception as exc:
        text = f"<{type(obj).__name__} object (repr failed: {exc})>"
    value = Value(type=type(obj).__name__, repr=text[: limits.repr_chars])
    if obj is None or type(obj) in (int, float, str, bool, list, dict, tuple):
        try:
            encoded = json.dumps(obj, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return value
        if len(encoded) <= limits.json_bytes:
            value.json = json.loads(encoded)
            value.has_json = True
    return value


class RawExecutor:
    """Same surface as `executor.interpreter.Interpreter`, backed by plain `exec`."""

    def __init__(
        self,
        *,
        tools: dict[str, Callable[..., Any]],
        variables: dict[str, Any],
        limits: Limits,
        print_callback: Callable[[str], None] | None = None,
    ) -> None:
        self.limits = limits
        self.print_callback = print_callback or (lambda s: None)
        self.globals: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
        self.globals.update(tools)
        self.tool_names = frozenset(tools)
        self.globals.update(variables)

    def set_variables(self, variables: dict[str, Any]) -> None:
        for name in variables:
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"variable name {name!r} is not an identifier")
        self.globals.update(variables)

    def _user_names(self) -> list[str]:
        return [
            n
            for n, v in self.globals.items()
            if not n.startswith("_")
            and n not in self.tool_names
            and type(v).__name__ != "module"
            and not callable(v)
        ]

    def state(self) -> list[Variable]:
        return self.get_variables(self._user_names()[: self.limits.state_items])

    def get_variables(self, names: list[str]) -> list[Variable]:
        out = []
        for name in names:
            if name in self.globals:
                v = _value(self.globals[name], self.limits)
                out.append(Variable(name, v.type, v.repr, v.json, v.has_json))
        return out

    def run(self, code: str) -> Result:
        try:
            tree = ast.parse(code, "<snippet>", "exec")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            return Result(Verdict.SYNTAX_ERROR, error=ErrorInfo(type(exc).__name__, str(exc)))
        last: ast.Expression | None = None
        tail = tree.body[-1] if tree.body else None
        if isinstance(tail, ast.Expr):
            tree.body.pop()
            last = ast.Expression(tail.value)
        capture = _Capture(self.print_callback, self.limits.output_bytes)
        verdict, error, value = Verdict.OK, None, None
        cpu_types = _cpu_exception_types()
        old_stdout = sys.stdout
        old_alarm = signal.signal(signal.SIGALRM, _raise_timeout)
        signal.setitimer(signal.ITIMER_REAL, self.limits.wall_time_s, 0.05)
        with _interrupt_lock:
            _running[0] = True
        try:
            sys.stdout = capture
            exec(compile(tree, "<snippet>", "exec"), self.globals)
            if last is not None:
                result = eval(compile(last, "<snippet>", "eval"), self.globals)
                value = _value(result, self.limits) if result is not None else None
        except RawTimeout:
            verdict = Verdict.TIMEOUT
            error = ErrorInfo("TimeoutError", f"snippet ran past {self.limits.wall_time_s:g} s")
        except MemoryError as exc:
            verdict, error = Verdict.MEMORY_LIMIT, ErrorInfo("MemoryError", str(exc))
        except BaseException as exc:
            if isinstance(exc, cpu_types):
                verdict = Verdict.CPU_LIMIT
                error = ErrorInfo("CpuLimitExceeded", "snippet used up its CPU time")
            else:
                verdict = Verdict.ERROR
                line = _snippet_line(exc)
                error = ErrorInfo(type(exc).__name__, str(exc)[:4096], line)
        finally:
            with _interrupt_lock:
                _running[0] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_alarm)
            sys.stdout = old_stdout
        if capture.truncated and verdict is Verdict.OK:
            verdict = Verdict.OUTPUT_TRUNCATED
        return Result(
            verdict=verdict,
            stdout="".join(capture.kept),
            value=value,
            error=error,
            state=self.state(),
            truncated=capture.truncated,
        )


def _raise_timeout(signum: int, frame: Any) -> None:
    raise RawTimeout()


def _snippet_line(exc: BaseException) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == "<snippet>":
            line = lineno
    return line
