"""Request validation: every field of every request, before a container is touched.

Each function takes a decoded request (and the config) and returns what the
service needs to act on it, or raises `InvalidArgument` (or a subclass) naming
the field and the fix. Nothing here talks to the pool or a container, so a bad
request can never count as a container failure, destroy a warm container or
end a session: by the time a container is taken, the request is known good.

Sizes are checked as they will travel: a frame for the container is encoded
here exactly as the channel will encode it (`proto.frames.encode`), so a value
whose JSON grows when re-encoded (`1e9` -> `1000000000.0`, escapes) is refused
here, not by the channel after a container was taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from executor.daemon import convert, files
from executor.daemon.config import DaemonConfig
from executor.daemon.errors import InvalidArgument, LimitTooLow, TooLarge
from executor.daemon.imports import check_imports
from executor.daemon.sessions import resolve_limits
from proto import executor_pb2 as pb
from proto.frames import DEFAULT_MAX_FRAME, FrameTooLarge, encode
from proto.limits import (
    LIMIT_FIELDS,
    LIMIT_MINIMUMS,
    WORKSPACE_MEMORY_HEADROOM,
    SessionLimits,
)

MAX_TOOLS = 256
MAX_IMPORTS = 256
MAX_IMPORT_CHARS = 200
MAX_LABELS = 64
MAX_LABEL_CHARS = 256  # per label key and per label value
MAX_PATH_CHARS = files.MAX_PATH_CHARS
MAX_NAME_CHARS = 200
MAX_NAMES = 10_000  # GetVariables names per request
MAX_SESSION_ID_CHARS = 64  # ids are 22 characters; anything far longer is not one
# The channel adds a request id (a short counter) to each frame; keep room for it.
FRAME_ID_ROOM = 64
MAX_FRAME_BODY = DEFAULT_MAX_FRAME - FRAME_ID_ROOM


@dataclass(frozen=True)
class OpenPlan:
    """A checked OpenSession: the limits in force, the init frame's fields, the labels.

    `warnings`: authorized imports that name no module of the image (accepted).
    """

    limits: SessionLimits
    init: dict[str, Any]
    labels: dict[str, str]
    warnings: list[str]

    @property
    def has_tools(self) -> bool:
        return bool(self.init["tools"])


def session_id(value: str) -> str:
    """A plausible session id (the registry decides whether it exists)."""
    if len(value) > MAX_SESSION_ID_CHARS:
        raise InvalidArgument(
            f"session_id is {len(value)} characters; ids are at most {MAX_SESSION_ID_CHARS}"
        )
    return value


def limits(request: pb.Limits, config: DaemonConfig) -> SessionLimits:
    """Defaults applied, maxima and minimums enforced, workspace within memory."""
    resolved = resolve_limits(
        convert.limits_to_dict(request), config.default_limits, config.max_limits
    )
    for name in LIMIT_FIELDS:
        if getattr(resolved, name) < LIMIT_MINIMUMS[name]:
            raise LimitTooLow(name, getattr(resolved, name))
    room = resolved.memory_bytes - WORKSPACE_MEMORY_HEADROOM
    if resolved.workspace_bytes > room:
        raise InvalidArgument(
            f"limits.workspace_bytes={resolved.workspace_bytes} does not fit in "
            f"limits.memory_bytes={resolved.memory_bytes}: workspace files are held in the "
            f"container's memory, which must keep {WORKSPACE_MEMORY_HEADROOM} bytes for the "
            f"runner; ask for workspace_bytes <= {max(room, 0)} or more memory_bytes"
        )
    return resolved


def open_session(request: pb.OpenSessionRequest, config: DaemonConfig) -> OpenPlan:
    """Everything OpenSession needs, checked; the init frame is known to fit the channel."""
    resolved = limits(request.limits, config)
    labels = _labels(request.labels)
    imports = list(request.authorized_imports)
    if len(imports) > MAX_IMPORTS:
        raise InvalidArgument(f"at most {MAX_IMPORTS} authorized_imports")
    for name in imports:
        if not name or len(name) > MAX_IMPORT_CHARS:
            raise InvalidArgument(
                f"authorized_imports entries must be 1..{MAX_IMPORT_CHARS} characters"
            )
    warnings = check_imports(imports)  # never-imports refused; unknown modules warned
    if len(request.tools) > MAX_TOOLS:
        raise InvalidArgument(f"at most {MAX_TOOLS} tools per session")
    tools = []
    seen: set[str] = set()
    for t in request.tools:
        if not t.name.isidentifier() or t.name.startswith("_") or len(t.name) > MAX_NAME_CHARS:
            raise InvalidArgument(
                f"tool name {t.name[:60]!r} must be a Python identifier not starting with '_' "
                f"(at most {MAX_NAME_CHARS} characters)"
            )
        if t.name in seen:
            raise InvalidArgument(f"two tools are named {t.name!r}; tool names must be unique")
        seen.add(t.name)
        inputs = _json_object(t.inputs_json, f"tools[{t.name}].inputs_json")
        tools.append(
            {
                "name": t.name,
                "description": t.description,
                "inputs": inputs,
                "output_type": t.output_type or "any",
            }
        )
    init = {
        "authorized_imports": imports,
        "tools": tools,
        "variables": _json_object(request.variables_json, "variables_json"),
        "limits": resolved.runner_limits(),
    }
    check_frame({"type": "init", **init}, "the session setup (tools, variables, imports)")
    variables_size(request.variables_json, config)
    return OpenPlan(limits=resolved, init=init, labels=labels, warnings=warnings)


def set_variables(request: pb.SetVariablesRequest, config: DaemonConfig) -> dict[str, Any]:
    """The set_vars frame for a SetVariables request, known to fit the channel."""
    frame = {
        "type": "set_vars",
        "variables": _json_object(request.variables_json, "variables_json"),
    }
    check_frame(frame, "variables_json")
    variables_size(request.variables_json, config)
    return frame


def variables_size(variables_json: str, config: DaemonConfig) -> None:
    """The variables' JSON within its cap (Caps.variables_bytes = max_file_bytes)."""
    size = len(variables_json)
    if size > config.max_file_bytes:
        raise TooLarge("the variables' JSON", size, config.max_file_bytes, "max_file_bytes")


def fork_labels(parent: Mapping[str, str], requested: Mapping[str, str]) -> dict[str, str]:
    """A fork's labels: the parent's, overridden by the request's, checked like an open's."""
    return _labels({**parent, **_labels(requested)})


def get_variables(request: pb.GetVariablesRequest) -> dict[str, Any]:
    names = list(request.names)
    if len(names) > MAX_NAMES:
        raise InvalidArgument(f"at most {MAX_NAMES} names per GetVariables")
    for name in names:
        if not name.isidentifier():
            raise InvalidArgument(f"variable name {name[:60]!r} is not a Python identifier")
    return {"type": "get_vars", "names": names}


def code(text: str, config: DaemonConfig) -> str:
    size = len(text.encode("utf-8", "surrogatepass"))
    cap = config.max_limits.code_bytes
    if size > cap:
        raise TooLarge("the code", size, cap, "max_code_bytes")
    return text


def file_size(size: int, config: DaemonConfig) -> None:
    if size > config.max_file_bytes:
        raise TooLarge("the file", size, config.max_file_bytes, "max_file_bytes")


def workspace_path(path: str, *, allow_root: bool = False) -> str:
    """A clean path relative to /workspace, or InvalidArgument saying what is wrong.

    Relative ("data.csv") or as snippets see it ("/workspace/data.csv"); see
    `files.workspace_path`. Control characters are refused here too (they end up
    in logs and listings).
    """
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise InvalidArgument(f"path {path[:100]!r} contains control characters; remove them")
    norm = files.workspace_path(path, allow_root=allow_root)
    if norm.startswith(".."):
        raise InvalidArgument(f"path {path[:100]!r} leaves /workspace; '..' is not allowed")
    return norm


def check_frame(frame: dict[str, Any], what: str) -> None:
    """InvalidArgument unless `frame` encodes within the container channel's frame cap."""
    try:
        encode(frame, MAX_FRAME_BODY)
    except FrameTooLarge:
        raise InvalidArgument(
            f"{what} is too large once encoded for the sandbox (more than {MAX_FRAME_BODY} "
            "bytes of JSON; numbers and escaped characters can grow when re-encoded); "
            "send less, or upload large data as a file"
        ) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidArgument(f"{what} cannot be encoded for the sandbox: {exc}") from None


def _json_object(text: str, field: str) -> dict[str, Any]:
    try:
        return convert.parse_json_object(text, field)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(str(exc)[:500]) from None


def _labels(labels: Mapping[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise InvalidArgument(f"at most {MAX_LABELS} labels per session")
    out = {}
    for key, value in labels.items():
        if not key or len(key) > MAX_LABEL_CHARS or len(value) > MAX_LABEL_CHARS:
            raise InvalidArgument(
                f"label keys must be 1..{MAX_LABEL_CHARS} characters and values at most "
                f"{MAX_LABEL_CHARS}"
            )
        if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in key):
            raise InvalidArgument(
                f"label key {key[:60]!r} contains control characters; use printable text"
            )
        out[key] = value
    return out
