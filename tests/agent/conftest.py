"""A real daemon (real Docker, ephemeral port) shared by each module's tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

# Short limits keep the suite fast; tests ask for more when they need it.
DAEMON_CONFIG: dict[str, Any] = {
    "pool_warm": 2,
    "pool_max": 6,
    "default_wall_time_ms": 5000,
    "max_wall_time_ms": 20_000,
    "default_tool_timeout_ms": 5000,
    "hard_timeout_grace_ms": 1500,
    "metrics_address": "0",
}
TOKEN = "s3cret-token-for-alice"  # the daemon wants at least 16 characters


@pytest.fixture(scope="module")
def daemon(docker_client, sandbox_image, test_instance_id) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A daemon without auth."""
    from executor.daemon.testing import running_daemon

    with running_daemon(
        image=sandbox_image,
        instance_id=test_instance_id,
        docker_client=docker_client,
        **DAEMON_CONFIG,
    ) as handle:
        yield handle
