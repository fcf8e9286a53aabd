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
from proto.limits import (
    FILE_CHUNK_BYTES,
    LIMIT_FIELDS,
    LimitValueError,
    SessionLimits,
    check_integer,
)
from proto.routing import ROUTE_METADATA, check_route, route_of
from proto.values import from_wire, to_wire

DEFAULT_PORT = 50051
DEFAULT_TARGET = f"127.0.0.1:{DEFAULT_PORT}"
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
    """The gRPC target: a bare host ("127.0.0.1", "[::1]", "corral.internal") gets port 50051.

    Without this, gRPC's resolver would pick the HTTPS port 443 for a bare host.
    Targets with a scheme ("dns:///h:1", "unix:/path") are passed through.
    """
    raw = target or os.environ.get(TARGET_ENV) or DEFAULT_TARGET
    check_text(raw, "target")
    if "://" in raw or raw.startswith(("unix:", "unix-abstract:", "vsock:", "ipv4:", "ipv6:")):
        return raw
    if raw.startswith("["):  # bracketed IPv6, with or without a port
        return raw if "]:" in raw else f"{raw}:{DEFAULT_PORT}"
    if raw.count(":") > 1:  # a bare IPv6 address
        return f"[{raw}]:{DEFAULT_PORT}"
    if ":" not in raw:
        return f"{raw}:{DEFAULT_PORT}"
    return raw


def check_timeout(value: object, what: str = "timeout") -> float:
    """A deadline in seconds: a positive int or float (not a bool, str or NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgument(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)


def check_text(value: object, what: str) -> str:
    """`value` when it is a str that can be sent as UTF-8, else InvalidArgument saying why.

    Lone surrogates (e.g. from bytes decoded with errors="surrogateescape")
    cannot be encoded in a protobuf string; they are reported here, with their
    position, instead of as a raw UnicodeEncodeError from inside gRPC.
    """
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be text (str), got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"{what} is not valid Unicode text: {value[exc.start]!r} at position {exc.start} is "
            "a lone surrogate (text decoded from non-UTF-8 bytes?); decode the source as UTF-8 "
            "or replace the character"
        ) from None
    return value


def file_data(data: object) -> bytes:
    """File contents to upload: bytes-like as is, str as UTF-8."""
    if isinstance(data, str):
        return check_text(data, "file data").encode("utf-8")
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise InvalidArgument(f"file data must be bytes or str, got {type(data).__name__}")


def file_path(path: object) -> str:
    """A workspace path as text ("data.csv" or "/workspace/data.csv"; str or PathLike)."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    return check_text(path, "path")


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
    """The bearer-token header; InvalidArgument for a token no HTTP/2 header can carry."""
    if not token:
        return ()
    if not isinstance(token, str) or not all(" " < c <= "~" for c in token):
        raise InvalidArgument(
            "the token must be printable ASCII without spaces (check --token / CORRAL_TOKEN "
            "for a stray newline or quote)"
        )
    return (("authorization", f"Bearer {token}"),)


def route_metadata(
    metadata: tuple[tuple[str, str], ...], session_id: str
) -> tuple[tuple[str, str], ...]:
    """`metadata` plus the session's route (`corral-route`), for a proxy in front of many daemons.

    An id without a usable route (an old daemon's, or a mistyped one) is sent
    without it: the daemon that receives it answers NOT_FOUND.
    """
    route = route_of(session_id) if isinstance(session_id, str) else ""
    try:
        check_route(route)
    except ValueError:
        return metadata
    return (*metadata, (ROUTE_METADATA, route))


def request_metadata(
    metadata: tuple[tuple[str, str], ...], request: Any
) -> tuple[tuple[str, str], ...]:
    """The metadata for one call: with the route of the request's session, when it names one."""
    session_id = getattr(request, "session_id", "")
    return route_metadata(metadata, session_id) if session_id else metadata


# OpenSession refused with UNAVAILABLE (a draining or unreachable daemon; no
# session was created) is retried this many times in all, after these pauses:
# through a balancing proxy the retry reaches another daemon.
OPEN_ATTEMPTS = 3
OPEN_RETRY_BACKOFF_S = (0.1, 0.3)


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
        checked = {k: check_integer(k, v) for k, v in items.items()}
    except LimitValueError as exc:
        raise InvalidArgument(str(exc)) from None
    try:
        return executor_pb2.Limits(**checked)
    except (TypeError, ValueError) as exc:  # above the field's 32/64-bit range
        raise InvalidArgument(f"limits out of range: {exc}") from exc


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
        raise InvalidArgument(
            f"imports must be a list of module names, not a single string: use [{imports!r}]"
        )
    names = [check_text(m, "an import name") for m in imports or ()]
    label_map = {
        check_text(k, "a label key"): check_text(v, f"label {k!r}")
        for k, v in dict(labels or {}).items()
    }
    for t in tools.values():
        check_text(t.name, "a tool name")
        check_text(t.description, f"the description of tool {t.name!r}")
    specs = [t.to_spec() for t in tools.values()]
    return executor_pb2.OpenSessionRequest(
        authorized_imports=names,
        tools=specs,
        variables_json=variables_json(variables),
        limits=limits_proto(limits),
        labels=label_map,
    )


def start_request(session_id: str, code: str) -> Any:
    check_text(code, "code")
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
        args = from_wire(json.loads(call.args_json)) if call.args_json else []
        kwargs = from_wire(json.loads(call.kwargs_json)) if call.kwargs_json else {}
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
        text = json.dumps(to_wire(_artifact_bytes(value)))
    except (TypeError, ValueError) as exc:
        return tool_error(
            call_id,
            "TypeError",
            f"tool {name!r} returned a {type(value).__name__}, which cannot cross into the "
            f"sandbox as JSON ({exc}); return str, int, float, bool, None, bytes, list or dict",
        )
    return executor_pb2.ToolResult(call_id=call_id, ok=True, value_json=text)


def _artifact_bytes(value: Any) -> Any:
    """An image a tool returns (an Artifact, e.g. a managed agent's answer) crosses as its bytes."""
    from agent.results import Artifact

    return value.data if isinstance(value, Artifact) else value


def tool_failure(call_id: str, exc: BaseException) -> Any:
    return tool_error(call_id, type(exc).__name__, str(exc))


def run_tool_call(tools: Mapping[str, Tool], call: Any, caps: Caps | None = None) -> Any:
    """Answer one ToolCall synchronously: the ToolResult to send back."""
    prepared = prepare_tool_call(tools, call)
    if prepared.error is not None or prepared.tool is None:
        return prepared.error
    try:
        value = prepared.tool.forward(**prepared.kwargs)
    except Exception as exc:  # the tool's failure is raised inside the snippet
        return tool_failure(prepared.call_id, exc)
    return checked_tool_result(
        tool_success(prepared.call_id, prepared.tool.name, value), caps, prepared.tool.name
    )


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


# ---------------------------------------------------------------------------
# Sizes: checked here, before sending, against the caps the daemon gave at open
# ---------------------------------------------------------------------------


def size_text(n: int) -> str:
    """8 MiB, 40.0 MiB, 12 KiB, 300 bytes (exact multiples without a decimal)."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return (
                f"{n >> shift} {unit}"
                if n % (1 << shift) == 0
                else f"{n / (1 << shift):.1f} {unit}"
            )
    return f"{n} bytes"


@dataclass(frozen=True)
class Caps:
    """Payload caps of a session, bytes (0: the daemon did not say; not checked here)."""

    code_bytes: int = 0
    file_bytes: int = 0
    tool_result_bytes: int = 0
    variables_bytes: int = 0
    message_bytes: int = 0

    @classmethod
    def from_proto(cls, msg: Any) -> Caps:
        return cls(**{f: int(getattr(msg, f)) for f in cls.__dataclass_fields__})


def _too_large(what: str, size: int, cap: int, key: str) -> InvalidArgument:
    """The one wording of a size cap, the same as the daemon's (and the runner's) refusal."""
    return InvalidArgument(
        f"{what} is {size} bytes; the server accepts at most {cap} bytes (config: {key})"
    )


def check_code(code: str, caps: Caps | None) -> None:
    if caps is not None and caps.code_bytes:
        size = len(code.encode("utf-8", "surrogatepass"))
        if size > caps.code_bytes:
            raise _too_large(
                "the snippet", size, caps.code_bytes, "max_code_bytes / limits.code_bytes"
            )


def check_variables(text: str, caps: Caps | None) -> None:
    if caps is not None and caps.variables_bytes and len(text) > caps.variables_bytes:
        raise _too_large("the variables' JSON", len(text), caps.variables_bytes, "max_file_bytes")


def check_file(data: bytes, caps: Caps | None) -> None:
    if caps is not None and caps.file_bytes and len(data) > caps.file_bytes:
        raise _too_large("the file", len(data), caps.file_bytes, "max_file_bytes")


def checked_tool_result(result: Any, caps: Caps | None, name: str) -> Any:
    """A ToolResult above the cap becomes a ToolError raised inside the snippet."""
    if caps is None or not caps.tool_result_bytes or not result.ok:
        return result
    size = len(result.value_json)
    if size <= caps.tool_result_bytes:
        return result
    return tool_error(
        result.call_id,
        "ToolError",
        f"the result of {name!r} is {size_text(size)}; the cap is "
        f"{size_text(caps.tool_result_bytes)} (daemon config: max_file_bytes); return less, "
        "or upload it as a file and read it in the snippet",
    )


# ---------------------------------------------------------------------------
# Sessions that survive: checkpoints, fork, recover, attach
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointInfo:
    checkpoint_id: str
    created_ms: int
    history: int  # history entries (snippets, variables, uploads) it contains

    @classmethod
    def from_proto(cls, msg: Any) -> CheckpointInfo:
        return cls(msg.checkpoint_id, int(msg.created_ms), int(msg.history))


@dataclass(frozen=True)
class ReplayWarning:
    """Something a fork or recovery could not reproduce exactly (see the README)."""

    entry: int
    kind: str  # verdict | output | tools | skipped | checkpoint
    message: str

    @classmethod
    def from_proto(cls, msg: Any) -> ReplayWarning:
        return cls(int(msg.entry), msg.kind, msg.message)


@dataclass(frozen=True)
class Recovery:
    """What `Session.recover()` brought back."""

    checkpoint_id: str  # "" : the state at open
    replayed: int
    dropped: int  # history entries after that checkpoint, lost
    warnings: tuple[ReplayWarning, ...]

    @classmethod
    def from_proto(cls, msg: Any) -> Recovery:
        return cls(
            msg.checkpoint_id,
            int(msg.replayed),
            int(msg.dropped),
            tuple(ReplayWarning.from_proto(w) for w in msg.warnings),
        )


def check_checkpoint_id(checkpoint_id: Any) -> str:
    if isinstance(checkpoint_id, CheckpointInfo):
        return checkpoint_id.checkpoint_id
    if not isinstance(checkpoint_id, str) or not checkpoint_id:
        raise InvalidArgument(
            f"a checkpoint id is the text checkpoint() returned, got {type(checkpoint_id).__name__}"
        )
    return checkpoint_id


def attached_tools(specs: Iterable[Any], tools: Iterable[Any] | None) -> dict[str, Tool]:
    """The tool table for an attached session: the caller's tools, checked against the session's."""
    table = tool_table(tools)
    names = {spec.name for spec in specs}
    unknown = sorted(set(table) - names)
    if unknown:
        raise ToolError(
            f"the session was not opened with tool(s) {', '.join(unknown)}; "
            f"its tools: {', '.join(sorted(names)) or 'none'}"
        )
    return table


# How long a client waits for an interrupted snippet's result before giving up
# on the stream (the daemon's own grace is shorter and ends in SANDBOX_LOST).
INTERRUPT_DRAIN_S = 15.0
