"""Where the daemon's tail comes from: event-loop stalls and GC pauses, measured in place.

Off unless the daemon's environment sets CORRAL_STALL_REPORT_S (a period in
seconds). Then `install()` (called by the daemon once its loop runs) starts:

- a lag probe: a task that sleeps PROBE_S and records how late it wakes; a
  late wake-up is time the loop spent in some callback (a blocking call, a big
  protobuf, a GC pass) while a snippet's bytes were waiting;
- a GC timer (gc.callbacks): the duration of every collection, per generation;
- with CORRAL_STALL_DEBUG=1, asyncio debug mode with slow_callback_duration at
  SLOW_CALLBACK_S, so asyncio logs the callback that held the loop (debug mode
  costs time of its own: use it to find a culprit, not to measure).

Every period it logs one "loop stalls" record (JSON-friendly fields) and
resets; `corrald bench load --profile` reads these records back.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from typing import Any

log = logging.getLogger("corral.daemon.stalls")

PROBE_S = 0.001
SLOW_CALLBACK_S = 0.002
LAG_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100)


class StallMonitor:
    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._reset()
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def _reset(self) -> None:
        self.lags_ms: list[float] = []
        self.busy_ms: list[float] = []  # the loop thread was on the CPU for most of the lag
        self.gc_ms: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started:
            self.gc_ms[int(info.get("generation", 0))].append(
                (time.perf_counter() - self._gc_started) * 1000
            )

    async def _probe(self) -> None:
        next_report = time.monotonic() + self.period_s
        while True:
            t, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(PROBE_S)
            late = (time.perf_counter() - t - PROBE_S) * 1000
            if late >= 1.0:
                self.lags_ms.append(late)
                # CPU time of the loop thread over the same span: a callback that
                # computes or blocks in a syscall shows here; a process that waited
                # for a core (a busy host) or for the GIL does not.
                if (time.thread_time() - cpu) * 1000 >= late / 2:
                    self.busy_ms.append(late)
            if time.monotonic() >= next_report:
                self.report()
                next_report = time.monotonic() + self.period_s

    def report(self) -> dict[str, Any]:
        lags = sorted(self.lags_ms)
        record: dict[str, Any] = {
            "period_s": self.period_s,
            "stalls": len(lags),
            "stall_max_ms": round(lags[-1], 2) if lags else 0.0,
            "stall_total_ms": round(sum(lags), 1),
        }
        for b in LAG_BUCKETS_MS:
            record[f"stalls_ge_{b}ms"] = sum(1 for x in lags if x >= b)
        busy = sorted(self.busy_ms)
        record["busy_stalls"] = len(busy)
        record["busy_stall_max_ms"] = round(busy[-1], 2) if busy else 0.0
        record["busy_stall_total_ms"] = round(sum(busy), 1)
        for gen, pauses in self.gc_ms.items():
            record[f"gc{gen}_n"] = len(pauses)
            record[f"gc{gen}_max_ms"] = round(max(pauses), 2) if pauses else 0.0
            record[f"gc{gen}_total_ms"] = round(sum(pauses), 1)
        log.info("loop stalls", extra=record)
        self._reset()
        return record

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._probe(), name="stall-probe")

    def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            self.report()


def install() -> StallMonitor | None:
    """Start the monitor on the running loop when CORRAL_STALL_REPORT_S is set."""
    raw = os.environ.get("CORRAL_STALL_REPORT_S", "")
    if not raw:
        return None
    try:
        period = max(0.5, float(raw))
    except ValueError:
        log.warning("CORRAL_STALL_REPORT_S is not a number; the stall monitor is off")
        return None
    if os.environ.get("CORRAL_STALL_DEBUG") == "1":
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = SLOW_CALLBACK_S
        logging.getLogger("asyncio").setLevel(logging.WARNING)
    monitor = StallMonitor(period)
    monitor.start()
    return monitor
