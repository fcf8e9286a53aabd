"""The warm container pool: acquire, release, destroy.

`warm` containers are kept started with the runner ready, so opening a session
is a dictionary pop plus one init frame instead of a `docker run`. The pool
never hands a container to a second session: `release` destroys it. Counting
is strict: warm + starting + in use + being destroyed never exceeds `pool_max`,
so a burst of opens cannot start more containers than the host was sized for.

Background work (one task each):
- refill: starts containers until `pool_warm` (plus one per waiting opener)
  are warm, at most `refill_concurrency` at a time, and only while the host's
  available memory (psutil) stays above the configured floor;
- health: pings idle warm containers one at a time and replaces dead ones.

Starting and destroying containers are blocking Docker calls; they run in
threads so the event loop keeps serving snippets meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import psutil

from executor.daemon.errors import PoolExhausted, ShuttingDown
from executor.daemon.metrics import DaemonMetrics
from executor.daemon.sessions import CONTAINER_LIMIT_FIELDS
from proto.limits import SessionLimits

log = logging.getLogger("corral.daemon.pool")

FAILURE_BACKOFF_S = 1.0  # pause after a failed start, so a broken image cannot spin the CPU
REFILL_DELAY_S = 0.05  # after a warm container is taken, refill starts this much later
MEMORY_RECHECK_S = 1.0  # how often refill re-reads host memory while below the floor


class PooledSandbox(Protocol):
    """What the pool needs from a container handle (executor.sandbox.driver.Sandbox)."""

    container_id: str

    def ping(self, timeout: float = ...) -> bool: ...
    def destroy(self) -> None: ...


StartFn = Callable[[SessionLimits], Any]
"""Starts one container with these limits and returns it with its runner ready (blocking)."""


@dataclass
class PoolStats:
    warm: int
    starting: int
    in_use: int
    destroying: int
    max_containers: int


def available_memory() -> int:
    return int(psutil.virtual_memory().available)


class Pool:
    def __init__(
        self,
        start: StartFn,
        limits: SessionLimits,
        *,
        warm: int,
        max_containers: int,
        refill_concurrency: int,
        min_available_memory: int,
        health_interval_s: float,
        metrics: DaemonMetrics,
        memory_probe: Callable[[], int] = available_memory,
    ) -> None:
        self._start_fn = start
        self.limits = limits
        self.target = warm
        self.max = max_containers
        self.refill_concurrency = refill_concurrency
        self.min_available_memory = min_available_memory
        self.health_interval_s = health_interval_s
        self.metrics = metrics
        self._memory_probe = memory_probe
        self._warm: collections.deque[Any] = collections.deque()
        self._in_use: set[Any] = set()
        self._starting = 0  # pool refills in flight
        self._reserved = 0  # dedicated (custom-limit) starts in flight
        self._destroying = 0
        self._waiting = 0  # openers waiting for a warm container
        self._cond = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._bg: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._last_error = ""
        self._memory_low = False
        self._ready = asyncio.Event()

    # --- introspection -------------------------------------------------------

    def stats(self) -> PoolStats:
        return PoolStats(
            warm=len(self._warm),
            starting=self._starting + self._reserved,
            in_use=len(self._in_use),
            destroying=self._destroying,
            max_containers=self.max,
        )

    @property
    def total(self) -> int:
        return (
            len(self._warm) + self._starting + self._reserved + len(self._in_use) + self._destroying
        )

    async def wait_warm(self, timeout: float | None = None) -> bool:
        """True once the pool first reached its warm target (or target is 0)."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        if self.target == 0:
            self._ready.set()
        self._tasks.append(asyncio.create_task(self._refill_loop(), name="pool-refill"))
        if self.health_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._health_loop(), name="pool-health"))

    async def close(self) -> None:
        """Stop background work and destroy every container the pool knows of."""
        self._closed = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        async with self._cond:
            self._cond.notify_all()
        # Starts in flight finish in their threads; their containers are destroyed on arrival.
        victims = list(self._warm) + list(self._in_use)
        self._warm.clear()
        self._in_use.clear()
        await asyncio.gather(*(self._destroy_now(s) for s in victims), return_exceptions=True)
        deadline = time.monotonic() + 30
        while (self._bg or self._starting or self._reserved) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    # --- verbs ---------------------------------------------------------------

    async def acquire(self, limits: SessionLimits, timeout: float) -> Any:
        """A container for one session: warm when its limits match the pool's, else dedicated.

        Waits up to `timeout` seconds, then PoolExhausted with the reason.
        """
        if self._closed:
            raise ShuttingDown("the daemon is shutting down; retry on another daemon")
        if _same_container_limits(limits, self.limits):
            return await self._take_warm(timeout)
        return await self._start_dedicated(limits, timeout)

    def release(self, sandbox: Any) -> None:
        """The session is over: destroy its container (never reused), in the background."""
        if sandbox in self._in_use:
            self._in_use.discard(sandbox)
            self._destroying += 1
            self._spawn(self._destroy_counted(sandbox))

    async def destroy(self, sandbox: Any) -> None:
        """Destroy now and wait (used when a container misbehaved)."""
        if sandbox in self._in_use:
            self._in_use.discard(sandbox)
            self._destroying += 1
            await self._destroy_counted(sandbox)

    # --- internals -----------------------------------------------------------

    async def _take_warm(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        async with self._cond:
            self._waiting += 1
            self._cond.notify_all()
            try:
                while not self._warm:
                    if self._closed:
                        raise ShuttingDown("the daemon is shutting down; retry on another daemon")
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise PoolExhausted(self._exhausted_message(timeout))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._cond.wait(), remaining)
                sandbox = self._warm.popleft()
                self._in_use.add(sandbox)
                # Refill a moment later: a container start is Docker API work in a
                # thread that would compete with this open's init for the GIL.
                asyncio.get_running_loop().call_later(REFILL_DELAY_S, self._poke)
                return sandbox
            finally:
                self._waiting -= 1

    async def _start_dedicated(self, limits: SessionLimits, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        async with self._cond:
            while self.total >= self.max or self._memory_below_floor():
                if self._closed:
                    raise ShuttingDown("the daemon is shutting down; retry on another daemon")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PoolExhausted(self._exhausted_message(timeout))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cond.wait(), min(remaining, MEMORY_RECHECK_S))
            self._reserved += 1
        start = asyncio.ensure_future(asyncio.to_thread(self._start_fn, limits))
        try:
            sandbox = await asyncio.shield(start)
        except asyncio.CancelledError:
            # The opener went away; the start finishes in its thread: destroy what it made.
            start.add_done_callback(self._destroy_orphan)
            raise
        except Exception as exc:
            self.metrics.containers_failed.inc()
            raise PoolExhausted(
                f"could not start a container with the requested limits: {exc}"
            ) from exc
        finally:
            async with self._cond:
                self._reserved -= 1
                self._cond.notify_all()
        self.metrics.containers_created.inc()
        if self._closed:
            await asyncio.to_thread(_quiet_destroy, sandbox)
            raise ShuttingDown("the daemon is shutting down; retry on another daemon")
        self._in_use.add(sandbox)
        return sandbox

    def _memory_below_floor(self) -> bool:
        low = self._memory_probe() < self.min_available_memory
        if low and not self._memory_low:
            log.warning(
                "host memory below floor; not starting containers",
                extra={"floor_bytes": self.min_available_memory},
            )
        self._memory_low = low
        return low

    def _exhausted_message(self, timeout: float) -> str:
        s = self.stats()
        msg = (
            f"no sandbox container became available within {timeout:g}s "
            f"({s.in_use} in use, {s.starting} starting, {s.warm} warm, pool_max={self.max}); "
            "close idle sessions, or raise pool_max / open_wait_s in the daemon's config"
        )
        if self._memory_low:
            msg += (
                f"; the host's available memory is below min_available_memory_bytes="
                f"{self.min_available_memory}, so no new container is started"
            )
        if self._last_error:
            msg += f"; last container start failed: {self._last_error}"
        return msg

    def _wanted(self) -> int:
        """How many more pool starts to launch now."""
        want = self.target + self._waiting - len(self._warm) - self._starting
        room = self.max - self.total
        slots = self.refill_concurrency - self._starting
        return max(0, min(want, room, slots))

    async def _refill_loop(self) -> None:
        while not self._closed:
            async with self._cond:
                n = self._wanted()
                if n and self._memory_below_floor():
                    n = 0
                    wait = MEMORY_RECHECK_S
                else:
                    wait = 5.0
                for _ in range(n):
                    self._starting += 1
                    self._spawn(self._start_one())
                if not n:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._cond.wait(), wait)

    async def _start_one(self) -> None:
        sandbox = None
        try:
            sandbox = await asyncio.to_thread(self._start_fn, self.limits)
        except Exception as exc:  # any start failure is counted and retried
            self._last_error = str(exc)[:300]
            self.metrics.containers_failed.inc()
            log.error("container start failed", extra={"error": self._last_error})
            await asyncio.sleep(FAILURE_BACKOFF_S)
        async with self._cond:
            self._starting -= 1
            if sandbox is not None:
                self.metrics.containers_created.inc()
                if self._closed:
                    self._destroying += 1
                    self._spawn(self._destroy_counted(sandbox))
                else:
                    self._last_error = ""
                    self._warm.append(sandbox)
                    if len(self._warm) >= self.target:
                        self._ready.set()
            self._cond.notify_all()

    async def _health_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.health_interval_s)
            for _ in range(len(self._warm)):
                async with self._cond:
                    if not self._warm:
                        break
                    sandbox = self._warm.popleft()
                    self._starting += 1  # counted while out of the deque
                placed = False
                try:
                    alive = await asyncio.to_thread(_quiet_ping, sandbox)
                    async with self._cond:
                        placed = True
                        self._starting -= 1
                        if alive and not self._closed:
                            self._warm.append(sandbox)
                        else:
                            log.warning(
                                "warm container failed its health check; replacing it",
                                extra={"container": getattr(sandbox, "name", "?")},
                            )
                            self.metrics.containers_failed.inc()
                            self._destroying += 1
                            self._spawn(self._destroy_counted(sandbox))
                        self._cond.notify_all()
                except asyncio.CancelledError:
                    if not placed:
                        # close() cancelled the check while the container was out of
                        # the deque: destroy it, or it would be neither warm nor destroyed.
                        self._starting -= 1
                        self._destroying += 1
                        self._spawn(self._destroy_counted(sandbox))
                    raise

    async def _destroy_counted(self, sandbox: Any) -> None:
        try:
            await asyncio.to_thread(_quiet_destroy, sandbox)
            self.metrics.containers_destroyed.inc()
        finally:
            async with self._cond:
                self._destroying -= 1
                self._cond.notify_all()

    async def _destroy_now(self, sandbox: Any) -> None:
        await asyncio.to_thread(_quiet_destroy, sandbox)
        self.metrics.containers_destroyed.inc()

    def _poke(self) -> None:
        """Wake the refill loop (from a plain callback)."""
        if not self._closed:
            self._spawn(self._notify())

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    def _destroy_orphan(self, start: asyncio.Future[Any]) -> None:
        if not start.cancelled() and start.exception() is None:
            self.metrics.containers_created.inc()
            self._destroying += 1
            self._spawn(self._destroy_counted(start.result()))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)


def _same_container_limits(a: SessionLimits, b: SessionLimits) -> bool:

    return all(getattr(a, n) == getattr(b, n) for n in CONTAINER_LIMIT_FIELDS)


def _quiet_ping(sandbox: Any) -> bool:
    try:
        return bool(sandbox.ping(timeout=2.0))
    except Exception:  # any failure means "not healthy"
        return False


def _quiet_destroy(sandbox: Any) -> None:
    try:
        sandbox.destroy()
    except Exception as exc:  # destroy is best effort and idempotent
        log.warning("container destroy failed", extra={"error": str(exc)[:300]})
