"""The client-side `Result`: the interpreter's Result plus usage and session loss.

Field names are those of `proto.results.Result` (the contract
shared by every layer); `from_proto` is the single place where a gRPC
`ExecuteResult` becomes one. JSON carried by the daemon is decoded here; text
that does not decode is kept as its repr only (`has_json=False`), never trusted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from proto.results import ErrorInfo, Value, Variable, Verdict
from proto.results import Result as _InterpreterResult

__all__ = [
    "ErrorInfo",
    "FileInfo",
    "Result",
    "Usage",
    "Value",
    "Variable",
    "Verdict",
    "decode_json",
    "value_from_proto",
    "variable_from_proto",
]


@dataclass(frozen=True)
class FileInfo:
    """One entry of `Session.files()`: a file or directory in the session's /workspace."""

    path: str  # relative to /workspace, "/"-separated ("data/x.csv")
    size: int  # bytes; 0 for a directory
    is_dir: bool
    mtime: float  # last modification, seconds since the Unix epoch

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @classmethod
    def from_proto(cls, msg: Any) -> FileInfo:
        return cls(
            path=str(msg.path),
            size=int(msg.size),
            is_dir=bool(msg.is_dir),
            mtime=int(msg.mtime_ms) / 1000,
        )


# Proto enum names are "VERDICT_<NAME>"; VERDICT_UNSPECIFIED has no meaning here.
_VERDICT_PREFIX = "VERDICT_"


@dataclass
class Usage:
    """Resources one snippet used, as measured by the daemon."""

    wall_ms: int = 0
    cpu_ms: int = 0
    peak_memory_bytes: int = 0
    output_bytes: int = 0


@dataclass
class Result(_InterpreterResult):
    """The observation of one snippet run, as the client sees it."""

    usage: Usage = field(default_factory=Usage)
    session_lost: bool = False  # the container is gone: the session cannot be used again

    @property
    def answer(self) -> Any:
        """The final answer as a Python value (JSON-decoded, else its repr), or None."""
        return python_value(self.final_answer) if self.is_final_answer else None

    @property
    def python_value(self) -> Any:
        """The last expression's value (JSON-decoded, else its repr), or None."""
        return python_value(self.value)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["ok"] = self.ok
        return d

    @classmethod
    def from_proto(cls, msg: Any) -> Result:
        """Build from a `corral.v1.ExecuteResult`."""
        name = msg.DESCRIPTOR.fields_by_name["verdict"].enum_type.values_by_number.get(msg.verdict)
        vname = name.name if name is not None else "VERDICT_UNSPECIFIED"
        try:
            verdict = Verdict(vname.removeprefix(_VERDICT_PREFIX))
        except ValueError:
            verdict = Verdict.INTERNAL  # unspecified or unknown: never pretend it was OK
        error = None
        if msg.HasField("error") and (msg.error.type or msg.error.message):
            error = ErrorInfo(
                type=msg.error.type,
                message=msg.error.message,
                line=msg.error.line or None,
                source_line=msg.error.source_line or None,
            )
        if error is None and not verdict.ok:
            # A Result never hides an error: a failure verdict always explains itself.
            error = ErrorInfo(type=verdict.value, message="the daemon gave no error details")
        return cls(
            verdict=verdict,
            stdout=msg.stdout,
            value=value_from_proto(msg.value) if msg.HasField("value") else None,
            is_final_answer=msg.is_final_answer,
            final_answer=value_from_proto(msg.final_answer)
            if msg.HasField("final_answer")
            else None,
            error=error,
            state=[variable_from_proto(v) for v in msg.state],
            truncated=msg.truncated,
            usage=Usage(
                wall_ms=msg.usage.wall_ms,
                cpu_ms=msg.usage.cpu_ms,
                peak_memory_bytes=msg.usage.peak_memory_bytes,
                output_bytes=msg.usage.output_bytes,
            ),
            session_lost=msg.session_lost,
        )


def decode_json(text: str, has_json: bool) -> tuple[Any, bool]:
    """(value, has_json) from JSON text; undecodable text means no JSON."""
    if not has_json:
        return None, False
    try:
        return json.loads(text), True
    except (ValueError, RecursionError):
        return None, False


def value_from_proto(msg: Any) -> Value:
    data, ok = decode_json(msg.json, msg.has_json)
    return Value(type=msg.type, repr=msg.repr, json=data, has_json=ok)


def variable_from_proto(msg: Any) -> Variable:
    data, ok = decode_json(msg.json, msg.has_json)
    return Variable(name=msg.name, type=msg.type, repr=msg.repr, json=data, has_json=ok)


def python_value(v: Value | Variable | None) -> Any:
    """The value itself when it crossed as JSON, else its repr text."""
    if v is None:
        return None
    return v.json if v.has_json else v.repr
