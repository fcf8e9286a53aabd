"""Shared fixtures. Docker tests fail loudly under CI when Docker is missing."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _docker_or_fail():  # type: ignore[no-untyped-def]
    try:
        import docker

        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Docker is required under CI and is not reachable: {exc}")
        pytest.skip(f"Docker not reachable (outside CI): {exc}")


@pytest.fixture(scope="session")
def docker_client():  # type: ignore[no-untyped-def]
    return _docker_or_fail()


@pytest.fixture(scope="session")
def test_instance_id(docker_client) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A label value for every container this test run creates; all removed at the end."""
    instance = f"test-{uuid.uuid4().hex[:12]}"
    yield instance
    for c in docker_client.containers.list(
        all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={instance}"]}
    ):
        try:
            c.remove(force=True)
        except Exception:
            pass


@pytest.fixture(scope="session")
def sandbox_image(docker_client) -> str:  # type: ignore[no-untyped-def]
    """Tag of the sandbox image, built when missing (slow the first time)."""
    from executor.sandbox.image import ensure_image

    return ensure_image()
