"""The runner's end of the frame channel: private file descriptors, signal-safe writes.

At start-up the runner takes the channel away from the standard descriptors:
it duplicates fd 0 and fd 1 into private descriptors used only for frames,
then points fd 0 at /dev/null and fd 1 at fd 2 (stderr, which the driver keeps
only as a bounded diagnostic tail). So nothing a snippet, a C library or a
child process prints or reads can corrupt or steal frames.

Writes happen with the signals that raise into the main thread (SIGALRM for the
soft timeout, SIGXCPU for the CPU limit) blocked, so an exception raised by a
handler can never leave half a frame on the wire. Reads keep their own buffer
and skip an oversized body instead of reading it, so the stream stays in sync
and memory stays bounded by the maximum frame size.

Standard library only: this module runs inside the sandbox image.
"""

from __future__ import annotations

import base64
import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from proto.frames import (
    DEFAULT_MAX_FRAME,
    HEADER,
    FrameError,
    FrameTooLarge,
    decode_body,
    encode,
)

# Signals whose Python handlers raise into the snippet; held back during writes.
INTERRUPTING_SIGNALS = frozenset({signal.SIGALRM, signal.SIGXCPU, signal.SIGINT})
READ_CHUNK = 1 << 16


class ChannelTimeout(Exception):
    """No complete frame arrived within the timeout."""


class ChannelClosed(Exception):
    """The peer closed its end (end of stdin): the daemon is gone."""


class ChannelWoken(Exception):
    """`recv` was woken through its wake descriptor before a frame arrived."""


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Block the interrupting signals in this thread for the duration of the block.

    A signal arriving meanwhile stays pending and its Python handler runs right
    after the block, at a point where the channel is consistent.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTING_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def take_standard_fds() -> tuple[int, int]:
    """Move the channel to private fds; return (read_fd, write_fd).

    fd 0 becomes /dev/null, fd 1 a copy of fd 2; `sys.stdout`/`sys.stderr`
    are left to the caller (they still point at fds 1 and 2, which are now
    harmless).
    """
    read_fd = os.dup(0)
    write_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    os.set_inheritable(read_fd, False)
    os.set_inheritable(write_fd, False)
    return read_fd, write_fd


def watch_hangup(fd: int) -> None:
    """Exit the process at once when the writer of `fd` goes away (the daemon died).

    The main loop notices end of stdin only when it next reads; a snippet that
    is busy computing would keep the container alive until its soft timeout.
    A watcher thread polls the fd for hang-up only (no POLLIN, so it never
    takes a byte of a frame) and ends the process when it comes.
    """

    def _watch() -> None:
        with signals_held():
            poller = select.poll()
            poller.register(fd, 0)  # POLLHUP and POLLERR are always reported
            while True:
                try:
                    events = poller.poll()
                except InterruptedError:
                    continue
                if any(
                    ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in events
                ):
                    os._exit(0)

    threading.Thread(target=_watch, name="corral-stdin-watch", daemon=True).start()


class Channel:
    """Frames in on `read_fd`, frames out on `write_fd`.

    `send` may be called from the output flusher thread and the main thread;
    `recv` only from the main thread.
    """

    def __init__(self, read_fd: int, write_fd: int, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.max_frame = max_frame
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversized body still to discard
        self._eof = False
        self._write_lock = threading.Lock()

    # -- writing ----------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        """Write one whole frame (raises FrameTooLarge before writing anything)."""
        data = encode(frame, self.max_frame)
        with signals_held(), self._write_lock:
            view = memoryview(data)
            while view:
                n = os.write(self.write_fd, view)
                view = view[n:]

    # -- reading ----------------------------------------------------------

    def recv(self, timeout: float | None = None, wake_fd: int | None = None) -> dict[str, Any]:
        """Return the next frame.

        Raises ChannelClosed at end of stream, ChannelTimeout when `timeout`
        seconds pass without a whole frame, FrameTooLarge for an oversized
        length (its body is then skipped as it arrives), FrameError for a body
        that is not a JSON object with a string type. After a FrameError the
        channel is still in sync and the next call reads the next frame.
        With `wake_fd`, a byte becoming readable there raises ChannelWoken
        (the bytes already buffered stay buffered for the next reader).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._skip:
                n = min(self._skip, len(self._buf))
                del self._buf[:n]
                self._skip -= n
            if not self._skip and len(self._buf) >= HEADER.size:
                (size,) = HEADER.unpack_from(self._buf)
                if size > self.max_frame:
                    del self._buf[: HEADER.size]
                    self._skip = size
                    raise FrameTooLarge(
                        f"frame of {size} bytes exceeds the {self.max_frame}-byte maximum"
                    )
                end = HEADER.size + size
                if len(self._buf) >= end:
                    body = bytes(self._buf[HEADER.size : end])
                    del self._buf[:end]
                    return decode_body(body)
            if self._eof:
                raise ChannelClosed("end of stdin")
            self._fill(deadline, wake_fd)

    def _fill(self, deadline: float | None, wake_fd: int | None = None) -> None:
        if deadline is not None or wake_fd is not None:
            remaining = None
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ChannelTimeout("no frame within the timeout")
            fds = [self.read_fd] if wake_fd is None else [self.read_fd, wake_fd]
            ready, _, _ = select.select(fds, [], [], remaining)
            if wake_fd is not None and wake_fd in ready:
                raise ChannelWoken("woken")
            if not ready:
                raise ChannelTimeout("no frame within the timeout")
        want = READ_CHUNK
        if self._skip:
            want = min(READ_CHUNK, self._skip)
        chunk = os.read(self.read_fd, want)
        if not chunk:
            self._eof = True
            return
        self._buf += chunk

    # -- handing the channel to another process (rollback) ------------------

    def export_state(self) -> dict[str, Any]:
        """What another process needs to continue reading exactly where we stop."""
        return {
            "buf": base64.b64encode(self._buf).decode("ascii"),
            "skip": self._skip,
            "eof": self._eof,
        }

    def import_state(self, state: dict[str, Any]) -> None:
        """Continue from `export_state()` of the process that read before us.

        Also replaces the write lock: in a forked child another thread may
        have held the old one at the moment of the fork.
        """
        self._buf = bytearray(base64.b64decode(state["buf"]))
        self._skip = int(state["skip"])
        self._eof = bool(state["eof"])
        self._write_lock = threading.Lock()


__all__ = [
    "Channel",
    "ChannelClosed",
    "ChannelTimeout",
    "ChannelWoken",
    "FrameError",
    "FrameTooLarge",
    "signals_held",
    "take_standard_fds",
    "watch_hangup",
]
