"""Test helpers: a real daemon on an ephemeral port, with real Docker.

`running_daemon(**overrides)` runs a `Daemon` on its own event loop in a
background thread and yields a handle once the pool is warm (for lifecycle
tests, the fuzzer and benchmarks, `DaemonProcess` runs `corrald serve` as a
subprocess on a port the daemon picks and reports):

    with running_daemon(pool_warm=1) as d:
        channel = grpc.insecure_channel(d.target)

On exit every session and container of that daemon is destroyed. `serving`
is the same as an async context manager, for tests already on a loop.
Defaults differ from production only where tests need them: an ephemeral
port, metrics off, a small pool, no self-check, a short drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from executor.daemon.config import DaemonConfig
from executor.daemon.server import Daemon

TEST_DEFAULTS: dict[str, Any] = {
    "listen": "127.0.0.1:0",
    "metrics_address": "0",
    "pool_warm": 2,
    "pool_max": 8,
    "self_check": False,
    "shutdown_drain_s": 2.0,
    "health_check_interval_s": 5.0,
    "open_wait_s": 30.0,
}
READY_TIMEOUT_S = 180.0  # the first run may build the sandbox image


@dataclass
class DaemonHandle:
    daemon: Daemon
    loop: asyncio.AbstractEventLoop | None = None

    @property
    def target(self) -> str:
        return self.daemon.target

    @property
    def config(self) -> DaemonConfig:
        return self.daemon.config

    @property
    def instance_id(self) -> str:
        return self.daemon.instance_id

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.metrics_port}/metrics"

    def call(self, coro: Any, timeout: float = 60.0) -> Any:
        """Run a coroutine on the daemon's loop (threaded handle only)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


def test_config(**overrides: Any) -> DaemonConfig:
    return DaemonConfig().replace(**{**TEST_DEFAULTS, **overrides})


@contextlib.asynccontextmanager
async def serving(config: DaemonConfig, *, docker_client: Any = None) -> AsyncIterator[Daemon]:
    daemon = Daemon(config, docker_client=docker_client)
    try:
        await daemon.start()
        if not await daemon.wait_ready(READY_TIMEOUT_S):
            raise RuntimeError("the daemon's pool did not get warm; see the daemon log")
        yield daemon
    finally:
        await daemon.stop(drain_s=config.shutdown_drain_s)


@contextlib.contextmanager
def running_daemon(*, docker_client: Any = None, **overrides: Any) -> Iterator[DaemonHandle]:
    """A real daemon in a background thread; stopped and cleaned up on exit."""
    config = test_config(**overrides)
    started = threading.Event()
    box: dict[str, Any] = {}

    def main() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        stop = asyncio.Event()
        box["loop"], box["stop"] = loop, stop

        async def run() -> None:
            try:
                async with serving(config, docker_client=docker_client) as daemon:
                    box["daemon"] = daemon
                    started.set()
                    await stop.wait()
            except BaseException as exc:
                box["error"] = exc
                started.set()

        try:
            loop.run_until_complete(run())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=main, name="corral-test-daemon", daemon=True)
    thread.start()
    started.wait(READY_TIMEOUT_S + 30)
    if "error" in box:
        thread.join(30)
        raise RuntimeError(f"the test daemon failed to start: {box['error']}") from box["error"]
    if "daemon" not in box:
        raise RuntimeError("the test daemon did not start in time")
    handle = DaemonHandle(box["daemon"], box["loop"])
    try:
        yield handle
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(120)


ROOT = Path(__file__).resolve().parents[2]


class LaunchError(Exception):
    """The daemon did not start; the message carries its exit code and log tail."""


class DaemonProcess:
    """`python -m executor.cli serve FLAGS` in a subprocess: the one daemon launcher.

    Used by the lifecycle tests, the fuzzer (`executor.fuzz.launch`) and the
    benchmarks. The daemon listens on a free port (`--listen 127.0.0.1:0`
    unless the flags or env say otherwise) and reports where it listens in a
    `--ready-file` once its pool is warm: no port is guessed, so parallel runs
    cannot race for one. It logs JSON to a file, not a pipe: nothing in the
    calling process has to wake up per log line (which would skew benchmarks),
    and a chatty daemon can never block on a full pipe. `log_path` keeps that
    file (the fuzzer's report links it); otherwise it is removed by `stop()`.
    """

    def __init__(
        self,
        *flags: str,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        base = {**os.environ, **(env or {})}
        base["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), base.get("PYTHONPATH")) if p)
        self._dir = tempfile.mkdtemp(prefix="corrald-")
        self.ready_path = Path(self._dir) / "ready.json"
        self._keep_log = log_path is not None
        if log_path is None:
            log_path = Path(self._dir) / "daemon.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        listen = [] if _names_listen(flags, base) else ["--listen=127.0.0.1:0"]
        with open(log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "executor.cli",
                    "serve",
                    "--log-format=json",
                    f"--ready-file={self.ready_path}",
                    *listen,
                    *flags,
                ],
                cwd=ROOT,
                env=base,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._records: list[dict[str, Any] | str] = []
        self._offset = 0
        self._cursor = 0  # wait_for consumes records in order
        self.ready: dict[str, Any] = {}
        self.target = ""
        self.instance_id = ""

    @property
    def log(self) -> list[dict[str, Any] | str]:
        """Every record logged so far (JSON objects; other lines as text)."""
        self._read()
        return self._records

    def _read(self) -> None:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # whole lines only
        self._offset += end
        for raw in data[:end].decode("utf-8", "replace").splitlines():
            try:
                item: dict[str, Any] | str = json.loads(raw)
            except ValueError:
                item = raw
            self._records.append(item)

    def wait_for(self, msg: str, timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """The next log record whose message is `msg` (AssertionError with the log tail)."""
        deadline = time.monotonic() + timeout
        while True:
            exited = self.proc.poll() is not None
            records = self.log
            while self._cursor < len(records):
                item = records[self._cursor]
                self._cursor += 1
                if isinstance(item, dict) and item.get("msg") == msg:
                    return item
            if exited or time.monotonic() > deadline:
                raise AssertionError(f"daemon never logged {msg!r}; log tail: {records[-20:]}")
            time.sleep(0.05)

    def start(self, timeout: float = READY_TIMEOUT_S) -> DaemonProcess:
        """Wait for the ready file (pool warm); sets `target`, `instance_id`, `ready`."""
        deadline = time.monotonic() + timeout
        while not self.ready_path.exists():
            if self.proc.poll() is not None:
                raise LaunchError(
                    f"the daemon exited with code {self.proc.returncode} during start-up; "
                    f"log tail: {self.log[-10:]} (log: {self.log_path})"
                )
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"the daemon was not ready within {timeout:.0f} s; log tail: "
                    f"{self.log[-10:]} (log: {self.log_path})"
                )
            time.sleep(0.05)
        self.ready = json.loads(self.ready_path.read_text(encoding="utf-8"))
        self.target = str(self.ready["address"])
        self.instance_id = str(self.ready["instance_id"])
        return self

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (staged shutdown), then SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        code = self.proc.wait(30)
        self._read()
        if not self._keep_log:
            self.log_path.unlink(missing_ok=True)
        shutil.rmtree(self._dir, ignore_errors=True)
        return code

    def __enter__(self) -> DaemonProcess:
        try:
            return self.start()
        except BaseException:
            self.stop(timeout=10)  # never leave a half-started daemon (and its pool) behind
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _names_listen(flags: tuple[str, ...], env: Mapping[str, str]) -> bool:
    return "CORRAL_LISTEN" in env or any(
        f == "--listen" or f.startswith("--listen=") for f in flags
    )
