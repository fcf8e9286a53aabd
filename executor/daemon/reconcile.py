"""Find and remove containers left behind by a daemon that is no longer running.

Every pool container carries `LABEL_MANAGED=1`, `LABEL_ROLE=pool`, the owning
daemon's `LABEL_INSTANCE`, and labels naming the daemon process: host name,
machine id (`/etc/machine-id` when readable), pid and process start time.

The rule (one Docker engine may be shared by several daemons, on this host or
on others: a remote engine, a test rig): a container is removed only when it
provably belongs to a dead daemon on this same host, that is when

- its host label equals this host's name, and its machine-id label (when both
  sides have one) equals this machine's, and
- its pid and start-time labels parse, and no process with that pid and that
  start time is running here (the start time guards against pid reuse).

Everything else is left alone and logged once at start: containers of another
host (their daemon's liveness cannot be seen from here), containers with
missing or malformed owner labels, and containers of live daemons (this one
and its siblings). Containers of other roles (tests, probes, doctor checks)
are never even listed. A host's own daemon cleans up its leftovers when it
restarts; an engine shared by hosts needs each host to run its daemon, or an
operator to remove the containers of a host that is gone for good
(`docker rm -f $(docker ps -aq --filter label=io.corral.daemon.host=NAME)`).

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
LABEL_DAEMON_MACHINE = "io.corral.daemon.machine"  # /etc/machine-id; "" when unreadable
ROLE_POOL = "pool"
MACHINE_ID_PATHS = ("/etc/machine-id", "/var/lib/dbus/machine-id")


def machine_id() -> str:
    """This machine's stable id (two hosts may share a host name), or "" when unknown."""
    for path in MACHINE_ID_PATHS:
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                value = f.read(64).strip()
        except OSError:
            continue
        if value.isalnum():
            return value
    return ""


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
        LABEL_DAEMON_MACHINE: machine_id(),
    }


def same_host(labels: dict[str, str]) -> bool:
    """True when the labels name this host (name, and machine id when both are known)."""
    if labels.get(LABEL_DAEMON_HOST) != socket.gethostname():
        return False
    theirs, ours = labels.get(LABEL_DAEMON_MACHINE, ""), machine_id()
    return not (theirs and ours and theirs != ours)


def verdict(labels: dict[str, str]) -> str:
    """What reconciliation does with a pool container: "remove", or why it keeps it.

    "remove" only for a dead daemon of this host; otherwise "foreign host",
    "unlabelled owner" or "owner alive".
    """
    if not same_host(labels):
        return "foreign host"
    try:
        pid = int(labels.get(LABEL_DAEMON_PID, ""))
        started = float(labels.get(LABEL_DAEMON_STARTED, ""))
    except ValueError:
        return "unlabelled owner"
    if pid <= 0:
        return "unlabelled owner"
    actual = _process_started(pid)
    if actual is not None and abs(actual - started) < 0.05:
        return "owner alive"
    return "remove"


def owner_alive(labels: dict[str, str]) -> bool:
    """True when the labels name a daemon process that is still running on this host."""
    return verdict(labels) == "owner alive"


def reconcile(client: Any, instance_id: str) -> list[str]:
    """Remove pool containers of dead daemons of this host; returns their names.

    `instance_id` is this daemon's: its own containers are kept by the same
    rule (this process is alive), so a fixed instance id shared by daemons on
    several hosts is harmless.
    """
    removed: list[str] = []
    kept: dict[str, int] = {}
    # The low-level listing returns labels without a per-container inspect, so a
    # container vanishing meanwhile (auto-remove) cannot fail the listing.
    found = client.api.containers(
        all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_ROLE}={ROLE_POOL}"]}
    )
    for entry in found:
        labels = entry.get("Labels") or {}
        name = ((entry.get("Names") or ["?"])[0]).lstrip("/")
        why = verdict(labels)
        if why != "remove":
            kept[why] = kept.get(why, 0) + 1
            continue
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
    if kept.get("foreign host") or kept.get("unlabelled owner"):
        log.info(
            "left pool containers this daemon cannot prove dead alone",
            extra={
                "foreign_host": kept.get("foreign host", 0),
                "unlabelled": kept.get("unlabelled owner", 0),
                "instance": instance_id,
            },
        )
    return removed
