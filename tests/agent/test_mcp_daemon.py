"""`corral mcp` driven by the mcp package's own client, against a live daemon."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")

from mcp import Client as McpClient
from mcp import StdioServerParameters

from agent import Client
from agent.integrations.mcp import artifact_images, format_result
from agent.results import Result, Value, Verdict

pytestmark = pytest.mark.docker

ROOT = str(Path(__file__).resolve().parents[2])
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def _env() -> dict[str, str]:
    return {"PYTHONPATH": ROOT, "PATH": os.environ.get("PATH", os.defpath)}


def _text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_stdio_run_python_keeps_state_and_resets(daemon: Any) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "agent.cli", "mcp", "--target", daemon.target],
        env=_env(),
    )

    async def scenario() -> None:
        async with McpClient(params) as mcp:
            names = {t.name for t in (await mcp.list_tools()).tools}
            assert names == {"run_python", "reset", "upload_file", "download_file"}
            first = await mcp.call_tool("run_python", {"code": "x = 6*7\nprint(x)"})
            assert not first.is_error
            assert "42" in _text(first).splitlines()
            second = await mcp.call_tool("run_python", {"code": "x + 1"})
            assert "value: 43" in _text(second)
            failed = await mcp.call_tool("run_python", {"code": "1/0"})
            assert failed.is_error and "ZeroDivisionError" in _text(failed)
            denied = await mcp.call_tool("run_python", {"code": "import os"})
            assert denied.is_error and "POLICY_DENIED" in _text(denied)

            up = await mcp.call_tool("upload_file", {"path": "in/data.txt", "content": "abc"})
            assert "3 bytes" in _text(up)
            await mcp.call_tool(
                "run_python",
                {"code": "open('out.txt', 'w').write(open('in/data.txt').read().upper())"},
            )
            down = await mcp.call_tool("download_file", {"path": "out.txt"})
            assert _text(down) == "ABC"
            image = base64.b64encode(PNG).decode()
            await mcp.call_tool(
                "upload_file", {"path": "dot.png", "content": image, "encoding": "base64"}
            )
            got = await mcp.call_tool("download_file", {"path": "dot.png"})
            assert got.content[0].type == "image" and got.content[0].data == image
            escape = await mcp.call_tool("download_file", {"path": "../etc/passwd"})
            assert escape.is_error

            await mcp.call_tool("reset", {})
            after = await mcp.call_tool("run_python", {"code": "x"})
            assert after.is_error and "NameError" in _text(after)

    anyio.run(scenario)


@pytest.fixture
def http_server(daemon: Any) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "mcp",
            "--http",
            "--port",
            str(port),
            "--target",
            daemon.target,
        ],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_http_state_is_per_mcp_session(http_server: str, daemon: Any) -> None:
    async def scenario() -> None:
        async with (
            McpClient(http_server, mode="legacy") as alice,
            McpClient(http_server, mode="legacy") as bob,
        ):
            await alice.call_tool("run_python", {"code": "secret = 'alice'"})
            assert "value: 'alice'" in _text(
                await alice.call_tool("run_python", {"code": "secret"})
            )
            other = await bob.call_tool("run_python", {"code": "secret"})
            assert other.is_error and "NameError" in _text(other)
        # Sessionless clients name their state.
        async with McpClient(http_server) as modern:
            await modern.call_tool("run_python", {"code": "n = 1", "session": "s1"})
            again = await modern.call_tool("run_python", {"code": "n + 1", "session": "s1"})
            assert "value: 2" in _text(again)

    anyio.run(scenario)


def test_http_refuses_a_non_loopback_address(daemon: Any) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "mcp",
            "--http",
            "--host",
            "0.0.0.0",
            "--target",
            daemon.target,
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "loopback" in proc.stderr


def test_daemon_sessions_are_closed_when_the_server_stops(daemon: Any) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "agent.cli", "mcp", "--target", daemon.target],
        env=_env(),
    )
    with Client(daemon.target) as client:
        before = client.stats().sessions

        async def scenario() -> None:
            async with McpClient(params) as mcp:
                await mcp.call_tool("run_python", {"code": "1"})
                assert client.stats().sessions == before + 1

        anyio.run(scenario)
        deadline = time.monotonic() + 20
        while client.stats().sessions != before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.stats().sessions == before


def test_image_artifacts_become_image_content() -> None:
    result = Result(Verdict.OK, value=Value("int", "1", 1, True))
    result.artifacts = [  # type: ignore[attr-defined]
        {"name": "fig1.png", "mime_type": "image/png", "data": PNG},
        {"name": "table.csv", "mime_type": "text/csv", "data": b"a,b"},
        {"name": "fig2.png", "mime_type": "image/png", "data": base64.b64encode(PNG).decode()},
    ]
    images = artifact_images(result)
    assert [(n, m) for n, m, _ in images] == [("fig1.png", "image/png"), ("fig2.png", "image/png")]
    assert all(base64.b64decode(d) == PNG for _, _, d in images)
    assert format_result(result) == "verdict: OK\nvalue: 1"
