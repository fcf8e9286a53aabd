"""Bearer-token authentication: who is calling.

The caller's identity is the name of the token it presented; sessions belong
to that name. With no tokens configured every caller is `ANONYMOUS` (the
daemon then relies on listening on loopback or a unix socket). Tokens are
compared with `hmac.compare_digest` against every configured token, so the
time taken does not reveal which token (or which prefix) matched.
"""

from __future__ import annotations

import contextvars
import hmac
from collections.abc import Iterable, Mapping

from executor.daemon.errors import Unauthenticated

ANONYMOUS = "anonymous"
_SCHEME = "bearer "
MAX_HEADER_CHARS = 4096  # longer authorization metadata is refused unread

# The caller of the RPC being handled, set by the server interceptor
# (`executor.daemon.interceptor`) around each handler; handlers read it with
# `current_caller()` and never look at the metadata themselves.
_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("corral_caller")


def current_caller() -> str:
    """The authenticated caller of the current RPC (set only by the interceptor)."""
    try:
        return _CALLER.get()
    except LookupError:
        raise RuntimeError(
            "no authenticated caller: the handler ran outside the interceptor"
        ) from None


def bind_caller(caller: str) -> None:
    """Bind the caller for the rest of the current RPC's task (interceptor only)."""
    _CALLER.set(caller)


class Authenticator:
    """Maps the `authorization` metadata of a call to a caller name."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = [(name, secret.encode()) for name, secret in tokens.items()]

    def identify(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
        """The caller's name, or Unauthenticated with a hint on how to fix the call."""
        if not self._tokens:
            return ANONYMOUS
        header = None
        for key, value in metadata or ():
            if key.lower() == "authorization":
                header = value.decode() if isinstance(value, bytes) else value
                break
        if header is None:
            raise Unauthenticated(
                "missing credentials: send metadata 'authorization: Bearer <token>'"
            )
        if len(header) > MAX_HEADER_CHARS or not header.lower().startswith(_SCHEME):
            raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
        presented = header[len(_SCHEME) :].strip().encode()
        caller = None
        for name, secret in self._tokens:
            # No early exit: every token is compared whatever matched.
            if hmac.compare_digest(presented, secret) and caller is None:
                caller = name
        if caller is None:
            raise Unauthenticated("invalid token: check the daemon's configured tokens")
        return caller
