"""The warm container pool: acquire, release, destroy.

`warm` containers are kept started with the runner ready, so opening a session
is a dictionary pop plus one init frame instead of a `docker run`. The pool
never hands a container to a second session: `release` destroys it. Counting
is strict: warm + starting + in use + being destroyed never exceeds `pool_max`,
so a burst of opens cannot start more containers than the host was sized for.

Opens are served first come, first served: an opener that finds no warm
container joins a FIFO queue, and each container that becomes warm goes to
the head of the queue (never to a later arrival). An opener still queued after
the open wait gets PoolExhausted, saying why. A session with custom container
limits cannot use a warm container; when the pool is full it evicts an idle
warm one to make room instead of waiting, and refill yields to it.

The warm target follows demand between a floor (`warm`) and a ceiling
(`warm_max`): enough warm containers to cover the recent open rate over the
time a container takes to start (Little's law: rate x start time, doubled for
bursts), recomputed on every open and every refill pass. Above the target,
idle warm containers are trimmed once demand has been quiet for a window.

Background work (each a supervised step function, see `supervise`):
- refill: starts containers until the target (plus one per queued opener)
  are warm, at most `refill_concurrency` at a time, and only while the host's
  available memory stays above the configured floor (a failing memory probe,
  e.g. EMFILE while a connection burst holds every fd, keeps the last reading);
- health: pings idle warm containers one at a time and replaces dead ones;
- events (when `watch_events` is given): the engine reports a pause (freeze)
  of a pool container at once; a frozen warm container is replaced, a frozen
  session container is killed so its session is declared lost in
  milliseconds instead of after a call's full timeout.

Starting and destroying containers are blocking Docker calls; they run in
threads so the event loop keeps serving snippets meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import psutil

from executor.daemon.errors import PoolExhausted, ShuttingDown
from executor.daemon.metrics import DaemonMetrics
from executor.daemon.sessions import CONTAINER_LIMIT_FIELDS
from executor.daemon.supervise import LoopHealth, backoff_s, supervise
from proto.limits import SessionLimits

log = logging.getLogger("corral.daemon.pool")

FAILURE_BACKOFF_S = 1.0  # pause after a failed start, so a broken image cannot spin the CPU
REFILL_DELAY_S = 0.05  # after a warm container is taken, refill starts this much later
MEMORY_RECHECK_S = 1.0  # how often refill re-reads host memory while below the floor
REFILL_IDLE_WAIT_S = 5.0  # refill re-evaluates at least this often
DEMAND_WINDOW_S = 30.0  # the open rate is measured over this window
START_TIME_GUESS_S = 1.0  # container start time assumed before one was measured
BURST_FACTOR = 2.0  # warm target = rate x start time x this
HEALTH_PING_TIMEOUT_S = 1.0  # an idle warm runner answers a ping in well under a millisecond
FROZEN_EVENTS = frozenset({"pause"})


class PooledSandbox(Protocol):
    """What the pool needs from a container handle (executor.sandbox.driver.Sandbox)."""

    container_id: str

    def ping(self, timeout: float = ...) -> bool: ...
    def destroy(self) -> None: ...


StartFn = Callable[[SessionLimits], Any]
"""Starts one container with these limits and returns it with its runner ready (blocking)."""

EventsFn = Callable[[], Iterable[dict[str, Any]]]
"""Opens the engine's event stream (decoded dicts; closable) for this daemon's containers."""


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
        warm_max: int | None = None,
        demand_window_s: float = DEMAND_WINDOW_S,
        watch_events: EventsFn | None = None,
        loop_health: LoopHealth | None = None,
    ) -> None:
        self._start_fn = start
        self.limits = limits
        self.warm_floor = warm
        self.warm_ceiling = max(warm, min(max_containers, warm if warm_max is None else warm_max))
        self.target = warm  # the current warm target, between floor and ceiling
        self.max = max_containers
        self.refill_concurrency = refill_concurrency
        self.min_available_memory = min_available_memory
        self.health_interval_s = health_interval_s
        self.demand_window_s = demand_window_s
        self.metrics = metrics
        self.loop_health = loop_health or LoopHealth()
        self._memory_probe = memory_probe
        self._watch_events = watch_events
        self._warm: collections.deque[Any] = collections.deque()
        self._in_use: set[Any] = set()
        self._starting = 0  # pool refills in flight
        self._reserved = 0  # dedicated (custom-limit) starts in flight
        self._destroying = 0
        self._checking = 0  # warm containers out of the deque for a health ping
        self._queue: collections.deque[asyncio.Future[Any]] = collections.deque()  # FIFO openers
        self._dedicated_waiting = 0  # custom-limit openers waiting for room
        self._evicting = 0  # warm containers being destroyed to make room for them
        self._cond = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._bg: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._last_error = ""
        self._memory_low = False
        self._last_memory: int | None = None
        self._probe_failing = False
        self._opens: collections.deque[float] = collections.deque()  # monotonic open times
        self._start_time_s = START_TIME_GUESS_S  # moving average of a container start
        self._events_stream: Any = None
        self._events_lock = threading.Lock()
        self._ready = asyncio.Event()

    # --- introspection -------------------------------------------------------

    def stats(self) -> PoolStats:
        return PoolStats(
            warm=len(self._warm) + self._checking,
            starting=self._starting + self._reserved,
            in_use=len(self._in_use),
            destroying=self._destroying,
            max_containers=self.max,
        )

    @property
    def total(self) -> int:
        return (
            len(self._warm)
            + self._checking
            + self._starting
            + self._reserved
            + len(self._in_use)
            + self._destroying
        )

    @property
    def waiting(self) -> int:
        """Openers queued for a container (warm or dedicated)."""
        return self._queued() + self._dedicated_waiting

    def _queued(self) -> int:
        return sum(1 for f in self._queue if not f.done())

    def open_rate(self, now: float | None = None) -> float:
        """Opens per second over the demand window."""
        now = time.monotonic() if now is None else now
        while self._opens and self._opens[0] < now - self.demand_window_s:
            self._opens.popleft()
        return len(self._opens) / self.demand_window_s if self.demand_window_s > 0 else 0.0

    @property
    def start_time_s(self) -> float:
        """Moving average of how long one container takes to become ready."""
        return self._start_time_s

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
        health = self.loop_health
        fail = self._count_loop_failure
        self._tasks.append(
            asyncio.create_task(
                supervise("pool-refill", self._refill_step, health, on_failure=fail),
                name="pool-refill",
            )
        )
        if self.health_interval_s > 0:
            self._tasks.append(
                asyncio.create_task(
                    supervise("pool-health", self._health_step, health, on_failure=fail),
                    name="pool-health",
                )
            )
        if self._watch_events is not None:
            self._tasks.append(
                asyncio.create_task(
                    supervise("pool-events", self._events_step, health, on_failure=fail),
                    name="pool-events",
                )
            )

    async def close(self) -> None:
        """Stop background work and destroy every container the pool knows of."""
        self._closed = True
        self._close_events_stream()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for fut in self._queue:
            if not fut.done():
                fut.set_exception(
                    ShuttingDown("the daemon is shutting down; retry on another daemon")
                )
        self._queue.clear()
        async with self._cond:
            self._cond.notify_all()
        # Starts in flight finish in their threads; their containers are destroyed on arrival.
        victims = list(self._warm) + list(self._in_use)
        self._warm.clear()
        self._in_use.clear()
        await asyncio.gather(*(self._destroy_now(s) for s in victims), return_exceptions=True)
        deadline = time.monotonic() + 30
        while (
            self._bg or self._starting or self._reserved or self._checking
        ) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    # --- verbs ---------------------------------------------------------------

    async def acquire(self, limits: SessionLimits, timeout: float) -> Any:
        """A container for one session: warm when its limits match the pool's, else dedicated.

        Waits up to `timeout` seconds, then PoolExhausted with the reason.
        """
        if self._closed:
            raise ShuttingDown("the daemon is shutting down; retry on another daemon")
        self._opens.append(time.monotonic())
        self._retarget()
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

    # --- taking a warm container (FIFO) --------------------------------------

    async def _take_warm(self, timeout: float) -> Any:
        if self._warm and not self._queued():
            return self._hand_out(self._warm.popleft())
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(fut)
        while self._warm and self._queued():  # defensive: never queue beside a warm one
            self._put_warm(self._warm.popleft())
        self._poke()
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                return fut.result()  # handed over at the last instant: it is ours
            self.metrics.opens_refused.inc()
            raise PoolExhausted(self._exhausted_message(timeout)) from None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                # The opener went away after a container was handed to it: pass it on.
                sandbox = fut.result()
                self._in_use.discard(sandbox)
                if self._closed:
                    self._destroying += 1
                    self._spawn(self._destroy_counted(sandbox))
                else:
                    self._put_warm(sandbox)
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._queue.remove(fut)

    def _hand_out(self, sandbox: Any) -> Any:
        self._in_use.add(sandbox)
        # Refill a moment later: a container start is Docker API work in a
        # thread that would compete with this open's init for the GIL.
        asyncio.get_running_loop().call_later(REFILL_DELAY_S, self._poke)
        return sandbox

    def _put_warm(self, sandbox: Any) -> None:
        """A warm container is ready: the longest-waiting opener gets it, else the deque."""
        while self._queue:
            fut = self._queue.popleft()
            if not fut.done():
                fut.set_result(self._hand_out(sandbox))
                return
        self._warm.append(sandbox)
        if len(self._warm) >= self.target:
            self._ready.set()

    # --- dedicated containers (custom limits) --------------------------------

    async def _start_dedicated(self, limits: SessionLimits, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        async with self._cond:
            self._dedicated_waiting += 1
            try:
                while self.total >= self.max or self._memory_below_floor():
                    if self._closed:
                        raise ShuttingDown("the daemon is shutting down; retry on another daemon")
                    if (
                        self.total >= self.max
                        and self._warm
                        and self._evicting < self._dedicated_waiting
                    ):
                        self._evict_one()  # an idle warm container makes room now
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self.metrics.opens_refused.inc()
                        raise PoolExhausted(self._exhausted_message(timeout))
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(remaining, MEMORY_RECHECK_S)):
                            await self._cond.wait()
            finally:
                self._dedicated_waiting -= 1
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

    def _evict_one(self) -> None:
        """Destroy the newest idle warm container (the oldest ones are handed out first)."""
        sandbox = self._warm.pop()
        self.metrics.pool_evictions.inc()
        log.info(
            "evicting an idle warm container for a session with custom limits",
            extra={"container": getattr(sandbox, "name", "?")},
        )
        self._destroying += 1
        self._evicting += 1
        self._spawn(self._destroy_evicted(sandbox))

    async def _destroy_evicted(self, sandbox: Any) -> None:
        try:
            await self._destroy_counted(sandbox)
        finally:
            self._evicting -= 1

    # --- memory floor and demand ---------------------------------------------

    def _memory_below_floor(self) -> bool:
        try:
            available = self._memory_probe()
        except Exception as exc:  # e.g. EMFILE: keep the last reading, try again later
            if not self._probe_failing:
                log.warning(
                    "cannot read host memory; using the last reading",
                    extra={"error": f"{type(exc).__name__}: {exc}"[:200]},
                )
            self._probe_failing = True
            return self._memory_low
        self._probe_failing = False
        self._last_memory = available
        low = available < self.min_available_memory
        if low and not self._memory_low:
            log.warning(
                "host memory below floor; not starting containers",
                extra={"floor_bytes": self.min_available_memory},
            )
        self._memory_low = low
        return low

    def _retarget(self) -> None:
        """Move the warm target with the recent open rate, between floor and ceiling."""
        want = math.ceil(self.open_rate() * self._start_time_s * BURST_FACTOR)
        target = max(self.warm_floor, min(self.warm_ceiling, want))
        if target != self.target:
            log.debug(
                "warm target moved",
                extra={"from": self.target, "to": target, "rate": round(self.open_rate(), 3)},
            )
            self.target = target

    def _exhausted_message(self, timeout: float) -> str:
        s = self.stats()
        msg = (
            f"no sandbox container became available within {timeout:g}s "
            f"({s.in_use} in use, {s.starting} starting, {s.warm} warm, "
            f"{self.waiting} queued, pool_max={self.max}); "
            "close idle sessions, or raise pool_max / open_wait_s in the daemon's config"
        )
        if self._memory_low:
            msg += (
                f"; the host's available memory is below min_available_memory_bytes="
                f"{self.min_available_memory}, so no new container is started"
            )
        if self._last_error:
            msg += f"; last container start failed: {self._last_error}"
        problems = self.loop_health.problems()
        if problems:
            msg += "; " + problems[0]
        return msg

    def _wanted(self) -> int:
        """How many more pool starts to launch now."""
        want = self.target + self._queued() - len(self._warm) - self._checking - self._starting
        room = self.max - self.total - self._dedicated_waiting  # dedicated openers go first
        slots = self.refill_concurrency - self._starting
        return max(0, min(want, room, slots))

    # --- background steps ----------------------------------------------------

    async def _refill_step(self) -> None:
        """One refill pass: launch the starts that are wanted, then wait to be woken."""
        if self._closed:
            await asyncio.sleep(3600)
            return
        async with self._cond:
            self._retarget()
            n = self._wanted()
            wait = REFILL_IDLE_WAIT_S
            if n and self._memory_below_floor():
                n = 0
                wait = MEMORY_RECHECK_S
            for _ in range(n):
                self._starting += 1
                self._spawn(self._start_one())
            if not n:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):  # no extra task, unlike wait_for
                        await self._cond.wait()

    async def _start_one(self) -> None:
        sandbox = None
        t0 = time.monotonic()
        try:
            try:
                sandbox = await asyncio.to_thread(self._start_fn, self.limits)
            except Exception as exc:  # any start failure is counted and retried
                self._last_error = str(exc)[:300]
                self.metrics.containers_failed.inc()
                log.error("container start failed", extra={"error": self._last_error})
                await asyncio.sleep(FAILURE_BACKOFF_S)
            else:
                took = time.monotonic() - t0
                self._start_time_s = 0.8 * self._start_time_s + 0.2 * took
        finally:
            async with self._cond:
                self._starting -= 1
                if sandbox is not None:
                    self.metrics.containers_created.inc()
                    if self._closed:
                        self._destroying += 1
                        self._spawn(self._destroy_counted(sandbox))
                    else:
                        self._last_error = ""
                        self._put_warm(sandbox)
                self._cond.notify_all()

    async def _health_step(self) -> None:
        """Wait an interval, ping each idle warm container, trim surplus ones."""
        await asyncio.sleep(self.health_interval_s)
        for _ in range(len(self._warm)):
            async with self._cond:
                if not self._warm or self._closed:
                    break
                sandbox = self._warm.popleft()
                self._checking += 1  # counted while out of the deque
            try:
                alive = await asyncio.to_thread(_quiet_ping, sandbox, HEALTH_PING_TIMEOUT_S)
            except BaseException:
                # close() cancelled the check while the container was out of the
                # deque: destroy it, or it would be neither warm nor destroyed.
                self._checking -= 1
                self._destroying += 1
                self._spawn(self._destroy_counted(sandbox))
                raise
            async with self._cond:
                self._checking -= 1
                if alive and not self._closed:
                    self._put_warm(sandbox)
                else:
                    if not self._closed:
                        log.warning(
                            "warm container failed its health check; replacing it",
                            extra={"container": getattr(sandbox, "name", "?")},
                        )
                        self.metrics.containers_failed.inc()
                    self._destroying += 1
                    self._spawn(self._destroy_counted(sandbox))
                self._cond.notify_all()
        await self._trim()

    async def _trim(self) -> None:
        """Demand fell: destroy one warm container above the target per pass."""
        self._retarget()
        quiet = not self._opens or self._opens[-1] < time.monotonic() - self.demand_window_s
        async with self._cond:
            if quiet and len(self._warm) > self.target and not self.waiting:
                sandbox = self._warm.pop()
                self.metrics.pool_trimmed.inc()
                self._destroying += 1
                self._spawn(self._destroy_counted(sandbox))
                self._cond.notify_all()

    async def _events_step(self) -> None:
        """Follow the engine's events for this daemon's containers (in a thread)."""
        assert self._watch_events is not None
        loop = asyncio.get_running_loop()

        def follow() -> None:
            stream = self._watch_events() if self._watch_events else None
            with self._events_lock:
                self._events_stream = stream
            if self._closed:
                self._close_events_stream()
                return
            for event in stream or ():
                if self._closed:
                    break
                loop.call_soon_threadsafe(self._on_event, event)

        started = time.monotonic()
        await asyncio.to_thread(follow)
        if not self._closed:
            # The stream ended (engine restart?): reopen, but never in a tight loop.
            await asyncio.sleep(max(0.0, backoff_s(1) * 10 - (time.monotonic() - started)))
            raise ConnectionError("the Docker engine's event stream ended; reopening it")

    def _close_events_stream(self) -> None:
        with self._events_lock:
            stream, self._events_stream = self._events_stream, None
        if stream is not None and hasattr(stream, "close"):
            with contextlib.suppress(Exception):
                stream.close()

    def _on_event(self, event: dict[str, Any]) -> None:
        action = str(event.get("Action") or event.get("status") or "")
        cid = str(event.get("id") or (event.get("Actor") or {}).get("ID") or "")
        if action not in FROZEN_EVENTS or not cid or self._closed:
            return
        for sandbox in list(self._warm):
            if getattr(sandbox, "container_id", None) == cid:
                self._warm.remove(sandbox)
                log.warning(
                    "warm container was frozen (paused); replacing it",
                    extra={"container": getattr(sandbox, "name", "?")},
                )
                self.metrics.containers_failed.inc()
                self._destroying += 1
                self._spawn(self._destroy_counted(sandbox))
                self._poke()
                return
        for sandbox in list(self._in_use):
            if getattr(sandbox, "container_id", None) == cid:
                # Kill, not remove: the attach stream ends at once, the session's
                # current or next call sees SANDBOX_LOST, and the session's own
                # end releases the container through the usual path.
                log.warning(
                    "session container was frozen (paused); killing it, the session is lost",
                    extra={"container": getattr(sandbox, "name", "?")},
                )
                self.metrics.containers_failed.inc()
                self._spawn(asyncio.to_thread(_quiet_kill, sandbox))
                return

    # --- helpers -------------------------------------------------------------

    def _count_loop_failure(self, name: str) -> None:
        self.metrics.loop_failures.inc(loop=name)

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


def _quiet_ping(sandbox: Any, timeout: float = 2.0) -> bool:
    try:
        return bool(sandbox.ping(timeout=timeout))
    except Exception:  # any failure means "not healthy"
        return False


def _quiet_kill(sandbox: Any) -> None:
    try:
        sandbox.kill()
    except Exception as exc:  # already gone
        log.debug("container kill failed", extra={"error": str(exc)[:300]})


def _quiet_destroy(sandbox: Any) -> None:
    try:
        sandbox.destroy()
    except Exception as exc:  # destroy is best effort and idempotent
        log.warning("container destroy failed", extra={"error": str(exc)[:300]})
