"""Structured logs: short event sentences with bound context (session_id, ...).

Call sites pass context through `extra=`: `log.info("session opened",
extra={"session_id": sid, "caller": name})`. The formatter prints every extra
field, as `key=value` pairs or as one JSON object per line, and truncates long
values so hostile sandbox output never floods the log.

Nothing a client or a sandbox sends can forge or split a log line: values and
the message are JSON-escaped (ASCII only, so also no Unicode line separators),
and keys, which may carry client text (`label_<key>`), are reduced to
`[A-Za-z0-9_.-]` with every other character written as an escape.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

MAX_VALUE_CHARS = 200
MAX_KEY_CHARS = 64
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def safe_key(key: str) -> str:
    """A log key that cannot break a `key=value` line: other characters become escapes."""
    out = "".join(c if c in _KEY_CHARS else f"\\u{ord(c):04x}" for c in key[:MAX_KEY_CHARS])
    return out + ("..." if len(key) > MAX_KEY_CHARS else "")


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _context(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
            value = value[:MAX_VALUE_CHARS] + "..."
        out[safe_key(key)] = value
    return out


def _timestamp(record: logging.LogRecord) -> str:
    t = time.gmtime(record.created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"ts={_timestamp(record)}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={json.dumps(record.getMessage()[: MAX_VALUE_CHARS * 10])}",
        ]
        for key, value in _context(record).items():
            text = value if isinstance(value, int | float) else json.dumps(str(value))
            parts.append(f"{key}={text}")
        if record.exc_info:
            parts.append(f"exc={json.dumps(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _context(record).items():
            doc[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def configure(level: str = "INFO", fmt: str = "keyvalue") -> None:
    """Install one stderr handler on the `corral` logger tree."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger("corral")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
