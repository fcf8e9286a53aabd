"""The `corral` command as a subprocess against a real daemon."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.cli import DEMO_ANSWER, DEMO_SCRIPT
from tests.agent.test_models import _completion, _Endpoint

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]


def corral(
    *args: str, target: str | None = None, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    if target:
        full_env["CORRAL_TARGET"] = target
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=full_env,
        timeout=120,
    )


def test_exec_prints_output_and_value(daemon: Any) -> None:
    p = corral("exec", "--wait", "30", "x = 6 * 7\nprint('hello')\nx", target=daemon.target)
    assert (p.returncode, p.stdout, p.stderr) == (0, "hello\n42\n", "")


@pytest.mark.parametrize(
    ("code", "extra", "exit_code", "stderr_part"),
    [
        ("1 / 0", [], 1, "ERROR (line 1): ZeroDivisionError"),
        ("def (:", [], 3, "SYNTAX_ERROR"),
        ("import subprocess", [], 4, "POLICY_DENIED"),
        ("while True:\n    pass", ["--wall-time-ms", "500"], 5, "TIMEOUT"),
    ],
)
def test_exec_exit_codes(
    daemon: Any, code: str, extra: list[str], exit_code: int, stderr_part: str
) -> None:
    p = corral("exec", *extra, code, "--target", daemon.target)
    assert p.returncode == exit_code, p.stderr
    assert stderr_part in p.stderr


def test_exec_json_and_file(daemon: Any, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text("print('from file')\nfinal_answer([1, 2])\n")
    p = corral("exec", "-f", str(script), "--json", target=daemon.target)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["verdict"] == "OK" and doc["ok"] is True and doc["exit_code"] == 0
    assert doc["stdout"] == "from file\n"
    assert doc["is_final_answer"] is True and doc["final_answer"]["json"] == [1, 2]
    assert doc["session_lost"] is False and doc["truncated"] is False
    assert set(doc["usage"]) == {"wall_ms", "cpu_ms", "peak_memory_bytes", "output_bytes"}

    err = corral("exec", "--json", "{}['k']", target=daemon.target)
    assert err.returncode == 1
    doc = json.loads(err.stdout)
    assert doc["verdict"] == "ERROR" and doc["error"]["type"] == "KeyError"

    stdin = corral("exec", "-f", "-", target=daemon.target, stdin="print(3 * 3)\n")
    assert (stdin.returncode, stdin.stdout) == (0, "9\n")


def test_exec_daemon_down_exit_code() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    p = corral("exec", "1", "--target", f"127.0.0.1:{port}")
    assert p.returncode == 10
    assert "UNAVAILABLE" in p.stderr and "corrald serve" in p.stderr
    waited = corral("demo", "--wait", "0.5", "--target", f"127.0.0.1:{port}")
    assert waited.returncode == 10
    assert "did not accept a connection within 0.5 s" in waited.stderr
    as_json = corral("exec", "--json", "1", "--target", f"127.0.0.1:{port}")
    assert as_json.returncode == 10
    assert json.loads(as_json.stdout)["error"]["code"] == "UNAVAILABLE"
    missing = corral("exec", "-f", "/nonexistent.py", "--target", f"127.0.0.1:{port}")
    assert missing.returncode == 2 and "cannot read /nonexistent.py" in missing.stderr


def test_repl_keeps_state_with_piped_input(daemon: Any) -> None:
    script = (
        "x = 20\n"
        "x + 22\n"
        "def double(a):\n"
        "    b = a * 2\n"
        "\n"
        "    return b\n"
        "double(x)\n"
        "1 / 0\n"
        "for i in range(2):\n"
        "    print('loop', i)\n"
        "print('still here', x)\n"
    )
    p = corral("repl", target=daemon.target, stdin=script)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "42\n40\nloop 0\nloop 1\nstill here 20\n"
    assert "ERROR (line 1): ZeroDivisionError" in p.stderr


def test_demo_prints_each_step_and_the_answer(daemon: Any) -> None:
    p = corral("demo", target=daemon.target)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.startswith("Task: Calculate the 100th Fibonacci number\n")
    assert "━━ Step 1" in out and "━━ Step 2" in out
    assert "Thought: The 100th Fibonacci number" in out
    assert "F(100) = 354224848179261915075 (21 digits)" in out  # the observation
    assert "Final answer: 354224848179261915075\n" in out
    assert out.count(str(DEMO_ANSWER)) >= 3


def test_demo_and_agent_with_a_model_endpoint(daemon: Any) -> None:
    endpoint = _Endpoint()
    try:
        for text in DEMO_SCRIPT:
            endpoint.answers.append((200, _completion(text)))
        p = corral(
            "demo",
            "--model",
            "local-model",
            "--base-url",
            endpoint.base_url,
            target=daemon.target,
            env={"OPENAI_API_KEY": "sk-local"},
        )
        assert p.returncode == 0, p.stderr
        assert "Final answer: 354224848179261915075" in p.stdout
        assert "tokens in/out 24/10" in p.stdout  # the endpoint's reported usage, 2 calls
        assert [r["body"]["model"] for r in endpoint.requests] == ["local-model"] * 2
        assert endpoint.requests[0]["auth"] == "Bearer sk-local"

        endpoint.requests.clear()
        endpoint.answers.append((200, _completion("```py\nfinal_answer(sum(range(10)))\n```")))
        p = corral(
            "agent",
            "Sum 0..9",
            "--model",
            "m",
            "--base-url",
            endpoint.base_url,
            target=daemon.target,
        )
        assert p.returncode == 0, p.stderr
        assert "Final answer: 45" in p.stdout
        assert endpoint.requests[0]["body"]["messages"][1]["content"] == "New task:\nSum 0..9"

        # 5xx is retried (3 times by default) before the run fails.
        endpoint.answers.extend([(500, {"error": "overloaded"})] * 4)
        p = corral(
            "agent", "x", "--model", "m", "--base-url", endpoint.base_url, target=daemon.target
        )
        assert p.returncode == 12 and "HTTP 500" in p.stderr
    finally:
        endpoint.close()
