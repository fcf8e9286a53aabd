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

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionLimits:
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in known})

    def merged(self, requested: dict[str, int]) -> SessionLimits:
        """Apply non-zero requested values over these (0 means 'default')."""
        return replace(self, **{k: int(v) for k, v in requested.items() if v})

    def runner_limits(self) -> dict[str, int]:
        """The subset the runner enforces per snippet (the `limits` of init/execute frames)."""
        return {
            "wall_time_ms": self.wall_time_ms,
            "cpu_time_ms": self.cpu_time_ms,
            "output_bytes": self.output_bytes,
            "code_bytes": self.code_bytes,
            "memory_bytes": self.memory_bytes,
            "tool_timeout_ms": self.tool_timeout_ms,
        }


LIMIT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(SessionLimits))

# The least a session can run with, per field, in the field's unit. A request
# below these is refused (INVALID_ARGUMENT naming the minimum) before any
# container is created. Only the container's own resources have real floors:
# below them the runner cannot start (memory: a Python process with the
# interpreter loaded; pids: tini, the runner and its helper threads; cpu: the
# runner would not get ready within its start timeout; workspace: the tmpfs is
# never made smaller). Any positive value of the others works.
MINIMUM_LIMITS = SessionLimits(
    wall_time_ms=1,
    cpu_time_ms=1,
    memory_bytes=64 * MiB,
    pids=16,
    output_bytes=1,
    workspace_bytes=1 * MiB,
    idle_timeout_s=1,
    lifetime_s=1,
    code_bytes=1,
    cpu_millis=100,
    tool_timeout_ms=1,
)

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
    for suffix, unit in (("_ms", "ms"), ("_bytes", "bytes"), ("_s", "s")):
        if name.endswith(suffix):
            return unit
    return ""


# Data bytes per FileChunk of UploadFileStream / DownloadFileStream: small, so
# that what one stream can make the daemon buffer before it is checked is small.
FILE_CHUNK_BYTES = 256 << 10
