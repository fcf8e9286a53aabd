"""`corrald fuzz --target`: fuzzing a daemon that is already running, with bearer-token auth.

The daemon runs in this process (executor.daemon.testing), so its environment
canary is this process's; the fuzzer gets the same value through the
environment, as an operator would export it to both.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from executor.fuzz.canaries import CANARY_ENV

ROOT = Path(__file__).resolve().parents[2]


def _fuzz(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "executor.cli", "fuzz", "-q", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_fuzz_a_running_daemon_with_a_token(
    docker_client: Any, sandbox_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from executor.daemon.testing import running_daemon

    secret = f"corral-canary-env-{secrets.token_hex(16)}"
    monkeypatch.setenv(CANARY_ENV, secret)
    token = secrets.token_urlsafe(24)
    env = {**os.environ, CANARY_ENV: secret}
    out = tmp_path / "report"
    with running_daemon(tokens={"fuzzer": token}, admin_callers="fuzzer", image=sandbox_image) as d:
        denied = _fuzz(["--target", d.target, "--token", "wrong-" + token, "--out", str(out)], env)
        ok = _fuzz(
            [
                *(
                    "--target",
                    d.target,
                    "--token",
                    token,
                    "--classes",
                    "host_harm,builtins_recovery",
                ),
                *("--count", "20", "--seed", "5", "--out", str(out)),
            ],
            env,
        )
    assert denied.returncode == 2, denied.stdout + denied.stderr
    assert "UNAUTHENTICATED" in denied.stderr
    assert ok.returncode == 0, ok.stdout[-4000:] + ok.stderr[-2000:]
    data = json.loads((out / "report.json").read_text())
    assert data["daemon"]["address"] == d.target
    assert data["ok"] and data["failures"] == []
    assert set(data["counts"]) >= {"host_harm", "builtins_recovery"}
    assert data["meta"]["corpus"] + 20 == data["snippets"]
