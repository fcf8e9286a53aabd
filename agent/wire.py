"""What the sync and asyncio clients share: channels, requests, tool dispatch.

Kept free of any call so both clients build identical requests and answer
tool calls identically (the tool-call protocol is the subtle part of the API:
the daemon streams a ToolCall, the client must answer it with a ToolResult
carrying the same call_id, and an exception in the tool becomes an exception
inside the snippet, never a failure of the stream).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeAlias

import grpc

from agent.errors import CorralError, InvalidArgument, ToolError
from agent.tools import Tool, as_tool
from proto import executor_pb2
from proto.limits import FILE_CHUNK_BYTES, LIMIT_FIELDS, SessionLimits

DEFAULT_TARGET = "127.0.0.1:50051"
TARGET_ENV = "CORRAL_TARGET"
TOKEN_ENV = "CORRAL_TOKEN"
# Results carry state and files carry up to the daemon's cap (8 MiB by default):
# accept generously, the daemon enforces the real limits.
MAX_MESSAGE_BYTES = 64 << 20
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
# Extra time allowed for one Execute beyond the snippet's own limits (session
# open, scheduling, the daemon's hard-timeout grace).
EXECUTE_MARGIN_S = 30.0


TlsOption: TypeAlias = bool | grpc.ChannelCredentials | str | os.PathLike[str] | None


def resolve_target(target: str | None) -> str:
    return target or os.environ.get(TARGET_ENV) or DEFAULT_TARGET


def resolve_token(token: str | None) -> str | None:
    return token if token is not None else (os.environ.get(TOKEN_ENV) or None)


def channel_credentials(tls: TlsOption) -> grpc.ChannelCredentials | None:
    """None for a plaintext channel; else the credentials TLS asks for."""
    if tls is None or tls is False:
        return None
    if tls is True:
        return grpc.ssl_channel_credentials()
    if isinstance(tls, grpc.ChannelCredentials):
        return tls
    path = Path(tls)
    try:
        return grpc.ssl_channel_credentials(root_certificates=path.read_bytes())
    except OSError as exc:
        raise InvalidArgument(f"cannot read the CA certificate {path}: {exc}") from exc


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def limits_proto(limits: Mapping[str, int] | SessionLimits | None) -> Any:
    """A `corral.v1.Limits` from a dict (unknown names refused) or SessionLimits."""
    if limits is None:
        return executor_pb2.Limits()
    items = limits.to_dict() if isinstance(limits, SessionLimits) else dict(limits)
    unknown = sorted(set(items) - set(LIMIT_FIELDS))
    if unknown:
        raise InvalidArgument(
            f"unknown limit(s) {', '.join(unknown)}; known limits: {', '.join(LIMIT_FIELDS)}"
        )
    try:
        return executor_pb2.Limits(**{k: int(v) for k, v in items.items()})
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"limits must be non-negative integers: {exc}") from exc


def limits_dict(msg: Any) -> dict[str, int]:
    return {name: int(getattr(msg, name)) for name in LIMIT_FIELDS}


def variables_json(variables: Mapping[str, Any] | None) -> str:
    if not variables:
        return ""
    for name in variables:
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise InvalidArgument(
                f"variable name {name!r} is not usable: use an identifier not starting with '_'"
            )
    try:
        return json.dumps(dict(variables))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(
            f"variables must be JSON-serialisable (str, int, float, bool, None, list, dict): {exc}"
        ) from exc


def tool_table(tools: Iterable[Any] | None) -> dict[str, Tool]:
    """{name: Tool} from Tools and callables; duplicate names refused."""
    table: dict[str, Tool] = {}
    for obj in tools or ():
        t = as_tool(obj)
        if t.name in table:
            raise ToolError(f"two tools are named {t.name!r}; tool names must be unique")
        if t.name == "final_answer":
            raise ToolError("final_answer is built into every session; name your tool differently")
        table[t.name] = t
    return table


def open_request(
    *,
    imports: Iterable[str] | None,
    tools: Mapping[str, Tool],
    variables: Mapping[str, Any] | None,
    limits: Mapping[str, int] | SessionLimits | None,
    labels: Mapping[str, str] | None,
) -> Any:
    if isinstance(imports, str):
        raise InvalidArgument("imports must be a list of module names, not a single string")
    return executor_pb2.OpenSessionRequest(
        authorized_imports=list(imports or ()),
        tools=[t.to_spec() for t in tools.values()],
        variables_json=variables_json(variables),
        limits=limits_proto(limits),
        labels=dict(labels or {}),
    )


def start_request(session_id: str, code: str) -> Any:
    if not isinstance(code, str):
        raise InvalidArgument(f"code must be text, got {type(code).__name__}")
    return executor_pb2.ExecuteRequest(
        start=executor_pb2.ExecuteStart(session_id=session_id, code=code)
    )


def file_chunks(session_id: str, path: str, data: bytes) -> Iterator[Any]:
    """An upload as FileChunks: the first names the session and path, all carry data."""
    view = memoryview(data)
    for offset in range(0, max(len(data), 1), FILE_CHUNK_BYTES):
        piece = bytes(view[offset : offset + FILE_CHUNK_BYTES])
        if offset == 0:
            yield executor_pb2.FileChunk(session_id=session_id, path=path, data=piece)
        else:
            yield executor_pb2.FileChunk(data=piece)


def execute_timeout(limits: Mapping[str, int]) -> float:
    """Default deadline of one Execute: the snippet's limits plus a margin."""
    wall = limits.get("wall_time_ms") or SessionLimits.wall_time_ms
    tool = limits.get("tool_timeout_ms") or SessionLimits.tool_timeout_ms
    return (wall + tool) / 1000 + EXECUTE_MARGIN_S


@dataclass
class PreparedCall:
    """A decoded ToolCall: either ready to run, or already answered with an error."""

    call_id: str
    tool: Tool | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    error: Any = None  # a ready ToolResult when the call cannot run


def tool_error(call_id: str, exc_type: str, message: str) -> Any:
    return executor_pb2.ToolResult(
        call_id=call_id, ok=False, error_type=exc_type, error_message=message[:4000]
    )


def prepare_tool_call(tools: Mapping[str, Tool], call: Any) -> PreparedCall:
    """Decode and check a ToolCall from the daemon (its content came from the snippet)."""
    cid = call.call_id
    try:
        args = json.loads(call.args_json) if call.args_json else []
        kwargs = json.loads(call.kwargs_json) if call.kwargs_json else {}
    except (ValueError, RecursionError) as exc:
        err = tool_error(cid, "ValueError", f"tool arguments are not valid JSON: {exc}")
        return PreparedCall(cid, None, (), {}, err)
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        err = tool_error(cid, "TypeError", "tool arguments must be a JSON array and a JSON object")
        return PreparedCall(cid, None, (), {}, err)
    tool = tools.get(call.name)
    if tool is None:
        known = ", ".join(sorted(tools)) or "none"
        err = tool_error(cid, "NameError", f"no tool named {call.name!r} (tools: {known})")
        return PreparedCall(cid, None, (), {}, err)
    try:
        bound = tool.validate_arguments(tool.bind_arguments(tuple(args), kwargs))
    except ToolError as exc:
        return PreparedCall(cid, None, (), {}, tool_error(cid, "TypeError", str(exc)))
    return PreparedCall(cid, tool, (), bound)


def tool_success(call_id: str, name: str, value: Any) -> Any:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError) as exc:
        return tool_error(
            call_id,
            "TypeError",
            f"tool {name!r} returned a {type(value).__name__}, which cannot cross into the "
            f"sandbox as JSON ({exc}); return str, int, float, bool, None, list or dict",
        )
    return executor_pb2.ToolResult(call_id=call_id, ok=True, value_json=text)


def tool_failure(call_id: str, exc: BaseException) -> Any:
    return tool_error(call_id, type(exc).__name__, str(exc))


def run_tool_call(tools: Mapping[str, Tool], call: Any) -> Any:
    """Answer one ToolCall synchronously: the ToolResult to send back."""
    prepared = prepare_tool_call(tools, call)
    if prepared.error is not None or prepared.tool is None:
        return prepared.error
    try:
        value = prepared.tool.forward(**prepared.kwargs)
    except Exception as exc:  # the tool's failure is raised inside the snippet
        return tool_failure(prepared.call_id, exc)
    return tool_success(prepared.call_id, prepared.tool.name, value)


@dataclass
class Stats:
    """The daemon's counters (`GetStats`)."""

    warm: int
    in_use: int
    starting: int
    max_containers: int
    sessions: int
    containers_created: int
    containers_destroyed: int
    containers_failed: int
    snippets_executed: int
    instance_id: str
    global_view: bool = False  # False: pool figures hidden, counts are the caller's own

    @classmethod
    def from_proto(cls, msg: Any) -> Stats:
        return cls(**{f: getattr(msg, f) for f in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_session_id(session_id: str) -> str:
    if not session_id:
        raise CorralError("the daemon returned an empty session id")
    return session_id
