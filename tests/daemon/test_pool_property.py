"""The pool's counting and hand-out rules under random operation sequences (no Docker).

`Pool` takes its container starter and its memory probe as parameters; here
they are fakes that count what exists, so the property holds against what
was really created, not only against the pool's own bookkeeping:

- warm + starting + in use + destroying <= pool_max at every instant, and the
  containers that exist (start begun, destroy not finished) never exceed it;
- no container is handed to two sessions;
- after close() every container ever created is destroyed and acquire
  refuses with ShuttingDown.

Faults are injected through the same parameters: starts that raise, and
containers whose health ping fails.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor.daemon import pool as pool_module
from executor.daemon.errors import PoolExhausted, ShuttingDown
from executor.daemon.metrics import DaemonMetrics
from executor.daemon.pool import Pool
from proto.limits import MiB, SessionLimits

POOL_LIMITS = SessionLimits()
CUSTOM_LIMITS = SessionLimits(memory_bytes=256 * MiB)
MAX = 4


class StartFailed(Exception):
    pass


@dataclass(eq=False)
class FakeContainer:
    """A container handle: ping answers `healthy`; destroy is recorded."""

    container_id: str
    world: World
    healthy: bool = True
    destroyed: bool = False
    name: str = ""

    def ping(self, timeout: float = 2.0) -> bool:
        return self.healthy and not self.destroyed

    def destroy(self) -> None:
        time.sleep(0.001)
        self.world.finish_destroy(self)


@dataclass
class World:
    """Everything the fakes observed, guarded by a lock (starts run in threads)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Any = field(default_factory=lambda: itertools.count())
    existing: int = 0  # start begun and destroy not finished
    peak: int = 0
    created: list[FakeContainer] = field(default_factory=list)
    fail_next: int = 0

    def start(self, limits: SessionLimits) -> FakeContainer:
        with self.lock:
            self.existing += 1
            self.peak = max(self.peak, self.existing)
            fail = self.fail_next > 0
            if fail:
                self.fail_next -= 1
        time.sleep(0.002)
        if fail:
            with self.lock:
                self.existing -= 1
            raise StartFailed("injected start failure")
        with self.lock:
            c = FakeContainer(f"c{next(self.ids)}", self)
            self.created.append(c)
            return c

    def finish_destroy(self, c: FakeContainer) -> None:
        with self.lock:
            if not c.destroyed:
                c.destroyed = True
                self.existing -= 1


OPS = st.one_of(
    st.tuples(st.just("acquire"), st.booleans()),
    st.tuples(st.just("release"), st.integers(0, 7)),
    st.tuples(st.just("destroy"), st.integers(0, 7)),
    st.tuples(st.just("fail_starts"), st.integers(1, 3)),
    st.tuples(st.just("sicken"), st.integers(0, 7)),
    st.tuples(st.just("wait"), st.integers(1, 20)),
)


async def scenario(ops: list[tuple[str, Any]], warm: int) -> None:
    world = World()
    pool = Pool(
        world.start,
        POOL_LIMITS,
        warm=warm,
        max_containers=MAX,
        refill_concurrency=2,
        min_available_memory=0,
        health_interval_s=0.005,
        metrics=DaemonMetrics(),
        memory_probe=lambda: 1 << 40,
    )
    violations: list[str] = []
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            s = pool.stats()
            counted = s.warm + s.starting + s.in_use + s.destroying
            if counted > MAX:
                violations.append(f"pool counts {s} exceed max {MAX}")
            if world.existing > MAX:
                violations.append(f"{world.existing} containers exist, max {MAX}")
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    pool.start()
    held: list[FakeContainer] = []
    handed: set[int] = set()
    try:
        for op, arg in ops:
            if op == "acquire":
                limits = CUSTOM_LIMITS if arg else POOL_LIMITS
                try:
                    c = await pool.acquire(limits, timeout=0.05)
                except PoolExhausted:
                    continue
                assert id(c) not in handed, f"container {c.container_id} handed out twice"
                assert not c.destroyed, "a destroyed container was handed out"
                handed.add(id(c))
                held.append(c)
            elif op == "release" and held:
                pool.release(held.pop(arg % len(held)))
            elif op == "destroy" and held:
                await pool.destroy(held.pop(arg % len(held)))
            elif op == "fail_starts":
                with world.lock:
                    world.fail_next += arg
            elif op == "sicken":
                with world.lock:
                    idle = [c for c in world.created if not c.destroyed and c not in held]
                if idle:
                    idle[arg % len(idle)].healthy = False
            elif op == "wait":
                await asyncio.sleep(arg / 1000)
        await asyncio.sleep(0.01)
    finally:
        await pool.close()
        stop.set()
        await watcher
    assert not violations, violations[:3]
    assert world.peak <= MAX
    with pytest.raises(ShuttingDown):
        await pool.acquire(POOL_LIMITS, timeout=0.01)
    assert all(c.destroyed for c in world.created), "close() left containers behind"
    assert world.existing == 0
    s = pool.stats()
    assert s.warm == s.in_use == 0


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(OPS, max_size=30), warm=st.integers(0, MAX))
def test_pool_counts_and_hand_outs_hold_under_random_operations(monkeypatch, ops, warm):
    # A failed start pauses the refill loop for FAILURE_BACKOFF_S; shorten it for the test.
    monkeypatch.setattr(pool_module, "FAILURE_BACKOFF_S", 0.005, raising=False)
    asyncio.run(scenario(ops, warm))
