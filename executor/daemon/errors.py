"""The daemon's exception tree and its one mapping to gRPC status codes.

Every error a caller can see is a `DaemonError` subclass; `grpc_status()` is
the only place that decides which status code each class becomes, and the
server interceptor (`interceptor.Gate`) is the only place that applies it.
Every status listed here has a client class in `agent.errors`. Messages
say what to change (which field, which maximum, which config key) because the
reader is usually a developer looking at an agent's log.
"""

from __future__ import annotations

import grpc

from proto.limits import LIMIT_MINIMUMS, below_minimum_message


class DaemonError(Exception):
    """Base of every error the daemon reports to a caller (INTERNAL unless mapped below)."""


class ConfigError(DaemonError):
    """The daemon's configuration is invalid; raised before serving."""


class InvalidArgument(DaemonError):
    """The request is malformed: a bad field, an unknown kind, an unsafe path."""


class LimitTooHigh(InvalidArgument):
    """A requested limit exceeds the server's maximum for that field."""

    def __init__(self, field: str, requested: int, maximum: int) -> None:
        super().__init__(
            f"limits.{field}={requested} exceeds the server's maximum of {maximum}; "
            f"ask for at most {maximum} (or 0 for the default), or raise max_{field} "
            "in the daemon's config"
        )
        self.field = field
        self.maximum = maximum


class LimitTooLow(InvalidArgument):
    """A requested limit is below the least a session can run with."""

    def __init__(self, field: str, requested: int) -> None:
        super().__init__(below_minimum_message(field, requested))
        self.field = field
        self.minimum = LIMIT_MINIMUMS[field]


class TooLarge(InvalidArgument):
    """A payload (code, file, variables) is larger than the configured cap."""

    def __init__(self, what: str, size: int, maximum: int, config_key: str) -> None:
        super().__init__(
            f"{what} is {size} bytes; the server accepts at most {maximum} bytes "
            f"(config: {config_key})"
        )


class Unauthenticated(DaemonError):
    """Missing or wrong bearer token."""


class SessionNotFound(DaemonError):
    """No such session for this caller (also when it belongs to another caller)."""

    def __init__(self, session_id: str) -> None:
        shown = session_id[:8] + "..." if len(session_id) > 8 else session_id
        super().__init__(
            f"session {shown!r} not found: it was closed, expired, lost its container, "
            "or was opened by another caller; open a new session"
        )


class SessionElsewhere(SessionNotFound):
    """The session id names another daemon's route: this daemon never holds it."""

    def __init__(self, session_id: str, route: str, own_route: str) -> None:
        from proto.routing import ROUTE_METADATA

        DaemonError.__init__(
            self,
            f"session not found on this daemon: its id names route {route[:80]!r}, and this "
            f"daemon's route is {own_route[:80]!r}; a proxy in front of several daemons must "
            f"send each call to the daemon its session id names, using the {ROUTE_METADATA!r} "
            "metadata the Corral client sets (check the proxy's route map)",
        )


class SessionBusy(DaemonError):
    """The session is already running a snippet or another sandbox call."""

    def __init__(self) -> None:
        super().__init__(
            "the session is already running a snippet; wait for its result "
            "(one snippet at a time per session) or open another session"
        )


class SessionLost(DaemonError):
    """The session's container died outside a snippet; the owner may `recover()` it."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"the session's container is gone ({detail}); call recover() to continue it "
            "from its last checkpoint in a new container, or close it and open a new session"
        )


class SandboxCallFailed(DaemonError):
    """The runner refused an operation (e.g. reading a missing file)."""


class PoolExhausted(DaemonError):
    """No container became available within the open wait."""


class ShuttingDown(DaemonError):
    """The daemon is draining and accepts no new work."""


class SandboxUnavailable(DaemonError):
    """No healthy container could be bound to a session (init failed on every retry).

    UNAVAILABLE, not FAILED_PRECONDITION: nothing is wrong with the request, and
    the same call may succeed a moment later once the pool has replaced them.
    """


class CheckpointNotFound(DaemonError):
    """No such checkpoint in this session (ids are scoped to the session that took them)."""

    def __init__(self, checkpoint_id: str) -> None:
        shown = checkpoint_id[:12] + "..." if len(checkpoint_id) > 12 else checkpoint_id
        super().__init__(
            f"checkpoint {shown!r} not found in this session: it was dropped, belongs to "
            "another session, or was lost with the container; list them with checkpoints()"
        )


class CheckpointLimit(DaemonError):
    """The session already holds limits.max_checkpoints checkpoints."""

    def __init__(self, held: int) -> None:
        super().__init__(
            f"the session holds {held} checkpoints, its limit (limits.max_checkpoints); "
            "drop one with drop_checkpoint(), or open the session with a higher "
            "max_checkpoints (server cap: max_max_checkpoints)"
        )


class SessionNeedsRecovery(DaemonError):
    """The owner's session lost its container; `recover()` continues it."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"the session lost its container ({detail}); call recover() to continue it "
            "from its last checkpoint in a new container, or close() it"
        )


class NeedsStream(DaemonError):
    """A unary Run on a session with tools: its tool calls need Execute's stream."""


class CannotReplay(DaemonError):
    """Fork or recover is impossible (history too large, or the session is not lost)."""


_STATUS: tuple[tuple[type[DaemonError], grpc.StatusCode], ...] = (
    # Order matters: subclasses before their bases.
    (LimitTooHigh, grpc.StatusCode.INVALID_ARGUMENT),
    (LimitTooLow, grpc.StatusCode.INVALID_ARGUMENT),
    (TooLarge, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (SessionNotFound, grpc.StatusCode.NOT_FOUND),
    (CheckpointNotFound, grpc.StatusCode.NOT_FOUND),
    (CheckpointLimit, grpc.StatusCode.FAILED_PRECONDITION),
    (SessionNeedsRecovery, grpc.StatusCode.ABORTED),
    (CannotReplay, grpc.StatusCode.FAILED_PRECONDITION),
    (NeedsStream, grpc.StatusCode.FAILED_PRECONDITION),
    (SessionBusy, grpc.StatusCode.FAILED_PRECONDITION),
    (SandboxCallFailed, grpc.StatusCode.FAILED_PRECONDITION),
    (SessionLost, grpc.StatusCode.ABORTED),
    (PoolExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (ShuttingDown, grpc.StatusCode.UNAVAILABLE),
    (SandboxUnavailable, grpc.StatusCode.UNAVAILABLE),
    (ConfigError, grpc.StatusCode.INTERNAL),
)


def grpc_status(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status for an exception (INTERNAL for anything unexpected)."""
    for cls, code in _STATUS:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL
