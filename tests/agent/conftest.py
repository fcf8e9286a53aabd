"""A real daemon (real Docker, ephemeral port) shared by each module's tests."""

from __future__ import annotations

import contextlib
import time
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


@contextlib.contextmanager
def start_daemon(
    docker_client: Any, sandbox_image: str, instance_id: str, **overrides: Any
) -> Iterator[Any]:
    """`running_daemon` with this package's config.

    Retries a start that failed because a container vanished while the daemon
    listed leftovers (a container of a daemon that just stopped is removed by
    `--rm` concurrently); the daemon's start-up reconciliation does not yet
    ignore containers removed mid-listing.
    """
    from executor.daemon.testing import running_daemon

    config = {**DAEMON_CONFIG, **overrides}
    for attempt in range(3):
        stack = contextlib.ExitStack()
        try:
            handle = stack.enter_context(
                running_daemon(
                    image=sandbox_image,
                    instance_id=instance_id,
                    docker_client=docker_client,
                    **config,
                )
            )
        except RuntimeError as exc:
            if "No such container" not in str(exc) or attempt == 2:
                raise
            time.sleep(1.0)
            continue
        with stack:
            yield handle
        return


@pytest.fixture(scope="module")
def daemon(docker_client, sandbox_image, test_instance_id) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A daemon without auth."""
    with start_daemon(docker_client, sandbox_image, test_instance_id) as handle:
        yield handle
