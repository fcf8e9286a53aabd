"""Runner frames -> gRPC messages, validating everything on the way.

Whatever a container sends is hostile: a compromised runner could send wrong
types, huge strings or unknown verdicts. Each converter checks types and
clamps sizes, and raises `BadFrame` on anything off-schema; the caller treats
that as a lost sandbox (the container is killed), never as a daemon crash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from proto import executor_pb2 as pb
from proto.limits import LIMIT_FIELDS, SessionLimits

MAX_TEXT_CHARS = 1 << 20  # type names, reprs, messages: clamped to this many characters
MAX_STATE_ITEMS = 10_000
_VERDICTS = frozenset(pb.Verdict.keys()) - {"VERDICT_UNSPECIFIED"}


class BadFrame(Exception):
    """A runner frame does not match the schema in proto/frames.md."""


def _str(d: Mapping[str, Any], key: str, limit: int = MAX_TEXT_CHARS) -> str:
    v = d.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise BadFrame(f"field {key!r} is {type(v).__name__}, expected str")
    return v[:limit]


def _bool(d: Mapping[str, Any], key: str) -> bool:
    v = d.get(key, False)
    if not isinstance(v, bool):
        raise BadFrame(f"field {key!r} is {type(v).__name__}, expected bool")
    return v


def _uint(d: Mapping[str, Any], key: str) -> int:
    v = d.get(key, 0)
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise BadFrame(f"field {key!r} is {type(v).__name__}, expected a number")
    return max(0, min(int(v), (1 << 63) - 1))


def _obj(d: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, Mapping):
        raise BadFrame(f"field {key!r} is {type(v).__name__}, expected an object")
    return v


def _json_text(v: Any) -> str:
    try:
        return json.dumps(v, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError, RecursionError) as exc:
        raise BadFrame(f"value is not JSON-serialisable: {exc}") from None


def value(d: Mapping[str, Any] | None) -> pb.Value | None:
    if d is None:
        return None
    has_json = _bool(d, "has_json")
    return pb.Value(
        type=_str(d, "type"),
        repr=_str(d, "repr"),
        json=_json_text(d.get("json")) if has_json else "",
        has_json=has_json,
    )


def variable(d: Any) -> pb.Variable:
    if not isinstance(d, Mapping):
        raise BadFrame("a state entry is not an object")
    has_json = _bool(d, "has_json")
    return pb.Variable(
        name=_str(d, "name"),
        type=_str(d, "type"),
        repr=_str(d, "repr"),
        json=_json_text(d.get("json")) if has_json else "",
        has_json=has_json,
    )


def variables(items: Any) -> list[pb.Variable]:
    if items is None:
        return []
    if not isinstance(items, list) or len(items) > MAX_STATE_ITEMS:
        raise BadFrame("state is not a list of at most 10000 variables")
    return [variable(v) for v in items]


def execute_result(frame: Mapping[str, Any]) -> pb.ExecuteResult:
    """The runner's result frame as an ExecuteResult (session_lost left False)."""
    verdict_name = _str(frame, "verdict", 64)
    verdict = f"VERDICT_{verdict_name}"
    if verdict not in _VERDICTS:
        raise BadFrame(f"unknown verdict {verdict_name[:40]!r}")
    result = pb.ExecuteResult(
        verdict=verdict,
        stdout=_str(frame, "stdout", 1 << 26),
        is_final_answer=_bool(frame, "is_final_answer"),
        truncated=_bool(frame, "truncated"),
    )
    v = value(_obj(frame, "value"))
    if v is not None:
        result.value.CopyFrom(v)
    fa = value(_obj(frame, "final_answer"))
    if fa is not None:
        result.final_answer.CopyFrom(fa)
    err = _obj(frame, "error")
    if err is not None:
        result.error.CopyFrom(
            pb.ErrorInfo(
                type=_str(err, "type"),
                message=_str(err, "message"),
                line=_uint(err, "line"),
                source_line=_str(err, "source_line"),
            )
        )
    result.state.extend(variables(frame.get("state")))
    usage = _obj(frame, "usage") or {}
    result.usage.CopyFrom(
        pb.Usage(
            wall_ms=_uint(usage, "wall_ms"),
            cpu_ms=_uint(usage, "cpu_ms"),
            peak_memory_bytes=_uint(usage, "peak_memory_bytes"),
            output_bytes=_uint(usage, "output_bytes"),
        )
    )
    return result


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
