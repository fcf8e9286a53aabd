"""Session routes: how a proxy in front of many daemons finds a session's daemon.

A session id names the daemon that holds it: ``<route>/<token>``, where the
route is the address the proxy reaches that daemon at (``host:port``, the
daemon's ``advertise_address``; its instance id when none is set). The client
sends a session's route as the ``corral-route`` metadata on every call after
OpenSession, so a gRPC-aware proxy picks the daemon without knowing anything
about sessions; calls without a route (OpenSession, health, stats) are
balanced over all daemons. Standard library only: client and daemon share it.
"""

from __future__ import annotations

import re

ROUTE_METADATA = "corral-route"  # gRPC metadata key carrying a session's route
ROUTE_SEPARATOR = "/"  # session id = route + "/" + token
_ROUTE_RE = re.compile(r"^[A-Za-z0-9._:\[\]-]{1,255}$")


def route_of(session_id: str) -> str:
    """The route part of a session id ('' for an id without one)."""
    route, sep, _ = session_id.rpartition(ROUTE_SEPARATOR)
    return route if sep else ""


def check_route(route: str) -> str:
    """Return `route` when it is usable as a route, else raise ValueError saying why."""
    if not _ROUTE_RE.match(route):
        raise ValueError(
            f"route {route[:80]!r} must be 1-255 characters of letters, digits, '.', ':', '-', "
            "'_' or brackets (set advertise_address to the host:port the proxy reaches "
            "this daemon at)"
        )
    return route
