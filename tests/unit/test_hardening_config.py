"""container_config: the dict that turns a session's limits into Docker settings (no Docker)."""

from __future__ import annotations

import json

import pytest
from docker.models.containers import _create_container_args

from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED
from executor.sandbox.hardening import (
    RAW_FLAG,
    RUNNER_COMMAND,
    SANDBOX_ENV,
    SECCOMP_PROFILE_PATH,
    TMP_BYTES,
    HardeningError,
    container_config,
    cpu_count_for,
    cpuset_for,
)
from proto.limits import MiB, SessionLimits

LABELS = {LABEL_INSTANCE: "unit"}


def cfg(**limit_overrides: int) -> dict:
    return container_config(SessionLimits(**limit_overrides), labels=LABELS, cpus=[0, 1, 2, 3])


def test_command_is_the_runner_by_default() -> None:
    assert cfg()["command"] == RUNNER_COMMAND
    assert RUNNER_COMMAND[:2] == ["python3", "-I"]


def test_raw_mode_appends_the_raw_flag() -> None:
    c = container_config(SessionLimits(), labels=LABELS, raw=True)
    assert c["command"] == [*RUNNER_COMMAND, RAW_FLAG]


def test_command_override_is_verbatim() -> None:
    c = container_config(SessionLimits(), labels=LABELS, command=["python3", "-c", "pass"])
    assert c["command"] == ["python3", "-c", "pass"]


def test_stdin_channel_settings() -> None:
    c = cfg()
    assert c["stdin_open"] is True
    assert c["tty"] is False
    assert c["auto_remove"] is True
    # docker-py derives StdinOnce from stdin_open and detach=False.
    assert c["detach"] is False
    assert "stdin_once" not in c  # docker-py would reject the keyword


def test_docker_py_accepts_every_key_and_sets_stdin_once() -> None:
    c = cfg()
    create_kwargs = _create_container_args({"image": "x", "version": "1.41", **c})
    from docker.types import ContainerConfig

    config = ContainerConfig(version="1.41", **create_kwargs)
    assert config["StdinOnce"] is True
    assert config["OpenStdin"] is True
    host = create_kwargs["host_config"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["Init"] is True


def test_isolation_settings() -> None:
    c = cfg()
    assert c["network_mode"] == "none"
    assert c["read_only"] is True
    assert c["user"] == "65534:65534"
    assert c["cap_drop"] == ["ALL"]
    assert "cap_add" not in c
    assert c["ipc_mode"] == "private"
    assert c["init"] is True
    assert c["working_dir"] == "/workspace"
    assert "privileged" not in c
    assert "volumes" not in c and "mounts" not in c


def test_security_opt_carries_no_new_privileges_and_the_profile_text() -> None:
    opts = cfg()["security_opt"]
    assert "no-new-privileges:true" in opts
    (seccomp,) = [o for o in opts if o.startswith("seccomp=")]
    profile = json.loads(seccomp.removeprefix("seccomp="))
    assert profile == json.loads(SECCOMP_PROFILE_PATH.read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"


def test_tmpfs_sizes_and_flags() -> None:
    tmpfs = cfg(workspace_bytes=8 * MiB)["tmpfs"]
    assert set(tmpfs) == {"/tmp", "/workspace"}
    for opts in tmpfs.values():
        flags = opts.split(",")
        assert {"noexec", "nosuid", "nodev"} <= set(flags)
    assert f"size={8 * MiB}" in tmpfs["/workspace"].split(",")
    assert "uid=65534" in tmpfs["/workspace"].split(",")
    assert f"size={TMP_BYTES}" in tmpfs["/tmp"].split(",")


def test_memory_and_swap_are_equal() -> None:
    c = cfg(memory_bytes=256 * MiB)
    assert c["mem_limit"] == 256 * MiB
    assert c["memswap_limit"] == 256 * MiB


def test_cpu_and_pids() -> None:
    c = cfg(cpu_millis=1500, pids=17)
    assert c["nano_cpus"] == 1_500_000_000
    assert c["pids_limit"] == 17


def test_ulimits() -> None:
    ul = {u["Name"]: (u["Soft"], u["Hard"]) for u in cfg(workspace_bytes=100 * MiB)["ulimits"]}
    assert ul["core"] == (0, 0)
    assert set(ul) == {"nofile", "nproc", "fsize", "core"}
    assert ul["fsize"][0] == ul["fsize"][1] > 100 * MiB
    assert ul["nofile"][0] == ul["nofile"][1]


def test_labels_always_mark_the_container_managed_without_touching_the_callers_dict() -> None:
    mine = {LABEL_INSTANCE: "abc"}
    c = container_config(SessionLimits(), labels=mine)
    assert c["labels"] == {LABEL_INSTANCE: "abc", LABEL_MANAGED: "1"}
    assert mine == {LABEL_INSTANCE: "abc"}


def test_environment_is_the_fixed_minimal_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_UNIT_CANARY", "leak-me")
    c = cfg()
    assert c["environment"] == SANDBOX_ENV
    assert "leak-me" not in json.dumps(c["environment"])
    assert c["environment"]["HOME"] == "/workspace"
    assert c["environment"]["OPENBLAS_NUM_THREADS"] == "1"


def test_no_log_driver_copies_output_to_disk() -> None:
    assert cfg()["log_config"]["Type"] == "none"


def test_name_is_set_only_when_given() -> None:
    assert "name" not in cfg()
    assert container_config(SessionLimits(), labels=LABELS, name="corral-x")["name"] == "corral-x"


@pytest.mark.parametrize(("millis", "want"), [(1, 1), (500, 1), (1000, 1), (1001, 2), (2500, 3)])
def test_cpu_count_rounds_up(millis: int, want: int) -> None:
    assert cpu_count_for(millis) == want


def test_cpuset_has_the_rounded_up_number_of_host_cpus() -> None:
    cpus = [0, 1, 2, 3]
    for millis, want in [(500, 1), (1500, 2), (3000, 3)]:
        chosen = cpuset_for(millis, cpus)
        assert chosen is not None
        picked = [int(x) for x in chosen.split(",")]
        assert len(picked) == want
        assert set(picked) <= set(cpus)


def test_cpuset_omitted_when_it_would_not_restrict() -> None:
    assert cpuset_for(4000, [0, 1, 2, 3]) is None
    assert "cpuset_cpus" not in container_config(
        SessionLimits(cpu_millis=8000), labels=LABELS, cpus=[0, 1]
    )


def test_cpusets_rotate_over_the_host() -> None:
    seen = {cpuset_for(1000, [0, 1, 2, 3]) for _ in range(8)}
    assert seen == {"0", "1", "2", "3"}


def test_memory_below_what_python_needs_is_refused() -> None:
    with pytest.raises(HardeningError, match="raise memory_bytes"):
        cfg(memory_bytes=8 * MiB)
