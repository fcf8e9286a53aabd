"""Background loops that survive their own exceptions.

A daemon whose refill task died silently kept answering health checks with
SERVING while every open failed (issue #10: an fd burst made psutil hit
EMFILE inside the refill loop). So every background loop (pool refill, pool
health, engine events, session reaper) runs as a *step* function called
over and over by `supervise`: a step that raises is logged with its
traceback, counted, and retried after an exponential back-off. After
`UNHEALTHY_AFTER` consecutive failures the loop is reported unhealthy: the
daemon's health turns NOT_SERVING (load balancers stop sending opens) and
`LoopHealth.problems()` says which loop and why (`corrald doctor --daemon`,
GetStats, the log). The first step that succeeds again clears it. Nothing is
given up for good: a loop that cannot recover keeps retrying at the maximum
back-off, so a transient cause (fds exhausted by a connection burst, the
Docker engine restarting) heals by itself once it goes away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("corral.daemon.loops")

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 10.0
UNHEALTHY_AFTER = 5  # consecutive failed steps before the loop counts as down


@dataclass
class LoopState:
    name: str
    failures: int = 0  # total failed steps since start
    consecutive: int = 0  # failed steps since the last good one
    last_error: str = ""
    last_failure_at: float = 0.0  # time.time()

    @property
    def healthy(self) -> bool:
        return self.consecutive < UNHEALTHY_AFTER


class LoopHealth:
    """The state of every supervised loop, and a callback when health flips."""

    def __init__(self, on_change: Callable[[bool], object] | None = None) -> None:
        self.loops: dict[str, LoopState] = {}
        self.on_change = on_change
        self._healthy = True

    def state(self, name: str) -> LoopState:
        return self.loops.setdefault(name, LoopState(name))

    @property
    def healthy(self) -> bool:
        return all(s.healthy for s in self.loops.values())

    def problems(self) -> list[str]:
        """One sentence per loop that is down, naming the cause and the fix."""
        return [
            f"background loop {s.name!r} failed {s.consecutive} times in a row "
            f"(last error: {s.last_error}); it keeps retrying every {BACKOFF_MAX_S:g} s. "
            "Check the daemon log for the traceback; common causes are an exhausted fd "
            "limit (raise `ulimit -n`) and an unreachable Docker engine"
            for s in self.loops.values()
            if not s.healthy
        ]

    def _changed(self) -> None:
        healthy = self.healthy
        if healthy != self._healthy:
            self._healthy = healthy
            if self.on_change is not None:
                try:
                    self.on_change(healthy)
                except Exception:  # a reporting hook must not take the loop down
                    log.exception("loop health callback failed")

    def succeeded(self, name: str) -> None:
        s = self.state(name)
        if s.consecutive:
            if not s.healthy:
                log.warning("background loop recovered", extra={"loop": name})
            s.consecutive = 0
            self._changed()

    def failed(self, name: str, exc: BaseException) -> None:
        s = self.state(name)
        s.failures += 1
        s.consecutive += 1
        s.last_error = f"{type(exc).__name__}: {exc}"[:300]
        s.last_failure_at = time.time()
        self._changed()


def backoff_s(consecutive: int) -> float:
    """0.1, 0.2, 0.4, ... seconds, at most BACKOFF_MAX_S."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, consecutive - 1))


async def supervise(
    name: str,
    step: Callable[[], Awaitable[object]],
    health: LoopHealth,
    *,
    on_failure: Callable[[str], object] | None = None,
) -> None:
    """Call `step()` until cancelled; an exception is logged, counted and backed off."""
    health.state(name)
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure: log, back off, retry
            health.failed(name, exc)
            state = health.state(name)
            log.error(
                "background loop step failed; retrying",
                exc_info=exc,
                extra={"loop": name, "consecutive": state.consecutive},
            )
            if on_failure is not None:
                try:
                    on_failure(name)
                except Exception:  # counting must not fail the loop
                    pass
            await asyncio.sleep(backoff_s(state.consecutive))
        else:
            health.succeeded(name)
