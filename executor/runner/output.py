"""Streaming a snippet's printed output as `output` frames, batched and capped.

Small prints are batched: the buffer is sent when it holds 4 KiB or when its
oldest chunk has waited 20 ms (a background flusher thread sends it then, so
"print, then compute for a minute" still shows the print at once). The runner
flushes explicitly before a tool call and before the result, so the daemon
sees output, tool calls and the result in the order the snippet produced them.
At most `cap_bytes` (UTF-8) are streamed per snippet and per stream; the rest
is counted but not sent (the result's `truncated` flag tells the client).
stdout and stderr share one ordered buffer, so their frames keep the order the
snippet wrote them in; a stderr frame carries `"stream": "stderr"`.

Standard library only: this module runs inside the sandbox image.
"""

from __future__ import annotations

import threading
import time

from executor.runner.channel import Channel, signals_held

FLUSH_BYTES = 4096  # send once this much output is buffered
FLUSH_DELAY_S = 0.020  # or once the oldest buffered chunk is this old


class OutputStream:
    """Collects one snippet's output chunks and sends them as output frames.

    `write` runs in the main thread (as the interpreter's print callback); the
    shared flusher thread calls `flush_if_due`. One lock guards the buffer.
    """

    def __init__(self, channel: Channel, request_id: str, cap_bytes: int) -> None:
        self.channel = channel
        self.request_id = request_id
        self.cap_bytes = max(0, int(cap_bytes))
        self.produced_bytes = 0  # everything the snippet printed (UTF-8), sent or not
        self.sent_bytes = 0
        self.stderr_sent_bytes = 0
        self._chunks: list[tuple[str, str]] = []  # (stream, text), in order
        self._buffered = 0  # characters buffered (cheap approximation of bytes)
        self._since = 0.0  # monotonic time the oldest buffered chunk arrived
        self._lock = threading.Lock()
        self._open = True

    def write(self, text: str, stream: str = "stdout") -> None:
        """Print callback: buffer `text`, sending when enough is buffered."""
        if not text or not isinstance(text, str):
            return
        with self._lock:
            if not self._open:
                return
            if not self._chunks:
                self._since = time.monotonic()
            self._chunks.append((stream, text))
            self._buffered += len(text)
            due = self._buffered >= FLUSH_BYTES
        if due:
            self.flush()
        else:
            FLUSHER.wake(self)

    def flush(self) -> None:
        """Send everything buffered now (signals held: no half-sent chunk)."""
        with signals_held(), self._lock:
            self._send_locked()

    def flush_if_due(self, now: float) -> float | None:
        """Flusher thread: send when the oldest chunk is old enough.

        Returns the time the next flush is due, or None when nothing is buffered.
        """
        with self._lock:
            if not self._chunks:
                return None
            due = self._since + FLUSH_DELAY_S
            if now < due:
                return due
            self._send_locked()
            return None

    def close(self) -> None:
        """Flush and stop: later writes (a stray thread of a raw snippet) are dropped."""
        with signals_held(), self._lock:
            self._send_locked()
            self._open = False

    def write_stderr(self, text: str) -> None:
        """Stderr callback: like `write`, marked as the snippet's stderr."""
        self.write(text, "stderr")

    def _send_locked(self) -> None:
        if not self._chunks:
            return
        chunks = self._chunks
        self._chunks = []
        self._buffered = 0
        run: list[str] = []
        stream = chunks[0][0]
        for name, text in chunks:  # one frame per run of one stream
            if name != stream:
                self._send_run(stream, "".join(run))
                run, stream = [], name
            run.append(text)
        self._send_run(stream, "".join(run))

    def _send_run(self, stream: str, text: str) -> None:
        data = text.encode("utf-8", "surrogatepass")
        err = stream == "stderr"
        if not err:
            self.produced_bytes += len(data)
        room = self.cap_bytes - (self.stderr_sent_bytes if err else self.sent_bytes)
        if room <= 0:
            return
        if len(data) > room:
            text = data[:room].decode("utf-8", "ignore")
            data = text.encode("utf-8", "surrogatepass")
        if not data:
            return
        frame = {"type": "output", "id": self.request_id, "data": text}
        if err:
            self.stderr_sent_bytes += len(data)
            frame["stream"] = "stderr"
        else:
            self.sent_bytes += len(data)
        self.channel.send(frame)


class _Flusher:
    """One daemon thread for the runner's lifetime that sends late batches."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._stream: OutputStream | None = None
        self._armed = False  # the thread is watching a stream with buffered output
        self._thread: threading.Thread | None = None

    def wake(self, stream: OutputStream) -> None:
        """Make sure the flusher watches `stream` (cheap when it already does)."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="corral-output-flusher", daemon=True
                )
                self._thread.start()
            if self._stream is not stream or not self._armed:
                self._stream = stream
                self._armed = True
                self._cond.notify()

    def _run(self) -> None:
        # The interrupting signals belong to the main thread (the snippet).
        with signals_held(), self._cond:
            while True:
                timeout: float | None = None
                if self._armed and self._stream is not None:
                    due = self._stream.flush_if_due(time.monotonic())
                    if due is None:
                        self._armed = False
                    else:
                        timeout = max(0.0, due - time.monotonic())
                self._cond.wait(timeout)


FLUSHER = _Flusher()
