"""The client installs and imports alone: no `executor`, Docker, psutil or RestrictedPython.

`pip install corral` (no extras) brings grpcio and protobuf only (checked against
pyproject.toml); the client and its CLI must work with nothing else, so a child
interpreter that cannot import any daemon-side package imports `agent` and runs
`corral --help`.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAEMON_ONLY = ("executor", "docker", "psutil", "RestrictedPython", "grpc_health", "grpc_reflection")

BLOCKER = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {DAEMON_ONLY!r}:
            raise ImportError("blocked for the thin-client test: " + name)
        return None
sys.meta_path.insert(0, Block())
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_base_dependencies_are_grpc_and_protobuf_only() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = sorted(
        d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"]
    )
    assert names == ["grpcio", "protobuf"]
    daemon = " ".join(project["optional-dependencies"]["daemon"])
    for dep in ("docker", "psutil", "RestrictedPython", "grpcio-health-checking"):
        assert dep in daemon


def test_client_and_agents_import_without_daemon_packages() -> None:
    proc = _run(
        "import agent, agent.agents, agent.cli, agent.aio, agent.tools, agent.memory\n"
        "from agent import Client, AsyncClient, CodeAgent, ToolCallingAgent\n"
        "print(agent.agents.default_imports_text())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{DAEMON_ONLY!r}))\n"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "math" in lines[0] and "json" in lines[0]  # the real list, not a vague sentence
    assert lines[-1] == "[]"


def test_corral_help_runs_without_daemon_packages() -> None:
    proc = _run("import sys\nfrom agent.cli import main\nsys.argv = ['corral', '--help']\nmain()")
    assert proc.returncode == 0, proc.stderr
    assert "corral exec" in proc.stdout


def test_local_executor_says_what_to_install_without_the_interpreter() -> None:
    proc = _run(
        "from agent.executors import resolve_executor\n"
        "try:\n"
        "    resolve_executor('local').open()\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "corral[daemon]" in proc.stdout
