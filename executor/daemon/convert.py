"""Typed runner events -> gRPC messages, and limits both ways. No checks here.

Every frame from a container was checked once, into the typed events of
`executor/sandbox/events.py` (types, caps, valid UTF-8, JSON that protobuf can
carry); these functions only map those objects to protobuf.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from executor.sandbox.events import Artifact, ExecuteResult
from proto import executor_pb2 as pb
from proto.limits import LIMIT_FIELDS, SessionLimits
from proto.results import Value, Variable


def _json_text(value: Any, has_json: bool) -> str:
    return json.dumps(value, ensure_ascii=False) if has_json else ""


def value(v: Value | None) -> pb.Value | None:
    if v is None:
        return None
    return pb.Value(
        type=v.type, repr=v.repr, json=_json_text(v.json, v.has_json), has_json=v.has_json
    )


def variables(items: Iterable[Variable]) -> list[pb.Variable]:
    return [
        pb.Variable(
            name=v.name,
            type=v.type,
            repr=v.repr,
            json=_json_text(v.json, v.has_json),
            has_json=v.has_json,
        )
        for v in items
    ]


def execute_result(done: ExecuteResult) -> pb.ExecuteResult:
    """The runner's result as an ExecuteResult (session_lost left False)."""
    r = done.result
    msg = pb.ExecuteResult(
        verdict=f"VERDICT_{r.verdict.value}",
        stdout=r.stdout,
        stderr=r.stderr,
        is_final_answer=r.is_final_answer,
        truncated=r.truncated,
        state=variables(r.state),
        usage=pb.Usage(
            wall_ms=done.usage.wall_ms,
            cpu_ms=done.usage.cpu_ms,
            peak_memory_bytes=done.usage.peak_memory_bytes,
            output_bytes=done.usage.output_bytes,
        ),
    )
    for field, v in (("value", r.value), ("final_answer", r.final_answer)):
        if v is not None:
            getattr(msg, field).CopyFrom(value(v))
    if r.error is not None:
        msg.error.CopyFrom(
            pb.ErrorInfo(
                type=r.error.type,
                message=r.error.message,
                line=r.error.line or 0,
                source_line=r.error.source_line or "",
                frames=[
                    pb.TraceFrame(
                        snippet=f.snippet,
                        line=f.line,
                        function=f.function,
                        source_line=f.source_line or "",
                    )
                    for f in r.error.frames
                ],
                traceback=r.error.traceback,
            )
        )
    return msg


def artifact(event: Artifact) -> pb.Artifact:
    """A checked artifact (events.artifact verified size, type and bytes) as protobuf."""
    a = event.artifact
    meta = a.metadata
    rest = {k: v for k, v in meta.items() if k not in ("width", "height")}
    return pb.Artifact(
        name=a.name,
        mime_type=a.mime_type,
        data=a.data,
        width=int(meta.get("width", 0)),
        height=int(meta.get("height", 0)),
        metadata_json=json.dumps(rest, ensure_ascii=False) if rest else "",
    )


def lost_result(verdict: Any, message: str, stdout: str = "", wall_ms: int = 0) -> pb.ExecuteResult:
    """The result the daemon writes itself when the container is gone."""
    return pb.ExecuteResult(
        verdict=verdict,
        stdout=stdout,
        error=pb.ErrorInfo(type=pb.Verdict.Name(verdict).removeprefix("VERDICT_"), message=message),
        session_lost=True,
        usage=pb.Usage(wall_ms=wall_ms),
    )


def limits_to_dict(msg: pb.Limits) -> dict[str, int]:
    return {name: int(getattr(msg, name)) for name in LIMIT_FIELDS}


def limits_to_proto(limits: SessionLimits) -> pb.Limits:
    return pb.Limits(**limits.to_dict())


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """A client-supplied JSON object ({} for empty text); ValueError names `what`."""
    if not text:
        return {}
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise ValueError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj
