"""The one function that turns a session's limits into Docker container settings.

Everything that creates a sandbox container (the pool, `corrald probe`, the
seccomp verifier, the tests) calls `container_config` and passes the result to
docker-py's ``client.containers.create(image, **cfg)``. No other module builds
Docker keyword arguments, so a hardening setting is added or reviewed here once.

Each setting was checked against the engine this project targets (Docker 20.10,
cgroup v1, runc): the container-layer tests in ``tests/container`` assert that
each one really applies, with raw CPython inside (no interpreter).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from executor.sandbox import LABEL_MANAGED
from proto.limits import MiB, SessionLimits

SANDBOX_UID = 65534  # "nobody" on Debian; no files in the image belong to it
SANDBOX_USER = f"{SANDBOX_UID}:{SANDBOX_UID}"

RUNNER_COMMAND: list[str] = ["python3", "-I", "-m", "executor.runner"]
RAW_FLAG = "--raw"  # runner runs plain CPython: operator-only (`corrald probe --raw`)

SECCOMP_PROFILE_PATH = (
    Path(__file__).resolve().parents[2] / "sandbox_images" / "seccomp" / "profile.json"
)

WORKDIR = "/workspace"
TMP_BYTES = 16 * MiB  # /tmp cap; the session's workspace_bytes caps /workspace
SHM_BYTES = 8 * MiB  # /dev/shm (private IPC namespace), enough for multiprocessing locks
NOFILE = 256  # open files per process
# RLIMIT_NPROC counts every task of the uid on the whole host kernel (there is no
# user namespace), and all sandboxes share uid 65534: it is only a backstop.
# The per-container bound on processes is the pids cgroup (`pids_limit`).
NPROC = 4096
OOM_SCORE_ADJ = 500  # when the host runs out of memory, sandboxes go first

# Only these reach the container: nothing from the daemon's own environment.
SANDBOX_ENV: dict[str, str] = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "HOME": WORKDIR,
    "LANG": "C.UTF-8",
    # matplotlib: no display; a writable config dir on the /tmp tmpfs, seeded with the
    # font cache built at image build time (sandbox_images/corral_site.py).
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/tmp/matplotlib",
}

_TMPFS_FLAGS = "rw,noexec,nosuid,nodev"
_cpuset_rotation = itertools.count()


class HardeningError(Exception):
    """The hardening settings cannot be built; the message says how to fix it."""


@lru_cache(maxsize=4)
def _profile_text(path: Path) -> str:
    try:
        profile = json.loads(path.read_text())
    except FileNotFoundError:
        raise HardeningError(
            f"seccomp profile {path} is missing: run `corrald seccomp generate`"
        ) from None
    except ValueError as exc:
        raise HardeningError(
            f"seccomp profile {path} is not valid JSON ({exc}): run `corrald seccomp generate`"
        ) from None
    # The engine API takes the profile's JSON text, not a path (the CLI reads the file).
    return json.dumps(profile, separators=(",", ":"), sort_keys=True)


def seccomp_profile_text(runtime: str = "runc") -> str:
    """The committed seccomp profile as compact JSON, as `security_opt` expects it.

    Under runsc the profile is applied by gVisor's kernel (`--oci-seccomp`), which
    (release 20221219, measured) ignores a rule's `errnoRet` and answers EPERM.
    The only such rule answers clone3 with ENOSYS so that glibc falls back to
    clone (whose flags the profile can check); EPERM there breaks every thread
    start. gVisor does not implement clone3 and answers ENOSYS itself, so under
    runsc those syscalls are passed to it; the seccomp verify table checks that
    the answer is still ENOSYS (a gVisor that implements clone3 fails it).
    Syscalls gVisor names differently are allowed under both names
    (`GVISOR_SYSCALL_ALIASES`).
    """
    text = _profile_text(SECCOMP_PROFILE_PATH)
    if runtime == "runc":
        return text
    return _gvisor_profile_text(text)


# runsc maps the profile's syscall names through its own syscall table, and
# ignores names it does not know. Release 20221219 calls syscall 270 "pselect"
# (Linux: "pselect6"), so the allowed pselect6 was denied (Python's select.select
# failed with EPERM). The verify table's "pselect6" control probe catches a gap.
GVISOR_SYSCALL_ALIASES: dict[str, str] = {"pselect6": "pselect"}


@lru_cache(maxsize=4)
def _gvisor_profile_text(text: str) -> str:
    profile = json.loads(text)
    default_errno = profile.get("defaultErrnoRet", 1)
    passed: list[str] = []
    kept: list[dict[str, Any]] = []
    for entry in profile["syscalls"]:
        errno_ret = entry.get("errnoRet", default_errno)
        if entry["action"] == "SCMP_ACT_ERRNO" and errno_ret != default_errno:
            passed.extend(entry["names"])
        else:
            kept.append(entry)
    if passed:
        kept.append(
            {
                "names": sorted(passed),
                "action": "SCMP_ACT_ALLOW",
                "comment": "runsc ignores errnoRet; gVisor itself answers ENOSYS",
            }
        )
    allowed = set(profile["syscalls"][0]["names"]) if profile["syscalls"] else set()
    aliases = sorted(alias for name, alias in GVISOR_SYSCALL_ALIASES.items() if name in allowed)
    if aliases:
        kept.append(
            {
                "names": aliases,
                "action": "SCMP_ACT_ALLOW",
                "comment": "gVisor's own names for syscalls the allowlist allows",
            }
        )
    profile["syscalls"] = kept
    return json.dumps(profile, separators=(",", ":"), sort_keys=True)


def cpu_count_for(cpu_millis: int) -> int:
    """CPUs a session may use: its CPU share rounded up, at least one."""
    return max(1, math.ceil(cpu_millis / 1000))


def host_cpus() -> list[int]:
    """CPUs the engine can schedule on (the daemon runs next to a local engine)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def cpuset_for(cpu_millis: int, cpus: list[int] | None = None) -> str | None:
    """A cpuset of ceil(cpu_millis/1000) host CPUs, or None when it would not restrict.

    Successive containers start at successive CPUs so that one-CPU sessions
    spread over the host instead of all sharing CPU 0. Inside, the image's
    startup hook makes `os.cpu_count()` report the size of this set.
    """
    cpus = host_cpus() if cpus is None else cpus
    want = cpu_count_for(cpu_millis)
    if want >= len(cpus):
        return None
    start = next(_cpuset_rotation) % len(cpus)
    chosen = sorted(cpus[(start + i) % len(cpus)] for i in range(want))
    return ",".join(str(c) for c in chosen)


def _ulimits(limits: SessionLimits) -> list[Any]:
    from docker.types import Ulimit

    # A backstop: the tmpfs sizes are the real caps (ENOSPC); one MiB more so the
    # filesystem fills first and the snippet sees the clearer error.
    fsize = max(limits.workspace_bytes, TMP_BYTES) + 1 * MiB
    return [
        Ulimit(name="nofile", soft=NOFILE, hard=NOFILE),
        Ulimit(name="nproc", soft=NPROC, hard=NPROC),
        Ulimit(name="fsize", soft=fsize, hard=fsize),
        Ulimit(name="core", soft=0, hard=0),
    ]


def runtime_settings(runtime: str, limits: SessionLimits) -> dict[str, Any]:
    """The part of the container settings that depends on the OCI runtime.

    `runtime` is already resolved (`runtimes.resolve`): "runc" or "runsc".
    Under runsc the engine's runsc entry carries ``--network=none
    --oci-seccomp``, so gVisor's kernel applies the same profile to the
    sandbox's syscalls (adapted: see `seccomp_profile_text`), and the pids
    cgroup gets headroom for gVisor's own tasks (`runtimes.cgroup_pids`).
    Limits the runtime cannot enforce raise HardeningError. Tests that run raw snippets
    pass this as ``config_overrides`` to pick a runtime.
    """
    from executor.sandbox.runtimes import STRENGTH, RuntimeSetupError, cgroup_pids, check_limits

    if runtime not in STRENGTH:
        raise HardeningError(f"unknown runtime {runtime!r}: use one of {', '.join(STRENGTH)}")
    try:
        check_limits(runtime, limits.pids)
    except RuntimeSetupError as exc:
        raise HardeningError(str(exc)) from None
    out: dict[str, Any] = {
        "security_opt": ["no-new-privileges:true", f"seccomp={seccomp_profile_text(runtime)}"],
    }
    if runtime != "runc":
        out["runtime"] = runtime
        # gVisor's own host tasks share the pids cgroup: they get headroom on top.
        out["pids_limit"] = cgroup_pids(runtime, limits.pids)
    return out


def container_config(
    limits: SessionLimits,
    *,
    labels: dict[str, str],
    name: str | None = None,
    raw: bool = False,
    command: list[str] | None = None,
    cpus: list[int] | None = None,
    runtime: str = "runc",
) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create(image, **cfg)``.

    The command is the runner (``RUNNER_COMMAND``), the runner in raw CPython
    mode when `raw` (operator tools only), or `command` verbatim (tests that
    probe the container layer). stdin stays open for the frame channel and
    closes with the attach stream (StdinOnce), so the runner sees EOF and
    exits when the daemon goes away; the container then removes itself.
    Use with ``client.containers.create`` (not ``run``: detach is False).
    `cpus` overrides the host CPU list used for the cpuset (unit tests).
    `runtime` is the OCI runtime already resolved by `runtimes.resolve` ("runc"
    or "runsc"); limits it cannot enforce raise HardeningError.
    """
    from docker.types import LogConfig

    if command is not None:
        cmd = list(command)
    else:
        cmd = [*RUNNER_COMMAND, RAW_FLAG] if raw else list(RUNNER_COMMAND)
    if limits.memory_bytes < 32 * MiB:
        raise HardeningError(
            f"memory limit {limits.memory_bytes} bytes is below the 32 MiB a Python "
            "process needs; raise memory_bytes"
        )
    by_runtime = runtime_settings(runtime, limits)
    all_labels = {**labels, LABEL_MANAGED: "1"}
    workspace = max(limits.workspace_bytes, 1 * MiB)
    cfg: dict[str, Any] = {
        "command": cmd,
        # docker-py has no `stdin_once` keyword: it sets StdinOnce (with the
        # Attach* flags, which only the CLI reads) when stdin_open is set and
        # detach is False. `containers.create` never blocks, whatever `detach` says.
        "detach": False,
        "stdin_open": True,
        "tty": False,
        "auto_remove": True,
        "labels": all_labels,
        "hostname": "sandbox",
        "user": SANDBOX_USER,
        "working_dir": WORKDIR,
        "environment": dict(SANDBOX_ENV),
        # --- isolation ---
        "network_mode": "none",
        "ipc_mode": "private",
        "read_only": True,
        "tmpfs": {
            "/tmp": f"{_TMPFS_FLAGS},size={TMP_BYTES},mode=1777",
            WORKDIR: f"{_TMPFS_FLAGS},size={workspace},uid={SANDBOX_UID},gid={SANDBOX_UID},mode=0700",
        },
        "shm_size": SHM_BYTES,
        "cap_drop": ["ALL"],
        "init": True,  # the engine's docker-init (tini) reaps zombies and forwards signals
        # --- resources (cgroup v1: memory, cpu cfs quota, pids, cpuset) ---
        "mem_limit": limits.memory_bytes,
        "memswap_limit": limits.memory_bytes,  # equal: no swap
        "nano_cpus": limits.cpu_millis * 1_000_000,
        "pids_limit": limits.pids,
        "ulimits": _ulimits(limits),
        "oom_score_adj": OOM_SCORE_ADJ,
        # Output travels over the attach stream only; a log driver would copy
        # everything the sandbox prints onto the host's disk.
        "log_config": LogConfig(type="none"),
    }
    cfg.update(by_runtime)
    cpuset = cpuset_for(limits.cpu_millis, cpus)
    if cpuset is not None:
        cfg["cpuset_cpus"] = cpuset
    if name is not None:
        cfg["name"] = name
    return cfg
