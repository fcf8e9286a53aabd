"""Client-side helpers for daemon tests: the generated stubs, nothing else."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from proto import executor_pb2 as pb
from proto import executor_pb2_grpc as pb_grpc

NO_ANSWER = object()  # a tool handler returning this never answers the call


def stub_for(target: str) -> tuple[grpc.Channel, pb_grpc.ExecutorStub]:
    channel = grpc.insecure_channel(target)
    return channel, pb_grpc.ExecutorStub(channel)


def open_session(stub: pb_grpc.ExecutorStub, metadata: Any = None, **kwargs: Any) -> str:
    limits = kwargs.pop("limits", None)
    request = pb.OpenSessionRequest(limits=pb.Limits(**(limits or {})), **kwargs)
    return stub.OpenSession(request, metadata=metadata, timeout=60).session_id


def tool(name: str, inputs: dict[str, Any] | None = None, output_type: str = "any") -> pb.ToolSpec:
    return pb.ToolSpec(
        name=name,
        description=f"The {name} tool.",
        inputs_json=json.dumps(
            {k: {"type": v, "description": k} for k, v in (inputs or {}).items()}
        ),
        output_type=output_type,
    )


@dataclass
class Run:
    responses: list[pb.ExecuteResponse] = field(default_factory=list)

    @property
    def result(self) -> pb.ExecuteResult:
        assert self.responses and self.responses[-1].HasField("result"), self.responses
        return self.responses[-1].result

    @property
    def kinds(self) -> list[str]:
        return [str(r.WhichOneof("kind")) for r in self.responses]

    @property
    def streamed(self) -> str:
        return "".join(r.output.text for r in self.responses if r.HasField("output"))


def execute(
    stub: pb_grpc.ExecutorStub,
    session_id: str,
    code: str,
    tools: dict[str, Callable[..., Any]] | None = None,
    metadata: Any = None,
    on_response: Callable[[pb.ExecuteResponse], None] | None = None,
    timeout: float = 60,
) -> Run:
    """Run one snippet; answer tool calls with `tools[name](*args, **kwargs)`.

    A handler raising answers with ok=False and the exception's type and message.
    """
    answers: queue.Queue[pb.ExecuteRequest | None] = queue.Queue()

    def requests() -> Iterator[pb.ExecuteRequest]:
        yield pb.ExecuteRequest(start=pb.ExecuteStart(session_id=session_id, code=code))
        while True:
            item = answers.get()
            if item is None:
                return
            yield item

    run = Run()
    try:
        for response in stub.Execute(requests(), metadata=metadata, timeout=timeout):
            run.responses.append(response)
            if on_response is not None:
                on_response(response)
            if response.HasField("tool_call"):
                call = response.tool_call
                handler = (tools or {})[call.name]
                try:
                    value = handler(*json.loads(call.args_json), **json.loads(call.kwargs_json))
                except Exception as exc:
                    answers.put(
                        pb.ExecuteRequest(
                            tool_result=pb.ToolResult(
                                call_id=call.call_id,
                                ok=False,
                                error_type=type(exc).__name__,
                                error_message=str(exc),
                            )
                        )
                    )
                    continue
                if value is NO_ANSWER:
                    continue
                answers.put(
                    pb.ExecuteRequest(
                        tool_result=pb.ToolResult(
                            call_id=call.call_id, ok=True, value_json=json.dumps(value)
                        )
                    )
                )
    finally:
        answers.put(None)
    return run


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


def managed_containers(docker_client: Any, instance_id: str) -> list[dict[str, Any]]:
    """Low-level listing (no per-container inspect, so no race with auto-removal)."""
    from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED

    return docker_client.api.containers(  # type: ignore[no-any-return]
        all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={instance_id}"]}
    )


def container_names(entries: list[dict[str, Any]]) -> list[str]:
    return [(e.get("Names") or ["?"])[0].lstrip("/") for e in entries]
