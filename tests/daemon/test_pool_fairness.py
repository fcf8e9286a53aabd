"""The pool's scheduling, alone: FIFO openers, eviction, demand-following, loops that survive.

No Docker here: the containers are stand-ins whose start can be held and
released, because the order in which a real engine finishes concurrent starts
cannot be controlled. The same behaviour is checked against a real daemon by
tests/daemon/test_robustness.py (churn, fd burst, frozen container).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import itertools
import threading
import time

import pytest

from executor.daemon.errors import PoolExhausted
from executor.daemon.metrics import DaemonMetrics
from executor.daemon.pool import Pool
from executor.daemon.supervise import UNHEALTHY_AFTER, LoopHealth, supervise
from proto.limits import MiB, SessionLimits

DEFAULTS = SessionLimits()
CUSTOM = dataclasses.replace(DEFAULTS, memory_bytes=DEFAULTS.memory_bytes + 64 * MiB)


class Box:
    """A stand-in container: a name, a ping, a destroy."""

    _ids = itertools.count()

    def __init__(self, limits: SessionLimits) -> None:
        self.container_id = f"box{next(self._ids)}"
        self.limits = limits
        self.destroyed = False

    def ping(self, timeout: float = 1.0) -> bool:
        return not self.destroyed

    def kill(self) -> None:
        self.destroyed = True

    def destroy(self) -> None:
        self.destroyed = True


class Starts:
    """A start function whose calls wait for a gate (one release lets one start finish)."""

    def __init__(self, gated: bool = False, delay: float = 0.0) -> None:
        self.gate = threading.Semaphore(0)
        self.gated = gated
        self.delay = delay
        self.made: list[Box] = []

    def __call__(self, limits: SessionLimits) -> Box:
        if self.gated:
            assert self.gate.acquire(timeout=30)
        time.sleep(self.delay)
        box = Box(limits)
        self.made.append(box)
        return box


def make_pool(start: Starts, **kw: object) -> Pool:
    args: dict[str, object] = {
        "warm": 0,
        "max_containers": 4,
        "refill_concurrency": 1,
        "min_available_memory": 0,
        "health_interval_s": 0,
        "metrics": DaemonMetrics(),
    }
    args.update(kw)
    return Pool(start, DEFAULTS, **args)  # type: ignore[arg-type]


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def _total_ok(pool: Pool) -> None:
    s = pool.stats()
    assert s.warm + s.starting + s.in_use + s.destroying <= s.max_containers, s


def test_openers_are_served_in_arrival_order():
    async def main() -> None:
        start = Starts(gated=True)
        pool = make_pool(start, max_containers=5)
        pool.start()
        order: list[int] = []

        async def opener(i: int) -> None:
            box = await pool.acquire(DEFAULTS, timeout=30)
            order.append(i)
            assert not box.destroyed

        tasks = []
        for i in range(5):
            tasks.append(asyncio.create_task(opener(i)))
            await asyncio.sleep(0.02)  # a defined arrival order
        for _ in range(5):
            start.gate.release()
            await asyncio.sleep(0.05)
            _total_ok(pool)
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3, 4]
        await pool.close()

    run(main())


def test_an_opener_that_waits_too_long_gets_a_typed_error_naming_the_queue():
    async def main() -> None:
        start = Starts(gated=True)
        pool = make_pool(start, max_containers=1)
        pool.start()
        with pytest.raises(PoolExhausted) as err:
            await pool.acquire(DEFAULTS, timeout=0.3)
        assert "queued" in str(err.value) and "open_wait_s" in str(err.value)
        assert pool.metrics.opens_refused.value() == 1
        start.gate.release()  # let the start in flight finish, then shut down
        await pool.close()
        assert all(b.destroyed for b in start.made)

    run(main())


def test_a_cancelled_opener_passes_its_container_on():
    async def main() -> None:
        start = Starts(gated=True)
        pool = make_pool(start)
        pool.start()
        first = asyncio.create_task(pool.acquire(DEFAULTS, timeout=30))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(pool.acquire(DEFAULTS, timeout=30))
        await asyncio.sleep(0.05)
        first.cancel()
        start.gate.release()
        box = await second
        assert not box.destroyed and box is start.made[0]
        await pool.close()

    run(main())


def test_custom_limits_evict_an_idle_warm_container_instead_of_waiting():
    async def main() -> None:
        start = Starts()
        pool = make_pool(start, warm=2, max_containers=2)
        pool.start()
        assert await pool.wait_warm(10)
        box = await pool.acquire(CUSTOM, timeout=10)
        assert box.limits == CUSTOM
        assert pool.metrics.pool_evictions.value() == 1
        _total_ok(pool)
        assert sum(1 for b in start.made if b.destroyed) == 1  # exactly one evicted
        pool.release(box)
        await pool.close()

    run(main())


def test_warm_target_follows_the_open_rate_between_floor_and_ceiling():
    async def main() -> None:
        start = Starts(delay=0.05)
        pool = make_pool(
            start, warm=1, warm_max=3, max_containers=8, refill_concurrency=4, demand_window_s=1.0
        )
        pool.start()
        assert pool.target == 1
        seen = set()
        for _ in range(30):
            pool.release(await pool.acquire(DEFAULTS, timeout=10))
            seen.add(pool.target)
            _total_ok(pool)
        assert max(seen) > 1  # a burst raised the target...
        assert max(seen) <= 3  # ...never above the ceiling
        assert pool.start_time_s < 1.0  # measured, no longer the first guess
        await asyncio.sleep(1.2)
        pool._retarget()
        assert pool.target == 1  # demand gone: back to the floor
        await pool.close()

    run(main())


def test_refill_survives_a_memory_probe_hitting_emfile():
    calls = {"n": 0}

    def probe() -> int:
        calls["n"] += 1
        if calls["n"] % 2:
            raise OSError(errno.EMFILE, "Too many open files")
        return 1 << 40

    async def main() -> None:
        start = Starts()
        pool = make_pool(start, warm=2, memory_probe=probe, refill_concurrency=1)
        pool.start()
        boxes = [await pool.acquire(DEFAULTS, timeout=10) for _ in range(4)]
        assert len({id(b) for b in boxes}) == 4
        assert pool.loop_health.healthy
        await pool.close()

    run(main())
    assert calls["n"] >= 2


def test_a_failing_loop_is_retried_reported_and_recovers():
    flips: list[bool] = []
    health = LoopHealth(on_change=flips.append)
    steps = {"n": 0}

    async def step() -> None:
        steps["n"] += 1
        if steps["n"] <= UNHEALTHY_AFTER:
            raise OSError(errno.EMFILE, "Too many open files")
        await asyncio.sleep(0.01)

    async def main() -> None:
        task = asyncio.create_task(supervise("refill", step, health))
        while steps["n"] <= UNHEALTHY_AFTER:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert flips == [False, True]  # down after UNHEALTHY_AFTER failures, then up again
    assert health.healthy and not health.problems()
    state = health.state("refill")
    assert state.failures == UNHEALTHY_AFTER and "Too many open files" in state.last_error


def test_problems_name_the_loop_and_the_fix():
    health = LoopHealth()
    for _ in range(UNHEALTHY_AFTER):
        health.failed("pool-refill", OSError(errno.EMFILE, "Too many open files"))
    (problem,) = health.problems()
    assert "pool-refill" in problem and "ulimit -n" in problem
