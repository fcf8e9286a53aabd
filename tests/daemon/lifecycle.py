"""A `corrald serve` subprocess for lifecycle tests (signals, SIGKILL, exit codes)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class DaemonProcess:
    """`python -m executor.cli serve ...` with JSON logs parsed from stderr."""

    def __init__(self, *flags: str) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "executor.cli", "serve", "--log-format", "json", *flags],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any] | str] = queue.Queue()
        self.log: list[Any] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.target = ""

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                item: dict[str, Any] | str = json.loads(line)
            except ValueError:
                item = line.rstrip("\n")
            self.log.append(item)
            self.lines.put(item)

    def wait_for(self, msg: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"daemon never logged {msg!r}; log: {self.log[-20:]}")
            try:
                item = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if isinstance(item, dict) and item.get("msg") == msg:
                return item

    def start(self) -> DaemonProcess:
        listening = self.wait_for("listening")
        self.target = listening["address"]
        self.wait_for("ready")
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
