"""`corrald probe --raw [--runtime R] FILE`: run a file as plain CPython in a hardened container.

An operator's tool for checking the container layer on its own: the runner
starts in raw mode (no restricted interpreter), so FILE may try anything, and
only the container's confinement stands between it and the host. The result
frame is printed as JSON. This is the only place that starts a raw runner: it
is a local command, and nothing that arrives over the network can reach it.
`--runtime` picks the OCI runtime (auto, runc or runsc; default auto: gVisor
when the engine has it registered), so the same file can be tried under each.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE
from proto.limits import SessionLimits

HARD_TIMEOUT_GRACE_S = 5.0  # beyond the soft wall time, before the container is killed


class ProbeError(Exception):
    """The probe could not run; the message says how to fix it."""


def run_probe(
    code: str,
    *,
    image: str | None = None,
    limits: SessionLimits | None = None,
    client: Any = None,
    instance: str | None = None,
    runtime: str = "auto",
) -> dict[str, Any]:
    """Run `code` as raw CPython in a fresh hardened container; return the result frame.

    When the container dies or overruns its hard timeout the result has verdict
    SANDBOX_LOST (or MEMORY_LIMIT when the engine OOM-killed it) and an
    `error` explaining what happened. The container is always destroyed.
    The result also names the runtime it ran under (`runtime`).
    """
    import docker

    from executor.sandbox.driver import Sandbox
    from executor.sandbox.runtimes import resolve

    limits = limits or SessionLimits()
    client = client or docker.from_env()
    if image is None:
        from executor.sandbox.image import ensure_image

        image = ensure_image(client=client)
    labels = {
        LABEL_MANAGED: "1",
        LABEL_INSTANCE: instance or f"probe-{uuid.uuid4().hex[:12]}",
        LABEL_ROLE: "probe",
    }
    chosen = resolve(runtime, client).runtime
    sandbox = Sandbox.start(client, image, limits, labels=labels, raw=True, runtime=chosen)
    try:
        sandbox.init(limits=limits.runner_limits())
        return {**_run(sandbox, code, limits), "runtime": chosen}
    finally:
        sandbox.destroy()


def _run(sandbox: Any, code: str, limits: SessionLimits) -> dict[str, Any]:
    from executor.sandbox.driver import SandboxError, SandboxGone, SandboxTimeout

    timeout = limits.wall_time_ms / 1000.0 + HARD_TIMEOUT_GRACE_S
    try:
        return sandbox.execute(code, timeout=timeout).to_dict()  # type: ignore[no-any-return]
    except SandboxTimeout:
        sandbox.kill()
        return _lost("TIMEOUT", f"no result within {timeout:g} s: the container was killed")
    except SandboxGone as exc:
        exit_info = sandbox.inspect_exit()
        if exit_info["oom_killed"]:
            return _lost("MEMORY_LIMIT", "the container ran out of memory and was killed")
        return _lost("SANDBOX_LOST", f"{exc} (exit code {exit_info['exit_code']})")
    except SandboxError as exc:
        return _lost("SANDBOX_LOST", str(exc))


def _lost(verdict: str, message: str) -> dict[str, Any]:
    return {
        "type": "result",
        "verdict": verdict,
        "stdout": "",
        "value": None,
        "is_final_answer": False,
        "final_answer": None,
        "error": {"type": "SandboxLost", "message": message, "line": None, "source_line": None},
        "state": [],
        "truncated": False,
        "session_lost": True,
    }


def _cmd_probe(args: argparse.Namespace) -> int:
    try:
        code = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"corrald probe: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    limits = SessionLimits()
    if args.limits:
        try:
            requested = json.loads(args.limits)
            if not isinstance(requested, dict):
                raise ValueError("not an object")
            limits = limits.merged(requested)
        except (ValueError, TypeError) as exc:
            print(
                f"corrald probe: --limits must be a JSON object of limit fields, e.g. "
                f"'{{\"memory_bytes\": 268435456}}' ({exc})",
                file=sys.stderr,
            )
            return 2
    try:
        result = run_probe(
            code, image=args.image, limits=limits, instance=args.instance, runtime=args.runtime
        )
    except Exception as exc:  # an operator command reports, never tracebacks
        print(f"corrald probe: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if result.get("verdict") in ("OK", "OUTPUT_TRUNCATED") else 1


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "probe",
        help="run a file as raw CPython in a hardened container (operator only)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--raw",
        action="store_true",
        required=True,
        help="required: acknowledges that FILE runs without the restricted interpreter",
    )
    p.add_argument("file", metavar="FILE", help="Python file to run inside the container")
    p.add_argument("--image", default=None, help="image tag (default: build or reuse the current)")
    p.add_argument(
        "--limits", default=None, help="JSON object of limit fields, e.g. '{\"cpu_time_ms\": 2000}'"
    )
    p.add_argument(
        "--runtime",
        default="auto",
        choices=["auto", "runc", "runsc"],
        help="OCI runtime: runsc (gVisor), runc, or auto (runsc when registered; default)",
    )
    p.add_argument(
        "--instance",
        default=None,
        help="value of the container's owner label (default: a fresh probe-<id>)",
    )
    p.set_defaults(func=_cmd_probe)
