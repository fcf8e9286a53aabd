"""Typed frames from the runner: every frame is checked here, once, with one set of caps.

Whatever a container sends is hostile. Each parser below takes one decoded
frame (a dict from `proto.frames.decode_body`) and returns a frozen event
rebuilt from type-checked fields, with strings cut to the caps below and lone
surrogates replaced (protobuf carries only valid UTF-8). A field of the wrong
type raises `FrameSchemaError`; the caller (the protocol core) then treats the
sandbox as lost. The daemon maps these events to protobuf in
`executor/daemon/convert.py` without checking anything again.

The payload types (`Value`, `Variable`, `ErrorInfo`, `Result`, `Verdict`) are
the shared ones of `proto/results.py`; this module adds the frame envelopes.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from executor.sandbox.errors import FrameSchemaError
from proto.results import Artifact as ArtifactData
from proto.results import ErrorInfo, Result, TraceFrame, Value, Variable, Verdict

# -- caps (characters unless named otherwise) --------------------------------
MAX_NAME = 256  # a type, variable, tool or checkpoint name
MAX_REPR = 64 << 10  # a repr
MAX_MESSAGE = 64 << 10  # an error message
MAX_SOURCE_LINE = 4096
MAX_ID = 256  # a request, call or checkpoint id
MAX_STATE_ITEMS = 10_000  # variables in one state or vars frame
MAX_CHECKPOINTS = 10_000  # entries in one checkpoints frame
MAX_FILE_ENTRIES = 10_000  # entries in one files frame (a directory listing)
MAX_PATH = 1024  # characters of a workspace path
MAX_JSON_DEPTH = 100  # nesting of JSON data (what protobuf's JSON text can carry back)
MAX_UINT = (1 << 63) - 1  # usage counters
MAX_LINE = (1 << 31) - 1
MAX_FRAMES = 200  # traceback frames kept (the interpreter's recursion cap is 200)
MAX_TRACEBACK = 256 << 10  # formatted traceback text
MAX_MIME = 100
MAX_METADATA_KEYS = 32
VERDICTS = frozenset(v.value for v in Verdict)
USAGE_KEYS = ("wall_ms", "cpu_ms", "peak_memory_bytes", "output_bytes")


# -- field checks ---------------------------------------------------------------


def _text(value: str, cap: int) -> str:
    """`value` cut to `cap` characters, lone surrogates replaced (valid UTF-8 for protobuf)."""
    value = value[:cap]
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _str(d: dict[str, Any], key: str, cap: int, *, where: str) -> str:
    value = d.get(key)
    if not isinstance(value, str):
        raise FrameSchemaError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    return _text(value, cap)


def _opt_str(d: dict[str, Any], key: str, cap: int, *, where: str) -> str | None:
    return None if d.get(key) is None else _str(d, key, cap, where=where)


def _bool(d: dict[str, Any], key: str, *, where: str, default: bool | None = None) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise FrameSchemaError(f"{where}: {key!r} must be a boolean")
    return value


def _int(value: Any, *, where: str, minimum: int = 0, maximum: int = MAX_UINT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameSchemaError(f"{where} must be an integer")
    if not minimum <= value <= maximum:
        raise FrameSchemaError(f"{where} must be between {minimum} and {maximum}")
    return value


def _dict(value: Any, *, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FrameSchemaError(f"{where} must be an object")
    return value


def _list(value: Any, cap: int, *, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise FrameSchemaError(f"{where} must be a list")
    if len(value) > cap:
        raise FrameSchemaError(f"{where} has {len(value)} items, more than {cap}")
    return value


def _utf8(s: str) -> bool:
    return s.isascii() or not any(0xD800 <= ord(c) <= 0xDFFF for c in s)


def json_ok(value: Any, depth: int = 0) -> bool:
    """JSON data protobuf can carry: no NaN/Infinity, no lone surrogates, nested <= 100.

    Iterative (an explicit stack), so hostile nesting costs no Python recursion
    whatever the caller's stack depth.
    """
    stack: list[tuple[Any, int]] = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if level > MAX_JSON_DEPTH:
            return False
        if item is None or isinstance(item, (bool, int)):
            continue
        if isinstance(item, str):
            if not _utf8(item):
                return False
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
        elif isinstance(item, dict):
            for k, v in item.items():
                if not (isinstance(k, str) and _utf8(k)):
                    return False
                stack.append((v, level + 1))
        else:
            return False
    return True


def _value_parts(d: dict[str, Any], *, where: str) -> tuple[str, str, Any, bool]:
    has_json = _bool(d, "has_json", where=where, default=False)
    data = d.get("json") if has_json else None
    if has_json and not json_ok(data):
        has_json, data = False, None  # the repr still tells the story
    return (
        _str(d, "type", MAX_NAME, where=where),
        _str(d, "repr", MAX_REPR, where=where),
        data,
        has_json,
    )


def _value(raw: Any, *, where: str) -> Value | None:
    if raw is None:
        return None
    return Value(*_value_parts(_dict(raw, where=where), where=where))


def _variable(raw: Any, *, where: str) -> Variable:
    d = _dict(raw, where=where)
    return Variable(_str(d, "name", MAX_NAME, where=where), *_value_parts(d, where=where))


def _state(raw: Any, *, where: str) -> tuple[Variable, ...]:
    items = _list(raw, MAX_STATE_ITEMS, where=where)
    return tuple(_variable(v, where=f"{where}[{i}]") for i, v in enumerate(items))


def _trace_frame(raw: Any, *, where: str) -> TraceFrame:
    d = _dict(raw, where=where)
    return TraceFrame(
        snippet=_int(d.get("snippet"), where=f"{where}.snippet", maximum=MAX_LINE),
        line=_int(d.get("line"), where=f"{where}.line", maximum=MAX_LINE),
        function=_str(d, "function", MAX_NAME, where=where),
        source_line=_opt_str(d, "source_line", MAX_SOURCE_LINE, where=where),
    )


def _error_info(raw: Any) -> ErrorInfo | None:
    if raw is None:
        return None
    d = _dict(raw, where="result.error")
    line = d.get("line")
    frames = _list(d.get("frames", []), MAX_FRAMES, where="result.error.frames")
    traceback = d.get("traceback", "")
    if not isinstance(traceback, str):
        raise FrameSchemaError("result.error: 'traceback' must be a string")
    return ErrorInfo(
        type=_str(d, "type", MAX_NAME, where="result.error"),
        message=_str(d, "message", MAX_MESSAGE, where="result.error"),
        line=None if line is None else _int(line, where="result.error.line", maximum=MAX_LINE),
        source_line=_opt_str(d, "source_line", MAX_SOURCE_LINE, where="result.error"),
        frames=[_trace_frame(f, where=f"result.error.frames[{i}]") for i, f in enumerate(frames)],
        traceback=_text(traceback, MAX_TRACEBACK),
    )


# -- events ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """The runner is up (sent once, first)."""

    frame_type: ClassVar[str] = "ready"
    pid: int
    python: str
    interpreter: bool  # False only in raw mode


@dataclass(frozen=True, slots=True)
class Output:
    """A chunk of printed output of the running snippet (stdout, or its stderr)."""

    frame_type: ClassVar[str] = "output"
    id: str
    data: str
    stream: str = "stdout"  # "stdout" or "stderr"


@dataclass(frozen=True, slots=True)
class Artifact:
    """A figure or image of the running snippet, checked: size, type and matching bytes.

    `artifact.data` is the checked `proto.results.Artifact` (bytes decoded from
    base64, never decoded as an image here); `metadata` holds only JSON data,
    with `width` and `height` non-negative integers when present.
    """

    frame_type: ClassVar[str] = "artifact"
    id: str
    artifact: ArtifactData


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The snippet calls a client-side tool; answer with `ChannelProtocol.answer_tool_call`."""

    frame_type: ClassVar[str] = "tool_call"
    id: str
    call_id: str
    name: str
    args: list[Any]  # JSON data (checked by `json_ok`)
    kwargs: dict[str, Any]
    # Set when the arguments cannot cross (NaN, nested deeper than MAX_JSON_DEPTH):
    # the snippet's mistake, not a broken runner. The transports answer the call
    # with this error without asking the client, and the session lives on.
    refusal: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """What one snippet used, as the runner measured it."""

    wall_ms: int = 0
    cpu_ms: int = 0
    peak_memory_bytes: int = 0
    output_bytes: int = 0


@dataclass(frozen=True, slots=True)
class ExecuteResult:
    """The end of one execute: the snippet's `Result` and its usage."""

    frame_type: ClassVar[str] = "result"
    id: str
    result: Result
    usage: Usage

    def to_dict(self) -> dict[str, Any]:
        """The result frame's fields (JSON-safe), as `corrald probe` prints them."""
        return {"id": self.id, **self.result.to_dict(), "usage": asdict(self.usage)}


@dataclass(frozen=True, slots=True)
class Ack:
    frame_type: ClassVar[str] = "ack"
    id: str


@dataclass(frozen=True, slots=True)
class Pong:
    frame_type: ClassVar[str] = "pong"
    id: str


@dataclass(frozen=True, slots=True)
class Vars:
    """The answer to `get_vars`."""

    frame_type: ClassVar[str] = "vars"
    id: str
    state: tuple[Variable, ...]


@dataclass(frozen=True, slots=True)
class File:
    """The answer to `read_file`, base64 already decoded."""

    frame_type: ClassVar[str] = "file"
    id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The answer to `checkpoint`: its id and how many the runner now holds."""

    frame_type: ClassVar[str] = "checkpoint"
    id: str
    checkpoint_id: str
    checkpoints: int


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    checkpoint_id: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class Checkpoints:
    """The answer to `list_checkpoints`."""

    frame_type: ClassVar[str] = "checkpoints"
    id: str
    items: tuple[CheckpointInfo, ...]


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str  # relative to the workspace, "/"-separated, valid UTF-8
    size: int  # bytes (0 for a directory)
    is_dir: bool
    mtime_ms: int  # milliseconds since the Unix epoch


@dataclass(frozen=True, slots=True)
class Files:
    """The answer to `list_files`: one directory's entries."""

    frame_type: ClassVar[str] = "files"
    id: str
    entries: tuple[FileEntry, ...]


@dataclass(frozen=True, slots=True)
class Error:
    """The runner refused a request (it keeps serving)."""

    frame_type: ClassVar[str] = "error"
    id: str | None
    message: str


Answer = Ack | Pong | Vars | File | Checkpoint | Checkpoints | Files
ANSWER_TYPES = (Ack, Pong, Vars, File, Checkpoint, Checkpoints, Files)
Event = Ready | Output | Artifact | ToolCall | ExecuteResult | Answer | Error


# -- parsers --------------------------------------------------------------------


def ready(frame: dict[str, Any]) -> Ready:
    return Ready(
        pid=_int(frame.get("pid"), where="ready.pid", minimum=1, maximum=MAX_LINE),
        python=_str(frame, "python", MAX_NAME, where="ready"),
        interpreter=_bool(frame, "interpreter", where="ready"),
    )


def output(frame: dict[str, Any]) -> Output:
    data = frame.get("data")
    if not isinstance(data, str):
        raise FrameSchemaError("output: 'data' must be a string")
    stream = frame.get("stream", "stdout")
    if stream not in ("stdout", "stderr"):
        raise FrameSchemaError("output: 'stream' must be 'stdout' or 'stderr'")
    # No cut here: the protocol core counts every character against the output cap.
    return Output(
        id=_str(frame, "id", MAX_ID, where="output"), data=_text(data, len(data)), stream=stream
    )


# -- artifacts: the bytes must be what the type says ------------------------------

ARTIFACT_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),  # PNG signature (RFC 2083, 3.1)
    "image/jpeg": (b"\xff\xd8\xff",),  # SOI marker then the next marker's 0xFF
    "image/gif": (b"GIF87a", b"GIF89a"),  # GIF header (GIF89a spec, 17)
}
_SVG_NS = "{http://www.w3.org/2000/svg}svg"
# A DOCTYPE with an internal subset ("[") can declare entities (billion laughs,
# external entities); matplotlib writes only the public SVG 1.1 DOCTYPE.
_DOCTYPE = re.compile(rb"<!DOCTYPE[^>\[]*>", re.IGNORECASE)


def check_artifact_bytes(mime_type: str, data: bytes) -> str | None:
    """Why `data` is not a `mime_type` file, or None when it is one.

    Raster types: the magic number. SVG: well-formed XML (UTF-8) whose root
    element is `<svg>`, with no entity declaration, internal DTD subset or
    entity reference to expand; parsed, never rendered.
    """
    if mime_type not in ARTIFACT_TYPES:
        return f"type {mime_type[:60]!r} is not one of {', '.join(ARTIFACT_TYPES)}"
    if mime_type != "image/svg+xml":
        if not data.startswith(_MAGIC[mime_type]):
            return f"the bytes are not {mime_type} (wrong magic number {data[:8]!r})"
        return None
    lowered = data.lower()
    if b"<!entity" in lowered:
        return "the SVG declares entities"
    stripped = _DOCTYPE.sub(b"", data, count=1)
    if b"<!doctype" in stripped.lower():
        return "the SVG has a DOCTYPE with an internal subset, or more than one"
    parser = ElementTree.XMLParser()
    try:
        parser.feed(stripped)
        root = parser.close()
    except ElementTree.ParseError as exc:
        return f"the bytes are not well-formed SVG XML ({exc})"
    if root.tag not in (_SVG_NS, "svg"):
        return f"the XML root is <{str(root.tag)[:60]}>, not <svg>"
    return None


def artifact(frame: dict[str, Any], *, max_bytes: int) -> Artifact:
    """An `artifact` frame, every field checked; the bytes must match the declared type.

    A failed check raises FrameSchemaError: only a broken or hostile runner
    sends one (the interpreter bounds and encodes artifacts itself), so the
    channel goes with it rather than the snippet's result.
    """
    where = "artifact"
    name = _str(frame, "name", MAX_NAME, where=where)
    if not name or not name.isprintable() or "/" in name or name.startswith("."):
        raise FrameSchemaError("artifact: 'name' must be printable, non-empty, with no '/'")
    mime = _str(frame, "mime_type", MAX_MIME, where=where)
    raw = frame.get("data_b64")
    if not isinstance(raw, str):
        raise FrameSchemaError("artifact: 'data_b64' must be a string")
    if len(raw) > (max_bytes + 2) // 3 * 4:  # checked before decoding
        raise FrameSchemaError(f"artifact {name[:60]!r} is over max_artifact_bytes={max_bytes}")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise FrameSchemaError("artifact: 'data_b64' is not base64") from None
    if len(data) > max_bytes:
        raise FrameSchemaError(f"artifact {name[:60]!r} is over max_artifact_bytes={max_bytes}")
    problem = check_artifact_bytes(mime, data)
    if problem is not None:
        raise FrameSchemaError(f"artifact {name[:60]!r} claims {mime[:60]!r} but {problem}")
    meta = _dict(frame.get("metadata", {}), where="artifact.metadata")
    if len(meta) > MAX_METADATA_KEYS or not json_ok(meta, MAX_JSON_DEPTH - 2):
        raise FrameSchemaError("artifact.metadata must be a small JSON object")
    metadata: dict[str, Any] = {}
    for key, value in meta.items():
        if key in ("width", "height"):
            metadata[key] = _int(value, where=f"artifact.metadata.{key}", maximum=MAX_LINE)
        elif isinstance(value, (str, int, float, bool)) or value is None:
            metadata[_text(key, MAX_NAME)] = (
                _text(value, MAX_NAME) if isinstance(value, str) else value
            )
    return Artifact(
        id=_str(frame, "id", MAX_ID, where=where),
        artifact=ArtifactData(name, mime, data, metadata),
    )


def tool_call(frame: dict[str, Any]) -> ToolCall:
    args = _list(frame.get("args", []), 10_000, where="tool_call.args")
    kwargs = _dict(frame.get("kwargs", {}), where="tool_call.kwargs")
    name = _str(frame, "name", MAX_NAME, where="tool_call")
    refusal = None
    if not json_ok(args) or not json_ok(kwargs):
        args, kwargs = [], {}
        refusal = {
            "ok": False,
            "error": {
                "type": "ValueError",
                "message": f"the arguments of tool {name[:100]!r} must be JSON data (no NaN "
                f"or Infinity) nested at most {MAX_JSON_DEPTH} levels deep",
            },
        }
    return ToolCall(
        id=_str(frame, "id", MAX_ID, where="tool_call"),
        call_id=_str(frame, "call_id", MAX_ID, where="tool_call"),
        name=name,
        args=args,
        kwargs=kwargs,
        refusal=refusal,
    )


def result(frame: dict[str, Any], *, output_cap: int) -> ExecuteResult:
    """A `result` frame; stdout is cut to `output_cap` UTF-8 bytes (and marked truncated)."""
    verdict = frame.get("verdict")
    if verdict not in VERDICTS:
        raise FrameSchemaError(f"result: unknown verdict {str(verdict)[:40]!r}")
    stdout = _str(frame, "stdout", max(output_cap, 0) + 4096, where="result")
    truncated = _bool(frame, "truncated", where="result", default=False)
    encoded = stdout.encode("utf-8")
    if len(encoded) > output_cap:
        stdout = encoded[: max(output_cap, 0)].decode("utf-8", "ignore")
        truncated = True
    stderr = frame.get("stderr", "")
    if not isinstance(stderr, str):
        raise FrameSchemaError("result: 'stderr' must be a string")
    stderr = _text(stderr, max(output_cap, 0) + 4096)
    encoded = stderr.encode("utf-8")
    if len(encoded) > output_cap:
        stderr = encoded[: max(output_cap, 0)].decode("utf-8", "ignore")
    usage = _dict(frame.get("usage"), where="result.usage")
    return ExecuteResult(
        id=_str(frame, "id", MAX_ID, where="result"),
        result=Result(
            verdict=Verdict(verdict),
            stdout=stdout,
            value=_value(frame.get("value"), where="result.value"),
            is_final_answer=_bool(frame, "is_final_answer", where="result", default=False),
            final_answer=_value(frame.get("final_answer"), where="result.final_answer"),
            error=_error_info(frame.get("error")),
            state=list(_state(frame.get("state", []), where="result.state")),
            truncated=truncated,
            stderr=stderr,
        ),
        usage=Usage(**{k: _int(usage.get(k), where=f"result.usage.{k}") for k in USAGE_KEYS}),
    )


def ack(frame: dict[str, Any]) -> Ack:
    return Ack(id=_str(frame, "id", MAX_ID, where="ack"))


def pong(frame: dict[str, Any]) -> Pong:
    return Pong(id=_str(frame, "id", MAX_ID, where="pong"))


def vars_(frame: dict[str, Any]) -> Vars:
    return Vars(
        id=_str(frame, "id", MAX_ID, where="vars"),
        state=_state(frame.get("state"), where="vars.state"),
    )


def file(frame: dict[str, Any]) -> File:
    data = frame.get("data_b64")
    if not isinstance(data, str):
        raise FrameSchemaError("file: 'data_b64' must be a string")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise FrameSchemaError("file: 'data_b64' is not base64") from None
    return File(id=_str(frame, "id", MAX_ID, where="file"), data=decoded)


def checkpoint(frame: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        id=_str(frame, "id", MAX_ID, where="checkpoint"),
        checkpoint_id=_str(frame, "checkpoint_id", MAX_ID, where="checkpoint"),
        checkpoints=_int(frame.get("checkpoints"), where="checkpoint.checkpoints"),
    )


def checkpoints(frame: dict[str, Any]) -> Checkpoints:
    items = _list(frame.get("checkpoints"), MAX_CHECKPOINTS, where="checkpoints.checkpoints")
    parsed = []
    for i, raw in enumerate(items):
        d = _dict(raw, where=f"checkpoints[{i}]")
        parsed.append(
            CheckpointInfo(
                checkpoint_id=_str(d, "checkpoint_id", MAX_ID, where=f"checkpoints[{i}]"),
                created_ms=_int(d.get("created_ms"), where=f"checkpoints[{i}].created_ms"),
            )
        )
    return Checkpoints(id=_str(frame, "id", MAX_ID, where="checkpoints"), items=tuple(parsed))


def files(frame: dict[str, Any]) -> Files:
    items = _list(frame.get("entries"), MAX_FILE_ENTRIES, where="files.entries")
    parsed = []
    for i, raw in enumerate(items):
        where = f"files.entries[{i}]"
        d = _dict(raw, where=where)
        path = d.get("path")
        if not isinstance(path, str) or not 0 < len(path) <= MAX_PATH or not _utf8(path):
            raise FrameSchemaError(f"{where}.path must be 1..{MAX_PATH} characters of UTF-8")
        size = _int(d.get("size"), where=f"{where}.size", minimum=0)
        mtime = _int(d.get("mtime_ms"), where=f"{where}.mtime_ms", minimum=-(1 << 62))
        parsed.append(FileEntry(path, size, _bool(d, "is_dir", where=where), mtime))
    return Files(id=_str(frame, "id", MAX_ID, where="files"), entries=tuple(parsed))


def error(frame: dict[str, Any]) -> Error:
    message = frame.get("message", "request failed")
    return Error(
        id=_opt_str(frame, "id", MAX_ID, where="error"),
        message=_text(message if isinstance(message, str) else "request failed", MAX_MESSAGE),
    )


ANSWER_PARSERS: dict[str, Callable[[dict[str, Any]], Answer]] = {
    "ack": ack,
    "pong": pong,
    "vars": vars_,
    "file": file,
    "checkpoint": checkpoint,
    "checkpoints": checkpoints,
    "files": files,
}
