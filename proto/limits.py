"""Per-session limits on the host side (mirrors `corral.v1.Limits`).

The proto declares every limit with its unit and default; this dataclass holds
the same fields with the same defaults. Exactly one function turns it into
Docker settings (`executor.sandbox.hardening.container_config`) and exactly
one turns it into rlimits (`executor.runner.rlimits.apply_rlimits`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

MiB = 1 << 20


@dataclass(frozen=True)
class SessionLimits:
    wall_time_ms: int = 10_000  # soft wall-clock timeout per snippet
    cpu_time_ms: int = 10_000  # CPU time per snippet
    memory_bytes: int = 512 * MiB  # container memory (swap equal: none)
    pids: int = 64  # processes + threads in the container
    output_bytes: int = 1 * MiB  # printed output kept per snippet
    workspace_bytes: int = 64 * MiB  # /workspace tmpfs size
    idle_timeout_s: int = 600  # session idle timeout
    lifetime_s: int = 3600  # session lifetime
    code_bytes: int = 256 << 10  # snippet size
    cpu_millis: int = 1000  # CPU share, thousandths of a CPU
    tool_timeout_ms: int = 30_000  # wait for a client's tool answer
    max_checkpoints: int = 16  # checkpoints held at once (each a stopped process)
    # Total tool time per snippet not charged to its wall clock, milliseconds; past it
    # the snippet ends in TIMEOUT and the session is lost (daemon side, not sent to the runner).
    tool_time_budget_ms: int = 600_000
    max_artifact_bytes: int = 8 * MiB  # largest figure/image returned, bytes (encoded)
    max_artifacts: int = 16  # figures/images returned per snippet

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionLimits:
        known = {f.name for f in fields(cls)}
        return cls(**{k: check_integer(k, v) for k, v in d.items() if k in known})

    def merged(self, requested: dict[str, int]) -> SessionLimits:
        """Apply non-zero requested values over these (0 means 'default')."""
        return replace(self, **{k: check_integer(k, v) for k, v in requested.items() if v})

    def runner_limits(self) -> dict[str, int]:
        """The subset the runner enforces per snippet (the `limits` of init/execute frames)."""
        return {
            "wall_time_ms": self.wall_time_ms,
            "cpu_time_ms": self.cpu_time_ms,
            "output_bytes": self.output_bytes,
            "code_bytes": self.code_bytes,
            "memory_bytes": self.memory_bytes,
            "tool_timeout_ms": self.tool_timeout_ms,
            "max_checkpoints": self.max_checkpoints,
            "pids": self.pids,
            "max_artifact_bytes": self.max_artifact_bytes,
            "max_artifacts": self.max_artifacts,
        }


LIMIT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(SessionLimits))

# The least a session can run with, per field, in the field's unit. A request
# below it (other than 0, "the default") is refused before any container is
# created (the daemon: INVALID_ARGUMENT naming the minimum, LimitTooLow; the
# client: LimitValueError), rather than failing later as a container that
# cannot start or a snippet that cannot finish. The values are the least that
# holds the runner itself, not what is comfortable for real work.
#
# One table. Two earlier ones were merged here and, where they differed, the
# stricter (larger) value was kept: memory 64 MiB and pids 16 (the container
# must start the runner with the interpreter loaded, and checkpoints are held
# as stopped processes); wall/cpu 10 ms, output/code 64 bytes and
# tool_timeout 100 ms (below those the runner's own bookkeeping does not fit,
# so a smaller value only buys a guaranteed TIMEOUT/CPU_LIMIT).
LIMIT_MINIMUMS: dict[str, int] = {
    "wall_time_ms": 10,  # below this the runner's own bookkeeping does not fit
    "cpu_time_ms": 10,  # RLIMIT_CPU granularity is coarse: less is a guaranteed CPU_LIMIT
    # A Python process with the interpreter loaded (~20 MiB) plus the runner's
    # working room; the stricter of the two merged tables.
    "memory_bytes": 64 * MiB,
    "pids": 16,  # tini, the runner, its helper threads and a checkpoint's process
    "output_bytes": 64,
    "workspace_bytes": 1 * MiB,  # the tmpfs is never made smaller
    "idle_timeout_s": 1,
    "lifetime_s": 1,
    "code_bytes": 64,
    # Docker refuses below 10 (0.01 CPU); below 100 the runner cannot start within
    # the daemon's init timeout.
    "cpu_millis": 100,
    "tool_timeout_ms": 100,
    "max_checkpoints": 1,  # 0 asks for the default; a session always may hold one
    "tool_time_budget_ms": 100,
    "max_artifact_bytes": 1024,  # a small PNG; 0 asks for the default
    "max_artifacts": 1,
}
# Largest max_artifact_bytes any server allows: an artifact crosses the container
# channel base64-encoded in one 16 MiB frame (proto/frames.py DEFAULT_MAX_FRAME).
MAX_ARTIFACT_BYTES_CEILING = 12 * MiB
assert set(LIMIT_MINIMUMS) == set(LIMIT_FIELDS), "every limit declares its minimum"


class LimitValueError(ValueError):
    """A limit's value has the wrong type or is out of range; the message says the fix."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


def check_integer(name: str, value: object) -> int:
    """`value` when it is a non-negative int (not a bool, float or str), else LimitValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise LimitValueError(
            f"limit {name} must be an integer, got {type(value).__name__} {value!r}"
            f"{_unit_hint(name)}",
            name,
        )
    if value < 0:
        raise LimitValueError(
            f"limit {name}={value} is negative; give a positive integer (or 0 for the default)",
            name,
        )
    return value


def below_minimum_message(name: str, value: int) -> str:
    """The one wording of "below the minimum", client and daemon alike."""
    minimum = LIMIT_MINIMUMS[name]
    return (
        f"limit {name}={value} is below the minimum of {minimum}: a sandbox cannot run "
        f"with less; ask for at least {minimum} (or 0 for the default)"
    )


def check_minimum(name: str, value: int) -> None:
    """LimitValueError naming the minimum when a requested (non-zero) value is below it."""
    minimum = LIMIT_MINIMUMS.get(name, 0)
    if value and value < minimum:
        raise LimitValueError(below_minimum_message(name, value), name)


def _unit_hint(name: str) -> str:
    for suffix, unit in (("_ms", "milliseconds"), ("_s", "seconds"), ("_bytes", "bytes")):
        if name.endswith(suffix):
            return f" (whole {unit}, e.g. {name}={getattr(SessionLimits, name)})"
    return f" (e.g. {name}={getattr(SessionLimits, name)})"


# tmpfs pages are charged to the container's memory cgroup: a full workspace
# must leave the runner this much of memory_bytes, or filling it would get the
# container OOM-killed instead of failing the write with "no space left".
WORKSPACE_MEMORY_HEADROOM = 48 * MiB


def limit_unit(name: str) -> str:
    """The unit of a limit field, for messages ("ms", "bytes", ...)."""
    if name == "pids":
        return "processes"
    if name == "cpu_millis":
        return "thousandths of a CPU"
    if name == "max_checkpoints":
        return "checkpoints"
    if name == "max_artifacts":
        return "artifacts"
    for suffix, unit in (("_ms", "ms"), ("_bytes", "bytes"), ("_s", "s")):
        if name.endswith(suffix):
            return unit
    return ""


# Data bytes per FileChunk of UploadFileStream / DownloadFileStream: small, so
# that what one stream can make the daemon buffer before it is checked is small.
FILE_CHUNK_BYTES = 256 << 10
