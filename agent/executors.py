"""Where an agent's snippets run: a daemon session, this process, or a child process.

    CodeAgent(model=m, executor=Client("127.0.0.1:50051"))  # daemon (the hardened default)
    CodeAgent(model=m, executor="process")  # interpreter in a child process, no Docker
    CodeAgent(model=m, executor="local")    # interpreter in this process (trusted models)

Each executor opens sessions with one surface (`run`, `stream`, variables,
files, `close`, `lost`/`closed`), so the agents, the CLI and the MCP server
do not care which one they hold.

- **daemon**: a session on a Corral daemon: a warm, locked-down container per
  session. The only choice for untrusted models.
- **process**: the runner (`executor.runner`, the program a sandbox container
  runs) in a child Python process speaking its frames over pipes, under
  rlimits (address space, CPU per snippet, no core files, file size), in a
  fresh temporary workspace, with an empty environment and `python -I`. A
  snippet that outlives its wall time plus a grace period gets the whole
  process group killed (verdict SANDBOX_LOST; an agent that opened the session
  opens a new one). No container: the child has the network and the
  filesystem of your user; the restricted interpreter is the only wall.
- **local**: the restricted interpreter in this process. Fast and simple, for
  trusted models and development. Its limits are in-process only: the wall
  time is a SIGALRM timer on the main thread (a watchdog thread elsewhere,
  which cannot stop a blocking C call), there is no memory or CPU limit, and
  a snippet stuck in C code stalls your program.

Design decision: `agent/` must install with only grpcio and protobuf, so the
interpreter (`executor.interpreter`, `executor.runner`, shipped with
`corral[daemon]`) is imported lazily, when a local or process session opens;
without it the error says what to install.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol

from agent import wire
from agent.errors import AgentError, InvalidArgument, ProtocolError, SessionClosed
from agent.results import Artifact, ErrorInfo, Result, Usage, Variable, Verdict
from agent.tools import Tool
from proto.values import from_wire, to_wire

INSTALL_HINT = "pip install 'corral[daemon]' (it ships the restricted interpreter)"
EXECUTOR_NAMES = ("daemon", "local", "process")

# Limits of local and process sessions, in the daemon's units (see SessionLimits).
DEFAULT_LIMITS: dict[str, int] = {
    "wall_time_ms": 10_000,
    "cpu_time_ms": 10_000,
    "memory_bytes": 512 << 20,
    "output_bytes": 1 << 20,
    "code_bytes": 256 << 10,
    "tool_timeout_ms": 30_000,
    "workspace_bytes": 64 << 20,
}
# How long a process session's child may take to start and load the interpreter.
PROCESS_START_TIMEOUT_S = 60.0
# Time after a snippet's wall limit before the child is killed (soft -> hard timeout).
PROCESS_KILL_GRACE_S = 3.0
MAX_STDERR_TAIL = 4096


class AgentSession(Protocol):
    """What an agent needs from a session, whichever executor opened it."""

    id: str
    tools: dict[str, Tool]
    lost: bool
    closed: bool

    def run(self, code: str, *, timeout: float | None = None) -> Result: ...
    def stream(
        self, code: str, *, timeout: float | None = None
    ) -> Iterator[str | Artifact | Result]: ...
    def set_variables(self, variables: Mapping[str, Any]) -> None: ...
    def get_variables(self, names: Iterable[str] | None = None) -> dict[str, Variable]: ...
    def upload(self, path: str, data: bytes | str) -> int: ...
    def download(self, path: str) -> bytes: ...
    def close(self) -> None: ...


class Executor(Protocol):
    """Opens sessions. `kind` is "daemon", "local" or "process"."""

    kind: str

    def open(
        self,
        *,
        imports: Iterable[str] = (),
        tools: Iterable[Any] = (),
        variables: Mapping[str, Any] | None = None,
        limits: Mapping[str, int] | Any | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> AgentSession: ...

    def close(self) -> None: ...


class DaemonExecutor:
    """Sessions on a Corral daemon (today's behaviour); `close()` closes the client."""

    kind = "daemon"

    def __init__(self, client: Any) -> None:
        self.client = client

    def open(
        self,
        *,
        imports: Iterable[str] = (),
        tools: Iterable[Any] = (),
        variables: Mapping[str, Any] | None = None,
        limits: Mapping[str, int] | Any | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> AgentSession:
        session: AgentSession = self.client.session(
            imports=list(imports), tools=list(tools), variables=variables, limits=limits,
            labels=labels,
        )  # fmt: skip
        return session

    def close(self) -> None:
        self.client.close()


class LocalExecutor:
    """Sessions run by the restricted interpreter in this process (trusted models only)."""

    kind = "local"

    def open(
        self,
        *,
        imports: Iterable[str] = (),
        tools: Iterable[Any] = (),
        variables: Mapping[str, Any] | None = None,
        limits: Mapping[str, int] | Any | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> AgentSession:
        return LocalSession(imports, wire.tool_table(tools), variables, session_limits(limits))

    def close(self) -> None:
        pass


class ProcessExecutor:
    """Sessions run by the runner in a child process under rlimits (no Docker).

    `python`: the interpreter binary for the child (default: this one).
    """

    kind = "process"

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable

    def open(
        self,
        *,
        imports: Iterable[str] = (),
        tools: Iterable[Any] = (),
        variables: Mapping[str, Any] | None = None,
        limits: Mapping[str, int] | Any | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> AgentSession:
        return ProcessSession(
            imports, wire.tool_table(tools), variables, session_limits(limits), python=self.python
        )

    def close(self) -> None:
        pass


def resolve_executor(spec: Any) -> Executor:
    """An Executor from "local", "process", a Client, or an Executor."""
    if isinstance(spec, str):
        if spec == "local":
            return LocalExecutor()
        if spec == "process":
            return ProcessExecutor()
        if spec == "daemon":
            from agent.client import Client

            return DaemonExecutor(Client())
        raise InvalidArgument(
            f"unknown executor {spec!r}; use one of {', '.join(EXECUTOR_NAMES)}, a Client, "
            "or an object with open() and close()"
        )
    if hasattr(spec, "open") and hasattr(spec, "kind"):
        executor: Executor = spec
        return executor
    if hasattr(spec, "session") and hasattr(spec, "target"):  # a Client (sync)
        return DaemonExecutor(spec)
    raise InvalidArgument(
        f"executor must be 'local', 'process', a Client or an Executor, not {type(spec).__name__}"
    )


def session_limits(limits: Mapping[str, int] | Any | None) -> dict[str, int]:
    """DEFAULT_LIMITS overlaid with a dict or SessionLimits (0 = default; unknown refused)."""
    if limits is None:
        items: dict[str, Any] = {}
    elif hasattr(limits, "to_dict"):
        items = dict(limits.to_dict())
    else:
        items = dict(limits)
    out = dict(DEFAULT_LIMITS)
    for key, value in items.items():
        if key not in out:
            continue  # a daemon-only limit (pids, idle timeout, ...): nothing enforces it here
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgument(f"limit {key!r} must be a non-negative integer")
        if value:
            out[key] = value
    return out


def _interpreter_modules() -> Any:
    try:
        import executor.interpreter as interpreter
    except ImportError as exc:
        raise AgentError(
            f"the local and process executors need Corral's interpreter, which is not "
            f"installed ({exc}); {INSTALL_HINT}, or use a daemon: executor=Client(...)"
        ) from exc
    return interpreter


def _new_workspace() -> Path:
    return Path(tempfile.mkdtemp(prefix="corral-ws-"))


def _workspace_path(root: Path, path: str) -> Path:
    """`path` inside `root`: relative, no `..`, and no symlink leading out."""
    rel = Path(path)
    if not path or rel.is_absolute() or ".." in rel.parts:
        raise InvalidArgument(
            f"workspace path {path!r} must be relative to the workspace, without '..'"
        )
    full = (root / rel).resolve()
    if not full.is_relative_to(root.resolve()):
        raise InvalidArgument(f"workspace path {path!r} leads outside the workspace")
    return full


def _from_interpreter(r: Any, usage: Usage | None = None) -> Result:
    """An agent Result from the interpreter's Result (same fields, plus usage)."""
    names = [f.name for f in fields(r) if f.name not in ("usage", "session_lost")]
    return Result(**{n: getattr(r, n) for n in names}, usage=usage or Usage())


# -- local ---------------------------------------------------------------------


class LocalSession:
    """A session run by the restricted interpreter in this process."""

    def __init__(
        self,
        imports: Iterable[str],
        tools: dict[str, Tool],
        variables: Mapping[str, Any] | None,
        limits: dict[str, int],
    ) -> None:
        interpreter = _interpreter_modules()
        from executor.runner.tools import SAFE_ERRORS

        self.id = f"local-{uuid.uuid4().hex[:12]}"
        self.tools = tools
        self.limits = limits
        self.lost = False
        self.closed = False
        self._safe_errors = SAFE_ERRORS
        self._printed: list[str] = []
        self.workspace = _new_workspace()
        ilimits = interpreter.Limits(
            wall_time_s=limits["wall_time_ms"] / 1000.0,
            output_bytes=limits["output_bytes"],
            code_bytes=limits["code_bytes"],
        )
        try:
            self._interp = interpreter.Interpreter(
                authorized_imports=tuple(imports),
                tools={name: self._tool_stub(t) for name, t in tools.items()},
                variables=dict(variables or {}),
                limits=ilimits,
                print_callback=self._printed.append,
                workspace=str(self.workspace),
            )
        except (ValueError, TypeError) as exc:
            shutil.rmtree(self.workspace, ignore_errors=True)
            raise InvalidArgument(f"cannot open a local session: {exc}") from exc

    def __repr__(self) -> str:
        return f"<LocalSession {self.id} {'closed' if self.closed else 'open'}>"

    def __enter__(self) -> LocalSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tool_stub(self, tool: Tool) -> Any:
        """The snippet's view of a tool: as in the sandbox, values cross as JSON."""
        safe = self._safe_errors

        def stub(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = tool.validate_arguments(tool.bind_arguments(args, kwargs))
                value = tool.forward(**bound)
                return from_wire(json.loads(json.dumps(to_wire(value))))
            except Exception as exc:  # re-raised as a fresh builtin: no host frames leak
                cls = safe.get(type(exc).__name__, RuntimeError)
                raise cls(str(exc)[:4000]) from None

        stub.__name__ = tool.name
        stub.__doc__ = tool.description
        return stub

    def _check_open(self) -> None:
        if self.closed:
            raise SessionClosed(f"session {self.id} is closed; open a new one")

    def run(self, code: str, *, timeout: float | None = None) -> Result:
        result: Result | None = None
        for item in self.stream(code, timeout=timeout):
            if isinstance(item, Result):
                result = item
        assert result is not None
        return result

    def stream(self, code: str, *, timeout: float | None = None) -> Iterator[str | Result]:
        """Runs the snippet, then yields its printed output and the Result (not live)."""
        self._check_open()
        if not isinstance(code, str):
            raise InvalidArgument(f"code must be text, got {type(code).__name__}")
        self._printed.clear()
        start_wall, start_cpu = time.monotonic(), time.process_time()
        r = self._interp.run(code)
        usage = Usage(
            wall_ms=int((time.monotonic() - start_wall) * 1000),
            cpu_ms=int((time.process_time() - start_cpu) * 1000),
            output_bytes=len(r.stdout.encode("utf-8", "replace")),
        )
        yield from list(self._printed)
        yield _from_interpreter(r, usage)

    def set_variables(self, variables: Mapping[str, Any]) -> None:
        self._check_open()
        wire.variables_json(variables)  # same checks as the daemon: names, JSON values
        self._interp.set_variables(json.loads(json.dumps(dict(variables))))

    def get_variables(self, names: Iterable[str] | None = None) -> dict[str, Variable]:
        self._check_open()
        if isinstance(names, str):
            names = [names]
        wanted = list(names or ())
        found = self._interp.get_variables(wanted) if wanted else self._interp.state()
        return {v.name: v for v in found}

    def upload(self, path: str, data: bytes | str) -> int:
        self._check_open()
        payload = data.encode() if isinstance(data, str) else bytes(data)
        full = _workspace_path(self.workspace, path)
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(payload)
        return len(payload)

    def download(self, path: str) -> bytes:
        self._check_open()
        full = _workspace_path(self.workspace, path)
        try:
            return full.read_bytes()
        except OSError as exc:
            raise InvalidArgument(f"cannot read {path!r} from the workspace: {exc}") from exc

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._interp.close()
        finally:
            shutil.rmtree(self.workspace, ignore_errors=True)


# -- process -------------------------------------------------------------------

# The child's program: no core files and bounded file sizes (set here rather
# than in a preexec_fn, which is unsafe in a threaded parent), the directory
# holding `executor` on the path (the child runs with -I, which ignores
# PYTHONPATH and the current directory), then the runner exactly as a
# container runs it.
_CHILD_BOOT = (
    "import resource, sys; "
    "resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3]))); "
    "sys.path.insert(0, sys.argv[1]); "
    "from executor.runner.main import main; "
    "raise SystemExit(main(['--workspace', sys.argv[2]]))"
)


def _frames_module() -> Any:
    from proto import frames

    return frames


class ProcessSession:
    """A session run by the runner in a child process (see the module docstring)."""

    def __init__(
        self,
        imports: Iterable[str],
        tools: dict[str, Tool],
        variables: Mapping[str, Any] | None,
        limits: dict[str, int],
        *,
        python: str = sys.executable,
    ) -> None:
        interpreter = _interpreter_modules()
        self._frames = _frames_module()
        self.id = f"process-{uuid.uuid4().hex[:12]}"
        self.tools = tools
        self.limits = limits
        self.lost = False
        self.closed = False
        self._counter = 0
        self._inbox: queue.Queue[dict[str, Any] | BaseException | None] = queue.Queue()
        self._stderr_tail = b""
        self.workspace = _new_workspace()
        root = str(Path(interpreter.__file__).resolve().parent.parent.parent)
        file_bytes = limits["workspace_bytes"]
        try:
            self._proc = subprocess.Popen(
                [python, "-I", "-c", _CHILD_BOOT, root, str(self.workspace), str(file_bytes)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.workspace,
                env={"PATH": os.defpath, "LANG": "C.UTF-8", "HOME": str(self.workspace)},
                start_new_session=True,  # its own process group: kill() takes every child
            )
        except OSError as exc:
            shutil.rmtree(self.workspace, ignore_errors=True)
            raise AgentError(
                f"cannot start the process executor's child ({python}): {exc}"
            ) from exc
        threading.Thread(target=self._read_frames, daemon=True, name="corral-proc-out").start()
        threading.Thread(target=self._read_stderr, daemon=True, name="corral-proc-err").start()
        try:
            ready = self._recv(PROCESS_START_TIMEOUT_S)
            if ready.get("type") != "ready" or ready.get("interpreter") is not True:
                raise ProtocolError(f"the child runner did not start properly: {ready!r:.300}")
            answer = self._request(
                {
                    "type": "init",
                    "authorized_imports": list(imports),
                    "tools": [_declaration(t) for t in tools.values()],
                    "variables": json.loads(wire.variables_json(variables) or "{}"),
                    "limits": {k: v for k, v in limits.items() if k != "workspace_bytes"},
                },
                PROCESS_START_TIMEOUT_S,
            )
            if answer.get("type") != "ack":
                raise InvalidArgument(f"cannot open a process session: {answer.get('message')}")
        except BaseException:
            self._kill()
            raise

    def __repr__(self) -> str:
        state = "lost" if self.lost else "closed" if self.closed else "open"
        return f"<ProcessSession {self.id} pid={self._proc.pid} {state}>"

    def __enter__(self) -> ProcessSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pipes -------------------------------------------------------------

    def _read_frames(self) -> None:
        stream = self._proc.stdout
        assert stream is not None
        while True:
            try:
                frame = self._frames.read_frame(stream)
            except Exception as exc:  # malformed or oversized: the child is not trusted
                self._inbox.put(exc)
                return
            self._inbox.put(frame)
            if frame is None:
                return

    def _read_stderr(self) -> None:
        stream = self._proc.stderr
        assert stream is not None
        for chunk in iter(lambda: stream.read(4096), b""):
            self._stderr_tail = (self._stderr_tail + chunk)[-MAX_STDERR_TAIL:]

    def _recv(self, timeout: float) -> dict[str, Any]:
        try:
            item = self._inbox.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            raise TimeoutError(f"no answer from the child runner within {timeout:.1f} s") from None
        if item is None:
            tail = self._stderr_tail.decode("utf-8", "replace").strip()[-800:]
            raise ProtocolError(
                "the child runner exited" + (f"; its stderr ends with: {tail}" if tail else "")
            )
        if isinstance(item, BaseException):
            raise ProtocolError(f"the child runner sent a bad frame: {item}")
        return item

    def _send(self, frame: dict[str, Any]) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            stdin.write(self._frames.encode(frame))
            stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise ProtocolError(f"the child runner is gone: {exc}") from exc

    def _request(self, frame: dict[str, Any], timeout: float) -> dict[str, Any]:
        self._counter += 1
        rid = f"r{self._counter}"
        self._send({**frame, "id": rid})
        deadline = time.monotonic() + timeout
        while True:
            answer = self._recv(deadline - time.monotonic())
            if answer.get("id") == rid:
                return answer

    def _kill(self) -> None:
        self.lost = True
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._proc.wait()
        for pipe in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        shutil.rmtree(self.workspace, ignore_errors=True)

    def _check_open(self) -> None:
        if self.closed:
            raise SessionClosed(f"session {self.id} is closed; open a new one")
        if self.lost:
            raise SessionClosed(f"session {self.id} lost its child process; open a new one")

    # -- snippets ------------------------------------------------------------

    def run(self, code: str, *, timeout: float | None = None) -> Result:
        result: Result | None = None
        for item in self.stream(code, timeout=timeout):
            if isinstance(item, Result):
                result = item
        assert result is not None
        return result

    def stream(self, code: str, *, timeout: float | None = None) -> Iterator[str | Result]:
        """Yield printed output as the child sends it, then the Result.

        The child stops the snippet at its wall limit (state kept); if it has
        not answered `PROCESS_KILL_GRACE_S` later, or `timeout` passes, it is
        killed and the Result is SANDBOX_LOST. Time spent in tools is not
        counted, as in a daemon session.
        """
        self._check_open()
        if not isinstance(code, str):
            raise InvalidArgument(f"code must be text, got {type(code).__name__}")
        budget = (
            timeout
            if timeout is not None
            else self.limits["wall_time_ms"] / 1000.0 + PROCESS_KILL_GRACE_S
        )
        self._counter += 1
        rid = f"x{self._counter}"
        try:
            self._send({"type": "execute", "id": rid, "code": code})
            while True:
                started = time.monotonic()
                frame = self._recv(budget)
                budget -= time.monotonic() - started
                if frame.get("id") != rid:
                    continue
                kind = frame.get("type")
                if kind == "output" and isinstance(frame.get("data"), str):
                    yield frame["data"]
                elif kind == "tool_call":
                    self._send(self._answer_tool_call(rid, frame))
                elif kind == "result":
                    yield self._result(frame)
                    return
                elif kind == "error":
                    raise ProtocolError(f"the child runner refused: {frame.get('message')}")
        except TimeoutError as exc:
            self._kill()
            yield self._lost_result("TimeoutError", f"the snippet did not stop: {exc}; killed")
        except ProtocolError as exc:
            self._kill()
            yield self._lost_result("SandboxLost", str(exc))

    def _answer_tool_call(self, rid: str, frame: dict[str, Any]) -> dict[str, Any]:
        from proto import executor_pb2

        try:
            call = executor_pb2.ToolCall(
                call_id=str(frame.get("call_id", "")),
                name=str(frame.get("name", "")),
                args_json=json.dumps(frame.get("args") or []),
                kwargs_json=json.dumps(frame.get("kwargs") or {}),
            )
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"bad tool_call frame: {exc}") from exc
        answer = wire.run_tool_call(self.tools, call)
        out: dict[str, Any] = {
            "type": "tool_result", "id": rid, "call_id": answer.call_id, "ok": answer.ok,
        }  # fmt: skip
        if answer.ok:
            out["value"] = json.loads(answer.value_json)
        else:
            out["error"] = {"type": answer.error_type, "message": answer.error_message}
        return out

    def _result(self, frame: dict[str, Any]) -> Result:
        try:
            r = Result.from_dict(frame)
            raw_usage = frame.get("usage") or {}
            usage = Usage(**{k: int(raw_usage.get(k, 0)) for k in Usage.__dataclass_fields__})
        except (TypeError, ValueError, KeyError) as exc:
            raise ProtocolError(f"the child runner sent a malformed result: {exc}") from exc
        result = _from_interpreter(r, usage)
        if result.error is None and not result.verdict.ok:
            result.error = ErrorInfo(result.verdict.value, "the runner gave no error details")
        return result

    def _lost_result(self, kind: str, message: str) -> Result:
        return Result(
            Verdict.SANDBOX_LOST, error=ErrorInfo(kind, message[:4000]), session_lost=True
        )

    # -- variables and files -------------------------------------------------

    def _call(self, frame: dict[str, Any], want: str) -> dict[str, Any]:
        self._check_open()
        try:
            answer = self._request(frame, 30.0)
        except (TimeoutError, ProtocolError) as exc:
            self._kill()
            raise ProtocolError(f"the child runner failed: {exc}") from exc
        if answer.get("type") == "error":
            raise InvalidArgument(str(answer.get("message")))
        if answer.get("type") != want:
            raise ProtocolError(f"expected {want!r} from the child runner, got {answer!r:.200}")
        return answer

    def set_variables(self, variables: Mapping[str, Any]) -> None:
        values = json.loads(wire.variables_json(variables) or "{}")
        self._call({"type": "set_vars", "variables": values}, "ack")

    def get_variables(self, names: Iterable[str] | None = None) -> dict[str, Variable]:
        if isinstance(names, str):
            names = [names]
        answer = self._call({"type": "get_vars", "names": list(names or ())}, "vars")
        try:
            found = [Variable(**v) for v in answer.get("state") or ()]
        except TypeError as exc:
            raise ProtocolError(f"malformed variables from the child runner: {exc}") from exc
        return {v.name: v for v in found}

    def upload(self, path: str, data: bytes | str) -> int:
        import base64

        payload = data.encode() if isinstance(data, str) else bytes(data)
        frame = {"type": "write_file", "path": path, "data_b64": base64.b64encode(payload).decode()}
        self._call(frame, "ack")
        return len(payload)

    def download(self, path: str) -> bytes:
        import base64

        answer = self._call({"type": "read_file", "path": path}, "file")
        try:
            return base64.b64decode(str(answer.get("data_b64", "")), validate=True)
        except ValueError as exc:
            raise ProtocolError(f"malformed file from the child runner: {exc}") from exc

    def close(self) -> None:
        """End the child (shutdown frame, then kill) and remove its workspace."""
        if self.closed:
            return
        self.closed = True
        if not self.lost:
            try:
                self._send({"type": "shutdown"})
                self._proc.wait(timeout=5.0)
            except (ProtocolError, subprocess.TimeoutExpired):
                pass
        self._kill()
        self.lost = False  # closed, not lost


def _declaration(tool: Tool) -> dict[str, Any]:
    """The init frame's tool declaration (the daemon builds the same from a ToolSpec)."""
    return {
        "name": tool.name,
        "description": tool.description,
        "inputs": tool.inputs,
        "output_type": tool.output_type,
    }


__all__ = [
    "AgentSession",
    "DaemonExecutor",
    "Executor",
    "LocalExecutor",
    "LocalSession",
    "ProcessExecutor",
    "ProcessSession",
    "resolve_executor",
    "session_limits",
]
