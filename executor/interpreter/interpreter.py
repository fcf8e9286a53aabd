"""`Interpreter`: check, compile and run snippets against one persistent namespace.

One `run` is: decode and size-check the text, parse, apply the policy
(`policy.py`) through RestrictedPython's compile machinery, compile once to
bytecode, `exec` it with a prepared globals dict inside a guarded window
(soft timeout, recursion limit, int->str limit, output capture), then
describe the outcome in a second, short guarded window (reprs of snippet
objects run snippet code, so they get limits too). `run` never raises.

Standard library + RestrictedPython only: this module is copied into the
sandbox image.
"""

from __future__ import annotations

import ast
import functools
import gc
import keyword
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from types import FunctionType, TracebackType
from typing import Any

from proto.results import (
    Artifact,
    ErrorInfo,
    Result,
    TraceFrame,
    Value,
    Variable,
    Verdict,
    format_traceback,
)

from .artifacts import ArtifactCollector
from .errors import (
    ControlFlow,
    CpuLimitExceeded,
    FinalAnswer,
    InvalidVariableName,
    PolicyError,
    PolicyViolation,
    ResourceLimit,
    TimeoutInterrupt,
)
from .facades import IO_VALUES, PATHLIB_VALUES, make_facade, make_sys_facade
from .files import make_workspace_helpers, make_workspace_open
from .guards import (
    ControlFlowSafeContext,
    FinallyGuard,
    guarded_format,
    make_attribute_builtins,
    make_size_guards,
    make_write_guard,
    reraise_control,
)
from .limits import Limits
from .modules import PROXY_TYPES, Importer, ImportRules, is_proxy
from .policy import (
    G_FINALLY,
    G_FORMAT,
    G_ILSHIFT,
    G_IPOW,
    G_LSHIFT,
    G_POW,
    G_RERAISE,
    G_VALUE,
    G_WITH,
    G_WRITE,
    bind_policy,
)
from .rules import SNIPPET_MODULE, snippet_filename, snippet_number
from .safe_builtins import build_builtins
from .summary import clean_text, describe, describe_by_type, variable

FINAL_ANSWER = "final_answer"
SUMMARY_TIME_S = 2.0  # most time spent describing value/state after a run, seconds
RELEASE_TIME_S = 0.5  # most time finalizers of released snippet objects may take, seconds
PER_ITEM_S = 0.25  # most time one value's repr may take, seconds
RECURSION_MARGIN = 30  # frames the interpreter itself uses inside the window
MESSAGE_CHARS = 2000  # longest error message kept
MAX_FRAMES = 50  # innermost snippet frames kept in a traceback (deep recursion is cut)
SOURCE_HISTORY_BYTES = 4 << 20  # characters of earlier snippets kept for tracebacks
ARTIFACT_TIME_S = 5.0  # most time spent rendering figures left open at the end of a run
POLICY_ERROR_NAME = "PolicyViolation"  # the one name of a refusal, at compile time or run time
_NOTHING = object()

# Host-side types whose instances a snippet may change (write guard allowlist).
_WRITABLE_HOST_TYPES: tuple[type, ...] = ()
try:
    import decimal

    # decimal.getcontext().prec = 50 is the documented way to set precision.
    _WRITABLE_HOST_TYPES = (decimal.Context,)
except ImportError:  # pragma: no cover - decimal is always present in CPython
    pass


class _Output:
    """Captured printed output, capped at Limits.output_bytes (UTF-8)."""

    def __init__(self, cap: int, callback: Callable[[str], None] | None) -> None:
        self.cap = cap
        self.callback = callback
        self.parts: list[str] = []
        self.used = 0
        self.truncated = False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not text:
            return 0
        if self.truncated:
            return len(text)
        text = clean_text(str.__str__(text))  # exact str, valid UTF-8
        size = len(text.encode("utf-8"))
        if self.used + size > self.cap:
            room = self.cap - self.used
            text = text.encode("utf-8")[:room].decode("utf-8", "ignore")
            size = room
            self.truncated = True
        self.used += size
        if text:
            self.parts.append(text)
            if self.callback is not None:
                self.callback(text)
        return len(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        return "".join(self.parts)


class _StreamWriter:
    """`sys.stdout` / `sys.stderr` as snippets see them (through the `sys` facade).

    Writes go to the current run's capped stream; nothing else is reachable
    (no buffer, no fileno, no file).
    """

    def __init__(self, target: Callable[[], _Output | None], name: str) -> None:
        self._target = target
        self._name = name

    def write(self, text: str) -> int:
        output = self._target()
        return output.write(text) if output is not None else len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<{self._name}>"


class _StdoutShim:
    """Stands in for sys.stdout during a run, so host libraries' prints are captured."""

    def __init__(self, output: _Output | None) -> None:
        self.output = output

    def write(self, text: str) -> int:
        return self.output.write(text) if self.output else len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class Interpreter:
    """A restricted Python interpreter with a persistent namespace.

    `authorized_imports` extends the default safe list (smolagents matching:
    "numpy", "numpy.*", "*"). `tools` are host callables exposed by name.
    `variables` seed the namespace. `print_callback(text)` receives printed
    output as it is produced, `stderr_callback(text)` what goes to sys.stderr,
    `artifact_callback(artifact)` each figure or image as soon as it is made
    (`plt.show()`, `display(obj)`). With `workspace` (a directory), snippets get an
    `open()` confined to it (see files.py); without one there is no `open`.
    """

    def __init__(
        self,
        authorized_imports: Iterable[str] = (),
        tools: Mapping[str, Callable[..., Any]] | None = None,
        variables: Mapping[str, Any] | None = None,
        limits: Limits | None = None,
        print_callback: Callable[[str], None] | None = None,
        *,
        stderr_callback: Callable[[str], None] | None = None,
        artifact_callback: Callable[[Artifact], None] | None = None,
        unsafe_allow_never_imports: bool = False,
        capture_sys_stdout: bool = True,
        workspace: str | None = None,
    ) -> None:
        self._int_bits = [0]
        self.limits = limits or Limits()
        self.print_callback = print_callback
        self.stderr_callback = stderr_callback
        self.capture_sys_stdout = capture_sys_stdout
        self.rules = ImportRules(
            tuple(authorized_imports), unsafe_allow_never_imports=unsafe_allow_never_imports
        )
        self._writable_types: set[type] = set(_WRITABLE_HOST_TYPES)
        self._write = make_write_guard(self._writable_types, self.rules.extra_packages)
        size = make_size_guards(self._int_bits)
        self._importer = Importer(self.rules, size, self._write)
        self._output: _Output | None = None
        self._errors: _Output | None = None
        self._value: Any = _NOTHING
        self._runs = 0  # snippets run so far; the next one is number _runs + 1
        self._sources = _SourceHistory()
        self.artifacts = ArtifactCollector(self.limits, artifact_callback)
        self.artifacts.warn = self._warn
        self._importer.facades["sys"] = make_sys_facade(
            _StreamWriter(lambda: self._output, "stdout"),
            _StreamWriter(lambda: self._errors, "stderr"),
        )
        self._importer.facades["io"] = make_facade("io", IO_VALUES)
        self._importer.facades["pathlib"] = make_facade("pathlib", PATHLIB_VALUES)
        self._importer.artifacts = self.artifacts

        tools = dict(tools or {})
        self._tools = {name: self._wrap_tool(name, fn) for name, fn in tools.items()}
        self._tools[FINAL_ANSWER] = self._make_final_answer(tools.get(FINAL_ANSWER))
        self._tool_ids = {id(t) for t in self._tools.values()}
        self._policy = bind_policy(frozenset(self._tools), self.rules.import_refusal)

        guards: dict[str, Any] = {
            **make_attribute_builtins(self._write),
            "builtin_pow": size["builtin_pow"],
            G_WRITE: self._write,
            G_FORMAT: guarded_format,
            G_POW: size["pow"],
            G_IPOW: size["ipow"],
            G_LSHIFT: size["lshift"],
            G_ILSHIFT: size["ilshift"],
            G_RERAISE: reraise_control,
            G_WITH: ControlFlowSafeContext,
            G_FINALLY: FinallyGuard,
            G_VALUE: self._set_value,
        }
        self._builtins = build_builtins(
            guards=guards,
            sink=self._sink,
            display=self._display,
            importer=self._importer.import_,
            writable_types=self._writable_types,
            tools=self._tools,
        )
        if workspace is not None:
            # Files uploaded through the API are readable, results writable; nothing else.
            self._builtins["open"] = make_workspace_open(workspace)
            self._builtins.update(make_workspace_helpers(workspace))  # listdir, exists, ...
        self.globals: dict[str, Any] = {"__builtins__": self._builtins, "__name__": SNIPPET_MODULE}
        if variables:
            self.set_variables(variables)

    # ------------------------------------------------------------ public API

    @property
    def limits(self) -> Limits:
        """The limits the next run uses (assignable between runs)."""
        return self._limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        self._limits = limits
        self._int_bits[0] = limits.int_bits

    def run(self, code: str | bytes) -> Result:
        """Run one snippet; never raises, always returns a Result."""
        try:
            return self._run(code)
        except CpuLimitExceeded:  # SIGXCPU landed in our own code after the snippet
            return Result(verdict=Verdict.CPU_LIMIT, state=self._state_by_type())
        except BaseException as exc:  # a bug of ours: report it, keep the host alive
            args = exc.args
            message = args[0] if len(args) == 1 and type(args[0]) is str else ""
            return Result(
                verdict=Verdict.INTERNAL,
                error=ErrorInfo(_public_type(exc), _clip(message)),
            )

    def set_variables(self, variables: Mapping[str, Any]) -> None:
        """Add or replace variables in the namespace (names are validated)."""
        for name in variables:
            self._check_variable_name(name)
        replaced = [self.globals.get(name) for name in variables]
        self.globals.update(variables)
        self._release(replaced)

    def close(self) -> None:
        """Drop the namespace, running any snippet finalizers under the limits.

        Call it when a session ends; an Interpreter that is simply garbage
        collected frees snippet objects (and runs their finalizers) with no
        timeout around them.
        """
        held = list(self.globals.values())
        for name in [n for n in self.globals if n not in ("__builtins__", "__name__")]:
            del self.globals[name]
        self._release(held)

    def _release(self, held: list[Any]) -> None:
        """Clear `held` (the caller's last references) inside a short guarded window.

        A young-generation collection follows, so cyclic garbage the snippet
        just made (with its finalizers) usually goes now, under the timeout,
        rather than at some later automatic collection in host code. A full
        collection would catch everything but costs tens of ms with pandas
        loaded, on every run.
        """

        def release() -> None:
            held.clear()
            gc.collect(1)

        with self._environment():
            _call_in_window(release, RELEASE_TIME_S, "releasing snippet objects took too long")

    def state(self) -> list[Variable]:
        """Summary of the user's variables (same as Result.state)."""
        return self._summarize(None)

    def get_variables(self, names: Iterable[str]) -> list[Variable]:
        """Summaries of the named variables that exist (unknown names are skipped)."""
        wanted = [n for n in names if isinstance(n, str)]
        return self._summarize(wanted)

    @property
    def tool_names(self) -> frozenset[str]:
        return frozenset(self._tools)

    # ------------------------------------------------------------ tools

    @staticmethod
    def _wrap_tool(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if not (isinstance(name, str) and name.isidentifier()) or name.startswith("_"):
            raise InvalidVariableName(
                f"Tool name {name!r} must be an identifier that does not start with '_'"
            )
        if keyword.iskeyword(name):
            raise InvalidVariableName(f"Tool name {name!r} is a Python keyword")
        if not callable(fn):
            raise InvalidVariableName(f"Tool {name!r} is not callable")

        def tool(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        tool.__name__ = tool.__qualname__ = name
        doc = getattr(fn, "__doc__", None)
        tool.__doc__ = doc if isinstance(doc, str) else None
        return tool

    @staticmethod
    def _make_final_answer(host: Callable[..., Any] | None) -> Callable[..., Any]:
        def final_answer(answer: Any) -> Any:
            """Ends the snippet; `answer` is the agent's final answer."""
            raise FinalAnswer(host(answer) if host is not None else answer)

        return final_answer

    def _check_variable_name(self, name: Any) -> None:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise InvalidVariableName(f"Variable name {name!r} is not a Python identifier")
        if name.startswith("_"):
            raise InvalidVariableName(
                f"Variable name {name!r} starts with '_': snippets cannot use such names"
            )
        if name in self._tools:
            raise InvalidVariableName(f"Variable name {name!r} is a tool name; choose another")

    # ------------------------------------------------------------ run

    def _run(self, code: str | bytes) -> Result:
        self._runs += 1
        source_or_result = self._decode(code)
        if isinstance(source_or_result, Result):
            return source_or_result
        source = source_or_result
        compiled = self._compile(source)
        if isinstance(compiled, Result):
            return compiled
        lines = _source_lines(source)
        self._sources.add(self._runs, lines)

        self._output = _Output(self.limits.output_bytes, self.print_callback)
        self._errors = _Output(self.limits.output_bytes, self.stderr_callback)
        self.artifacts.start(self.limits)
        self._value = _NOTHING
        globals_ = self.globals

        def body() -> None:
            exec(compiled, globals_)

        with self._environment():
            _, exc = _call_in_window(body, self.limits.wall_time_s, self._timeout_message())
        box: list[Any] = [exc]
        del exc  # the box holds the only reference; _outcome releases it in a window
        return self._outcome(box, lines)

    def _timeout_message(self) -> str:
        return f"the snippet ran longer than the {self.limits.wall_time_s:g}s wall-clock limit"

    def _decode(self, code: str | bytes) -> str | Result:
        if isinstance(code, bytes | bytearray):
            if len(code) > self.limits.code_bytes:
                return _syntax(
                    f"the snippet is {len(code)} bytes, over the {self.limits.code_bytes}-byte limit"
                )
            try:
                code = bytes(code).decode("utf-8")
            except UnicodeDecodeError as exc:
                return _syntax(
                    f"the snippet is not valid UTF-8 text ({exc.reason} at byte {exc.start})"
                )
        if not isinstance(code, str):
            return _syntax(f"the snippet must be text, not {type(code).__name__}")
        if len(code) > self.limits.code_bytes:  # characters <= bytes: refuse before encoding
            return _syntax(
                f"the snippet is over the {self.limits.code_bytes}-byte limit "
                f"({len(code)} characters)"
            )
        try:
            size = len(code.encode("utf-8"))
        except UnicodeEncodeError:
            return _syntax("the snippet contains lone surrogates: it is not valid UTF-8 text")
        if size > self.limits.code_bytes:
            return _syntax(
                f"the snippet is {size} bytes, over the {self.limits.code_bytes}-byte limit"
            )
        if "\x00" in code:
            line = code.count("\n", 0, code.index("\x00")) + 1
            return _syntax("the snippet contains a NUL byte: send plain source text", line)
        if not code.strip():
            return _syntax("the snippet is empty: send some Python code")
        return code

    def _compile(self, source: str) -> Any:
        lines = _source_lines(source)
        try:
            tree = ast.parse(source, filename=snippet_filename(self._runs), mode="exec")
        except SyntaxError as exc:
            return _syntax(
                exc.msg or "invalid syntax",
                exc.lineno,
                _line(lines, exc.lineno),
                type(exc).__name__,
                self._runs,
            )
        except (RecursionError, MemoryError):
            return _syntax("the snippet is nested too deeply to parse: simplify the expression")
        except ValueError as exc:
            return _syntax(str(exc))
        try:
            # RestrictedPython's compile_restricted_exec would do these two steps,
            # but its compile() call inherits `from __future__ import annotations`
            # from its own module, turning every snippet annotation into a string
            # (PEP 563). So: its policy protocol, our compile with dont_inherit.
            self._policy([], [], {}).visit(tree)
            return compile(tree, snippet_filename(self._runs), "exec", dont_inherit=True)
        except PolicyError as exc:
            return Result(
                verdict=Verdict.POLICY_DENIED,
                error=_error(
                    POLICY_ERROR_NAME, exc.message, exc.line, _line(lines, exc.line), self._runs
                ),
            )
        except SyntaxError as exc:
            return _syntax(
                exc.msg or "invalid syntax",
                exc.lineno,
                _line(lines, exc.lineno),
                type(exc).__name__,
                self._runs,
            )
        except (RecursionError, MemoryError):
            return _syntax("the snippet is nested too deeply to compile: simplify the expression")

    @contextmanager
    def _environment(self) -> Any:
        """Recursion limit, int->str limit and stdout capture for one window."""
        depth = 0
        frame: Any = sys._getframe()
        while frame is not None:
            depth += 1
            frame = frame.f_back
        old_limit = sys.getrecursionlimit()
        old_digits = sys.get_int_max_str_digits()
        old_stdout, old_stderr = sys.stdout, sys.stderr
        old_showwarning = warnings.showwarning
        sys.setrecursionlimit(depth + RECURSION_MARGIN + self.limits.recursion_depth)
        sys.set_int_max_str_digits(self.limits.int_str_digits)
        if self.capture_sys_stdout:
            # Host libraries' prints and warnings land in the snippet's streams.
            sys.stdout = _StdoutShim(self._output)  # type: ignore[assignment]
            sys.stderr = _StdoutShim(self._errors)  # type: ignore[assignment]
            warnings.showwarning = self._show_warning
        try:
            yield
        finally:
            if self.capture_sys_stdout:
                sys.stdout, sys.stderr = old_stdout, old_stderr
                warnings.showwarning = old_showwarning
            sys.set_int_max_str_digits(old_digits)
            sys.setrecursionlimit(old_limit)

    # ------------------------------------------------------------ guards bound to this interpreter

    def _sink(self, text: str) -> None:
        if self._output is not None:
            self._output.write(text)

    def _set_value(self, value: Any) -> None:
        self._value = value

    def _show_warning(
        self, message: Any, category: Any, filename: str, lineno: int, *args: Any, **kw: Any
    ) -> None:
        """Warnings raised while a snippet runs go to its stderr, in its own terms."""
        name = getattr(category, "__name__", "Warning")
        where = f"line {lineno}: " if snippet_number(filename) is not None else ""
        self._warn(f"{where}{name}: {message}\n")

    def _warn(self, text: str) -> None:
        if self._errors is not None:
            self._errors.write(text)

    def _display(self, obj: Any, format: Any = None) -> None:
        """The snippet's `display(obj, format=None)`: an image or figure becomes an artifact
        now (`format="svg"` asks for a figure as SVG)."""
        self.artifacts.add(obj, explicit=True, fmt=format)

    # ------------------------------------------------------------ outcome

    def _outcome(self, box: list[Any], lines: list[str]) -> Result:
        output = self._output or _Output(0, None)
        errors = self._errors or _Output(0, None)
        exc: BaseException | None = box.pop()
        verdict = Verdict.OK
        error_exc: BaseException | None = None
        final: Any = _NOTHING
        if exc is None:
            pass
        elif isinstance(exc, FinalAnswer):
            final = exc.value
        else:
            verdict = _verdict_of(exc)
            error_exc = exc
        value = self._value
        self._value = _NOTHING

        with self._environment():
            describer = _Describer(self.limits)
            # Figures still open, and an image as the value or the answer, become artifacts.
            describer.call_budgeted(self.artifacts.collect_figures, ARTIFACT_TIME_S)
            for obj in (value, final):
                if obj is not _NOTHING and obj is not None and self.artifacts.is_image(obj):
                    describer.call_budgeted(
                        functools.partial(self.artifacts.add, obj), ARTIFACT_TIME_S
                    )
            v = (
                describer.value(value, table=True)
                if value is not _NOTHING and value is not None
                else None
            )
            f = describer.value(final, table=True) if final is not _NOTHING else None
            e = self._error_info(error_exc, lines, describer) if error_exc is not None else None
            state = self._state_list(None, describer)
        # Dropping the last reference to a snippet object can run snippet code
        # (a generator's `finally`, an exception's frames): do it in a window.
        is_final = final is not _NOTHING
        held = [exc, value, final, error_exc]
        del exc, value, final, error_exc
        self._release(held)
        if verdict is Verdict.OK and output.truncated:
            verdict = Verdict.OUTPUT_TRUNCATED
        return Result(
            verdict=verdict,
            stdout=output.text(),
            value=v,
            is_final_answer=is_final,
            final_answer=f,
            error=e,
            state=state,
            truncated=output.truncated or errors.truncated,
            stderr=errors.text(),
            artifacts=self.artifacts.finish(),
        )

    def _summarize(self, names: list[str] | None) -> list[Variable]:
        self._output = _Output(self.limits.output_bytes, None)
        self._errors = _Output(self.limits.output_bytes, None)
        with self._environment():
            return self._state_list(names, _Describer(self.limits))

    def _user_items(self, names: list[str] | None) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = []
        source = (
            self.globals.items()
            if names is None
            else ((n, self.globals[n]) for n in names if n in self.globals)
        )
        for name, obj in source:
            if name.startswith("_") or is_proxy(obj):
                continue
            if id(obj) in self._tool_ids:
                continue
            items.append((name, obj))
            if len(items) >= self.limits.state_items:
                break
        return items

    def _state_by_type(self) -> list[Variable]:
        return [variable(n, describe_by_type(o)) for n, o in self._user_items(None)]

    def _state_list(self, names: list[str] | None, describer: _Describer) -> list[Variable]:
        return [variable(n, describer.value(o)) for n, o in self._user_items(names)]

    def _error_info(self, exc: BaseException, lines: list[str], describer: _Describer) -> ErrorInfo:
        info = self._error_info_plain(exc, lines)
        if isinstance(exc, RecursionError):
            info.message = (
                f"maximum recursion depth exceeded (limit: {self.limits.recursion_depth} nested "
                "calls): use a loop or reduce the nesting"
            )
        elif isinstance(exc, MemoryError):
            info.message = _memory_message(self.limits)
        elif _is_int_str_limit(exc):
            info.message = (
                f"integer too large to convert to or from a string (over "
                f"{self.limits.int_str_digits} digits): keep it as an int or use math on it"
            )
        elif not isinstance(exc, ControlFlow):
            message = describer.call(lambda: _clip(_safe_str(exc)))
            info.message = clean_text(message) if isinstance(message, str) else ""
        info.traceback = format_traceback(info.frames, info.type, info.message)
        return info

    def _error_info_plain(self, exc: BaseException, lines: list[str]) -> ErrorInfo:
        """Type, frames and (for our own exceptions) message, without running snippet code."""
        frames = self._snippet_frames(exc.__traceback__)
        message = clean_text(str(exc)) if isinstance(exc, ControlFlow) else ""
        last = frames[-1] if frames else None
        info = ErrorInfo(
            _public_type(exc),
            message,
            last.line if last else None,
            last.source_line if last else None,
            frames=frames,
        )
        info.traceback = format_traceback(frames, info.type, message)
        return info

    def _snippet_frames(self, tb: TracebackType | None) -> list[TraceFrame]:
        """The snippet frames of a traceback, outermost first (host frames left out)."""
        frames: list[TraceFrame] = []
        while tb is not None:
            code = tb.tb_frame.f_code
            number = snippet_number(code.co_filename)
            if number is not None:
                line = tb.tb_lineno
                name = code.co_name if type(code.co_name) is str else "?"
                frames.append(
                    TraceFrame(number, line, clean_text(name), self._sources.line(number, line))
                )
            tb = tb.tb_next
        return frames[-MAX_FRAMES:]


class _Describer:
    """Describes values for the host, each snippet-code-running repr in its own window.

    Scalars, strings, functions, classes and module proxies are described
    without running snippet code. Anything else (containers may hold snippet
    objects) gets a window of at most PER_ITEM_S, all of them together at most
    SUMMARY_TIME_S; past that budget, or on any failure, the type name is used.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.budget = min(SUMMARY_TIME_S, max(limits.wall_time_s, 0.1))
        self.deadline = time.monotonic() + self.budget

    def value(self, obj: Any, *, table: bool = False) -> Value:
        """A Value for obj; with `table`, a DataFrame/Series becomes a Markdown table."""
        if _host_safe(obj):
            return describe(obj, self.limits)
        result = self.call(lambda: describe(obj, self.limits, table=table))
        return result if isinstance(result, Value) else describe_by_type(obj)

    def call_budgeted(self, fn: Callable[[], Any], seconds: float) -> Any:
        """Run host work on snippet objects (rendering a figure) in its own window."""
        result, exc = _call_in_window(fn, seconds, "rendering the snippet's figures took too long")
        return None if exc is not None else result

    def call(self, fn: Callable[[], Any]) -> Any:
        left = self.deadline - time.monotonic()
        if left <= 0:
            return None
        result, exc = _call_in_window(
            fn, min(left, PER_ITEM_S), "describing the snippet's values took too long"
        )
        return None if exc is not None else result


_HOST_SAFE_TYPES = frozenset({int, float, complex, bool, str, bytes, type(None), FunctionType})


def _host_safe(obj: Any) -> bool:
    """True when describing obj runs no snippet code (its repr is CPython's own)."""
    kind = type(obj)
    return kind in _HOST_SAFE_TYPES or isinstance(obj, type) or kind in PROXY_TYPES


def _call_in_window(
    fn: Callable[[], Any], seconds: float, message: str
) -> tuple[Any, BaseException | None]:
    from .timeouts import call_with_timeout

    return call_with_timeout(fn, seconds, message)


def _verdict_of(exc: BaseException) -> Verdict:
    if isinstance(exc, TimeoutInterrupt):
        return Verdict.TIMEOUT
    if isinstance(exc, CpuLimitExceeded):
        return Verdict.CPU_LIMIT
    if isinstance(exc, PolicyViolation):
        return Verdict.POLICY_DENIED
    if isinstance(exc, ResourceLimit | MemoryError):
        return Verdict.MEMORY_LIMIT
    if _is_int_str_limit(exc):
        return Verdict.MEMORY_LIMIT
    return Verdict.ERROR


_INT_STR_MARK = "integer string conversion"


def _is_int_str_limit(exc: BaseException) -> bool:
    """CPython's int<->str limit error (checked on its args: str() could run snippet code)."""
    args = exc.args
    return (
        type(exc) is ValueError
        and len(args) == 1
        and type(args[0]) is str
        and _INT_STR_MARK in args[0]
    )


_PUBLIC_NAMES: dict[type[BaseException], str] = {
    TimeoutInterrupt: "TimeoutError",
    CpuLimitExceeded: "CpuLimitExceeded",
    PolicyViolation: POLICY_ERROR_NAME,
    ResourceLimit: "MemoryLimitExceeded",
}


def _public_type(exc: BaseException) -> str:
    name = _PUBLIC_NAMES.get(type(exc))
    if name:
        return name
    name = type(exc).__name__
    return clean_text(name) if type(name) is str else "Exception"


class _SourceHistory:
    """The lines of recent snippets, so tracebacks can show code defined earlier.

    Bounded: the oldest snippets' sources are forgotten past SOURCE_HISTORY_BYTES
    (their frames then show no source line, only the snippet and line numbers).
    """

    def __init__(self) -> None:
        self._lines: dict[int, list[str]] = {}
        self._sizes: dict[int, int] = {}
        self._total = 0

    def add(self, number: int, lines: list[str]) -> None:
        size = sum(len(x) for x in lines)
        self._lines[number], self._sizes[number] = lines, size
        self._total += size
        while self._total > SOURCE_HISTORY_BYTES and len(self._lines) > 1:
            oldest = next(iter(self._lines))
            del self._lines[oldest]
            self._total -= self._sizes.pop(oldest)

    def line(self, number: int, line: int) -> str | None:
        return _line(self._lines.get(number, []), line)


def _memory_message(limits: Limits) -> str:
    if limits.memory_bytes:
        return (
            f"out of memory: the session's memory limit is {limits.memory_bytes} bytes "
            f"({limits.memory_bytes / (1 << 20):.0f} MiB); use less memory or ask for a larger "
            "memory_bytes limit"
        )
    return "out of memory: the process could not allocate more memory; use less memory"


def _error(
    type_: str, message: str, line: int | None, source_line: str | None, snippet: int
) -> ErrorInfo:
    frames = [TraceFrame(snippet, line, "<module>", source_line)] if line else []
    return ErrorInfo(
        type_, message, line, source_line, frames, format_traceback(frames, type_, message)
    )


def _source_lines(source: str) -> list[str]:
    """Lines as CPython numbers them (str.splitlines also splits on \\f, \\x1c...)."""
    return source.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _line(lines: list[str], number: int | None) -> str | None:
    if number is None or not 1 <= number <= len(lines):
        return None
    return lines[number - 1].strip()[:MESSAGE_CHARS]


def _safe_str(exc: BaseException) -> str:
    try:
        text = str(exc)
    except ControlFlow:
        raise
    except BaseException:
        return f"<{type(exc).__name__} (str failed)>"
    return text if type(text) is str else ""


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + "..."


def _syntax(
    message: str,
    line: int | None = None,
    source_line: str | None = None,
    kind: str = "SyntaxError",
    snippet: int = 0,
) -> Result:
    return Result(
        verdict=Verdict.SYNTAX_ERROR, error=_error(kind, message, line, source_line, snippet)
    )
