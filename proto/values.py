"""Bytes inside the JSON that crosses the tool boundary (arguments and results).

Tool arguments and results travel as JSON between the sandbox, the daemon and
the client. `bytes` (an image a tool generated, a file a snippet built) cross
as a one-key object holding base64, `{"__corral_bytes__": "..."}`, encoded by
`to_wire` on the sending side and turned back into `bytes` by `from_wire` on
the receiving side; everything else passes unchanged. Sizes are bounded where
the JSON is: the frame cap in the sandbox, the session's `tool_result_bytes`
cap for results (base64 costs 4/3), and the daemon's message caps.

A snippet can of course build such an object itself: it then becomes bytes on
the other side, which is all it is. Standard library only: the client imports
it and the image carries it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

BYTES_KEY = "__corral_bytes__"
MAX_DEPTH = 100  # deeper data is left as it is (the channel refuses it anyway)


def to_wire(value: Any, depth: int = 0) -> Any:
    """`value` with every bytes/bytearray/memoryview replaced by its tagged base64 form."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {BYTES_KEY: base64.b64encode(bytes(value)).decode("ascii")}
    if depth >= MAX_DEPTH:
        return value
    if isinstance(value, list | tuple):
        return [to_wire(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: to_wire(v, depth + 1) for k, v in value.items()}
    return value


def from_wire(value: Any, depth: int = 0) -> Any:
    """The inverse of `to_wire`; a tagged object that is not valid base64 stays as it is."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(BYTES_KEY), str):
            try:
                return base64.b64decode(value[BYTES_KEY], validate=True)
            except (binascii.Error, ValueError):
                return value
        if depth >= MAX_DEPTH:
            return value
        return {k: from_wire(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list) and depth < MAX_DEPTH:
        return [from_wire(v, depth + 1) for v in value]
    return value
