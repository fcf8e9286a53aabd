"""`corrald seccomp generate | record | verify`: the sandbox's seccomp profile tooling.

- generate: build ``sandbox_images/seccomp/profile.json`` from the readable
  ``policy.toml`` (Docker's default allowlist minus a documented denylist, plus
  argument-filtered rules). Deterministic, so a test can compare the committed
  profile with a fresh generation.
- record: run the runner on the host under ``strace -f`` with a representative
  workload and report every syscall it made that the profile would deny.
- verify: start the hardened container (raw CPython, no interpreter), run
  probes that attempt each denied syscall, and print a table
  ``probe | expected | observed | refused by``. Exits non-zero when something
  the profile should deny was allowed. ``--runtime runsc`` runs it under
  gVisor, where the same profile is applied by gVisor's kernel; the last
  column names the layer that refused each probe (seccomp, gVisor, the
  kernel's capability checks), found by running the probes again with the
  profile off.

`run_snippet` (raw CPython in the hardened container, output over the attach
stream) is shared with the container-layer tests.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from executor.sandbox import CONTAINER_PREFIX, LABEL_INSTANCE, LABEL_ROLE
from executor.sandbox.driver import READ_CHUNK
from executor.sandbox.errors import SandboxProtocolError
from executor.sandbox.hardening import SECCOMP_PROFILE_PATH, container_config
from executor.sandbox.protocol import STREAM_STDERR, STREAM_STDOUT, StreamDemux
from proto.limits import SessionLimits

POLICY_PATH = SECCOMP_PROFILE_PATH.parent / "policy.toml"
REPO_ROOT = SECCOMP_PROFILE_PATH.parents[2]

EPERM = 1
ENOSYS = 38


class SeccompToolError(Exception):
    """The policy, the profile or a probe run is unusable; the message says why."""


# --------------------------------------------------------------------------- generate


def load_policy(path: Path = POLICY_PATH) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SeccompToolError(f"cannot read seccomp policy {path}: {exc}") from exc


def build_profile(policy: dict[str, Any]) -> dict[str, Any]:
    """Turn the policy into Docker's seccomp profile JSON (a dict).

    Checks the policy's own consistency: every [deny] entry has a reason,
    every [[rule]] names a syscall recorded in [deny] (so the unconditional
    allowlist never also allows it), and nothing denied slips into the allowlist.
    """
    docker_allow = list(policy["docker_default"]["allow"])
    dupes = [n for n, c in Counter(docker_allow).items() if c > 1]
    if dupes:
        raise SeccompToolError(f"duplicate names in docker_default.allow: {dupes}")
    deny: dict[str, str] = policy.get("deny", {})
    for name, reason in deny.items():
        if not isinstance(reason, str) or not reason.strip():
            raise SeccompToolError(f"[deny] {name} needs a reason")
    rules: list[dict[str, Any]] = policy.get("rule", [])
    for rule in rules:
        if rule["name"] not in deny:
            raise SeccompToolError(
                f"[[rule]] for {rule['name']} must also be listed in [deny] with its reason"
            )
        if not str(rule.get("reason", "")).strip():
            raise SeccompToolError(f"[[rule]] for {rule['name']} needs a reason")
    allow = sorted(set(docker_allow) - set(deny))
    syscalls: list[dict[str, Any]] = [
        {
            "names": allow,
            "action": "SCMP_ACT_ALLOW",
            "comment": "Docker's default allowlist minus policy.toml [deny]",
        }
    ]
    for rule in rules:
        entry: dict[str, Any] = {"names": [rule["name"]], "action": rule["action"]}
        if "args" in rule:
            entry["args"] = [
                {
                    "index": int(a["index"]),
                    "value": int(a["value"]),
                    "valueTwo": int(a.get("value_two", 0)),
                    "op": a["op"],
                }
                for a in rule["args"]
            ]
        if "errno" in rule:
            entry["errnoRet"] = int(rule["errno"])
        entry["comment"] = rule["reason"]
        syscalls.append(entry)
    return {
        "defaultAction": policy["default_action"],
        "defaultErrnoRet": int(policy["default_errno"]),
        "archMap": [
            {"architecture": arch, "subArchitectures": None} for arch in policy["architectures"]
        ],
        "syscalls": syscalls,
    }


def render_profile(profile: dict[str, Any]) -> str:
    return json.dumps(profile, indent=2, sort_keys=False) + "\n"


def generate(policy_path: Path = POLICY_PATH) -> str:
    """The profile text a fresh generation produces (what profile.json must contain)."""
    return render_profile(build_profile(load_policy(policy_path)))


@dataclass(frozen=True)
class ProfileView:
    """What a profile decides, in the terms `record` needs."""

    allowed: frozenset[str]
    conditional: frozenset[str]
    errno_rules: dict[str, int]

    @classmethod
    def load(cls, path: Path = SECCOMP_PROFILE_PATH) -> ProfileView:
        profile = json.loads(path.read_text())
        allowed: set[str] = set()
        conditional: set[str] = set()
        errno_rules: dict[str, int] = {}
        for entry in profile["syscalls"]:
            for name in entry["names"]:
                if entry["action"] == "SCMP_ACT_ALLOW" and not entry.get("args"):
                    allowed.add(name)
                elif entry["action"] == "SCMP_ACT_ALLOW":
                    conditional.add(name)
                elif entry["action"] == "SCMP_ACT_ERRNO":
                    errno_rules[name] = int(entry.get("errnoRet", EPERM))
        return cls(frozenset(allowed), frozenset(conditional), errno_rules)


# --------------------------------------------------------------------------- run_snippet


@dataclass
class RawRun:
    """Outcome of raw CPython run in the hardened container."""

    exit_code: int | None  # None when it was killed for the timeout
    stdout: bytes = b""
    stderr: bytes = b""
    timed_out: bool = False
    truncated: bool = False
    container_id: str = ""
    oom_killed: bool | None = None  # the engine's State.OOMKilled, when it could be read

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def run_snippet(
    client: Any,
    image: str,
    code: str,
    *,
    labels: dict[str, str],
    limits: SessionLimits | None = None,
    timeout: float = 60.0,
    max_output: int = 1 << 20,
    environment: dict[str, str] | None = None,
    config_overrides: dict[str, Any] | None = None,
) -> RawRun:
    """Run `code` with ``python3 -c`` in a container hardened by `container_config`.

    Output arrives over the attach stream (the hardened config has no log
    driver), at most `max_output` bytes of each stream are kept; the container
    is killed after `timeout` seconds and always removed afterwards.
    `config_overrides` lets a test loosen or tighten one setting explicitly.
    """
    limits = limits or SessionLimits()
    cfg = container_config(
        limits,
        labels={LABEL_ROLE: "probe", **labels},
        name=f"{CONTAINER_PREFIX}probe-{uuid.uuid4().hex[:12]}",
        command=["python3", "-c", code],
    )
    cfg["auto_remove"] = False  # we need the exit code; removed below
    cfg["stdin_open"] = False  # python -c reads no stdin
    if environment:
        cfg["environment"] = {**cfg["environment"], **environment}
    if config_overrides:
        cfg.update(config_overrides)
    container = client.containers.create(image, **cfg)
    result = RawRun(exit_code=None, container_id=container.id)
    killer: threading.Timer | None = None
    raw: Any = None
    try:
        sock = client.api.attach_socket(
            container.id, params={"stdout": 1, "stderr": 1, "stream": 1}
        )
        raw = getattr(sock, "_sock", sock)
        raw.settimeout(timeout + 5)
        container.start()
        fired = threading.Event()

        def kill() -> None:
            fired.set()
            try:
                container.kill()
            except Exception:  # already exited
                pass

        killer = threading.Timer(timeout, kill)
        killer.start()
        out, err, truncated = _read_multiplexed(raw, max_output)
        result.stdout, result.stderr, result.truncated = out, err, truncated
        if truncated:
            kill()
        try:
            status = container.wait(timeout=timeout + 10)
            code_ = int(status.get("StatusCode", -1))
        except Exception:  # engine timeout: treat as killed
            code_ = -1
        if fired.is_set() and not truncated:
            result.timed_out = True
            result.exit_code = None
        else:
            result.exit_code = code_
        try:
            container.reload()
            result.oom_killed = bool(container.attrs["State"].get("OOMKilled"))
        except Exception:
            pass
    finally:
        if killer is not None:
            killer.cancel()
        if raw is not None:
            try:
                raw.close()
            except OSError:
                pass
        try:
            container.remove(force=True)
        except Exception:  # already gone
            pass
    return result


def _read_multiplexed(sock: Any, max_output: int) -> tuple[bytes, bytes, bool]:
    """Read Docker's multiplexed attach stream until EOF or the cap (the channel's demuxer).

    At most `max_output` bytes of each stream are kept; a garbled header ends the read.
    """
    demux = StreamDemux()
    bufs = {STREAM_STDOUT: bytearray(), STREAM_STDERR: bytearray()}
    truncated = False
    while not truncated:
        try:
            chunk = sock.recv(READ_CHUNK)
        except OSError:  # the timeout included
            break
        if not chunk:
            break
        try:
            for stream, data in demux.feed(chunk):
                buf = bufs[stream]
                room = max_output - len(buf)
                truncated = truncated or room < len(data)
                buf += data[: max(room, 0)]
        except SandboxProtocolError:
            break
    return bytes(bufs[STREAM_STDOUT]), bytes(bufs[STREAM_STDERR]), truncated


# --------------------------------------------------------------------------- verify

# x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl in Linux).
# Each probe: (label, syscall number, args, expected). Expected is "EPERM",
# "ENOSYS" or "allowed" (anything but EPERM/ENOSYS). Arguments are harmless:
# where the call would be allowed, they are invalid or no-ops.
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_VSOCK = 1, 2, 10, 16, 17, 40
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID = 0x20000, 0x10000000, 0x40000000, 0x20000000
SIGCHLD = 17

PROBES: list[tuple[str, int, tuple[int, ...], str]] = [
    ("socket(AF_INET, SOCK_STREAM)", 41, (AF_INET, SOCK_STREAM, 0), "EPERM"),
    ("socket(AF_INET, SOCK_DGRAM)", 41, (AF_INET, SOCK_DGRAM, 0), "EPERM"),
    ("socket(AF_INET6, SOCK_STREAM)", 41, (AF_INET6, SOCK_STREAM, 0), "EPERM"),
    ("socket(AF_NETLINK, SOCK_RAW)", 41, (AF_NETLINK, SOCK_RAW, 0), "EPERM"),
    ("socket(AF_PACKET, SOCK_RAW)", 41, (AF_PACKET, SOCK_RAW, 0), "EPERM"),
    ("socket(AF_VSOCK, SOCK_STREAM)", 41, (AF_VSOCK, SOCK_STREAM, 0), "EPERM"),
    ("socket(AF_UNIX, SOCK_STREAM)", 41, (AF_UNIX, SOCK_STREAM, 0), "allowed"),
    ("socketpair(AF_INET)", 53, (AF_INET, SOCK_STREAM, 0, 0), "EPERM"),
    ("ptrace(PTRACE_TRACEME)", 101, (0, 0, 0, 0), "EPERM"),
    ("process_vm_readv", 310, (1, 0, 0, 0, 0, 0), "EPERM"),
    ("process_vm_writev", 311, (1, 0, 0, 0, 0, 0), "EPERM"),
    ("mount", 165, (0, 0, 0, 0, 0), "EPERM"),
    ("umount2", 166, (0, 0), "EPERM"),
    ("unshare(CLONE_NEWUSER)", 272, (CLONE_NEWUSER,), "EPERM"),
    ("unshare(CLONE_NEWNET)", 272, (CLONE_NEWNET,), "EPERM"),
    ("setns", 308, (0, 0), "EPERM"),
    ("keyctl", 250, (0, 0, 0, 0, 0), "EPERM"),
    ("add_key", 248, (0, 0, 0, 0, 0), "EPERM"),
    ("request_key", 249, (0, 0, 0, 0), "EPERM"),
    ("bpf", 321, (0, 0, 0), "EPERM"),
    ("perf_event_open", 298, (0, 0, 0, 0, 0), "EPERM"),
    ("userfaultfd", 323, (0,), "EPERM"),
    ("io_uring_setup", 425, (1, 0), "EPERM"),
    ("io_uring_enter", 426, (0, 0, 0, 0, 0, 0), "EPERM"),
    ("io_uring_register", 427, (0, 0, 0, 0), "EPERM"),
    ("kexec_load", 246, (0, 0, 0, 0), "EPERM"),
    ("kexec_file_load", 320, (0, 0, 0, 0, 0), "EPERM"),
    ("init_module", 175, (0, 0, 0), "EPERM"),
    ("finit_module", 313, (0, 0, 0), "EPERM"),
    ("delete_module", 176, (0, 0), "EPERM"),
    ("personality(PER_LINUX32)", 135, (0x0008,), "EPERM"),
    ("personality(READ_IMPLIES_EXEC)", 135, (0x0400000,), "EPERM"),
    ("personality(query)", 135, (0xFFFFFFFF,), "allowed"),
    ("clone(CLONE_NEWUSER)", 56, (CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0), "EPERM"),
    ("clone(CLONE_NEWNET)", 56, (CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0), "EPERM"),
    ("clone(CLONE_NEWNS)", 56, (CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0), "EPERM"),
    ("clone(CLONE_NEWPID)", 56, (CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0), "EPERM"),
    ("clone3", 435, (0, 0), "ENOSYS"),
    ("chroot", 161, (0,), "EPERM"),
    ("pivot_root", 155, (0, 0), "EPERM"),
    ("name_to_handle_at", 303, (0, 0, 0, 0, 0), "EPERM"),
    ("open_by_handle_at", 304, (0, 0, 0), "EPERM"),
    ("iopl", 172, (3,), "EPERM"),
    ("ioperm", 173, (0, 1, 1), "EPERM"),
    ("modify_ldt", 154, (0, 0, 0), "EPERM"),
    ("vmsplice", 278, (0, 0, 0, 0), "EPERM"),
    ("kcmp", 312, (1, 1, 0, 0, 0), "EPERM"),
    ("pidfd_getfd", 438, (0, 0, 0), "EPERM"),
    ("fsopen", 430, (0, 0), "EPERM"),
    ("open_tree", 428, (0, 0, 0), "EPERM"),
    ("move_mount", 429, (0, 0, 0, 0, 0), "EPERM"),
    ("syslog", 103, (3, 0, 0), "EPERM"),
    ("reboot", 169, (0, 0, 0, 0), "EPERM"),
    ("swapon", 167, (0, 0), "EPERM"),
    ("sethostname", 170, (0, 0), "EPERM"),
    ("settimeofday", 164, (0, 0), "EPERM"),
    ("clock_settime", 227, (0, 0), "EPERM"),
    ("acct", 163, (0,), "EPERM"),
    ("memfd_secret", 447, (0,), "EPERM"),
    ("mbind", 237, (0, 0, 0, 0, 0, 0), "EPERM"),
    ("set_mempolicy", 238, (0, 0, 0), "EPERM"),
    ("migrate_pages", 256, (0, 0, 0, 0), "EPERM"),
    ("move_pages", 279, (0, 0, 0, 0, 0, 0), "EPERM"),
    ("getpid (control)", 39, (), "allowed"),
    # select.select uses it; gVisor names it differently (hardening.GVISOR_SYSCALL_ALIASES)
    ("pselect6 (control, zero timeout)", 270, (0, 0, 0, 0, -1, 0), "allowed"),
]

# Runs inside the container as raw CPython. Prints one JSON object.
PROBE_SCRIPT = r"""
import ctypes, errno, json, os, socket, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
probes = json.loads(PROBES_JSON)
out = {"syscalls": [], "status": {}, "actions": []}
pid = os.getpid()
ZERO = (ctypes.c_long * 2)(0, 0)  # a zero timespec; -1 in an argument list points here
for label, nr, args, _ in probes:
    args = [ctypes.addressof(ZERO) if a == -1 else a for a in args]
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    err = ctypes.get_errno()
    if ret == 0 and os.getpid() != pid:
        os._exit(0)  # a clone that should have been denied made a child
    if ret >= 0 and label.startswith("socket("):
        os.close(ret)
    out["syscalls"].append([label, ret, errno.errorcode.get(err, str(err)) if ret < 0 else ""])
def action(label, fn):
    try:
        r = fn()
        out["actions"].append([label, "ok", str(r)[:80]])
    except Exception as e:
        out["actions"].append([label, type(e).__name__, str(e)[:80]])
def fork_child():
    p = os.fork()
    if p == 0:
        os._exit(7)
    return os.waitpid(p, 0)[1] >> 8
def thread_run():
    box = []
    t = threading.Thread(target=lambda: box.append(1)); t.start(); t.join()
    return box
action("fork()", fork_child)
action("thread start", thread_run)
action("socketpair(AF_UNIX)", lambda: [s.close() for s in socket.socketpair()] and "pair")
action("connect 1.1.1.1:53", lambda: socket.create_connection(("1.1.1.1", 53), timeout=2))
action("setuid(0)", lambda: os.setuid(0))
for line in open("/proc/self/status"):
    k, _, v = line.partition(":")
    if k in ("Seccomp", "NoNewPrivs", "CapEff", "CapPrm", "CapBnd", "Uid"):
        out["status"][k] = v.strip()
if "NoNewPrivs" not in out["status"]:  # gVisor's status has no such line: ask prctl
    out["status"]["NoNewPrivs"] = str(libc.prctl(39, 0, 0, 0, 0))  # PR_GET_NO_NEW_PRIVS
print(json.dumps(out))
"""

# The same syscall probes, each in a forked child (a probe that succeeds without
# the profile cannot change the parent), for the run without the profile that
# tells which layer refused each one.
BARE_SCRIPT = r"""
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
probes = json.loads(PROBES_JSON)
ZERO = (ctypes.c_long * 2)(0, 0)
out = {"syscalls": []}
for label, nr, args, _ in probes:
    if label.startswith("clone("):
        # A namespace clone without the profile ended the whole sandbox under
        # gVisor (runsc 20221219); these are not re-run.
        out["syscalls"].append([label, 0, "not run"])
        continue
    args = [ctypes.addressof(ZERO) if a == -1 else a for a in args]
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        ctypes.set_errno(0)
        ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
        err = ctypes.get_errno()
        if ret == 0 and label.startswith("clone("):
            os._exit(0)  # the clone's own child
        os.write(w, json.dumps([ret, errno.errorcode.get(err, str(err)) if ret < 0 else ""]).encode())
        os._exit(0)
    os.close(w)
    data = os.read(r, 4096)
    os.close(r)
    os.waitpid(child, 0)
    ret, err = json.loads(data) if data else (-1, "child died")
    out["syscalls"].append([label, ret, err])
print(json.dumps(out))
"""

# Expected outcome of each action (label -> expected "ok" or an exception name).
ACTION_EXPECT: dict[str, str] = {
    "fork()": "ok",
    "thread start": "ok",
    "socketpair(AF_UNIX)": "ok",
    "connect 1.1.1.1:53": "PermissionError",
    "setuid(0)": "PermissionError",
}
STATUS_EXPECT: dict[str, str] = {
    "Seccomp": "2",
    "NoNewPrivs": "1",
    "CapEff": "0000000000000000",
    "CapPrm": "0000000000000000",
    "CapBnd": "0000000000000000",
}


# Which layer refuses what, when the probe is refused (see `layer_of`).
LAYER_SECCOMP = {"runc": "seccomp", "runsc": "seccomp (in gVisor)"}
LAYER_BELOW = {"runc": "kernel (no caps, uid 65534)", "runsc": "gVisor"}
ACTION_LAYER: dict[str, str] = {
    "connect 1.1.1.1:53": "{seccomp} + no network",
    "setuid(0)": "no capabilities ({below})",
}


@dataclass(frozen=True)
class Row:
    probe: str
    expected: str
    observed: str
    layer: str = ""  # the layer(s) that refused it; "" for allowed probes and facts

    @property
    def ok(self) -> bool:
        if self.expected == "allowed":
            return self.observed.startswith("allowed")
        return self.observed == self.expected


def probe_script() -> str:
    probes = [[label, nr, list(args), exp] for label, nr, args, exp in PROBES]
    return f"PROBES_JSON = {json.dumps(json.dumps(probes))}\n" + PROBE_SCRIPT


def bare_script() -> str:
    probes = [[label, nr, list(args), exp] for label, nr, args, exp in PROBES]
    return f"PROBES_JSON = {json.dumps(json.dumps(probes))}\n" + BARE_SCRIPT


def _refused(ret: int, err: str) -> bool:
    return ret < 0 and err in ("EPERM", "ENOSYS", "EACCES", "ENODEV", "EOPNOTSUPP")


def layer_of(runtime: str, with_profile: tuple[int, str], without: tuple[int, str]) -> str:
    """Who refused a probe: the profile, the layer below it (gVisor or the kernel), or both.

    `with_profile` is the probe's (ret, errno) under Corral's profile, `without`
    the same probe in the same container with the profile off.
    """
    ret, err = with_profile
    if not _refused(ret, err):
        return ""
    if without[1] == "not run":
        return f"{LAYER_SECCOMP[runtime]} (not tried without it)"
    below = _refused(*without)
    if err == "ENOSYS" and below and without[1] == "ENOSYS":
        return LAYER_BELOW[runtime]  # the runtime does not implement it at all
    if below:
        return f"{LAYER_SECCOMP[runtime]} + {LAYER_BELOW[runtime]}"
    return LAYER_SECCOMP[runtime]


def _run_json(client: Any, image: str, code: str, **kw: Any) -> dict[str, Any]:
    run = run_snippet(client, image, code, **kw)
    if run.exit_code != 0:
        raise SeccompToolError(
            f"probe container failed (exit {run.exit_code}, timed out: {run.timed_out}): "
            + run.stderr.decode("utf-8", "replace")[-2000:]
        )
    try:
        data: dict[str, Any] = json.loads(run.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise SeccompToolError(f"probe output is not JSON: {run.stdout[-500:]!r}") from exc
    return data


def verify(
    client: Any,
    image: str,
    *,
    labels: dict[str, str],
    timeout: float = 60,
    runtime: str = "runc",
) -> list[Row]:
    """Run the probes in the hardened container under `runtime`; one Row per probe.

    A second container (same hardening, profile off) runs the syscall probes
    again, each in a forked child, so every refused probe names the layer that
    refused it: the seccomp profile (applied by the host kernel under runc, by
    gVisor's kernel under runsc), the layer below (the kernel's capability and
    uid checks, or gVisor itself), or both.
    """
    from executor.sandbox.hardening import runtime_settings

    limits = SessionLimits()
    settings = runtime_settings(runtime, limits)
    data = _run_json(
        client, image, probe_script(), labels=labels, timeout=timeout, config_overrides=settings
    )
    bare_limits = SessionLimits(pids=256)
    bare_settings = {
        **runtime_settings(runtime, bare_limits),
        "security_opt": ["no-new-privileges:true", "seccomp=unconfined"],
    }
    # Under gVisor (ptrace platform) every forked address space costs host tasks in the
    # pids cgroup, and the bare run forks once per probe: give it room.
    bare = _run_json(
        client,
        image,
        bare_script(),
        labels=labels,
        timeout=timeout,
        limits=bare_limits,
        config_overrides=bare_settings,
    )
    without = {label: (ret, err) for label, ret, err in bare["syscalls"]}
    expected = {label: exp for label, _, _, exp in PROBES}
    rows: list[Row] = []
    for label, ret, err in data["syscalls"]:
        # EPERM/ENOSYS are the profile's answers; any other result means the
        # call got past seccomp (and perhaps failed later on its bogus arguments).
        observed = err if ret < 0 and err in ("EPERM", "ENOSYS") else f"allowed ({err or ret})"
        layer = layer_of(runtime, (ret, err), without.get(label, (0, "")))
        rows.append(Row(label, expected[label], observed, layer))
    for label, outcome, _detail in data["actions"]:
        layer = ACTION_LAYER.get(label, "") if outcome != "ok" else ""
        layer = layer.format(seccomp=LAYER_SECCOMP[runtime], below=LAYER_BELOW[runtime])
        rows.append(Row(label, ACTION_EXPECT[label], outcome, layer))
    for key, want in STATUS_EXPECT.items():
        rows.append(Row(f"/proc/self/status {key}", want, data["status"].get(key, "?")))
    uid = data["status"].get("Uid", "?").split()
    rows.append(Row("uid (real, effective)", "65534 65534", " ".join(uid[:2])))
    return rows


def format_table(rows: list[Row]) -> str:
    w1 = max(len("syscall or action"), *(len(r.probe) for r in rows))
    w2 = max(len("expected"), *(len(r.expected) for r in rows))
    w3 = max(len("observed"), *(len(r.observed) for r in rows))
    lines = [
        f"{'syscall or action':<{w1}}  {'expected':<{w2}}  {'observed':<{w3}}  refused by",
        "-" * (w1 + w2 + w3 + 30),
    ]
    for r in rows:
        mark = "" if r.ok else "   <-- UNEXPECTED"
        lines.append(f"{r.probe:<{w1}}  {r.expected:<{w2}}  {r.observed:<{w3}}  {r.layer}{mark}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- record

# Representative snippets for the runner under strace (interpreter mode).
RECORD_SNIPPETS = [
    "x = 1 + 1\nprint(x)",
    "import math\nprint(math.sqrt(2))",
    "import json\nprint(json.dumps({'a': [1, 2, 3]}))",
    "import numpy as np\na = np.arange(100000).reshape(100, 1000)\nprint(a.sum(), (a @ a.T).shape)",
    "import pandas as pd\ndf = pd.DataFrame({'a': range(1000), 'b': range(1000)})\nprint(df.describe())",
    "import datetime\nprint(datetime.datetime(2024, 1, 1).isoformat())",
    "s = 0\nfor i in range(200000):\n    s += i\nprint(s)",
    "big = [0] * (10 ** 9)",  # MemoryError path
    "while True:\n    pass",  # soft timeout path
    "print('x' * 100000)",  # output cap path
    "1 / 0",
    "final_answer(42)",
]

_STRACE_LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(?:<\.\.\. )?([a-z0-9_]+)(\(| resumed>)")


def _record_frames() -> list[dict[str, Any]]:
    limits = SessionLimits(wall_time_ms=1500, cpu_time_ms=3000, output_bytes=10_000)
    frames: list[dict[str, Any]] = [
        {
            "type": "init",
            "id": "init",
            "authorized_imports": ["math", "json", "numpy", "pandas", "datetime"],
            "tools": [],
            "variables": {"seed": 1},
            "limits": limits.runner_limits(),
        }
    ]
    for i, code in enumerate(RECORD_SNIPPETS):
        frames.append({"type": "execute", "id": f"e{i}", "code": code})
    frames.append({"type": "get_vars", "id": "v", "names": []})
    frames.append({"type": "ping", "id": "p"})
    return frames


def parse_strace(text: str) -> tuple[Counter[str], list[str]]:
    """Syscall counts from `strace -f` output, and calls whose arguments matter."""
    counts: Counter[str] = Counter()
    notable: list[str] = []
    for line in text.splitlines():
        m = _STRACE_LINE.match(line)
        if not m:
            continue
        name = m.group(2)
        if m.group(3) == "(":
            counts[name] += 1
            if name in ("socket", "socketpair", "clone", "personality", "clone3"):
                notable.append(line.split(None, 1)[1][:160])
    return counts, notable


def judge(
    counts: Counter[str],
    notable: list[str],
    view: ProfileView,
    tolerated: dict[str, str] | None = None,
) -> list[str]:
    """Problems: syscalls the runner used that the profile would deny (or answer with errno).

    `tolerated` (policy.toml [tolerated]) names denied syscalls the workload is
    known to survive being refused; they are not problems.
    """
    tolerated = tolerated or {}
    problems = []
    for name in sorted(counts):
        if name in view.allowed or name in tolerated:
            continue
        if name in view.errno_rules:
            if name == "clone3" and view.errno_rules[name] == ENOSYS:
                continue  # libc falls back to clone: expected
            problems.append(f"{name}: answered with errno {view.errno_rules[name]}")
        elif name not in view.conditional:
            problems.append(f"{name}: denied (EPERM), used {counts[name]} time(s)")
    for call in notable:
        if call.startswith(("socket(", "socketpair(")) and "AF_UNIX" not in call.split(",")[0]:
            problems.append(f"non-AF_UNIX socket denied: {call}")
        if call.startswith("clone(") and "CLONE_NEW" in call:
            problems.append(f"clone with namespace flags denied: {call}")
        if call.startswith("personality(") and not re.match(
            r"personality\((0|0xffffffff|PER_LINUX)\)", call
        ):
            problems.append(f"personality change denied: {call}")
    return problems


@dataclass
class RecordReport:
    """What `record` saw: syscall counts, what the profile would deny, runner answers."""

    counts: Counter[str]
    problems: list[str]
    answers: Counter[str]  # frame types the runner wrote back (ready, result, ...)
    tolerated: dict[str, str] = field(default_factory=dict)  # denied but survived: why


def record(python: str | None = None, *, raw: bool = False, timeout: float = 300) -> RecordReport:
    """Run the runner under strace with the representative workload.

    `raw` runs the runner in raw CPython mode (no interpreter): the same
    workload then exercises what plain CPython, numpy and pandas need.

    Raises when the runner did not answer every execute frame: a trace of a
    runner that gave up early would under-report the syscalls it needs.
    """
    strace = shutil.which("strace")
    if strace is None:
        raise SeccompToolError("strace is not installed: `apt-get install strace` (as root)")
    try:
        from proto.frames import FrameError, encode, read_frame
    except ImportError as exc:
        raise SeccompToolError(f"the runner's frame codec is unavailable: {exc}") from exc
    python = python or sys.executable
    boot = (
        f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); sys.argv = ['runner', *sys.argv[1:]]; "
        "import runpy; runpy.run_module('executor.runner', run_name='__main__')"
    )
    answers: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="corral-strace-") as tmp:
        trace = Path(tmp) / "trace.txt"
        proc = subprocess.Popen(
            [strace, "-f", "-qq", "-o", str(trace), python, "-I", "-c", boot, "--workspace", tmp]
            + (["--raw"] if raw else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp,
            env={
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "PYTHONDONTWRITEBYTECODE": "1",
                "OPENBLAS_NUM_THREADS": "1",
                "OMP_NUM_THREADS": "1",
                "HOME": tmp,
            },
        )
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        out = cast(BinaryIO, proc.stdout)
        try:
            first = read_frame(out)
            answers[str((first or {}).get("type"))] += 1
            # One request in flight at a time: send, then read until its answer.
            for frame in _record_frames():
                proc.stdin.write(encode(frame))
                proc.stdin.flush()
                while True:
                    answer = read_frame(out)
                    if answer is None:
                        raise SeccompToolError(f"the runner closed its output at {frame['id']}")
                    answers[str(answer.get("type"))] += 1
                    if answer.get("type") in ("result", "ack", "vars", "pong", "error"):
                        break
            proc.stdin.write(encode({"type": "shutdown"}))
            proc.stdin.close()
            proc.wait(timeout=30)
        except (FrameError, OSError, subprocess.TimeoutExpired) as exc:
            proc.kill()
            raise SeccompToolError(
                f"the runner failed under strace ({exc}); frames so far {dict(answers)}; stderr:\n"
                + proc.stderr.read().decode("utf-8", "replace")[-1500:]
            ) from exc
        finally:
            killer.cancel()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if not pipe.closed:
                    pipe.close()
        text = trace.read_text(errors="replace")
    want = len(RECORD_SNIPPETS)
    if answers["result"] < want:
        raise SeccompToolError(
            f"the runner answered {answers['result']} of {want} snippets (frames {dict(answers)})"
        )
    counts, notable = parse_strace(text)
    tolerated = dict(load_policy().get("tolerated", {}))
    seen_tolerated = {n: r for n, r in tolerated.items() if n in counts}
    problems = judge(counts, notable, ProfileView.load(), tolerated)
    return RecordReport(counts, problems, answers, seen_tolerated)


# --------------------------------------------------------------------------- CLI


def _cmd_generate(args: argparse.Namespace) -> int:
    text = generate(Path(args.policy))
    out = Path(args.output)
    if args.check:
        current = out.read_text() if out.exists() else ""
        if current != text:
            print(f"{out} is stale: run `corrald seccomp generate`", file=sys.stderr)
            return 1
        print(f"{out} is up to date")
        return 0
    out.write_text(text)
    print(f"wrote {out}")
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    try:
        report = record(args.python, raw=args.raw)
    except SeccompToolError as exc:
        print(f"corrald seccomp record: {exc}", file=sys.stderr)
        return 2
    counts, problems = report.counts, report.problems
    print(f"runner answers: {dict(report.answers)}")
    for name, why in report.tolerated.items():
        print(f"denied but tolerated: {name}: {why}")
    print(f"{len(counts)} distinct syscalls, {sum(counts.values())} calls:")
    for name, n in sorted(counts.items()):
        print(f"  {name:<24} {n}")
    if problems:
        print("the profile would deny:")
        for p in problems:
            print(f"  {p}")
        return 1
    print("the profile allows every syscall the runner used")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    import docker

    from executor.sandbox.image import ensure_image
    from executor.sandbox.runtimes import RuntimeSetupError, resolve

    client = docker.from_env()
    image = args.image or ensure_image(client=client)
    instance = f"seccomp-verify-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    try:
        runtime = resolve(args.runtime, client).runtime
        rows = verify(client, image, labels={LABEL_INSTANCE: instance}, runtime=runtime)
    except (SeccompToolError, RuntimeSetupError) as exc:
        print(f"corrald seccomp verify: {exc}", file=sys.stderr)
        return 2
    print(format_table(rows))
    bad = [r for r in rows if not r.ok]
    print(
        f"\n{len(rows)} probes on {image} under {runtime} in {time.monotonic() - t0:.1f}s: "
        f"{len(bad)} unexpected"
    )
    return 1 if bad else 0


def add_parser(subparsers: Any) -> None:
    """Register `corrald seccomp generate | record | verify`."""
    p = subparsers.add_parser("seccomp", help="seccomp profile: generate, record, verify")
    sub = p.add_subparsers(dest="seccomp_command", required=True, metavar="ACTION")
    g = sub.add_parser("generate", help="write profile.json from policy.toml")
    g.add_argument("--policy", default=str(POLICY_PATH))
    g.add_argument("--output", default=str(SECCOMP_PROFILE_PATH))
    g.add_argument("--check", action="store_true", help="only check the profile is current")
    g.set_defaults(func=_cmd_generate)
    r = sub.add_parser("record", help="strace the runner on a workload; report denied syscalls")
    r.add_argument("--python", default=None, help="python to run the runner with")
    r.add_argument("--raw", action="store_true", help="runner in raw CPython mode")
    r.set_defaults(func=_cmd_record)
    v = sub.add_parser("verify", help="probe the hardened container; print a table")
    v.add_argument("--image", default=None, help="image tag (default: build/ensure the current)")
    v.add_argument(
        "--runtime",
        default="auto",
        choices=["auto", "runc", "runsc"],
        help="OCI runtime to verify under (default auto: runsc when registered)",
    )
    v.set_defaults(func=_cmd_verify)
