"""`corrald doctor`: is this host able to run Corral safely?

The checks, in order (each needs the previous one): Docker is reachable; the
sandbox image is present or can be built; and a test container, started with
exactly the hardening the pool uses, is really confined. The last check runs
raw CPython (interpreter off) inside the container and looks from the inside:
no network interface but loopback and no route out, a read-only root
filesystem, seccomp in filter mode (2), no-new-privileges, no effective
capabilities, and a non-root uid. `serve` runs the same checks and refuses to
start when one fails.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE
from proto.limits import SessionLimits

# Runs as raw CPython inside the hardened container; prints one JSON object.
PROBE_CODE = r"""
import json, os, socket
r = {}
with open('/proc/self/status') as f:
    for line in f:
        k, _, v = line.partition(':')
        if k in ('Seccomp', 'NoNewPrivs', 'CapEff'):
            r[k] = v.strip()
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


def confinement_checks(facts: dict[str, Any]) -> list[Check]:
    """Judge what the probe saw from inside the container."""
    ifaces = [i for i in facts.get("interfaces", []) if i != "lo"]
    cap = str(facts.get("CapEff", "?"))
    return [
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


def run_checks(
    client: Any = None,
    image: str = "",
    *,
    instance_id: str = "",
    limits: SessionLimits | None = None,
) -> tuple[list[Check], str]:
    """All checks; stops at the first one the rest depend on. Returns (checks, image tag)."""
    checks: list[Check] = []
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
    checks.extend(_probe_container(client, image, instance_id, limits or SessionLimits()))
    return checks, image


def _probe_container(
    client: Any, image: str, instance_id: str, limits: SessionLimits
) -> list[Check]:
    from executor.sandbox.driver import Sandbox

    labels = {
        LABEL_MANAGED: "1",
        LABEL_INSTANCE: instance_id or f"doctor-{uuid.uuid4().hex[:12]}",
        LABEL_ROLE: "doctor",
    }
    sandbox = None
    try:
        sandbox = Sandbox.start(client, image, limits, labels=labels, raw=True)
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
    return confinement_checks(facts)


def format_table(checks: list[Check]) -> str:
    width = max((len(c.name) for c in checks), default=10)
    lines = [f"{'check'.ljust(width)}  result  detail"]
    for c in checks:
        lines.append(f"{c.name.ljust(width)}  {'ok  ' if c.ok else 'FAIL'}    {c.detail}")
    return "\n".join(lines)


def all_ok(checks: list[Check]) -> bool:
    return bool(checks) and all(c.ok for c in checks)
