"""Find and remove containers left behind by a daemon that is no longer running.

Every pool container carries `LABEL_MANAGED=1`, `LABEL_ROLE=pool`, the owning
daemon's `LABEL_INSTANCE`, and three labels naming the daemon process (host,
pid, process start time). At start the daemon removes pool containers whose
instance differs from its own, except those whose daemon process is provably
still alive on this host: several daemons (or test runs) may share one Docker
engine, and one must never destroy a live sibling's sessions. The process
start time guards against pid reuse. Containers of other roles (tests,
probes, doctor checks) are never touched here.

Most leftovers never need this: when a daemon dies its attach streams close,
each runner sees end of input and exits, and the `--rm` container goes with it.
Reconciliation catches what that misses (a hung runner, a crashed engine).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import psutil

from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE

log = logging.getLogger("corral.daemon.reconcile")

LABEL_DAEMON_HOST = "io.corral.daemon.host"
LABEL_DAEMON_PID = "io.corral.daemon.pid"
LABEL_DAEMON_STARTED = "io.corral.daemon.started"  # psutil create_time of the daemon process
ROLE_POOL = "pool"


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, ValueError):
        return None


def daemon_labels(instance_id: str) -> dict[str, str]:
    """Labels for every container this daemon process creates."""
    pid = os.getpid()
    return {
        LABEL_MANAGED: "1",
        LABEL_INSTANCE: instance_id,
        LABEL_ROLE: ROLE_POOL,
        LABEL_DAEMON_HOST: socket.gethostname(),
        LABEL_DAEMON_PID: str(pid),
        LABEL_DAEMON_STARTED: f"{_process_started(pid) or 0:.2f}",
    }


def owner_alive(labels: dict[str, str]) -> bool:
    """True when the labels name a daemon process that is still running on this host."""
    if labels.get(LABEL_DAEMON_HOST) != socket.gethostname():
        return False
    try:
        pid = int(labels.get(LABEL_DAEMON_PID, ""))
        started = float(labels.get(LABEL_DAEMON_STARTED, ""))
    except ValueError:
        return False
    actual = _process_started(pid)
    return actual is not None and abs(actual - started) < 0.05


def reconcile(client: Any, instance_id: str) -> list[str]:
    """Remove pool containers of dead daemon instances; returns their names."""
    removed: list[str] = []
    # The low-level listing returns labels without a per-container inspect, so a
    # container vanishing meanwhile (auto-remove) cannot fail the listing.
    found = client.api.containers(
        all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_ROLE}={ROLE_POOL}"]}
    )
    for entry in found:
        labels = entry.get("Labels") or {}
        name = ((entry.get("Names") or ["?"])[0]).lstrip("/")
        if owner_alive(labels):
            continue  # ours, or a live sibling daemon's container
        try:
            client.api.remove_container(entry["Id"], force=True)
            removed.append(name)
        except Exception as exc:  # already gone, or being removed by --rm
            log.debug("leftover removal failed", extra={"container": name, "error": str(exc)})
    if removed:
        log.info(
            "removed containers of dead daemon instances",
            extra={"count": len(removed), "names": ",".join(removed)[:200]},
        )
    return removed
