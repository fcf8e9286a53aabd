"""One exception tree for everything the agent client raises.

Every failure of a gRPC call becomes a `CorralError` subclass chosen by its
status code (`from_rpc_error`, the single mapping), carrying the code and the
daemon's message, so callers can catch the class they can act on (retry on
`Unavailable`, fix the token on `Unauthenticated`, ...). What a snippet does
wrong is never an exception: it is a `Result` with a verdict.
"""

from __future__ import annotations

import grpc


class CorralError(Exception):
    """Base of every error raised by the `agent` package."""

    code: grpc.StatusCode | None = None
    hint: str = ""

    def __init__(
        self, message: str, *, code: grpc.StatusCode | None = None, details: str | None = None
    ) -> None:
        self.message = message
        self.details = details if details is not None else message  # the daemon's own words
        if code is not None:
            self.code = code
        text = message
        if self.hint and self.hint not in message:
            text = f"{message} ({self.hint})"
        super().__init__(text)


class Unavailable(CorralError):
    code = grpc.StatusCode.UNAVAILABLE
    hint = "is the daemon running? start it with `corrald serve` and check --target/CORRAL_TARGET"


class Unauthenticated(CorralError):
    code = grpc.StatusCode.UNAUTHENTICATED
    hint = "pass the daemon's token with token=... or CORRAL_TOKEN"


class PermissionDenied(CorralError):
    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(CorralError):
    code = grpc.StatusCode.NOT_FOUND
    hint = "the session was closed, expired or lost; open a new one"


class ResourceExhausted(CorralError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    hint = "the daemon is at capacity; retry later or use another daemon"


class InvalidArgument(CorralError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(CorralError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class SessionLost(CorralError):
    """The session lost its container (ABORTED); the daemon keeps it for `recover()`."""

    code = grpc.StatusCode.ABORTED
    hint = (
        "the session's sandbox was lost; call recover() to continue the session from its "
        "last checkpoint in a new container, or close() it and open a new session"
    )


class Unimplemented(CorralError):
    code = grpc.StatusCode.UNIMPLEMENTED
    hint = "the daemon does not know this call; upgrade the daemon or use a matching client"


class DeadlineExceeded(CorralError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    hint = "the call took longer than its timeout; raise timeout= or the session's limits"


class Cancelled(CorralError):
    code = grpc.StatusCode.CANCELLED


class Internal(CorralError):
    code = grpc.StatusCode.INTERNAL


class ProtocolError(CorralError):
    """The daemon answered something the API does not allow (e.g. no result)."""


class SessionClosed(CorralError):
    """The session was closed on this side; open a new one."""


class ClientClosed(SessionClosed):
    """The Client was closed; its sessions can no longer be used. Make a new Client."""


class CorralWarning(UserWarning):
    """Something the daemon accepted but you probably did not mean (see `Session.warnings`)."""


class ToolError(CorralError):
    """A tool definition or a tool call's arguments are invalid."""


class ModelError(CorralError):
    """The language model endpoint failed or answered something unusable."""


class AgentError(CorralError):
    """The agent loop cannot continue (e.g. its sandbox session was lost)."""


_BY_CODE: dict[grpc.StatusCode, type[CorralError]] = {
    cls.code: cls
    for cls in (
        Unavailable,
        Unauthenticated,
        PermissionDenied,
        NotFound,
        ResourceExhausted,
        InvalidArgument,
        FailedPrecondition,
        SessionLost,
        Unimplemented,
        DeadlineExceeded,
        Cancelled,
        Internal,
    )
    if cls.code is not None
}


def from_rpc_error(exc: grpc.RpcError) -> CorralError:
    """The typed error for a failed gRPC call (raise it `from exc`)."""
    code_fn = getattr(exc, "code", None)
    details_fn = getattr(exc, "details", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    details = (details_fn() if callable(details_fn) else None) or str(exc)
    cls = _BY_CODE.get(code, CorralError)
    name = code.name if isinstance(code, grpc.StatusCode) else str(code)
    return cls(f"{name}: {details}", code=code, details=details)
