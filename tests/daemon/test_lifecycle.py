"""Daemon lifecycle against real processes: SIGKILL, SIGTERM drain, reconciliation, doctor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from executor.daemon import doctor
from executor.daemon.reconcile import LABEL_DAEMON_PID, daemon_labels
from executor.daemon.testing import running_daemon
from executor.sandbox.driver import Sandbox
from proto import executor_pb2 as pb
from proto.limits import SessionLimits
from tests.daemon.helpers import (
    container_names,
    execute,
    in_thread,
    managed_containers,
    open_session,
    stub_for,
)
from tests.daemon.lifecycle import ROOT, DaemonProcess

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def serve_flags(image: str, instance: str, *extra: str) -> list[str]:
    return [
        "--listen=127.0.0.1:0",
        f"--image={image}",
        f"--instance-id={instance}",
        "--no-self-check",
        "--metrics-address=0",
        "--pool-warm=2",
        "--pool-max=4",
        *extra,
    ]


def wait_pool_quiet(stub, timeout: float = 60) -> None:
    """Until no container is starting: a start cut by SIGKILL leaves a "created" one."""
    deadline = time.monotonic() + timeout
    while stub.GetStats(pb.GetStatsRequest()).starting and time.monotonic() < deadline:
        time.sleep(0.1)


def wait_no_containers(docker_client, instance: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = container_names(managed_containers(docker_client, instance))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.25)


def test_sigkill_leaves_no_container(docker_client, sandbox_image, test_instance_id):
    instance = f"{test_instance_id}-sigkill"
    d = DaemonProcess(*serve_flags(sandbox_image, instance))
    try:
        d.start()
        channel, stub = stub_for(d.target)
        session_id = open_session(stub)
        assert json.loads(execute(stub, session_id, "1 + 1").result.value.json) == 2
        wait_pool_quiet(stub)
        channel.close()
        assert len(managed_containers(docker_client, instance)) >= 2
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        # The runners see end of input and exit; --rm removes their containers.
        assert wait_no_containers(docker_client, instance, 15) == []
    finally:
        d.stop()
        for e in managed_containers(docker_client, instance):
            docker_client.api.remove_container(e["Id"], force=True)


def test_graceful_shutdown_drains_running_snippet(docker_client, sandbox_image, test_instance_id):
    instance = f"{test_instance_id}-term"
    d = DaemonProcess(*serve_flags(sandbox_image, instance, "--shutdown-drain-s=30"))
    try:
        d.start()
        channel, stub = stub_for(d.target)
        health = health_pb2_grpc.HealthStub(channel)
        session_id = open_session(stub, tools=[pb.ToolSpec(name="during", inputs_json="{}")])
        seen: dict[str, object] = {}

        def during() -> str:
            d.proc.send_signal(signal.SIGTERM)
            d.wait_for("shutting down", 30)
            status = health.Check(health_pb2.HealthCheckRequest(service="")).status
            seen["health"] = status
            try:
                stub.OpenSession(pb.OpenSessionRequest(), timeout=10)
                seen["open"] = "accepted"
            except grpc.RpcError as exc:
                seen["open"] = exc.code()
            return "finished"

        run = execute(stub, session_id, "during()", tools={"during": during})
        assert json.loads(run.result.value.json) == "finished"
        assert run.result.verdict == pb.VERDICT_OK
        assert seen["health"] == health_pb2.HealthCheckResponse.NOT_SERVING
        assert seen["open"] == grpc.StatusCode.UNAVAILABLE
        channel.close()
        assert d.proc.wait(60) == 0
        assert any(isinstance(x, dict) and x.get("msg") == "stopped" for x in d.log)
        assert wait_no_containers(docker_client, instance, 10) == []
    finally:
        d.stop()


def test_second_signal_forces_exit(docker_client, sandbox_image, test_instance_id):
    instance = f"{test_instance_id}-force"
    d = DaemonProcess(*serve_flags(sandbox_image, instance, "--shutdown-drain-s=120"))
    try:
        d.start()
        channel, stub = stub_for(d.target)
        session_id = open_session(stub, tools=[pb.ToolSpec(name="block", inputs_json="{}")])
        entered = threading.Event()
        release = threading.Event()

        def block() -> str:
            entered.set()
            release.wait(60)
            return "late"

        t, _ = in_thread(lambda: execute(stub, session_id, "block()", tools={"block": block}))
        assert entered.wait(30)
        d.proc.send_signal(signal.SIGTERM)
        d.wait_for("shutting down", 30)
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(30) == 1  # did not wait for the 120 s drain
        release.set()
        t.join(30)
        channel.close()
        assert wait_no_containers(docker_client, instance, 15) == []
    finally:
        d.stop()


def test_restart_reconciliation(docker_client, sandbox_image, test_instance_id):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = dead.stdout.strip()
    stale_labels = {**daemon_labels(f"{test_instance_id}-dead"), LABEL_DAEMON_PID: dead_pid}
    sibling_labels = daemon_labels(f"{test_instance_id}-sibling")  # this process: alive
    limits = SessionLimits()
    stale = Sandbox.start(docker_client, sandbox_image, limits, labels=stale_labels)
    sibling = Sandbox.start(docker_client, sandbox_image, limits, labels=sibling_labels)
    try:
        with running_daemon(
            image=sandbox_image,
            instance_id=test_instance_id,
            docker_client=docker_client,
            pool_warm=0,
        ) as d:
            assert stale.name in d.daemon.removed_at_start
            assert sibling.name not in d.daemon.removed_at_start
        # Low-level listing: no per-container inspect racing other tests' auto-removals.
        names = set(container_names(docker_client.api.containers(all=True)))
        assert stale.name not in names
        assert sibling.name in names and sibling.ping()
    finally:
        stale.destroy()
        sibling.destroy()


def test_doctor_confirms_confinement(docker_client, sandbox_image, test_instance_id):
    checks, image = doctor.run_checks(docker_client, sandbox_image, instance_id=test_instance_id)
    table = doctor.format_table(checks)
    assert image == sandbox_image
    assert doctor.all_ok(checks), table
    names = [c.name for c in checks]
    for expected in (
        "docker reachable",
        "sandbox image",
        "no network",
        "read-only root",
        "seccomp filter",
        "not root",
    ):
        assert expected in names


def test_serve_refuses_when_self_check_fails():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "executor.cli",
            "serve",
            "--listen=127.0.0.1:0",
            "--image=corral-sandbox:no-such-tag",
            "--metrics-address=0",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3
    assert "FAIL" in proc.stderr and "refusing to serve" in proc.stderr


def test_doctor_command_exit_code():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "executor.cli", "doctor", "--image=corral-sandbox:no-such-tag"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "sandbox image" in proc.stdout and "FAIL" in proc.stdout
