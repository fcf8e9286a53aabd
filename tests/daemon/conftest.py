"""One shared daemon per module where tests allow (real Docker, ephemeral port)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from executor.daemon.reconcile import LABEL_DAEMON_PID
from executor.daemon.testing import DaemonHandle, running_daemon
from tests.daemon.helpers import container_names, managed_containers, stub_for

# Short limits keep the suite fast; each test asks for what it needs.
SHARED = {
    "pool_warm": 2,
    "pool_max": 6,
    "default_wall_time_ms": 3000,
    "max_wall_time_ms": 20_000,
    "default_tool_timeout_ms": 5000,
    "hard_timeout_grace_ms": 1500,
    "max_file_bytes": 64 << 10,
    "metrics_address": "127.0.0.1:0",
    "session_reap_interval_s": 0.2,
}


@pytest.fixture(scope="module")
def daemon(docker_client, sandbox_image, test_instance_id) -> Iterator[DaemonHandle]:
    with running_daemon(
        image=sandbox_image,
        instance_id=test_instance_id,
        docker_client=docker_client,
        **SHARED,
    ) as handle:
        yield handle
    # The daemon destroys its containers on exit: none of this process's pool remains.
    leftovers = [
        e
        for e in managed_containers(docker_client, test_instance_id)
        if (e.get("Labels") or {}).get(LABEL_DAEMON_PID) == str(os.getpid())
    ]
    assert not leftovers, f"daemon left containers behind: {container_names(leftovers)}"


@pytest.fixture(scope="module")
def stub(daemon):
    channel, stub = stub_for(daemon.target)
    yield stub
    channel.close()
