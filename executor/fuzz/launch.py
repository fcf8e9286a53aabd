"""Start a daemon for a fuzz run: `python -m executor.cli serve` in a subprocess.

A subprocess (not an in-process daemon) so that the canary lives in the
daemon's own environment, so that a crash is visible as an exit, and so that
the fuzzer and the daemon do not share a Python heap or GIL. The launcher is
the daemon's own (`executor.daemon.testing.DaemonProcess`): the daemon picks a
free port and reports it, so nothing here guesses one.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

from executor.daemon.testing import DaemonProcess, LaunchError

__all__ = ["DaemonProcess", "LaunchError", "start_daemon"]


def start_daemon(
    *,
    extra_env: Mapping[str, str],
    log_path: Path,
    pool_warm: int = 2,
    pool_max: int = 8,
    self_check: bool = True,
    ready_timeout_s: float = 600.0,
) -> DaemonProcess:
    """A started daemon for the fuzzer (raises LaunchError, leaving nothing behind)."""
    env = {
        "CORRAL_INSTANCE_ID": f"fuzz-{secrets.token_hex(6)}",
        "CORRAL_METRICS_ADDRESS": "0",
        "CORRAL_POOL_WARM": str(pool_warm),
        "CORRAL_POOL_MAX": str(pool_max),
        "CORRAL_SELF_CHECK": "true" if self_check else "false",
        "CORRAL_TOKENS": "",
        # Generous: DoS snippets kill containers, and refills on a busy machine are slow.
        "CORRAL_OPEN_WAIT_S": "60",
        **extra_env,
    }
    daemon = DaemonProcess(env=env, log_path=log_path)
    try:
        return daemon.start(timeout=ready_timeout_s)
    except BaseException:
        daemon.stop(timeout=30)
        raise
