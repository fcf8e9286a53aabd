"""Sessions: who owns which container, for how long, doing what.

A session id is `<route>/<token>` (proto/routing.py): the route names this
daemon for a proxy in front of many (its advertise_address), the token is
`secrets.token_urlsafe(16)` (128 random bits), so ids cannot be guessed or
enumerated. An id whose route is not this daemon's is refused before any
lookup (NOT_FOUND with a routing hint), never searched under another name; and a session found under another caller's name is
reported exactly like a missing one (NOT_FOUND), so ids do not leak across
callers either. Each session has one lock: the container channel carries one
request at a time, so a second snippet (or any sandbox call) while one runs is
refused at once rather than queued.

A session whose container is lost is kept aside (`mark_lost`) with its
history and checkpoints until its idle timeout, so its owner can `recover()`
it into a new container; every other call on it tells the owner so (ABORTED)
and tells anyone else NOT_FOUND. `detached` is the client's business (it
decides what its close() closes); the daemon only reports it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from executor.daemon.errors import (
    LimitTooHigh,
    SessionBusy,
    SessionElsewhere,
    SessionNeedsRecovery,
    SessionNotFound,
)
from executor.daemon.lifecycle import MAX_LOST_SESSIONS, Checkpoint, History, RunControl
from proto.limits import LIMIT_FIELDS, SessionLimits
from proto.routing import ROUTE_SEPARATOR, route_of

# Limits the container is created with: a session asking for other values
# than the pool's cannot take a warm container (they are fixed at creation).
CONTAINER_LIMIT_FIELDS: tuple[str, ...] = ("memory_bytes", "pids", "workspace_bytes", "cpu_millis")


def resolve_limits(
    requested: Mapping[str, int], defaults: SessionLimits, maxima: SessionLimits
) -> SessionLimits:
    """Defaults for zero fields, and LimitTooHigh naming the first field above its maximum."""
    for name in LIMIT_FIELDS:
        value = int(requested.get(name, 0) or 0)
        maximum = getattr(maxima, name)
        if value > maximum:
            raise LimitTooHigh(name, value, maximum)
    return defaults.merged({k: int(v) for k, v in requested.items() if k in LIMIT_FIELDS})


def container_limits_differ(a: SessionLimits, b: SessionLimits) -> bool:
    return any(getattr(a, n) != getattr(b, n) for n in CONTAINER_LIMIT_FIELDS)


def new_session_id(route: str = "") -> str:
    """`<route>/<token>`; a bare token when the registry has no route (unit tests)."""
    token = secrets.token_urlsafe(16)
    return f"{route}{ROUTE_SEPARATOR}{token}" if route else token


@dataclass(eq=False)
class Session:
    """One open session: a caller, a container (the pool's object) and limits."""

    id: str
    owner: str
    sandbox: Any
    limits: SessionLimits
    labels: dict[str, str] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    lost: bool = False
    has_tools: bool = False  # no tools: Execute needs no reader for tool answers
    # --- sessions that survive (executor/daemon/lifecycle.py) ---
    init: dict[str, Any] = field(default_factory=dict)  # the init frame's fields, for replay
    history: History = field(default_factory=History)
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    run: RunControl | None = None  # the running snippet, while one runs
    lost_detail: str = ""
    recovering: bool = False

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def expiry(self, now: float) -> str | None:
        """Why the session should end now ("lifetime" or "idle"), or None."""
        if now - self.created >= self.limits.lifetime_s:
            return "lifetime"
        # A running snippet is activity, not idleness.
        if not self.lock.locked() and now - self.last_used >= self.limits.idle_timeout_s:
            return "idle"
        return None

    def claim(self) -> asyncio.Lock:
        """The session's lock, or SessionBusy at once when something already holds it."""
        if self.lock.locked():
            raise SessionBusy()
        return self.lock


class SessionRegistry:
    """Open sessions by id. Owner and route checks live here, nowhere else.

    route: this daemon's route (its advertise_address); every id it hands out
    starts with it, and an id naming another route is refused before lookup.
    """

    def __init__(self, route: str = "") -> None:
        self.route = route
        self._sessions: dict[str, Session] = {}
        self._lost: dict[str, Session] = {}  # recoverable by their owner until idle expiry

    def __len__(self) -> int:
        return len(self._sessions)

    def add(self, session: Session) -> None:
        self._sessions[session.id] = session

    def new_id(self) -> str:
        return new_session_id(self.route)

    def check_route(self, session_id: str) -> None:
        """SessionElsewhere when the id names another daemon (a proxy sent it here)."""
        route = route_of(session_id)
        if route != self.route:
            raise SessionElsewhere(session_id, route, self.route)

    def get(self, session_id: str, caller: str) -> Session:
        self.check_route(session_id)
        session = self._sessions.get(session_id)
        if session is None or session.owner != caller or session.lost:
            lost = self._lost.get(session_id)
            if lost is not None and lost.owner == caller:
                raise SessionNeedsRecovery(lost.lost_detail or "the container died")
            raise SessionNotFound(session_id)
        return session

    # -- lost sessions, kept for recover() ----------------------------------

    def mark_lost(self, session: Session, detail: str) -> None:
        """Keep a session whose container is gone, for its owner to recover."""
        session.lost = True
        session.lost_detail = detail[:300]
        session.run = None
        session.touch()  # its idle timeout counts from the loss
        self._lost[session.id] = session
        while len(self._lost) > MAX_LOST_SESSIONS:  # bounded memory, whatever callers do
            self._lost.pop(next(iter(self._lost)))

    def get_lost(self, session_id: str, caller: str) -> Session:
        self.check_route(session_id)
        session = self._lost.get(session_id)
        if session is None or session.owner != caller:
            raise SessionNotFound(session_id)
        return session

    def revive(self, session: Session) -> None:
        """A recovered session: active again under the same id."""
        self._lost.pop(session.id, None)
        session.lost = False
        session.lost_detail = ""
        session.touch()
        self._sessions[session.id] = session

    def forget_lost(self, session_id: str, caller: str) -> bool:
        """Close a lost session (its owner's CloseSession): True when there was one."""
        self.check_route(session_id)
        session = self._lost.get(session_id)
        if session is None or session.owner != caller:
            return False
        del self._lost[session_id]
        return True

    def lost_count(self) -> int:
        return len(self._lost)

    def pop(self, session_id: str) -> Session | None:
        return self._sessions.pop(session_id, None)

    def all(self) -> list[Session]:
        return list(self._sessions.values())

    def expired(self, now: float | None = None) -> list[tuple[Session, str]]:
        now = time.monotonic() if now is None else now
        for sid, lost in list(self._lost.items()):
            # Nothing to destroy: the container is already gone; forget the history.
            if lost.expiry(now) and not lost.recovering:
                del self._lost[sid]
        out = []
        for s in self._sessions.values():
            reason = s.expiry(now)
            if reason:
                out.append((s, reason))
        return out
