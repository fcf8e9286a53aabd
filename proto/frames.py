"""Length-prefixed JSON frames: the container channel's wire format.

A frame is a 4-byte big-endian unsigned length followed by that many bytes of
UTF-8 JSON holding one object with a string ``"type"`` key. The schema of every
frame type is documented in ``proto/frames.md``. No pickle: both sides treat
what they read as untrusted data, and the size is checked before the body is
read, so a hostile peer cannot make the reader allocate more than
``max_size`` bytes.

Standard library only: this module runs inside the sandbox image too.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME = 16 << 20  # bytes; also the largest result, file or variable set


class FrameError(Exception):
    """The peer sent something that is not a valid frame."""


class FrameTooLarge(FrameError):
    """The announced length exceeds the reader's maximum."""


def encode(frame: dict[str, Any], max_size: int = DEFAULT_MAX_FRAME) -> bytes:
    """Serialise one frame. Raises FrameTooLarge rather than send an oversized body."""
    body = json.dumps(frame, ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode(
        "utf-8", "surrogatepass"
    )
    if len(body) > max_size:
        raise FrameTooLarge(f"frame of {len(body)} bytes exceeds the {max_size}-byte maximum")
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> dict[str, Any]:
    """Parse a frame body, checking it is a JSON object with a string type."""
    try:
        frame = json.loads(body.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FrameError(f"frame body is not UTF-8 JSON: {exc}") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("frame is not a JSON object with a string 'type'")
    return frame


def read_frame(stream: BinaryIO, max_size: int = DEFAULT_MAX_FRAME) -> dict[str, Any] | None:
    """Blocking read of one frame from a binary stream; None on a clean end of stream.

    A stream that ends inside a frame raises FrameError. An oversized length
    raises FrameTooLarge after skipping the body, so the stream stays in sync.
    """
    header = _read_exact(stream, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > max_size:
        _skip(stream, size)
        raise FrameTooLarge(f"frame of {size} bytes exceeds the {max_size}-byte maximum")
    body = _read_exact(stream, size) if size else b""
    if body is None:
        raise FrameError("stream ended inside a frame")
    return decode_body(body)


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    chunks: list[bytes] = []
    got = 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            if got == 0:
                return None
            raise FrameError("stream ended inside a frame")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _skip(stream: BinaryIO, n: int) -> None:
    while n > 0:
        chunk = stream.read(min(n, 1 << 16))
        if not chunk:
            raise FrameError("stream ended inside an oversized frame")
        n -= len(chunk)


class FrameDecoder:
    """Incremental decoder for byte chunks arriving from a socket (daemon side).

    `feed(data)` returns the complete frames now available. An oversized
    announced length raises FrameTooLarge at once, before buffering the body:
    the caller should treat the peer as hostile and drop the connection.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME) -> None:
        self.max_size = max_size
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> list[dict[str, Any]]:
        self._buf += data
        frames: list[dict[str, Any]] = []
        while len(self._buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buf)
            if size > self.max_size:
                raise FrameTooLarge(
                    f"frame of {size} bytes exceeds the {self.max_size}-byte maximum"
                )
            end = HEADER.size + size
            if len(self._buf) < end:
                break
            body = bytes(self._buf[HEADER.size : end])
            del self._buf[:end]
            frames.append(decode_body(body))
        return frames

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet form a whole frame."""
        return len(self._buf)
