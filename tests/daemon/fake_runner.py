"""A fake sandbox that speaks the issue #11 frames, behind the real service and real gRPC.

Used ONLY where the runner feature does not exist in this tree yet
(`interrupt`, `checkpoint`, `rollback`, `drop_checkpoint`): the daemon's
handling of them is tested here through the real `ExecutorService` on a real
gRPC port, with the real client. Everything the real runner already does is
tested against it in test_survival_daemon.py.

The fake "runs" a snippet with Python's exec over a dict (trusted test code),
with three directives on the first line:
- `#loop`: run until interrupted (answers INTERRUPTED, state kept);
- `#stuck`: ignore interrupts until killed (a wedged runner);
- `#tool NAME ARG`: call a client tool first; its value is bound to `reply`.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import copy
import io
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from executor.daemon.auth import Authenticator
from executor.daemon.config import DaemonConfig
from executor.daemon.interceptor import Gate
from executor.daemon.metrics import DaemonMetrics
from executor.daemon.service import ExecutorService
from executor.daemon.sessions import SessionRegistry
from executor.sandbox import driver, events
from proto import executor_pb2_grpc as pb_grpc


class FakeSandbox:
    max_checkpoints = 16

    def __init__(self, name: str) -> None:
        self.name = name
        self.container_id = name
        self._ids = 0
        self.ns: dict[str, Any] = {}
        self.files: dict[str, bytes] = {}
        self.checkpoints: dict[str, tuple[dict[str, Any], dict[str, bytes]]] = {}
        self.interrupt = asyncio.Event()
        self.killed = asyncio.Event()
        self.frames_in: list[dict[str, Any]] = []
        self.executes = 0

    # -- the driver surface the daemon uses ---------------------------------

    def _next_id(self) -> str:
        self._ids += 1
        return f"q{self._ids}"

    def kill(self) -> None:
        self.killed.set()

    def destroy(self) -> None:
        self.killed.set()

    def inspect_exit(self) -> dict[str, Any]:
        return {}

    init_delay_s = 0.0

    async def init_async(self, *, variables: dict[str, Any], **_: Any) -> None:
        if self.init_delay_s:
            await asyncio.sleep(self.init_delay_s)
        self.ns.update(variables)

    async def send_async(self, frame: dict[str, Any]) -> None:
        self.frames_in.append(frame)
        if self.killed.is_set():
            raise driver.SandboxGone("killed")

    async def interrupt_async(self) -> None:
        self.frames_in.append({"type": "interrupt", "id": f"q{self._ids}"})
        if self.killed.is_set():
            raise driver.SandboxGone("killed")
        self.interrupt.set()

    async def request_async(self, frame: dict[str, Any], timeout: float) -> Any:
        """The runner's answer, parsed by the channel's own schema check (typed)."""
        answer = self._answer(frame)
        return events.ANSWER_PARSERS[answer["type"]](answer)

    def _answer(self, frame: dict[str, Any]) -> dict[str, Any]:
        self.frames_in.append(frame)
        if self.killed.is_set():
            raise driver.SandboxGone("killed")
        rid = self._next_id()
        kind = frame["type"]
        if kind == "set_vars":
            self.ns.update(frame["variables"])
            return {"type": "ack", "id": rid}
        if kind == "get_vars":
            names = frame.get("names") or [k for k in self.ns if not k.startswith("_")]
            return {"type": "vars", "id": rid, "state": [_var(n, self.ns[n]) for n in names]}
        if kind == "write_file":
            import base64

            self.files[frame["path"]] = base64.b64decode(frame["data_b64"])
            return {"type": "ack", "id": rid}
        if kind == "checkpoint":
            if len(self.checkpoints) >= self.max_checkpoints:
                raise driver.SandboxRequestError("max_checkpoints reached")
            cid = f"r{len(self.checkpoints)}-{rid}"
            self.checkpoints[cid] = (_copy_ns(self.ns), dict(self.files))
            return {"type": "checkpoint", "id": rid, "checkpoint_id": cid, "checkpoints": 1}
        if kind == "rollback":
            saved = self.checkpoints.get(frame["checkpoint_id"])
            if saved is None:
                raise driver.SandboxRequestError("unknown checkpoint")
            self.ns, self.files = _copy_ns(saved[0]), dict(saved[1])
            return {"type": "ack", "id": rid}
        if kind == "drop_checkpoint":
            self.checkpoints.pop(frame["checkpoint_id"], None)
            return {"type": "ack", "id": rid}
        raise driver.SandboxRequestError(f"unknown or unexpected frame type {kind!r}")

    async def execute_async(
        self,
        code: str,
        *,
        timeout: float,
        on_output: Any,
        on_tool_call: Any,
        tool_time_budget: float = 600.0,
        **_: Any,
    ) -> Any:
        """Runs trusted test code; the result passes the channel's own schema check."""
        frame = await self._execute(
            code, timeout=timeout, on_output=on_output, on_tool_call=on_tool_call
        )
        return events.result(frame, output_cap=1 << 20)

    async def _execute(
        self, code: str, *, timeout: float, on_output: Any, on_tool_call: Any
    ) -> dict[str, Any]:
        rid = self._next_id()
        self.executes += 1
        self.interrupt = asyncio.Event()
        first = code.split("\n", 1)[0]
        if first.startswith("#tool "):
            _, name, arg = first.split(" ", 2)
            call = events.tool_call(
                {"id": rid, "call_id": f"{rid}.1", "name": name, "args": [arg], "kwargs": {}}
            )
            reply = call.refusal or await on_tool_call(call)
            if not reply.get("ok"):
                err = reply.get("error") or {}
                return _result(rid, "ERROR", error=err, ns=self.ns)
            self.ns["reply"] = reply.get("value")
        if first == "#loop" or first == "#stuck":
            on_output("looping\n")
            stop = asyncio.ensure_future(self.killed.wait())
            waits = (
                {stop}
                if first == "#stuck"
                else {stop, asyncio.ensure_future(self.interrupt.wait())}
            )
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            if self.killed.is_set():
                raise driver.SandboxGone("the sandbox's channel broke: killed")
            if not self.interrupt.is_set():
                raise driver.SandboxTimeout("no frame")
            return _result(rid, "INTERRUPTED", ns=self.ns)
        out = io.StringIO()
        tree = ast.parse(code)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        value = None
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(tree, "<snippet>", "exec"), self.ns)  # trusted test snippets only
                if last is not None:
                    value = eval(compile(ast.Expression(last.value), "<snippet>", "eval"), self.ns)
        except Exception as exc:
            return _result(rid, "ERROR", error={"type": type(exc).__name__, "message": str(exc)})
        finally:
            self.ns.pop("__builtins__", None)
        if out.getvalue():
            on_output(out.getvalue())
        frame = _result(rid, "OK", stdout=out.getvalue(), ns=self.ns)
        if last is not None:
            v = _var("value", value)
            v.pop("name")
            frame["value"] = v
        return frame


def _copy_ns(ns: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in ns.items() if not k.startswith("__")}


def _var(name: str, value: Any) -> dict[str, Any]:
    import json

    try:
        text = json.dumps(value)
        return {
            "name": name,
            "type": type(value).__name__,
            "repr": repr(value),
            "json": json.loads(text),
            "has_json": True,
        }
    except (TypeError, ValueError):
        return {"name": name, "type": type(value).__name__, "repr": repr(value), "has_json": False}


def _result(
    rid: str,
    verdict: str,
    *,
    stdout: str = "",
    error: dict[str, Any] | None = None,
    ns: dict[str, Any] | None = None,
) -> dict[str, Any]:
    state = [_var(k, v) for k, v in (ns or {}).items() if not k.startswith("_") and not callable(v)]
    return {
        "type": "result",
        "id": rid,
        "verdict": verdict,
        "stdout": stdout,
        "error": error,
        "state": state,
        "usage": {"wall_ms": 1, "cpu_ms": 1, "peak_memory_bytes": 0, "output_bytes": len(stdout)},
    }


@dataclass
class FakePool:
    made: list[FakeSandbox] = field(default_factory=list)
    released: list[FakeSandbox] = field(default_factory=list)
    acquire_delay_s: float = 0.0
    init_delay_s: float = 0.0
    max_containers: int = 1000

    async def acquire(self, limits: Any, timeout: float) -> FakeSandbox:
        from executor.daemon.errors import PoolExhausted

        if len(self.made) - len(self.released) >= self.max_containers:
            raise PoolExhausted("all containers are in use (pool_max); retry later")
        if self.acquire_delay_s:
            await asyncio.sleep(self.acquire_delay_s)
        sb = FakeSandbox(f"fake-{len(self.made)}")
        sb.init_delay_s = self.init_delay_s
        self.made.append(sb)
        return sb

    def release(self, sandbox: FakeSandbox) -> None:
        sandbox.killed.set()
        self.released.append(sandbox)

    async def destroy(self, sandbox: FakeSandbox) -> None:
        self.release(sandbox)

    def stats(self) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(
            warm=0, in_use=len(self.made) - len(self.released), starting=0, max_containers=99
        )


@dataclass
class FakeDaemon:
    target: str
    service: ExecutorService
    pool: FakePool


@contextlib.asynccontextmanager
async def fake_daemon(**config: Any) -> AsyncIterator[FakeDaemon]:
    """The real ExecutorService on a real loopback gRPC port, over FakeSandboxes."""
    cfg = DaemonConfig(**{"hard_timeout_grace_ms": 500, "max_file_bytes": 64 << 10, **config})
    pool = FakePool()
    service = ExecutorService(cfg, pool, SessionRegistry(), DaemonMetrics(), "fake")  # type: ignore[arg-type]
    server = grpc.aio.server(interceptors=[Gate(Authenticator(cfg.tokens))])
    pb_grpc.add_ExecutorServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield FakeDaemon(f"127.0.0.1:{port}", service, pool)
    finally:
        await server.stop(0)


@contextlib.contextmanager
def fake_daemon_in_thread(**config: Any) -> Iterator[FakeDaemon]:
    """`fake_daemon` on its own event loop in a thread, for blocking clients."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

    cm = fake_daemon(**config)
    handle = run(cm.__aenter__())
    try:
        yield handle
    finally:
        run(cm.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
