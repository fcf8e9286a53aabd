"""Test helpers: a real daemon on an ephemeral port, with real Docker.

`running_daemon(**overrides)` runs a `Daemon` on its own event loop in a
background thread and yields a handle once the pool is warm:

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
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
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
