"""Verdicts and results of one snippet run.

These types are the contract shared by every layer: the interpreter returns a
`Result`, the runner serialises it with `Result.to_dict()` into a result frame,
the daemon turns that dict into the gRPC `ExecuteResult`, and the client gives
users an object with the same field names. Standard library only: the client
imports it without the interpreter, and it is copied into the sandbox image.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Verdict(enum.StrEnum):
    """One verdict per snippet (DESIGN.md, "Verdicts")."""

    OK = "OK"
    ERROR = "ERROR"  # the snippet raised
    SYNTAX_ERROR = "SYNTAX_ERROR"  # the code does not parse, or is empty/oversized/not text
    POLICY_DENIED = "POLICY_DENIED"  # a construct, name, attribute or import was refused
    TIMEOUT = "TIMEOUT"  # wall-clock limit; soft (state kept) unless `session_lost`
    CPU_LIMIT = "CPU_LIMIT"  # CPU-time limit
    MEMORY_LIMIT = "MEMORY_LIMIT"  # MemoryError or a size guard (huge ** / << / int->str)
    # A flag, not a failure: the snippet succeeded but printed more than the cap.
    # `truncated` is set on every result whose output was cut, whatever its verdict.
    OUTPUT_TRUNCATED = "OUTPUT_TRUNCATED"
    SANDBOX_LOST = "SANDBOX_LOST"  # container died or was killed; the session is gone
    INTERNAL = "INTERNAL"  # a bug in Corral, never the snippet's fault
    INTERRUPTED = "INTERRUPTED"  # the client stopped the snippet; the state is kept

    @property
    def ok(self) -> bool:
        """True when the snippet ran to completion."""
        return self in (Verdict.OK, Verdict.OUTPUT_TRUNCATED)


@dataclass
class TraceFrame:
    """One snippet frame of a traceback (interpreter and runner frames are never shown)."""

    snippet: int  # which snippet of the session defined the code (1 = the first)
    line: int  # 1-based line in that snippet
    function: str  # "<module>" for the snippet's top level
    source_line: str | None = None  # that line's text, stripped, when still known


@dataclass
class ErrorInfo:
    """What went wrong, in the snippet's own terms (never interpreter frames)."""

    type: str  # exception type name, e.g. "ZeroDivisionError"
    message: str
    line: int | None = None  # 1-based line of the innermost snippet frame, when known
    source_line: str | None = None  # that line's text, stripped
    frames: list[TraceFrame] = field(default_factory=list)  # outermost first
    traceback: str = ""  # the frames and the error, formatted like Python's

    def __str__(self) -> str:
        where = ""
        if self.line:
            where = (
                f" (line {self.line}: {self.source_line})"
                if self.source_line
                else (f" (line {self.line})")
            )
        return f"{self.type}: {self.message}{where}"


def format_traceback(frames: list[TraceFrame], type_: str, message: str) -> str:
    """Python-style text for snippet frames and the error they led to."""
    lines = ["Traceback (most recent call last):"] if frames else []
    for f in frames:
        lines.append(f"  Snippet {f.snippet}, line {f.line}, in {f.function}")
        if f.source_line:
            lines.append(f"    {f.source_line}")
    lines.append(f"{type_}: {message}" if message else type_)
    return "\n".join(lines)


@dataclass
class Artifact:
    """A figure, image or table a snippet produced, as bytes with a declared type.

    The sandbox makes artifacts, so nothing about one is trusted until the
    daemon has checked its size and that its bytes match `mime_type`.
    """

    name: str  # "figure-1", "image-2", ...
    mime_type: str  # "image/png", "image/svg+xml", "image/jpeg", ...
    data: bytes
    metadata: dict[str, Any] = field(default_factory=dict)  # width, height (pixels), ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (the bytes as base64), for frames."""
        return {
            "name": self.name,
            "mime_type": self.mime_type,
            "data_b64": base64.b64encode(self.data).decode("ascii"),
            "metadata": dict(self.metadata),
        }


@dataclass
class Value:
    """A value leaving the sandbox: always a repr, JSON only when JSON-safe and small."""

    type: str  # type name, e.g. "int", "list", "MyClass"
    repr: str  # short repr (truncated to Limits.repr_chars)
    json: Any = None  # the JSON-safe value, when has_json
    has_json: bool = False


@dataclass
class Variable:
    """One user variable in the session's state."""

    name: str
    type: str
    repr: str
    json: Any = None
    has_json: bool = False


@dataclass
class Result:
    """The observation of one snippet run."""

    verdict: Verdict
    stdout: str = ""
    value: Value | None = None  # last expression statement's value, REPL-style
    is_final_answer: bool = False
    final_answer: Value | None = None
    error: ErrorInfo | None = None
    state: list[Variable] = field(default_factory=list)
    truncated: bool = False  # printed output was cut at Limits.output_bytes
    stderr: str = ""  # what the snippet (and warnings) wrote to sys.stderr, capped
    artifacts: list[Artifact] = field(default_factory=list)  # figures, images, in order

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the body of the runner's result frame)."""
        artifacts = self.artifacts
        d = asdict(dataclasses.replace(self, artifacts=[]))
        d["verdict"] = str(self.verdict)
        d["artifacts"] = [a.to_dict() for a in artifacts]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        """Inverse of `to_dict`. Trusts types only after the caller validated them."""

        def val(x: Any) -> Value | None:
            return Value(**x) if x is not None else None

        return cls(
            verdict=Verdict(d["verdict"]),
            stdout=d.get("stdout", ""),
            value=val(d.get("value")),
            is_final_answer=bool(d.get("is_final_answer", False)),
            final_answer=val(d.get("final_answer")),
            error=_error(d["error"]) if d.get("error") else None,
            state=[Variable(**v) for v in d.get("state", [])],
            truncated=bool(d.get("truncated", False)),
            stderr=d.get("stderr", ""),
            artifacts=[
                Artifact(
                    a["name"],
                    a["mime_type"],
                    base64.b64decode(a["data_b64"]),
                    a.get("metadata", {}),
                )
                for a in d.get("artifacts", [])
            ],
        )


def _error(d: dict[str, Any]) -> ErrorInfo:
    fields = {k: v for k, v in d.items() if k != "frames"}
    return ErrorInfo(**fields, frames=[TraceFrame(**f) for f in d.get("frames", [])])
