"""`corrald doctor`: is this host able to run Corral safely?

The checks, in order (each needs the previous one): the interpreter layer's
self-check (in-process: escapes refused, plain code runs); Docker is reachable; the
sandbox image is present or can be built; and a test container, started with
exactly the hardening the pool uses, is really confined. The last check runs
raw CPython (interpreter off) inside the container and looks from the inside:
no network interface but loopback and no route out, a read-only root
filesystem, seccomp in filter mode (2), no-new-privileges, no effective
capabilities, and a non-root uid. `serve` runs the same checks and refuses to
start when one fails.

When a daemon is already running with the same config, the doctor also asks
it (its metrics endpoint's `/healthz`) whether every background loop is up,
and prints why not: that is where "health is NOT_SERVING" is explained.

The runtime check resolves the `runtime` setting against the engine (runsc
when registered under `auto`) and the probe container runs under it; the
probe also reports the kernel it sees from inside, which under gVisor is
gVisor's own (`uname -r` 4.4.0), not the host's. gVisor's /proc/self/status
has no NoNewPrivs line, so the probe asks prctl(PR_GET_NO_NEW_PRIVS) directly.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE
from proto.limits import SessionLimits

# Runs as raw CPython inside the hardened container; prints one JSON object.
PROBE_CODE = r"""
import ctypes, json, os, socket
r = {}
with open('/proc/self/status') as f:
    for line in f:
        k, _, v = line.partition(':')
        if k in ('Seccomp', 'NoNewPrivs', 'CapEff'):
            r[k] = v.strip()
if 'NoNewPrivs' not in r:  # gVisor's status has no such line
    r['NoNewPrivs'] = str(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))  # PR_GET_NO_NEW_PRIVS
r['kernel'] = os.uname().release
try:
    with open('/proc/version') as f:
        r['proc_version'] = f.read().strip()[:160]
except OSError as e:
    r['proc_version'] = e.strerror
r['uid'] = os.getuid()
r['root_ro'] = None
with open('/proc/mounts') as f:
    for line in f:
        parts = line.split()
        if len(parts) > 3 and parts[1] == '/':
            r['root_ro'] = parts[3].split(',')[0] == 'ro'
try:
    open('/corral-doctor-probe', 'w').close()
    r['root_write'] = 'written'
except OSError as e:
    r['root_write'] = e.strerror
r['interfaces'] = sorted(os.listdir('/sys/class/net')) if os.path.isdir('/sys/class/net') else []
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1.0)
    s.connect(('1.1.1.1', 53))
    r['connect'] = 'connected'
except OSError as e:
    r['connect'] = e.strerror or type(e).__name__
print(json.dumps(r))
"""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def confinement_checks(facts: dict[str, Any], runtime: str = "runc") -> list[Check]:
    """Judge what the probe saw from inside the container (under `runtime`)."""
    import platform

    ifaces = [i for i in facts.get("interfaces", []) if i != "lo"]
    cap = str(facts.get("CapEff", "?"))
    kernel = str(facts.get("kernel", "?"))
    host = platform.release()
    if runtime == "runsc":
        kernel_check = Check(
            "sandbox kernel",
            kernel != host,
            f"{kernel} inside (gVisor), host {host}; {facts.get('proc_version', '')[:60]}",
        )
    else:
        kernel_check = Check("sandbox kernel", True, f"{kernel} inside = the host's (runc)")
    return [
        kernel_check,
        Check(
            "no network",
            not ifaces and facts.get("connect") != "connected",
            f"interfaces={facts.get('interfaces')}, connect 1.1.1.1:53 -> {facts.get('connect')}",
        ),
        Check(
            "read-only root",
            facts.get("root_ro") is True and facts.get("root_write") != "written",
            f"mount ro={facts.get('root_ro')}, write /: {facts.get('root_write')}",
        ),
        Check("seccomp filter", facts.get("Seccomp") == "2", f"Seccomp={facts.get('Seccomp')}"),
        Check(
            "no new privileges",
            facts.get("NoNewPrivs") == "1",
            f"NoNewPrivs={facts.get('NoNewPrivs')}",
        ),
        Check("no capabilities", cap.strip("0") == "", f"CapEff={cap}"),
        Check("not root", facts.get("uid") not in (0, None), f"uid={facts.get('uid')}"),
    ]


# One snippet per class the interpreter must refuse alone, and one it must run.
INTERPRETER_PROBES: tuple[tuple[str, str], ...] = (
    ("().__class__.__bases__[0].__subclasses__()", "POLICY_DENIED"),
    ("import os", "POLICY_DENIED"),
    ("(x for x in [1]).gi_frame", "POLICY_DENIED"),
    ("sum(range(10))", "OK"),
)


def interpreter_check() -> Check:
    """The interpreter layer's self-check, in-process (no container needed)."""
    from executor.interpreter import Interpreter, Limits

    wrong = []
    for code, want in INTERPRETER_PROBES:
        result = Interpreter(authorized_imports=[], limits=Limits(wall_time_s=2.0)).run(code)
        if str(result.verdict) != want:
            wrong.append(f"{code!r} -> {result.verdict} (want {want})")
    detail = "; ".join(wrong) or f"{len(INTERPRETER_PROBES)} probes: escapes refused, code runs"
    return Check("interpreter layer", not wrong, detail)


def run_checks(
    client: Any = None,
    image: str = "",
    *,
    instance_id: str = "",
    limits: SessionLimits | None = None,
    runtime: str = "auto",
) -> tuple[list[Check], str]:
    """All checks; stops at the first one the rest depend on. Returns (checks, image tag).

    `runtime` is the operator's setting; the "runtime" check names the one in use.
    """
    checks: list[Check] = [interpreter_check()]
    try:
        if client is None:
            import docker

            client = docker.from_env()
        version = client.version().get("Version", "?")
        client.ping()
        checks.append(Check("docker reachable", True, f"engine {version}"))
    except Exception as exc:  # any failure means "not reachable"
        checks.append(
            Check("docker reachable", False, f"{exc}; is the engine running, is DOCKER_HOST right?")
        )
        return checks, image
    try:
        if not image:
            from executor.sandbox.image import ensure_image

            image = ensure_image(client=client)
        client.images.get(image)
        checks.append(Check("sandbox image", True, image))
    except Exception as exc:
        checks.append(Check("sandbox image", False, f"{exc}; build it with `corrald build-image`"))
        return checks, image
    from executor.sandbox.runtimes import RuntimeSetupError, check_limits, resolve

    limits = limits or SessionLimits()
    try:
        choice = resolve(runtime, client)
        check_limits(choice.runtime, limits.pids)
        checks.append(Check("runtime", True, f"{choice.runtime}: {choice.reason}"))
    except RuntimeSetupError as exc:
        checks.append(Check("runtime", False, str(exc)))
        return checks, image
    checks.extend(_probe_container(client, image, instance_id, limits, choice.runtime))
    return checks, image


def resolved_runtime(checks: list[Check]) -> str:
    """The runtime the checks ran under ("runc" when they never got that far)."""
    for c in checks:
        if c.name == "runtime" and c.ok:
            return c.detail.split(":", 1)[0]
    return "runc"


def _probe_container(
    client: Any, image: str, instance_id: str, limits: SessionLimits, runtime: str = "runc"
) -> list[Check]:
    from executor.sandbox.driver import Sandbox

    labels = {
        LABEL_MANAGED: "1",
        LABEL_INSTANCE: instance_id or f"doctor-{uuid.uuid4().hex[:12]}",
        LABEL_ROLE: "doctor",
    }
    sandbox = None
    try:
        sandbox = Sandbox.start(client, image, limits, labels=labels, raw=True, runtime=runtime)
        sandbox.init(authorized_imports=[], tools=[], variables={}, limits=limits.runner_limits())
        result = sandbox.execute(PROBE_CODE, timeout=30.0)
        stdout = result.result.stdout
        facts = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
        if not isinstance(facts, dict) or not facts:
            return [
                Check("confined test container", False, f"probe gave no facts: {result!r:.300}")
            ]
    except Exception as exc:  # report, do not crash the doctor
        return [Check("confined test container", False, f"{type(exc).__name__}: {exc}")]
    finally:
        if sandbox is not None:
            sandbox.destroy()
    return confinement_checks(facts, runtime)


def running_daemon_checks(metrics_address: str, timeout: float = 3.0) -> list[Check]:
    """Ask a running daemon (at its metrics address) why it is not serving, if it is not.

    No daemon answering is not a failure: the doctor also runs before the first start.
    """
    from executor.daemon.metrics import parse_address

    address = parse_address(metrics_address)
    if address is None:
        return []
    host, port = address
    if port == 0:
        return []
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read(64 * 1024).decode("utf-8", "replace")
        return [Check("running daemon", True, f"{url}: {body.strip()[:200]}")]
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            return [Check("running daemon", True, f"no corrald health at {url} ({exc.code})")]
        body = exc.read(64 * 1024).decode("utf-8", "replace")
        return [
            Check("running daemon", False, line.strip()[:1000])
            for line in body.splitlines()
            if line.strip()
        ] or [Check("running daemon", False, f"{url} answered 503")]
    except (OSError, ValueError) as exc:
        return [Check("running daemon", True, f"none answering at {url} ({exc}); skipped")]


def format_table(checks: list[Check]) -> str:
    width = max((len(c.name) for c in checks), default=10)
    lines = [f"{'check'.ljust(width)}  result  detail"]
    for c in checks:
        lines.append(f"{c.name.ljust(width)}  {'ok  ' if c.ok else 'FAIL'}    {c.detail}")
    return "\n".join(lines)


def all_ok(checks: list[Check]) -> bool:
    return bool(checks) and all(c.ok for c in checks)
