"""The container layer alone: raw CPython (no interpreter) inside the hardened container.

Each test runs one snippet through `container_config(..., command=["python3",
"-c", CODE])` and asserts one property. The interpreter is switched off on
purpose: this layer must keep the host safe by itself.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED
from executor.sandbox.hardening import SANDBOX_ENV, HardeningError, host_cpus, runtime_settings
from executor.sandbox.runtimes import RUNSC_MIN_PIDS, cgroup_pids
from executor.sandbox.seccomp_tool import RawRun, run_snippet
from proto.limits import MiB, SessionLimits
from tests.container.conftest import overrides_for

pytestmark = pytest.mark.docker


@pytest.fixture
def run(docker_client: Any, sandbox_image: str, test_instance_id: str, runtime: str):  # type: ignore[no-untyped-def]
    """run(code, **kw) -> RawRun, in a fresh hardened container labelled for this test
    run, under each runtime (runc, runsc: tests/container/conftest.py)."""

    def _run(code: str, **kw: Any) -> RawRun:
        kw.setdefault("timeout", 60)
        kw["config_overrides"] = overrides_for(
            runtime, kw.get("limits"), kw.get("config_overrides")
        )
        return run_snippet(
            docker_client, sandbox_image, code, labels={LABEL_INSTANCE: test_instance_id}, **kw
        )

    return _run


def last_json(result: RawRun) -> Any:
    assert result.exit_code == 0, (result.exit_code, result.stderr[-2000:])
    return json.loads(result.text.strip().splitlines()[-1])


def assert_gone(docker_client: Any, container_id: str) -> None:
    import docker

    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(container_id)


# --- network -------------------------------------------------------------------------

CONNECT = """
import json, socket, sys
out = {}
for host in sys.argv[1:]:
    try:
        socket.create_connection((host, 53), timeout=3).close()
        out[host] = "connected"
    except OSError as e:
        out[host] = type(e).__name__ + ":" + str(e.errno)
import os
out["interfaces"] = sorted(os.listdir("/sys/class/net"))
print(json.dumps(out))
"""


def _bridge_gateway(docker_client: Any) -> str:
    cfg = docker_client.networks.get("bridge").attrs["IPAM"]["Config"]
    return str(cfg[0].get("Gateway") or "172.17.0.1")


def test_no_network_outside_or_to_the_docker_gateway(run, docker_client: Any) -> None:  # type: ignore[no-untyped-def]
    gateway = _bridge_gateway(docker_client)
    code = f"import sys; sys.argv = ['x', '1.1.1.1', {gateway!r}]\n" + CONNECT
    out = last_json(run(code))
    assert out["1.1.1.1"] != "connected"
    assert out[gateway] != "connected"
    assert out["interfaces"] == ["lo"]


def test_network_namespace_alone_blocks_traffic(run, docker_client: Any) -> None:  # type: ignore[no-untyped-def]
    """With Docker's default seccomp profile (sockets allowed), there is still no route."""
    gateway = _bridge_gateway(docker_client)
    code = f"import sys; sys.argv = ['x', '1.1.1.1', {gateway!r}]\n" + CONNECT
    out = last_json(run(code, config_overrides={"security_opt": ["no-new-privileges:true"]}))
    # runc: ENETUNREACH (101); gVisor's own network stack: EHOSTUNREACH (113)
    assert out["1.1.1.1"] in ("OSError:101", "OSError:113")
    assert out[gateway] in ("OSError:101", "OSError:113")
    assert out["interfaces"] == ["lo"]


# --- filesystem ----------------------------------------------------------------------

WRITE_PROBE = """
import json
out = {}
for path in ["/probe", "/etc/probe", "/opt/corral/probe", "/usr/lib/python3.11/probe",
             "/tmp/probe", "/workspace/probe"]:
    try:
        with open(path, "w") as f:
            f.write("x")
        out[path] = "written"
    except OSError as e:
        out[path] = e.errno
print(json.dumps(out))
"""


def test_root_filesystem_is_read_only(run) -> None:  # type: ignore[no-untyped-def]
    out = last_json(run(WRITE_PROBE))
    for path in ("/probe", "/etc/probe", "/opt/corral/probe", "/usr/lib/python3.11/probe"):
        assert out[path] in (13, 30), (path, out[path])  # EACCES or EROFS, never written


def test_tmp_and_workspace_are_writable(run) -> None:  # type: ignore[no-untyped-def]
    out = last_json(run(WRITE_PROBE))
    assert out["/tmp/probe"] == "written"
    assert out["/workspace/probe"] == "written"


FILL = """
import json, sys
path, limit = sys.argv[1], int(sys.argv[2])
chunk = b"x" * (1 << 20)
written = 0
err = None
try:
    with open(path, "wb") as f:
        while written < limit:
            f.write(chunk)
            f.flush()
            written += len(chunk)
except OSError as e:
    err = e.errno
print(json.dumps({"written": written, "errno": err}))
"""


@pytest.mark.parametrize(("path", "cap"), [("/workspace/fill", 4 * MiB), ("/tmp/fill", 16 * MiB)])
def test_writable_dirs_are_size_capped(run, path: str, cap: int) -> None:  # type: ignore[no-untyped-def]
    code = f"import sys; sys.argv = ['x', {path!r}, {cap * 4}]\n" + FILL
    out = last_json(run(code, limits=SessionLimits(workspace_bytes=4 * MiB)))
    assert out["errno"] == 28  # ENOSPC
    assert out["written"] <= cap


def test_tmp_is_noexec(run) -> None:  # type: ignore[no-untyped-def]
    code = """
import json, os, shutil, subprocess
shutil.copy("/bin/true", "/tmp/true")
os.chmod("/tmp/true", 0o755)
try:
    subprocess.run(["/tmp/true"], check=True)
    print(json.dumps("ran"))
except PermissionError as e:
    print(json.dumps(e.errno))
"""
    assert last_json(run(code)) == 13  # EACCES


def test_no_setuid_or_setgid_files_in_the_image(run) -> None:  # type: ignore[no-untyped-def]
    code = """
import json, os, stat
found = []
for root, dirs, files in os.walk("/"):
    if root == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    for name in files:
        p = os.path.join(root, name)
        try:
            mode = os.lstat(p).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
            found.append(p)
print(json.dumps(found))
"""
    assert last_json(run(code, timeout=120)) == []


# --- processes, identity, privileges -------------------------------------------------


def test_host_processes_are_invisible(run) -> None:  # type: ignore[no-untyped-def]
    code = """
import json, os
procs = {p: open(f"/proc/{p}/comm").read().strip() for p in os.listdir("/proc") if p.isdigit()}
print(json.dumps(procs))
"""
    procs = last_json(run(code))
    assert procs.get("1") == "docker-init"  # tini, the engine's init
    assert sorted(procs.values()) == ["docker-init", "python3"]


def test_host_secrets_are_invisible(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    secret = f"corral-canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("CORRAL_CANARY_SECRET", secret)
    canary = tmp_path / "canary.txt"
    canary.write_text(secret)
    assert os.environ["CORRAL_CANARY_SECRET"] == secret
    code = f"""
import json, os
secret, path = {secret!r}, {str(canary)!r}
seen = []
if any(secret in v for v in os.environ.values()):
    seen.append("environ")
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            if secret.encode() in open(f"/proc/{{p}}/environ", "rb").read():
                seen.append(f"/proc/{{p}}/environ")
        except OSError:
            pass
try:
    if secret in open(path).read():
        seen.append("file")
except OSError as e:
    pass
print(json.dumps({{"seen": seen, "env": sorted(os.environ), "file_exists": os.path.exists(path)}}))
"""
    out = last_json(run(code))
    assert out["seen"] == []
    assert out["file_exists"] is False
    assert set(out["env"]) == set(SANDBOX_ENV) | {"PATH", "HOSTNAME"}


STATUS = """
import ctypes, json, os
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
if "NoNewPrivs" not in status:  # gVisor's status has no such line: ask prctl
    status["NoNewPrivs"] = str(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))  # PR_GET_NO_NEW_PRIVS
print(json.dumps({k: status[k].strip() for k in ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd",
                                                   "NoNewPrivs", "Seccomp")}))
"""


def test_runs_as_uid_65534_not_root(run) -> None:  # type: ignore[no-untyped-def]
    out = last_json(run(STATUS))
    assert out["Uid"].split() == ["65534"] * 4
    assert out["Gid"].split() == ["65534"] * 4


def test_no_capabilities(run) -> None:  # type: ignore[no-untyped-def]
    out = last_json(run(STATUS))
    assert int(out["CapEff"], 16) == 0
    assert int(out["CapPrm"], 16) == 0
    assert int(out["CapBnd"], 16) == 0


def test_no_new_privileges_and_seccomp_filter(run) -> None:  # type: ignore[no-untyped-def]
    out = last_json(run(STATUS))
    assert out["NoNewPrivs"] == "1"
    assert out["Seccomp"] == "2"


# --- resource limits -----------------------------------------------------------------

FORK_BOMB = """
import json, os, time
children, err = [], None
for _ in range(1000):
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children.append(pid)
print(json.dumps({"forked": len(children), "errno": err}), flush=True)
for pid in children:
    os.kill(pid, 9)
"""


def test_fork_bomb_is_stopped_by_the_pids_limit(run, docker_client: Any, runtime: str) -> None:  # type: ignore[no-untyped-def]
    result = run(FORK_BOMB, limits=SessionLimits(pids=16))
    if runtime == "runsc":
        # gVisor's own tasks share the pids cgroup (with headroom on top of the
        # session's pids): reaching it ends the whole sandbox, from outside.
        assert not result.timed_out
        assert result.exit_code not in (0, None)
        assert result.text == ""
    else:
        out = last_json(result)
        assert out["errno"] == 11  # EAGAIN from the pids cgroup
        assert out["forked"] < 16
    assert_gone(docker_client, result.container_id)


def test_unbounded_fork_bomb_ends_and_the_container_is_destroyed(
    run, docker_client: Any, runtime: str
) -> None:  # type: ignore[no-untyped-def]
    code = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""
    result = run(code, limits=SessionLimits(pids=16), timeout=8)
    # runc: the bomb spins at the limit until killed; gVisor: the sandbox ends itself.
    assert result.timed_out or (runtime == "runsc" and result.exit_code not in (0, None))
    assert_gone(docker_client, result.container_id)


def test_pids_too_low_to_enforce_is_refused_up_front(runtime: str) -> None:
    limits = SessionLimits(pids=RUNSC_MIN_PIDS - 1)
    if runtime == "runc":
        assert runtime_settings(runtime, limits)["security_opt"]
        return
    with pytest.raises(HardeningError, match="raise pids"):
        runtime_settings(runtime, limits)


def test_memory_bomb_ends_without_hanging(run) -> None:  # type: ignore[no-untyped-def]
    code = """
blocks = []
while True:
    blocks.append(bytearray(16 << 20))
"""
    result = run(code, limits=SessionLimits(memory_bytes=128 * MiB), timeout=60)
    assert not result.timed_out
    # The cgroup OOM killer (137) or a MemoryError exit (1): either way it ended.
    assert result.exit_code in (137, 1)
    if result.exit_code == 137:
        assert result.oom_killed is True
    else:
        assert b"MemoryError" in result.stderr


def _host_cgroup(docker_client: Any, run: Any, limits: SessionLimits) -> dict[str, str]:
    """The container's cgroup files as the host sees them, read while it runs.

    Under gVisor the sandbox sees gVisor's own view of cgroups; what bounds it
    is the host cgroup holding gVisor's processes, so that is what is checked.
    """
    files = {
        "memory": "memory/docker/{id}/memory.limit_in_bytes",
        "memsw": "memory/docker/{id}/memory.memsw.limit_in_bytes",
        "pids": "pids/docker/{id}/pids.max",
        "quota": "cpu/docker/{id}/cpu.cfs_quota_us",
        "period": "cpu/docker/{id}/cpu.cfs_period_us",
    }
    box: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: box.update(r=run("import time; time.sleep(8)", limits=limits, timeout=30))
    )
    worker.start()
    seen: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 20
        while not seen and time.monotonic() < deadline:
            for c in docker_client.api.containers(filters={"name": "corral-probe-"}):
                root = Path("/sys/fs/cgroup")
                paths = {k: root / f.format(id=c["Id"]) for k, f in files.items()}
                if all(p.exists() for p in paths.values()):
                    seen = {k: p.read_text().strip() for k, p in paths.items()}
                    break
            time.sleep(0.2)
    finally:
        worker.join()
    if not seen:
        pytest.skip("host cgroup v1 files under /sys/fs/cgroup/*/docker/ are not readable here")
    return seen


def test_memory_limit_and_no_swap_apply(run, docker_client: Any, runtime: str) -> None:  # type: ignore[no-untyped-def]
    limits = SessionLimits(memory_bytes=200 * MiB, pids=96)
    if runtime == "runc":
        code = """
import json
r = lambda p: int(open(p).read())
print(json.dumps([r("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
                  r("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
                  open("/sys/fs/cgroup/pids/pids.max").read().strip()]))
"""
        mem, memsw, pids = last_json(run(code, limits=limits))
        assert mem == memsw == 200 * MiB
        assert pids == "96"
    host = _host_cgroup(docker_client, run, limits)
    assert int(host["memory"]) == int(host["memsw"]) == 200 * MiB
    assert host["pids"] == str(cgroup_pids(runtime, 96))  # + headroom for gVisor's own tasks


def test_cpu_burner_is_bounded_by_the_timeout(run, docker_client: Any) -> None:  # type: ignore[no-untyped-def]
    result = run("while True:\n    pass", timeout=3)
    assert result.timed_out
    assert result.exit_code is None
    assert_gone(docker_client, result.container_id)


def test_cpu_quota_applies(run, docker_client: Any, runtime: str) -> None:  # type: ignore[no-untyped-def]
    limits = SessionLimits(cpu_millis=500)
    if runtime == "runc":
        code = """
import json
r = lambda p: int(open(p).read())
print(json.dumps([r("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), r("/sys/fs/cgroup/cpu/cpu.cfs_period_us")]))
"""
        quota, period = last_json(run(code, limits=limits))
        assert quota / period == pytest.approx(0.5)
    host = _host_cgroup(docker_client, run, limits)
    assert int(host["quota"]) / int(host["period"]) == pytest.approx(0.5)


def test_cpu_count_matches_the_cpu_limit(run) -> None:  # type: ignore[no-untyped-def]
    if len(host_cpus()) < 2:
        pytest.skip("the host has one CPU: a cpuset cannot restrict further")
    code = """
import json, os, multiprocessing
print(json.dumps([os.cpu_count(), multiprocessing.cpu_count(), len(os.sched_getaffinity(0))]))
"""
    assert last_json(run(code, limits=SessionLimits(cpu_millis=1000))) == [1, 1, 1]


def test_ulimits_apply(run) -> None:  # type: ignore[no-untyped-def]
    code = """
import json, resource as r
print(json.dumps({n: r.getrlimit(getattr(r, "RLIMIT_" + n.upper())) for n in ("nofile", "core", "fsize")}))
"""
    out = last_json(run(code))
    assert out["core"] == [0, 0]
    assert out["nofile"][1] <= 1024
    assert 0 < out["fsize"][1] < 1 << 30


def test_ipc_namespace_is_private_and_shm_small(run) -> None:  # type: ignore[no-untyped-def]
    code = """
import json, os
st = os.statvfs("/dev/shm")
p = "/proc/sysvipc/shm"  # gVisor has no such file: its SysV IPC is its own, never the host's
print(json.dumps([st.f_blocks * st.f_frsize, open(p).read().count("\\n") if os.path.exists(p) else 1]))
"""
    size, shm_lines = last_json(run(code))
    assert size <= 8 * MiB
    assert shm_lines == 1  # header only: no host SysV segments visible


def test_numpy_and_pandas_work_under_the_hardening(run) -> None:  # type: ignore[no-untyped-def]
    code = """
import json, numpy as np, pandas as pd
a = np.arange(10000.0).reshape(100, 100)
df = pd.DataFrame({"a": range(100)})
print(json.dumps([float((a @ a.T).trace()), int(df["a"].sum())]))
"""
    trace, total = last_json(run(code))
    assert total == 4950
    assert trace > 0


def test_containers_carry_the_managed_and_instance_labels(
    docker_client: Any, sandbox_image: str, test_instance_id: str
) -> None:
    from executor.sandbox.hardening import container_config

    cfg = container_config(
        SessionLimits(), labels={LABEL_INSTANCE: test_instance_id}, command=["true"]
    )
    cfg["auto_remove"] = False
    container = docker_client.containers.create(sandbox_image, **cfg)
    try:
        labels = container.labels
        assert labels[LABEL_MANAGED] == "1"
        assert labels[LABEL_INSTANCE] == test_instance_id
    finally:
        container.remove(force=True)


def test_closing_stdin_ends_the_runner_and_removes_the_container(
    docker_client: Any, sandbox_image: str, test_instance_id: str
) -> None:
    """StdinOnce + auto_remove: when the daemon's attach stream closes, nothing is left."""
    import socket
    import time

    import docker

    from executor.sandbox.hardening import container_config
    from proto.frames import FrameDecoder

    cfg = container_config(SessionLimits(), labels={LABEL_INSTANCE: test_instance_id})
    container = docker_client.containers.create(sandbox_image, **cfg)
    try:
        sock_io = docker_client.api.attach_socket(
            container.id, params={"stdin": 1, "stdout": 1, "stream": 1}
        )
        sock = getattr(sock_io, "_sock", sock_io)
        sock.settimeout(60)
        container.start()
        # Docker's attach stream is multiplexed: 8-byte header, then the payload.
        decoder, pending, frames = FrameDecoder(), b"", []
        while not frames:
            chunk = sock.recv(65536)
            assert chunk, "the runner closed its output before `ready`"
            pending += chunk
            while len(pending) >= 8 and len(pending) >= 8 + int.from_bytes(pending[4:8], "big"):
                size = int.from_bytes(pending[4:8], "big")
                frames += decoder.feed(pending[8 : 8 + size])
                pending = pending[8 + size :]
        assert frames[0]["type"] == "ready"
        sock.shutdown(socket.SHUT_WR)  # the daemon goes away
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                docker_client.containers.get(container.id)
            except docker.errors.NotFound:
                break
            time.sleep(0.2)
        assert_gone(docker_client, container.id)
        sock.close()
    finally:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
