"""Reading the channel while a snippet runs: tool results, interrupts, the rest deferred.

Between snippets the main thread reads frames itself. While a snippet runs the
main thread is busy, so a reader thread takes over the channel for exactly the
duration of the snippet:

- `interrupt` for the running execute id calls `on_interrupt` once (more of
  them, or for another id, cost one comparison and are dropped: an interrupt
  storm cannot queue anything);
- `tool_result` goes to `inbox`, where the tool broker waits for it;
- `shutdown` and end of stdin end the process at once, as between snippets;
- any other request is kept in `deferred` (bounded) and handled, in order,
  after the snippet's result.

`stop()` wakes the thread through a private pipe and joins it; bytes of a frame
not yet complete stay in the channel's buffer for the main thread.

Standard library only: this module runs inside the sandbox image.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from executor.runner.channel import (
    Channel,
    ChannelClosed,
    ChannelWoken,
    FrameError,
    FrameTooLarge,
    signals_held,
)

MAX_DEFERRED = 64  # requests kept while a snippet runs; more are refused with an error
INTERRUPTED = {"type": "_interrupted"}  # the marker the broker sees in its inbox


class SnippetInput:
    """The channel's reader for the duration of one execute request."""

    def __init__(self, channel: Channel, request_id: str, on_interrupt: Callable[[], None]) -> None:
        self.channel = channel
        self.request_id = request_id
        self.on_interrupt = on_interrupt
        self.inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.deferred: list[dict[str, Any]] = []
        self.interrupted = False
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="corral-snippet-input", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        os.write(self._wake_w, b"x")
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run(self) -> None:
        with signals_held():  # the interrupting signals belong to the main thread
            while True:
                try:
                    frame = self.channel.recv(wake_fd=self._wake_r)
                except ChannelWoken:
                    return
                except ChannelClosed:
                    os._exit(0)  # the daemon is gone
                except FrameTooLarge as exc:
                    self._error(None, f"oversized frame skipped: {exc}")
                    continue
                except FrameError as exc:
                    self._error(None, f"malformed frame: {exc}")
                    continue
                self._dispatch(frame)

    def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "interrupt":
            if frame.get("id") == self.request_id and not self.interrupted:
                self.interrupted = True
                self.on_interrupt()
                self.inbox.put(INTERRUPTED)
            return
        if kind == "tool_result":
            self.inbox.put(frame)
            return
        if kind == "shutdown":
            os._exit(0)
        if len(self.deferred) >= MAX_DEFERRED:
            rid = frame.get("id")
            self._error(
                rid if isinstance(rid, str) else None,
                f"too many requests while a snippet runs (at most {MAX_DEFERRED} wait): "
                "send the next request after the result",
            )
            return
        self.deferred.append(frame)

    def _error(self, rid: str | None, message: str) -> None:
        frame: dict[str, Any] = {"type": "error", "message": message}
        if rid is not None:
            frame["id"] = rid
        self.channel.send(frame)
