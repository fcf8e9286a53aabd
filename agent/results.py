"""The client-side `Result`: the interpreter's Result plus usage and session loss.

Field names are those of `proto.results.Result` (the contract
shared by every layer); `from_proto` is the single place where a gRPC
`ExecuteResult` becomes one. JSON carried by the daemon is decoded here; text
that does not decode is kept as its repr only (`has_json=False`), never trusted.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proto.results import Artifact as _Artifact
from proto.results import ErrorInfo, TraceFrame, Value, Variable, Verdict
from proto.results import Result as _InterpreterResult
from proto.values import from_wire

__all__ = [
    "Artifact",
    "ErrorInfo",
    "FileInfo",
    "Result",
    "Stderr",
    "TraceFrame",
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


class Stderr(str):
    """A chunk of what the snippet wrote to sys.stderr, as `Session.stream()` yields it.

    A `str` like stdout chunks (so code that prints every chunk still works);
    test `isinstance(item, Stderr)` to keep the two apart.
    """

    __slots__ = ()


_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/svg+xml": "svg",
}


@dataclass
class Artifact(_Artifact):
    """A figure or image a snippet produced (`Result.artifacts`, and `stream()` items).

    `data` holds the bytes as the daemon checked them (size, and that they are
    what `mime_type` says); nothing here decodes them unless asked
    (`to_pil()`).
    """

    @property
    def width(self) -> int:
        """Pixels, as the sandbox reported them (0 when unknown)."""
        return int(self.metadata.get("width", 0) or 0)

    @property
    def height(self) -> int:
        return int(self.metadata.get("height", 0) or 0)

    @property
    def extension(self) -> str:
        """The file extension of its type: "png", "jpg", "gif", "svg" (else "bin")."""
        return _EXTENSIONS.get(self.mime_type, "bin")

    @property
    def kind(self) -> str:
        """ "figure", "image", ...: the name without its number."""
        return self.name.rsplit("-", 1)[0]

    def data_url(self) -> str:
        """`data:<mime>;base64,...`: what OpenAI-compatible image content parts take."""
        return f"data:{self.mime_type};base64,{base64.b64encode(self.data).decode('ascii')}"

    def save(self, directory: str | Path) -> Path:
        """Write it to `directory/<name>.<ext>` (the directory is made); return the path."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.name) or "artifact"
        path = folder / f"{safe}.{self.extension}"
        path.write_bytes(self.data)
        return path

    def describe(self, path: str | Path | None = None) -> str:
        """One line: `[figure 1: 640x480 PNG → out/figure-1.png]`."""
        label = self.name.replace("-", " ", 1)
        size = f"{self.width}x{self.height} " if self.width and self.height else ""
        where = f" → {path}" if path is not None else f", {len(self.data)} bytes"
        return f"[{label}: {size}{self.extension.upper()}{where}]"

    def to_pil(self) -> Any:
        """The image as a PIL Image (needs Pillow on the client; raster types only).

        Decoding is bounded by Pillow's own decompression-bomb guard
        (`PIL.Image.MAX_IMAGE_PIXELS`).
        """
        if self.mime_type == "image/svg+xml":
            raise ValueError(f"{self.name} is SVG: Pillow cannot decode it; use .data")
        try:
            from PIL import Image
        except ImportError as exc:
            raise ImportError("Artifact.to_pil() needs Pillow: pip install pillow") from exc
        image = Image.open(io.BytesIO(self.data))
        image.load()
        return image

    @classmethod
    def from_proto(cls, msg: Any) -> Artifact:
        """From a `corral.v1.Artifact` (metadata_json that does not decode is dropped)."""
        metadata: dict[str, Any] = {}
        if msg.metadata_json:
            extra, ok = decode_json(msg.metadata_json, True)
            if ok and isinstance(extra, dict):
                metadata.update(extra)
        if msg.width:
            metadata["width"] = int(msg.width)
        if msg.height:
            metadata["height"] = int(msg.height)
        return cls(name=msg.name, mime_type=msg.mime_type, data=bytes(msg.data), metadata=metadata)


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
    def images(self) -> list[Artifact]:
        """The artifacts that are raster images (PNG, JPEG, GIF)."""
        return [
            a
            for a in self.artifacts
            if isinstance(a, Artifact) and a.mime_type in ("image/png", "image/jpeg", "image/gif")
        ]

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
    def from_proto(cls, msg: Any, artifacts: list[Artifact] | None = None) -> Result:
        """Build from a `corral.v1.ExecuteResult` (and the artifacts streamed before it)."""
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
                frames=[
                    TraceFrame(
                        snippet=f.snippet,
                        line=f.line,
                        function=f.function,
                        source_line=f.source_line or None,
                    )
                    for f in msg.error.frames
                ],
                traceback=msg.error.traceback,
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
            stderr=msg.stderr,
            artifacts=list(artifacts or []),
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
    return from_wire(v.json) if v.has_json else v.repr
