"""The runner as a local subprocess (no Docker), spoken to over its stdin/stdout pipes."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proto.frames import FrameDecoder, encode

REPO = Path(__file__).resolve().parents[2]


class RunnerProcess:
    """A runner subprocess with a frame client; every read has a timeout."""

    def __init__(self, workspace: Path, *, raw: bool = False) -> None:
        cmd = [sys.executable, "-m", "executor.runner", "--workspace", str(workspace)]
        if raw:
            cmd.append("--raw")
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(workspace),
            env=env,
        )
        self.decoder = FrameDecoder()
        self.pending: list[dict[str, Any]] = []
        self._n = 0

    def new_id(self) -> str:
        self._n += 1
        return f"r{self._n}"

    def send(self, frame: dict[str, Any]) -> None:
        self.send_bytes(encode(frame))

    def send_bytes(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while not self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the runner within the timeout")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError("runner closed its stdout")
            self.pending.extend(self.decoder.feed(chunk))
        return self.pending.pop(0)

    def request(self, frame: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        frame = {"id": self.new_id(), **frame}
        self.send(frame)
        answer = self.recv(timeout)
        assert answer.get("id") == frame["id"], answer
        return answer

    def init(self, **fields: Any) -> None:
        answer = self.request({"type": "init", **fields})
        assert answer["type"] == "ack", answer

    def execute(
        self, code: str, timeout: float = 20.0, **fields: Any
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run a snippet; return (result frame, frames seen before it)."""
        rid = self.new_id()
        self.send({"type": "execute", "id": rid, "code": code, **fields})
        before: list[dict[str, Any]] = []
        while True:
            frame = self.recv(timeout)
            if frame["type"] == "result":
                assert frame["id"] == rid
                return frame, before
            before.append(frame)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    return ws


@pytest.fixture
def raw_runner(workspace: Path) -> Iterator[RunnerProcess]:
    r = RunnerProcess(workspace, raw=True)
    assert r.recv()["type"] == "ready"
    yield r
    r.close()


@pytest.fixture
def runner(workspace: Path) -> Iterator[RunnerProcess]:
    r = RunnerProcess(workspace)
    ready = r.recv()
    assert ready["type"] == "ready", ready
    assert ready["interpreter"] is True
    yield r
    r.close()
