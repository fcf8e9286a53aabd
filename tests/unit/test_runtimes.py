"""Choosing and registering the OCI runtime, without Docker (the engine is a stub
answering `info()`, the config file a temporary one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from executor.daemon.config import DaemonConfig
from executor.daemon.errors import ConfigError
from executor.sandbox.hardening import (
    HardeningError,
    container_config,
    runtime_settings,
    seccomp_profile_text,
)
from executor.sandbox.runtimes import (
    GVISOR_RUNTIME_ARGS,
    RUNSC_MIN_PIDS,
    RUNSC_PIDS_OVERHEAD,
    RUNSC_PIDS_PER_TASK,
    RuntimeSetupError,
    check_limits,
    check_not_weaker,
    merged_daemon_json,
    register,
    resolve,
)
from proto.limits import SessionLimits


class Engine:
    def __init__(self, runtimes: dict[str, Any]) -> None:
        self.runtimes = runtimes

    def info(self) -> dict[str, Any]:
        return {"Runtimes": self.runtimes}


WITH_RUNSC = Engine({"runc": {"path": "runc"}, "runsc": {"path": "/usr/bin/runsc"}})
RUNC_ONLY = Engine({"runc": {"path": "runc"}})


def test_auto_prefers_gvisor_when_registered() -> None:
    assert resolve("auto", WITH_RUNSC).runtime == "runsc"
    choice = resolve("auto", RUNC_ONLY)
    assert choice.runtime == "runc"
    assert "setup-runtime gvisor" in choice.reason


def test_explicit_runtimes() -> None:
    assert resolve("runc", WITH_RUNSC).runtime == "runc"
    assert resolve("runsc", WITH_RUNSC).runtime == "runsc"
    with pytest.raises(RuntimeSetupError, match="corrald setup-runtime gvisor"):
        resolve("runsc", RUNC_ONLY)
    with pytest.raises(RuntimeSetupError, match="use one of auto, runc, runsc"):
        resolve("kata", WITH_RUNSC)


def test_a_caller_cannot_ask_for_a_weaker_runtime() -> None:
    check_not_weaker("runsc", "runc")
    check_not_weaker("runsc", "runsc")
    with pytest.raises(RuntimeSetupError, match="weaker"):
        check_not_weaker("runc", "runsc")


def test_pids_too_low_for_gvisor_is_refused_with_the_fix() -> None:
    check_limits("runc", 2)
    check_limits("runsc", RUNSC_MIN_PIDS)
    with pytest.raises(RuntimeSetupError, match=f">= {RUNSC_MIN_PIDS}"):
        check_limits("runsc", RUNSC_MIN_PIDS - 1)
    with pytest.raises(HardeningError, match="raise pids"):
        container_config(SessionLimits(pids=RUNSC_MIN_PIDS - 1), labels={}, runtime="runsc")


def test_gvisor_gets_pids_headroom_on_top_of_the_sessions_limit() -> None:
    runc = container_config(SessionLimits(pids=64), labels={})
    runsc = container_config(SessionLimits(pids=64), labels={}, runtime="runsc")
    assert runc["pids_limit"] == 64
    assert runsc["pids_limit"] == 64 * RUNSC_PIDS_PER_TASK + RUNSC_PIDS_OVERHEAD


def test_container_config_carries_the_runtime() -> None:
    runc = container_config(SessionLimits(), labels={})
    runsc = container_config(SessionLimits(), labels={}, runtime="runsc")
    assert "runtime" not in runc
    assert runsc["runtime"] == "runsc"
    with pytest.raises(HardeningError, match="unknown runtime"):
        runtime_settings("kata", SessionLimits())


def test_gvisor_profile_passes_clone3_to_gvisor_and_aliases_pselect6() -> None:
    runc = json.loads(seccomp_profile_text("runc"))
    runsc = json.loads(seccomp_profile_text("runsc"))
    errno_rules = [e for e in runsc["syscalls"] if e["action"] == "SCMP_ACT_ERRNO"]
    assert errno_rules == []  # runsc ignores errnoRet: no rule may rely on it
    allowed = {n for e in runsc["syscalls"] if e["action"] == "SCMP_ACT_ALLOW" for n in e["names"]}
    assert {"clone3", "pselect", "pselect6"} <= allowed
    assert any(e.get("errnoRet") == 38 for e in runc["syscalls"])
    assert runsc["defaultAction"] == runc["defaultAction"]
    for entry in runc["syscalls"][1:]:  # argument-filtered rules survive unchanged
        if entry["action"] == "SCMP_ACT_ALLOW":
            assert entry in runsc["syscalls"]


def test_config_key_runtime() -> None:
    assert DaemonConfig().runtime == "auto"
    assert DaemonConfig().replace(runtime="runsc").runtime == "runsc"
    with pytest.raises(ConfigError, match="runtime='kata'"):
        DaemonConfig().replace(runtime="kata")
    with pytest.raises(ConfigError, match="cannot be enforced under gVisor"):
        DaemonConfig().replace(runtime="runsc", default_pids=RUNSC_MIN_PIDS - 1)


def test_merge_keeps_every_other_key() -> None:
    current = {"storage-driver": "overlay2", "runtimes": {"kata": {"path": "/k"}}}
    merged = merged_daemon_json(current, "/usr/bin/runsc")
    assert merged["storage-driver"] == "overlay2"
    assert merged["runtimes"]["kata"] == {"path": "/k"}
    assert merged["runtimes"]["runsc"] == {
        "path": "/usr/bin/runsc",
        "runtimeArgs": list(GVISOR_RUNTIME_ARGS),
    }
    with pytest.raises(RuntimeSetupError, match="fix it by hand"):
        merged_daemon_json({"runtimes": []}, "/usr/bin/runsc")


def test_register_is_idempotent_and_keeps_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"log-driver": "json-file"}))
    path.chmod(0o600)
    assert register("/usr/bin/runsc", path) is True
    first = path.read_text()
    assert register("/usr/bin/runsc", path) is False
    assert path.read_text() == first
    assert json.loads(first)["log-driver"] == "json-file"
    assert path.stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob("*.corral-tmp"))


def test_register_refuses_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text("{not json")
    with pytest.raises(RuntimeSetupError, match="not valid JSON"):
        register("/usr/bin/runsc", path)
    assert path.read_text() == "{not json"


def test_register_creates_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "docker" / "daemon.json"
    assert register("/usr/bin/runsc", path) is True
    assert json.loads(path.read_text())["runtimes"]["runsc"]["path"] == "/usr/bin/runsc"


def test_setup_without_root_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running as non-root is simulated (the test suite itself runs as root)."""
    from executor.sandbox import runtimes

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(runtimes.os, "geteuid", lambda: 1000)
    with pytest.raises(RuntimeSetupError, match=r"needs root.*sudo"):
        runtimes.setup_gvisor(log=lambda _msg: None)


def test_setup_refuses_a_remote_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    from executor.sandbox import runtimes

    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2376")
    with pytest.raises(RuntimeSetupError, match="not the local engine"):
        runtimes.setup_gvisor(log=lambda _msg: None)
