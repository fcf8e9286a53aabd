"""Start a daemon for a fuzz run: `python -m executor.cli serve` in a subprocess.

A subprocess (not an in-process daemon) so that the canary lives in the
daemon's own environment, so that a crash is visible as an exit, and so that
the fuzzer and the daemon do not share a Python heap or GIL.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from executor.fuzz.target import Target, TargetError


class LaunchError(Exception):
    """The daemon did not start; the message points at its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DaemonProcess:
    def __init__(
        self,
        *,
        extra_env: Mapping[str, str],
        log_path: Path,
        pool_warm: int = 2,
        pool_max: int = 8,
        self_check: bool = True,
        ready_timeout_s: float = 600.0,
    ) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.instance_id = f"fuzz-{secrets.token_hex(6)}"
        self.log_path = log_path
        env = dict(os.environ)
        env.update(
            {
                "CORRAL_LISTEN": self.target,
                "CORRAL_INSTANCE_ID": self.instance_id,
                "CORRAL_METRICS_ADDRESS": "0",
                "CORRAL_POOL_WARM": str(pool_warm),
                "CORRAL_POOL_MAX": str(pool_max),
                "CORRAL_SELF_CHECK": "true" if self_check else "false",
                "CORRAL_TOKENS": "",
                # Generous: DoS snippets kill containers, and refills on a busy machine are slow.
                "CORRAL_OPEN_WAIT_S": "60",
            }
        )
        env.update(extra_env)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "executor.cli", "serve"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        try:
            self._wait_ready(ready_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        target = Target(self.target)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise LaunchError(
                        f"the daemon exited with code {self.proc.returncode} during start-up; "
                        f"see {self.log_path}"
                    )
                if target.health_status(timeout=2.0) == "SERVING":
                    try:
                        target.stats()
                        return
                    except TargetError:
                        pass
                time.sleep(0.5)
        finally:
            target.close()
        raise LaunchError(f"the daemon was not SERVING within {timeout:.0f}s; see {self.log_path}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (graceful: the daemon destroys its containers), then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
