"""Which OCI runtime runs the sandboxes: runc (host kernel) or runsc (gVisor).

gVisor is the third isolation layer: its Sentry is a user-space kernel that
answers the sandbox's system calls, so a kernel bug reachable through an
allowed syscall no longer reaches the host kernel. The operator's setting is
``runtime = "auto" | "runc" | "runsc"`` (`DaemonConfig.runtime`); `auto`
picks runsc when the local engine has it registered, else runc.

`corrald setup-runtime gvisor` finds or installs runsc (Debian package
``runsc``), registers it in the engine's daemon.json with the arguments in
`GVISOR_RUNTIME_ARGS` (other keys are left alone), sends SIGHUP to dockerd
(which reloads runtimes without touching running containers), waits until the
engine lists it, and verifies it with a raw probe. The registration half uses
only the standard library and the ``docker`` CLI, so `.ci/run` can call it on a
fresh machine before Corral's dependencies are installed
(``python3 -m executor.sandbox.runtimes gvisor --no-probe``).

Decisions about gVisor's differences (measured with runsc release 20221219 on
the ptrace platform; see docs/threat-model.md):
- ``--network=none``: required (runsc refuses to start a container with
  network in the root namespace), and Corral's sandboxes have no network anyway.
- ``--platform=ptrace``: KVM needs /dev/kvm and hangs under nested
  virtualisation; ptrace works everywhere.
- ``--oci-seccomp``: without it runsc ignores the container's seccomp profile.
  With it, gVisor's Sentry applies Corral's profile to the sandbox's own
  syscalls, so the profile keeps meaning the same thing under both runtimes
  (and `corrald doctor` sees ``Seccomp: 2`` from inside). runsc additionally
  confines its own host syscalls with a fixed filter of its own.
- pids: gVisor's own host tasks (Sentry, gofer, ptrace stubs: about 50 for
  an idle Python, more under load) are in the container's pids cgroup; with
  the cgroup at 64, a long-lived fuzz control session was lost once (most
  likely gVisor growing past it). So under runsc the cgroup gets
  `RUNSC_PIDS_OVERHEAD` on top of `RUNSC_PIDS_PER_TASK` x the session's `pids`
  (measured: a checkpoint's stopped copy costs several host tasks), which keeps meaning
  "the snippet's processes and threads" (approximately: each of them costs
  gVisor one or more host tasks).
  Exhausting it ends the whole sandbox (verdict SANDBOX_LOST) instead of a
  failed fork inside the snippet. A pids limit below `RUNSC_MIN_PIDS` is
  refused up front (`check_limits`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNC = "runc"
RUNSC = "runsc"
AUTO = "auto"
RUNTIME_SETTINGS: tuple[str, ...] = (AUTO, RUNC, RUNSC)
# Weakest first: a session may never run under a runtime weaker than the operator's.
STRENGTH: dict[str, int] = {RUNC: 0, RUNSC: 1}

GVISOR_RUNTIME_ARGS: tuple[str, ...] = ("--platform=ptrace", "--network=none", "--oci-seccomp")
DAEMON_JSON = Path("/etc/docker/daemon.json")
RUNSC_PACKAGE = "runsc"  # Debian/Ubuntu package name of gVisor
# Measured (ptrace platform): an idle sandbox with the runner uses ~53 host tasks;
# with the cgroup at <= 32 runsc cannot create the sandbox, at 40-48 the runner dies
# before it is ready. The overhead is added to the session's pids under runsc.
RUNSC_PIDS_OVERHEAD = 64
# Each task inside gVisor (a snippet's thread or process, a checkpoint's stopped
# copy) costs the ptrace platform one or more host tasks (its stub and threads):
# the session's pids are scaled by this under runsc, so the runner's own count
# (checkpoints, threads) runs out before the host cgroup ends the whole sandbox.
RUNSC_PIDS_PER_TASK = 4
# Below this the runner's own threads plus a snippet's first thread pool cannot work.
RUNSC_MIN_PIDS = 8
REGISTER_WAIT_S = 15.0  # after SIGHUP, how long to wait for the engine to list runsc


class RuntimeSetupError(Exception):
    """The runtime cannot be chosen or installed; the message says how to fix it."""


# --- choosing -----------------------------------------------------------------


def engine_runtimes(client: Any) -> dict[str, Any]:
    """Runtimes the engine has registered (name -> {"path", "runtimeArgs"})."""
    runtimes = client.info().get("Runtimes") or {}
    return dict(runtimes) if isinstance(runtimes, dict) else {}


@dataclass(frozen=True)
class Choice:
    """The runtime in use and why (logged at start-up, shown by `corrald doctor`)."""

    runtime: str
    reason: str


def resolve(setting: str, client: Any) -> Choice:
    """Turn the operator's setting into the runtime every sandbox uses."""
    if setting not in RUNTIME_SETTINGS:
        raise RuntimeSetupError(
            f"runtime={setting!r}: use one of {', '.join(RUNTIME_SETTINGS)} (flag --runtime, "
            "env CORRAL_RUNTIME, TOML runtime = ...)"
        )
    registered = engine_runtimes(client)
    if setting == RUNC:
        return Choice(RUNC, "runtime=runc: the host kernel, behind seccomp")
    if RUNSC in registered:
        why = "registered with the engine" if setting == AUTO else "runtime=runsc"
        return Choice(RUNSC, f"gVisor ({why})")
    if setting == RUNSC:
        raise RuntimeSetupError(
            "runtime=runsc but the Docker engine has no runtime named 'runsc' "
            f"(it has: {', '.join(sorted(registered)) or 'none'}); run "
            "`corrald setup-runtime gvisor` as root, or set runtime=auto"
        )
    return Choice(
        RUNC,
        "runtime=auto and gVisor is not registered: runc (run `corrald setup-runtime gvisor` "
        "as root to add the third layer)",
    )


def check_not_weaker(requested: str, operator: str) -> None:
    """A caller may ask for a runtime at least as strong as the operator's, never weaker."""
    if requested not in STRENGTH:
        raise RuntimeSetupError(f"unknown runtime {requested!r}: use one of {', '.join(STRENGTH)}")
    if STRENGTH[requested] < STRENGTH[operator]:
        raise RuntimeSetupError(
            f"runtime {requested!r} is weaker than this daemon's {operator!r}; "
            "sessions may not lower isolation"
        )


def check_limits(runtime: str, pids: int) -> None:
    """Refuse limits the runtime cannot enforce (a startup error, not a silent gap)."""
    if runtime == RUNSC and pids < RUNSC_MIN_PIDS:
        raise RuntimeSetupError(
            f"pids={pids} cannot be enforced under gVisor: its host tasks vary by more than "
            f"that, so a limit this low is not a limit; raise pids (default_pids, or the "
            f"session's pids) to >= {RUNSC_MIN_PIDS} or use runtime=runc"
        )


def cgroup_pids(runtime: str, pids: int) -> int:
    """The pids cgroup value for a session's `pids` under `runtime`."""
    return pids * RUNSC_PIDS_PER_TASK + RUNSC_PIDS_OVERHEAD if runtime == RUNSC else pids


# --- setting up (standard library + the docker CLI only) ------------------------


def find_runsc() -> str | None:
    found = shutil.which("runsc")
    if found:
        return os.path.realpath(found)
    for candidate in ("/usr/bin/runsc", "/usr/local/bin/runsc", "/usr/sbin/runsc"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def install_runsc(log: Any = print) -> str:
    """apt-get install runsc (Debian/Ubuntu); returns its path."""
    apt = shutil.which("apt-get")
    if apt is None:
        raise RuntimeSetupError(
            "runsc is not installed and there is no apt-get here: install gVisor by hand "
            "(https://gvisor.dev/docs/user_guide/install/) and run this again"
        )
    log("installing runsc with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", RUNSC_PACKAGE]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeSetupError(
                f"`{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr.strip()[-800:]}"
            )
    path = find_runsc()
    if path is None:
        raise RuntimeSetupError("apt-get installed runsc but no runsc binary is on PATH")
    return path


def runtime_entry(runsc_path: str) -> dict[str, Any]:
    return {"path": runsc_path, "runtimeArgs": list(GVISOR_RUNTIME_ARGS)}


def merged_daemon_json(current: dict[str, Any], runsc_path: str) -> dict[str, Any]:
    """`current` with runtimes.runsc set to Corral's entry; every other key kept."""
    merged = dict(current)
    runtimes = merged.get("runtimes")
    if runtimes is not None and not isinstance(runtimes, dict):
        raise RuntimeSetupError("daemon.json: 'runtimes' is not an object; fix it by hand")
    merged["runtimes"] = {**(runtimes or {}), RUNSC: runtime_entry(runsc_path)}
    return merged


def register(runsc_path: str, path: Path = DAEMON_JSON) -> bool:
    """Write the runsc entry into daemon.json; True when the file changed.

    Writes a temporary file next to it and renames it over, so a crash never
    leaves a half-written config (dockerd would refuse to start on one).
    """
    current: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text() or "{}")
        except ValueError as exc:
            raise RuntimeSetupError(f"{path} is not valid JSON ({exc}); fix it by hand") from exc
        if not isinstance(loaded, dict):
            raise RuntimeSetupError(f"{path} is not a JSON object; fix it by hand")
        current = loaded
    merged = merged_daemon_json(current, runsc_path)
    if merged == current:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".corral-tmp")
    tmp.write_text(json.dumps(merged, indent=2) + "\n")
    if path.exists():
        os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)
    return True


def dockerd_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "dockerd":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return sorted(pids)


def daemon_json_path(pid: int | None) -> Path:
    """The config file dockerd reads (`--config-file`, else /etc/docker/daemon.json)."""
    if pid is not None:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            argv = []
        for i, arg in enumerate(argv):
            text = arg.decode(errors="replace")
            if text.startswith("--config-file="):
                return Path(text.split("=", 1)[1])
            if text == "--config-file" and i + 1 < len(argv):
                return Path(argv[i + 1].decode(errors="replace"))
    return DAEMON_JSON


def cli_runtimes() -> dict[str, Any]:
    """The engine's runtimes through the docker CLI (no Python dependency)."""
    docker = shutil.which("docker")
    if docker is None:
        raise RuntimeSetupError("the docker CLI is not installed")
    proc = subprocess.run(
        [docker, "info", "--format", "{{json .Runtimes}}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        raise RuntimeSetupError(f"`docker info` failed: {proc.stderr.strip()[-400:]}")
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise RuntimeSetupError(f"`docker info` gave no JSON: {proc.stdout[:200]!r}") from exc
    return dict(data) if isinstance(data, dict) else {}


def _args_ok(entry: Any) -> bool:
    args = entry.get("runtimeArgs") if isinstance(entry, dict) else None
    return isinstance(args, list) and all(a in args for a in GVISOR_RUNTIME_ARGS)


def setup_gvisor(*, install: bool = True, log: Any = print) -> str:
    """Find or install runsc, register it, reload the engine; returns runsc's path.

    Idempotent: a second run finds everything in place and changes nothing.
    """
    if os.environ.get("DOCKER_HOST", "").strip() not in ("", "unix:///var/run/docker.sock"):
        raise RuntimeSetupError(
            f"DOCKER_HOST={os.environ['DOCKER_HOST']} is not the local engine: register runsc "
            "on that engine's host (see README, 'gVisor')"
        )
    if os.geteuid() != 0:
        raise RuntimeSetupError(
            "setup-runtime needs root (it installs a package, edits the engine's daemon.json "
            "and signals dockerd): run it with sudo, or see README 'gVisor' to do it by hand"
        )
    path = find_runsc()
    if path is None:
        if not install:
            raise RuntimeSetupError("runsc is not installed (drop --no-install to install it)")
        path = install_runsc(log)
    log(f"runsc: {path}")
    pids = dockerd_pids()
    if not pids:
        raise RuntimeSetupError(
            "no dockerd process on this host (rootless, Docker Desktop or a remote engine?): "
            "add the runtime to that engine's daemon.json by hand, see README 'gVisor'"
        )
    config = daemon_json_path(pids[0])
    registered = cli_runtimes().get(RUNSC)
    changed = register(path, config)
    if changed or not _args_ok(registered):
        log(f"registered runsc in {config}; reloading dockerd (SIGHUP, containers keep running)")
        for pid in pids:
            os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + REGISTER_WAIT_S
        while True:
            entry = cli_runtimes().get(RUNSC)
            if entry is not None and _args_ok(entry) and entry.get("path") == path:
                break
            if time.monotonic() > deadline:
                raise RuntimeSetupError(
                    f"dockerd did not pick up the runsc runtime from {config} after SIGHUP "
                    "(is the file the one dockerd reads? see `journalctl -u docker`); "
                    "on a systemd host `systemctl reload docker` does the same"
                )
            time.sleep(0.2)
    else:
        log(f"runsc already registered in {config} with {' '.join(GVISOR_RUNTIME_ARGS)}")
    return path


# Runs as raw CPython inside the sandbox (also used by `corrald doctor`).
KERNEL_PROBE = r"""
import json, os
r = {"kernel": os.uname().release, "sysname": os.uname().sysname}
with open('/proc/self/status') as f:
    for line in f:
        k, _, v = line.partition(':')
        if k == 'Seccomp':
            r['Seccomp'] = v.strip()
try:
    with open('/proc/version') as f:
        r['version'] = f.read().strip()[:200]
except OSError as e:
    r['version'] = e.strerror
print(json.dumps(r))
"""


def verify_gvisor(log: Any = print) -> dict[str, Any]:
    """Run a raw probe under runsc; its kernel must not be the host's."""
    from executor.sandbox.probe import run_probe

    result = run_probe(KERNEL_PROBE, runtime=RUNSC)
    stdout = str(result.get("stdout", "")).strip()
    if result.get("verdict") != "OK" or not stdout:
        raise RuntimeSetupError(f"the probe under runsc failed: {json.dumps(result)[:600]}")
    facts: dict[str, Any] = json.loads(stdout.splitlines()[-1])
    if facts.get("kernel") == os.uname().release:
        raise RuntimeSetupError(
            f"the probe under runsc sees the host kernel {facts.get('kernel')}: not gVisor"
        )
    if facts.get("Seccomp") != "2":
        raise RuntimeSetupError(
            f"the probe under runsc has Seccomp={facts.get('Seccomp')}: Corral's profile is "
            "not applied (runtimeArgs must include --oci-seccomp)"
        )
    log(
        f"verified: the sandbox sees kernel {facts.get('kernel')} (host {os.uname().release}), "
        "seccomp filter on"
    )
    return facts


def _cmd_setup(args: argparse.Namespace) -> int:
    def say(msg: str) -> None:
        print(f"setup-runtime: {msg}", flush=True)

    try:
        setup_gvisor(install=not args.no_install, log=say)
        if not args.no_probe:
            verify_gvisor(log=say)
    except RuntimeSetupError as exc:
        print(f"corrald setup-runtime: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the probe's own failures (image, engine)
        print(f"corrald setup-runtime: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    say("done: `corrald serve` (runtime=auto) now runs sandboxes under gVisor")
    return 0


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=["gvisor"], help="the runtime to set up")
    p.add_argument("--no-install", action="store_true", help="fail instead of installing runsc")
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="skip the verifying probe (it needs the sandbox image; CI builds that later)",
    )
    p.set_defaults(func=_cmd_setup)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "setup-runtime",
        help="install and register gVisor (runsc) with the local Docker engine (root)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(p)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m executor.sandbox.runtimes")
    _add_arguments(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
