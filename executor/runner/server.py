"""The runner's request loop: one frame in, its answer out, until stdin ends.

Every request frame is checked (type, required fields and their types)
before it is acted on; anything malformed or unexpected is answered with an
`error` frame and the loop goes on (never a crash loop). End of stdin means
the daemon is gone, and the runner exits at once with `os._exit`, skipping
interpreter teardown so a wedged snippet thread cannot keep it alive.

While a snippet runs, a reader thread (reader.py) takes the channel: an
`interrupt` for the running execute ends the snippet as its wall-time limit
would (verdict INTERRUPTED, state kept), tool results reach the broker, and
other requests wait and are handled in order after the result. `interrupt`
frames between snippets, or for another id, are ignored without an answer.
`checkpoint`, `rollback`, `drop_checkpoint`, `list_checkpoints`: see
checkpoints.py.

Standard library only (plus the interpreter): this module runs inside the
sandbox image.
"""

from __future__ import annotations

import base64
import binascii
import collections
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol

from executor.interpreter.limits import Limits
from executor.runner import output, rlimits
from executor.runner.channel import (
    Channel,
    ChannelClosed,
    FrameError,
    FrameTooLarge,
    watch_hangup,
)
from executor.runner.checkpoints import CheckpointError, Checkpoints, ProcessContext
from executor.runner.output import OutputStream
from executor.runner.reader import SnippetInput
from executor.runner.tools import ToolBroker, make_stub
from executor.runner.workspace import Workspace, WorkspaceError
from proto.frames import DEFAULT_MAX_FRAME
from proto.limits import SessionLimits
from proto.results import Artifact, ErrorInfo, Result, Variable, Verdict

# The limits the runner enforces per snippet, with the defaults declared once in proto/limits.
DEFAULT_LIMITS: dict[str, int] = SessionLimits().runner_limits()
LIMIT_KEYS = tuple(DEFAULT_LIMITS)
MAX_IMPORTS = 256
MAX_TOOLS = 256


class Executor(Protocol):
    """What the loop needs from the interpreter (or from raw mode)."""

    def run(self, code: str) -> Result: ...
    def set_variables(self, variables: dict[str, Any]) -> None: ...
    def state(self) -> list[Variable]: ...
    def get_variables(self, names: list[str]) -> list[Variable]: ...


class BadRequest(Exception):
    """A request frame is missing a field or has one of the wrong type."""


def _field(frame: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = frame.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BadRequest(f"{frame.get('type')} frame needs field {key!r} of type {names}")
    return value


def _limits(raw: Any, base: dict[str, int], *, only_lower: bool) -> dict[str, int]:
    """Merge a limits object over `base`; per-snippet overrides may only lower."""
    if raw is None:
        return dict(base)
    if not isinstance(raw, dict):
        raise BadRequest("limits must be an object")
    out = dict(base)
    for key, value in raw.items():
        if key not in LIMIT_KEYS:
            continue  # unknown keys are ignored: the daemon may know more limits than we do
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadRequest(f"limit {key!r} must be a non-negative integer")
        if value == 0:
            continue  # 0 means "default"
        out[key] = min(value, base[key]) if only_lower else value
    return out


class Runner:
    def __init__(
        self,
        channel: Channel,
        *,
        raw: bool,
        workspace: str,
        process: ProcessContext | None = None,
    ) -> None:
        self.channel = channel
        self.raw = raw
        self.workspace = Workspace(workspace)
        self.broker = ToolBroker(channel)
        self.broker.interrupt_exception = _interrupt_exception_factory(raw)
        self.checkpoints = Checkpoints(process, self.workspace.root) if process else None
        # Requests that arrived while a snippet ran, handled after its result.
        self.deferred: collections.deque[dict[str, Any]] = collections.deque()
        self.executor: Executor | None = None
        self.limits: dict[str, int] = dict(DEFAULT_LIMITS)
        self.cpu_armed = False
        self.stream: OutputStream | None = None  # output of the snippet now running
        self._cpu_exc: Callable[[], BaseException] = _cpu_exception_factory()
        rlimits.install_sigxcpu_handler(self._on_sigxcpu)

    def _on_sigxcpu(self) -> BaseException | None:
        return self._cpu_exc() if self.cpu_armed else None

    # -- loop -------------------------------------------------------------

    def serve(self) -> None:
        self.channel.send(
            {
                "type": "ready",
                "pid": os.getpid(),
                "python": sys.version.split()[0],
                "interpreter": not self.raw,
            }
        )
        while True:
            if self.deferred:
                frame = self.deferred.popleft()
                if frame.get("type") == "shutdown":
                    return
                self.handle(frame)
                continue
            try:
                frame = self.channel.recv()
            except ChannelClosed:
                return
            except FrameTooLarge as exc:
                self._error(None, f"oversized frame skipped: {exc}")
                continue
            except FrameError as exc:
                self._error(None, f"malformed frame: {exc}")
                continue
            if frame.get("type") == "shutdown":
                return
            self.handle(frame)

    def handle(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "interrupt":
            return  # no snippet runs: nothing to interrupt, and no answer (frames.md)
        rid = frame.get("id")
        if not isinstance(rid, str):
            self._error(None, f"{kind} frame needs a string 'id'")
            return
        if kind == "tool_result" and frame.get("call_id") in self.broker.abandoned:
            self.broker.abandoned.discard(frame["call_id"])
            return  # the late answer to a tool call that already timed out
        handler = self.HANDLERS.get(kind)
        if handler is None:
            self._error(rid, f"unknown or unexpected frame type {kind!r}")
            return
        try:
            handler(self, rid, frame)
        except BadRequest as exc:
            self._error(rid, str(exc))
        except (WorkspaceError, CheckpointError) as exc:
            self._error(rid, str(exc))
        except (ValueError, TypeError) as exc:
            self._error(rid, f"{kind} failed: {exc}")
        except Exception as exc:
            traceback.print_exc(file=sys.__stderr__)
            self._error(rid, f"internal error in {kind}: {type(exc).__name__}: {exc}")

    def _error(self, rid: str | None, message: str) -> None:
        frame: dict[str, Any] = {"type": "error", "message": message[:4096]}
        if rid is not None:
            frame["id"] = rid
        self.channel.send(frame)

    # -- handlers ---------------------------------------------------------

    def on_init(self, rid: str, frame: dict[str, Any]) -> None:
        if self.executor is not None:
            raise BadRequest("init was already received: a runner serves one session")
        imports = frame.get("authorized_imports") or []
        if not isinstance(imports, list) or not all(isinstance(m, str) for m in imports):
            raise BadRequest("authorized_imports must be a list of strings")
        if len(imports) > MAX_IMPORTS:
            raise BadRequest(f"at most {MAX_IMPORTS} authorized imports")
        decls = frame.get("tools") or []
        if not isinstance(decls, list) or len(decls) > MAX_TOOLS:
            raise BadRequest(f"tools must be a list of at most {MAX_TOOLS} declarations")
        variables = frame.get("variables") or {}
        if not isinstance(variables, dict):
            raise BadRequest("variables must be an object")
        limits = _limits(frame.get("limits"), DEFAULT_LIMITS, only_lower=False)
        tools = {}
        for decl in decls:
            if not isinstance(decl, dict):
                raise BadRequest("each tool declaration must be an object")
            stub = make_stub(self.broker, decl)
            tools[stub.__name__] = stub
        self.executor = self._make_executor(imports, tools, variables, limits)
        self.limits = limits
        rlimits.apply_rlimits(limits)
        self.channel.send({"type": "ack", "id": rid})

    def _make_executor(
        self,
        imports: list[str],
        tools: dict[str, Callable[..., Any]],
        variables: dict[str, Any],
        limits: dict[str, int],
    ) -> Executor:
        ilimits = _interp_limits(limits)
        if self.raw:
            from executor.runner.raw import RawExecutor

            return RawExecutor(
                tools=tools, variables=variables, limits=ilimits, print_callback=self._print
            )
        from executor.interpreter import Interpreter

        return Interpreter(  # type: ignore[no-any-return]
            authorized_imports=tuple(imports),
            tools=tools,
            variables=variables,
            limits=ilimits,
            print_callback=self._print,
            stderr_callback=self._print_stderr,
            artifact_callback=self._artifact,
            workspace=self.workspace.root,
        )

    def _print(self, text: str) -> None:
        """The executor's print callback: forwards to the running snippet's stream."""
        stream = self.stream
        if stream is not None:
            stream.write(text)

    def _print_stderr(self, text: str) -> None:
        """The interpreter's stderr callback: an `output` frame marked `stream: stderr`."""
        stream = self.stream
        if stream is not None:
            stream.write_stderr(text)

    def _artifact(self, artifact: Artifact) -> None:
        """The interpreter's artifact callback: one `artifact` frame each, as it is made.

        Output written before it is flushed first, so the daemon sees both in
        the order the snippet produced them. One frame per artifact: no frame
        holds more than one (the interpreter already capped its size to fit).
        """
        stream = self.stream
        rid = self.broker.request_id
        if stream is None or rid is None:
            return
        stream.flush()
        frame = {"type": "artifact", "id": rid, **artifact.to_dict()}
        try:
            self.channel.send(frame)
        except FrameTooLarge:
            stream.write_stderr(
                f"[artifact {artifact.name} dropped: too large for the container channel]\n"
            )

    def _require_executor(self) -> Executor:
        if self.executor is None:
            raise BadRequest("send init before this request")
        return self.executor

    def on_execute(self, rid: str, frame: dict[str, Any]) -> None:
        executor = self._require_executor()
        code = _field(frame, "code", str)
        limits = _limits(frame.get("limits"), self.limits, only_lower=True)
        stream = OutputStream(self.channel, rid, limits["output_bytes"])
        _set_limits(executor, _interp_limits(limits))
        self.stream = stream
        self.broker.request_id = rid
        self.broker.timeout_s = limits["tool_timeout_ms"] / 1000.0
        self.broker.before_call = stream.flush
        reader = SnippetInput(self.channel, rid, self._interrupt_now)
        self.broker.inbox = reader.inbox
        start_wall = time.monotonic()
        start_cpu = _cpu_seconds()
        result: Result | None = None
        reader.start()
        try:
            try:
                with rlimits.cpu_budget(limits["cpu_time_ms"]):
                    self.cpu_armed = True
                    try:
                        result = executor.run(code)
                    finally:
                        self.cpu_armed = False
            except _cpu_exception_types() as exc:
                # SIGXCPU landed just outside run(): still the snippet's doing.
                if result is None:
                    result = Result(Verdict.CPU_LIMIT, state=executor.state())
                del exc
        except Exception as exc:
            traceback.print_exc(file=sys.__stderr__)
            message = f"the runner failed: {type(exc).__name__}: {exc}"[:4096]
            result = Result(Verdict.INTERNAL, error=ErrorInfo("RunnerError", message))
        finally:
            reader.stop()
            self._clear_interrupt()
            self.deferred.extend(reader.deferred)
            self.broker.request_id = None
            self.stream = None
            stream.close()
        if result is not None and reader.interrupted and result.verdict is Verdict.TIMEOUT:
            result = _interrupted(result)
        usage = {
            "wall_ms": int((time.monotonic() - start_wall) * 1000),
            "cpu_ms": int((_cpu_seconds() - start_cpu) * 1000),
            "peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "output_bytes": stream.produced_bytes,
        }
        self._send_result(rid, result, usage)

    def _send_result(self, rid: str, result: Result, usage: dict[str, int]) -> None:
        # The artifacts already went out one `artifact` frame each (see `_artifact`).
        body = {"type": "result", "id": rid, **result.to_dict(), "usage": usage}
        body.pop("artifacts", None)
        try:
            self.channel.send(body)
            return
        except FrameTooLarge:
            pass
        except (TypeError, ValueError):
            pass  # not JSON-safe: a bug in a layer below; report what is safe
        body["state"] = []
        body["value"] = None
        body["final_answer"] = None
        self.channel.send(
            body
            | {
                "stdout": str(body.get("stdout", ""))[: 1 << 20],
                "stderr": str(body.get("stderr", ""))[: 1 << 20],
            }
        )

    def on_set_vars(self, rid: str, frame: dict[str, Any]) -> None:
        executor = self._require_executor()
        executor.set_variables(_field(frame, "variables", dict))
        self.channel.send({"type": "ack", "id": rid})

    def on_get_vars(self, rid: str, frame: dict[str, Any]) -> None:
        executor = self._require_executor()
        names = frame.get("names") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadRequest("names must be a list of strings")
        state = executor.get_variables(names) if names else executor.state()
        self.channel.send({"type": "vars", "id": rid, "state": [asdict(v) for v in state]})

    def on_write_file(self, rid: str, frame: dict[str, Any]) -> None:
        path = _field(frame, "path", str)
        try:
            data = base64.b64decode(_field(frame, "data_b64", str), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("data_b64 is not valid base64") from None
        self.workspace.write(path, data)
        self.channel.send({"type": "ack", "id": rid})

    def on_read_file(self, rid: str, frame: dict[str, Any]) -> None:
        cap = frame.get("max_bytes")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise BadRequest("max_bytes must be a positive integer")
        data = self.workspace.read(_field(frame, "path", str), cap)
        self.channel.send(
            {"type": "file", "id": rid, "data_b64": base64.b64encode(data).decode("ascii")}
        )

    def on_list_files(self, rid: str, frame: dict[str, Any]) -> None:
        entries = self.workspace.list_dir(_field(frame, "path", str))
        self.channel.send({"type": "files", "id": rid, "entries": entries})

    def on_remove_file(self, rid: str, frame: dict[str, Any]) -> None:
        self.workspace.remove(_field(frame, "path", str))
        self.channel.send({"type": "ack", "id": rid})

    def on_make_dir(self, rid: str, frame: dict[str, Any]) -> None:
        self.workspace.make_dir(_field(frame, "path", str))
        self.channel.send({"type": "ack", "id": rid})

    def on_ping(self, rid: str, frame: dict[str, Any]) -> None:
        self.channel.send({"type": "pong", "id": rid})

    # -- interrupt -----------------------------------------------------------

    def _interrupt_now(self) -> None:
        """Reader thread: end the running snippet as its wall-time limit would."""
        if self.raw:
            from executor.runner.raw import request_interrupt as raw_interrupt

            raw_interrupt()
        else:
            from executor.interpreter.timeouts import request_interrupt

            request_interrupt()

    def _clear_interrupt(self) -> None:
        if not self.raw:
            from executor.interpreter.timeouts import clear_interrupt

            clear_interrupt()

    # -- checkpoints -----------------------------------------------------------

    def _require_checkpoints(self) -> Checkpoints:
        self._require_executor()
        if self.checkpoints is None:
            raise BadRequest("this runner was started without a supervisor: no checkpoints")
        return self.checkpoints

    def on_checkpoint(self, rid: str, frame: dict[str, Any]) -> None:
        checkpoints = self._require_checkpoints()
        cp = checkpoints.take(
            max_checkpoints=self.limits["max_checkpoints"],
            pids=self.limits["pids"],
            address_space=rlimits.base_address_space(self.limits),
            set_address_space=rlimits.set_address_space,
            become_active=self._become_active,
        )
        if cp is None:
            return  # this is the checkpoint, woken by a rollback: the rollback is answered
        self.channel.send(
            {
                "type": "checkpoint",
                "id": rid,
                "checkpoint_id": cp.checkpoint_id,
                "checkpoints": len(checkpoints.table),
            }
        )

    def on_rollback(self, rid: str, frame: dict[str, Any]) -> None:
        checkpoints = self._require_checkpoints()
        checkpoint_id = _field(frame, "checkpoint_id", str)
        session = {
            "channel": self.channel.export_state(),
            "deferred": list(self.deferred),
            "abandoned": sorted(self.broker.abandoned),
        }
        sys.stderr.flush()
        checkpoints.rollback(checkpoint_id, rid, session, rlimits.base_address_space(self.limits))

    def _become_active(self, rid: str, session: dict[str, Any]) -> None:
        """In the woken checkpoint: take over the channel where the last runner left it."""
        from executor.interpreter.timeouts import reset_after_fork

        reset_after_fork()
        self.channel.import_state(session["channel"])
        self.deferred = collections.deque(session["deferred"])
        self.broker.abandoned = set(session["abandoned"])
        output.FLUSHER = output._Flusher()  # the old flusher thread did not survive the fork
        self.channel.send({"type": "ack", "id": rid})
        watch_hangup(self.channel.read_fd)  # after the answer: a thread start is not free

    def on_drop_checkpoint(self, rid: str, frame: dict[str, Any]) -> None:
        checkpoints = self._require_checkpoints()
        checkpoints.drop(_field(frame, "checkpoint_id", str))
        base = rlimits.base_address_space(self.limits)
        if base > 0:
            rlimits.set_address_space(base - checkpoints.reserved_bytes())
        self.channel.send({"type": "ack", "id": rid})

    def on_list_checkpoints(self, rid: str, frame: dict[str, Any]) -> None:
        checkpoints = self._require_checkpoints()
        self.channel.send({"type": "checkpoints", "id": rid, "checkpoints": checkpoints.listing()})

    HANDLERS: dict[str, Callable[[Runner, str, dict[str, Any]], None]] = {
        "init": on_init,
        "execute": on_execute,
        "set_vars": on_set_vars,
        "get_vars": on_get_vars,
        "write_file": on_write_file,
        "read_file": on_read_file,
        "list_files": on_list_files,
        "remove_file": on_remove_file,
        "make_dir": on_make_dir,
        "ping": on_ping,
        "checkpoint": on_checkpoint,
        "rollback": on_rollback,
        "drop_checkpoint": on_drop_checkpoint,
        "list_checkpoints": on_list_checkpoints,
    }


INTERRUPTED_MESSAGE = "the snippet was interrupted by its client; the session keeps its state"


def _interrupted(result: Result) -> Result:
    """The result of a snippet the client interrupted (it ended as a timeout would)."""
    error = result.error
    result.verdict = Verdict.INTERRUPTED
    result.error = ErrorInfo(
        "Interrupted",
        INTERRUPTED_MESSAGE,
        error.line if error else None,
        error.source_line if error else None,
    )
    return result


def _interrupt_exception_factory(raw: bool) -> Callable[[], BaseException]:
    """What ends a snippet interrupted while it waits for a tool."""
    if raw:
        from executor.runner.raw import RawTimeout

        return RawTimeout
    from executor.interpreter.errors import TimeoutInterrupt
    from executor.interpreter.timeouts import INTERRUPT_MESSAGE

    return lambda: TimeoutInterrupt(INTERRUPT_MESSAGE)


def _interp_limits(limits: dict[str, int]) -> Limits:
    return Limits(
        wall_time_s=limits["wall_time_ms"] / 1000.0,
        output_bytes=limits["output_bytes"],
        code_bytes=limits["code_bytes"],
        memory_bytes=limits["memory_bytes"],  # so a MemoryError names the limit
        max_artifacts=limits["max_artifacts"],
        # One artifact must fit one frame once base64-encoded (4/3) with its envelope.
        max_artifact_bytes=min(limits["max_artifact_bytes"], (DEFAULT_MAX_FRAME - 65536) * 3 // 4),
    )


def _set_limits(executor: Executor, limits: Limits) -> None:
    """Give the executor this snippet's limits (per-snippet overrides only lower them)."""
    if hasattr(executor, "limits"):
        executor.limits = limits


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _cpu_exception_types() -> tuple[type[BaseException], ...]:
    from executor.runner.raw import _cpu_exception_types as types

    return types()


def _cpu_exception_factory() -> Callable[[], BaseException]:
    return _cpu_exception_types()[0]
