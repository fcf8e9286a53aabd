"""A minimal client of a Corral daemon, built for attacking it.

It speaks the generated stubs directly (proto/executor_pb2*.py) so it can
answer tool calls with deliberately hostile results. Every call has a
deadline: a daemon that does not answer is reported as a hang, never waited
on forever.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from executor.fuzz.tools import TOOLBOX, ToolAnswer, answer
from proto import executor_pb2, executor_pb2_grpc

MAX_MESSAGE = 64 << 20
MAX_OUTPUT_KEPT = 4 << 20  # streamed output kept per snippet for canary checks


class TargetError(Exception):
    """The daemon could not be reached or refused a call; `code` is the gRPC status name."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@dataclass
class RunOutcome:
    """Everything one snippet run produced (all of it is checked for canaries)."""

    verdict: str  # Verdict name without the VERDICT_ prefix; "RPC_ERROR" when the call failed
    stdout: str = ""
    streamed: str = ""
    value: str = ""
    final_answer: str = ""
    error: str = ""
    state: str = ""
    truncated: bool = False
    session_lost: bool = False
    rpc_code: str = ""  # gRPC status name when verdict == "RPC_ERROR"
    rpc_detail: str = ""
    tool_calls: list[str] = field(default_factory=list)  # "name args kwargs" as sent by the sandbox
    state_names: list[str] = field(default_factory=list)  # variables the session now holds
    wall_s: float = 0.0

    def texts(self) -> list[str]:
        """Every piece of text that left the sandbox."""
        return [
            self.stdout,
            self.streamed,
            self.value,
            self.final_answer,
            self.error,
            self.state,
            self.rpc_detail,
            *self.tool_calls,
        ]


def _value_text(v: Any) -> str:
    if v is None:
        return ""
    return f"{v.type} {v.repr} {v.json}"


def _verdict_name(v: int) -> str:
    return executor_pb2.Verdict.Name(v).removeprefix("VERDICT_")


class Target:
    """One channel to a daemon."""

    def __init__(self, address: str, *, token: str | None = None) -> None:
        self.address = address
        self.channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
            ],
        )
        self.stub = executor_pb2_grpc.ExecutorStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )

    def close(self) -> None:
        self.channel.close()

    def wait_ready(self, timeout: float) -> None:
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as exc:
            raise TargetError(
                f"daemon at {self.address} not reachable within {timeout:.0f}s"
            ) from exc

    def health_status(self, timeout: float = 5.0) -> str:
        """'SERVING', another status name, or 'UNREACHABLE: <detail>'."""
        try:
            resp = self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError as exc:
            return f"UNREACHABLE: {exc.code().name}"
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        try:
            resp = self.stub.GetStats(
                executor_pb2.GetStatsRequest(), timeout=timeout, metadata=self.metadata
            )
        except grpc.RpcError as exc:
            code = exc.code().name
            raise TargetError(f"GetStats failed ({code}): {exc.details()}", code) from exc
        return {
            f: getattr(resp, f)
            for f in (
                "warm",
                "in_use",
                "starting",
                "max_containers",
                "sessions",
                "containers_created",
                "containers_destroyed",
                "containers_failed",
                "snippets_executed",
                "global_view",
                "instance_id",
            )
        }

    def open_session(
        self,
        *,
        tools: Sequence[str] = (),
        imports: Sequence[str] = (),
        limits: Mapping[str, int] | None = None,
        labels: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Session:
        specs = []
        for name in tools:
            tool = TOOLBOX[name]
            specs.append(
                executor_pb2.ToolSpec(
                    name=tool.name,
                    description=tool.description,
                    inputs_json=tool.inputs_json(),
                    output_type=tool.output_type,
                )
            )
        req = executor_pb2.OpenSessionRequest(
            authorized_imports=list(imports),
            tools=specs,
            variables_json="{}",
            limits=executor_pb2.Limits(**dict(limits or {})),
            labels=dict(labels or {}),
        )
        try:
            resp = self.stub.OpenSession(req, timeout=timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            code = exc.code().name
            raise TargetError(f"OpenSession failed ({code}): {exc.details()}", code) from exc
        wall_ms = resp.limits.wall_time_ms or 10_000
        return Session(self, resp.session_id, wall_ms=wall_ms)


class Session:
    def __init__(self, target: Target, session_id: str, *, wall_ms: int) -> None:
        self.target = target
        self.id = session_id
        self.wall_ms = wall_ms
        self.lost = False

    def run(self, code: str, *, timeout: float) -> RunOutcome:
        """Run one snippet; `timeout` is the client-side deadline (a hang past it is reported)."""
        requests: queue.Queue[executor_pb2.ExecuteRequest | None] = queue.Queue()
        requests.put(
            executor_pb2.ExecuteRequest(
                start=executor_pb2.ExecuteStart(session_id=self.id, code=code)
            )
        )

        def feed() -> Iterator[executor_pb2.ExecuteRequest]:
            while True:
                item = requests.get()
                if item is None:
                    return
                yield item

        out = RunOutcome(verdict="RPC_ERROR")
        streamed: list[str] = []
        kept = 0
        start = time.monotonic()
        call = self.target.stub.Execute(feed(), timeout=timeout, metadata=self.target.metadata)
        try:
            for resp in call:
                kind = resp.WhichOneof("kind")
                if kind == "output":
                    if kept < MAX_OUTPUT_KEPT:
                        streamed.append(resp.output.text[: MAX_OUTPUT_KEPT - kept])
                        kept += len(streamed[-1])
                elif kind == "tool_call":
                    tc = resp.tool_call
                    out.tool_calls.append(
                        f"{tc.name} {tc.args_json[:65536]} {tc.kwargs_json[:65536]}"
                    )
                    ans = _safe_answer(tc.name, tc.args_json, tc.kwargs_json)
                    requests.put(
                        executor_pb2.ExecuteRequest(
                            tool_result=executor_pb2.ToolResult(
                                call_id=tc.call_id,
                                ok=ans.ok,
                                value_json=ans.value_json,
                                error_type=ans.error_type,
                                error_message=ans.error_message,
                            )
                        )
                    )
                elif kind == "result":
                    r = resp.result
                    out.verdict = _verdict_name(r.verdict)
                    out.stdout = r.stdout
                    out.value = _value_text(r.value) if r.HasField("value") else ""
                    out.final_answer = (
                        _value_text(r.final_answer) if r.HasField("final_answer") else ""
                    )
                    if r.HasField("error"):
                        out.error = f"{r.error.type}: {r.error.message} | {r.error.source_line}"
                    out.state_names = [v.name for v in r.state]
                    out.state = json.dumps(
                        [[v.name, v.type, v.repr, v.json] for v in r.state], ensure_ascii=False
                    )
                    out.truncated = r.truncated
                    out.session_lost = r.session_lost
        except grpc.RpcError as exc:
            out.verdict = "RPC_ERROR"
            out.rpc_code = exc.code().name if exc.code() else "UNKNOWN"
            out.rpc_detail = exc.details() or ""
        finally:
            requests.put(None)
            call.cancel()
        out.streamed = "".join(streamed)
        out.wall_s = time.monotonic() - start
        if out.session_lost or out.verdict == "SANDBOX_LOST":
            self.lost = True
        if out.rpc_code in ("NOT_FOUND", "FAILED_PRECONDITION", "DEADLINE_EXCEEDED", "CANCELLED"):
            self.lost = True
        return out

    def close(self, timeout: float = 10.0) -> None:
        try:
            self.target.stub.CloseSession(
                executor_pb2.CloseSessionRequest(session_id=self.id),
                timeout=timeout,
                metadata=self.target.metadata,
            )
        except grpc.RpcError:
            pass  # already gone (lost, expired): closing is idempotent for our purposes


def _safe_answer(name: str, args_json: str, kwargs_json: str) -> ToolAnswer:
    try:
        return answer(name, args_json, kwargs_json)
    except Exception as exc:  # a tool bug must not stop the campaign
        return ToolAnswer(ok=False, error_type="RuntimeError", error_message=f"tool failed: {exc}")
