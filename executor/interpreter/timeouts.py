"""The wall-clock soft timeout: interrupt a runaway snippet, keep the process.

On the main thread an `ITIMER_REAL` alarm raises `TimeoutInterrupt` at the
deadline and then again every `REARM_S` until the window closes, so an
interrupt that some host code swallowed comes back. Off the main thread
(signals are main-thread only) a watchdog thread injects the same exception
with `PyThreadState_SetAsyncExc`, also repeatedly. Neither can break a single
long C call (a huge sort, a regex); the runner's CPU limit and the daemon's
hard timeout cover that.

Standard library only: this module is copied into the sandbox image.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import ControlFlow, TimeoutInterrupt

REARM_S = 0.05  # seconds between repeated interrupts after the deadline

T = TypeVar("T")


class _Alarm:
    """SIGALRM-based interrupt (main thread only)."""

    def __init__(self, seconds: float, message: str) -> None:
        self.seconds = seconds
        self.message = message
        self.active = False
        self.fired = False
        self.old_handler: Any = None
        self.old_timer: tuple[float, float] = (0.0, 0.0)
        self.started = 0.0

    def fire(self, signum: int, frame: Any) -> None:
        if self.active:
            self.fired = True
            raise TimeoutInterrupt(self.message)

    def start(self) -> None:
        self.started = time.monotonic()
        self.old_handler = signal.signal(signal.SIGALRM, self.fire)
        self.active = True
        self.old_timer = signal.setitimer(signal.ITIMER_REAL, self.seconds, REARM_S)

    def stop(self) -> None:
        self.active = False
        try:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
        finally:
            signal.signal(signal.SIGALRM, self.old_handler)
            delay, interval = self.old_timer
            if delay > 0:  # give back an outer timer, minus the time we used
                left = max(delay - (time.monotonic() - self.started), 0.001)
                signal.setitimer(signal.ITIMER_REAL, left, interval)


class _Watchdog:
    """Thread that injects the interrupt into the snippet's thread."""

    def __init__(self, seconds: float, message: str) -> None:
        import ctypes

        self.ctypes = ctypes
        self.seconds = seconds
        self.message = message
        self.target = threading.get_ident()
        self.active = False
        self.fired = False
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self.watch, name="corral-watchdog", daemon=True)

    def inject(self, exc: type[BaseException] | None) -> None:
        self.ctypes.pythonapi.PyThreadState_SetAsyncExc(
            self.ctypes.c_ulong(self.target), self.ctypes.py_object(exc) if exc else None
        )

    def watch(self) -> None:
        if self.wake.wait(self.seconds):
            return
        while True:
            with self.lock:
                if not self.active:
                    return
                self.fired = True
                self.inject(TimeoutInterrupt)
            if self.wake.wait(REARM_S):
                return

    def start(self) -> None:
        self.active = True
        self.thread.start()

    def stop(self) -> None:
        with self.lock:
            self.active = False
        try:
            self.wake.set()
            self.thread.join()
        finally:
            self.inject(None)  # drop an interrupt that was injected but not yet delivered


def call_with_timeout(
    fn: Callable[[], T], seconds: float | None, message: str
) -> tuple[T | None, BaseException | None]:
    """Run `fn()` under the soft timeout: (result, None) or (None, exception).

    Never raises: an interrupt that lands after `fn` returned (while the timer
    is being disarmed) is returned as the exception.
    """
    if seconds is None or seconds <= 0:
        try:
            return fn(), None
        except BaseException as exc:
            return None, exc
    timer: _Alarm | _Watchdog
    if threading.current_thread() is threading.main_thread():
        timer = _Alarm(seconds, message)
    else:
        timer = _Watchdog(seconds, message)
    try:
        try:
            timer.start()
            result = fn()
            if timer.fired:
                # The deadline passed and the interrupt was swallowed on the way
                # (e.g. by a finalizer, whose exceptions CPython ignores).
                return None, TimeoutInterrupt(message)
            return result, None
        except BaseException as exc:
            return None, _as_timeout(exc, message)
        finally:
            timer.stop()
    except ControlFlow as late:
        return None, _as_timeout(late, message)


def _as_timeout(exc: BaseException, message: str) -> BaseException:
    # The watchdog injects the class; give the instance our message.
    if type(exc) is TimeoutInterrupt and not exc.args:
        return TimeoutInterrupt(message).with_traceback(exc.__traceback__)
    return exc
