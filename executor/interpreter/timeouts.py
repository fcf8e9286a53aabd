"""The wall-clock soft timeout: interrupt a runaway snippet, keep the process.

On the main thread an `ITIMER_REAL` alarm raises `TimeoutInterrupt` at the
deadline and then again every `REARM_S` until the window closes, so an
interrupt that some host code swallowed comes back. Off the main thread
(signals are main-thread only) a watchdog thread injects the same exception
with `PyThreadState_SetAsyncExc`, also repeatedly. Neither can break a single
long C call (a huge sort, a regex); the runner's CPU limit and the daemon's
hard timeout cover that.

`request_interrupt()` (any thread) ends the window running now exactly as its
deadline would: the runner calls it when the client interrupts a snippet.
It acts on the outermost open window (the snippet's own); when no window is
open yet (the snippet is still being compiled) it is kept and fires the next
window the moment it opens, until `clear_interrupt()`.

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
FIRE_NOW_S = 1e-6  # an ITIMER_REAL value that fires at once (0 would disarm it)
INTERRUPT_MESSAGE = "the snippet was interrupted by its client"

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
        self.interrupted = False

    def fire(self, signum: int, frame: Any) -> None:
        if self.active:
            self.fired = True
            if self.interrupted:  # keep coming back, as after the deadline
                signal.setitimer(signal.ITIMER_REAL, REARM_S, REARM_S)
            raise TimeoutInterrupt(self.message)

    def interrupt(self, message: str) -> None:
        """Fire now (any thread; the caller holds `_interrupt_lock`)."""
        if self.active and not self.interrupted:
            self.interrupted = True
            self.message = message
            signal.setitimer(signal.ITIMER_REAL, FIRE_NOW_S, REARM_S)

    def start(self) -> None:
        self.started = time.monotonic()
        self.old_handler = signal.signal(signal.SIGALRM, self.fire)
        self.active = True
        self.old_timer = signal.setitimer(signal.ITIMER_REAL, self.seconds, REARM_S)
        _opened(self)

    def stop(self) -> None:
        self.active = False
        try:
            with _interrupt_lock:
                _closed(self)
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

    def interrupt(self, message: str) -> None:
        """Inject the interrupt now (any thread; the caller holds `_interrupt_lock`)."""
        with self.lock:
            if self.active:
                self.fired = True
                self.message = message
                self.inject(TimeoutInterrupt)

    def start(self) -> None:
        self.active = True
        self.thread.start()
        _opened(self)

    def stop(self) -> None:
        with _interrupt_lock:
            _closed(self)
        with self.lock:
            self.active = False
        try:
            self.wake.set()
            self.thread.join()
        finally:
            self.inject(None)  # drop an interrupt that was injected but not yet delivered


_interrupt_lock = threading.Lock()
_open_windows: list[_Alarm | _Watchdog] = []  # outermost first
_pending: list[str] = []  # an interrupt that came while no window was open


def _opened(window: _Alarm | _Watchdog) -> None:
    with _interrupt_lock:
        _open_windows.append(window)
        if _pending and len(_open_windows) == 1:
            window.interrupt(_pending.pop())


def _closed(window: _Alarm | _Watchdog) -> None:
    if window in _open_windows:
        _open_windows.remove(window)


def request_interrupt(message: str = INTERRUPT_MESSAGE) -> None:
    """End the snippet's window now, as its deadline would (safe from any thread).

    Idempotent: a storm of requests costs one interrupt. Without an open window
    the request waits for the next one (see `clear_interrupt`).
    """
    with _interrupt_lock:
        if _open_windows:
            _open_windows[0].interrupt(message)
        elif not _pending:
            _pending.append(message)


def clear_interrupt() -> None:
    """Forget a request that found no window (call after the snippet's run)."""
    with _interrupt_lock:
        _pending.clear()


def reset_after_fork() -> None:
    """In a forked child: a fresh lock (another thread may have held it at fork)."""
    global _interrupt_lock
    _interrupt_lock = threading.Lock()
    _open_windows.clear()
    _pending.clear()


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
