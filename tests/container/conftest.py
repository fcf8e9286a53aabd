"""The sandbox factory of the driver, hostile-runner and runner tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.runner.sandboxes import SandboxFactory


@pytest.fixture
def factory(
    docker_client: Any, sandbox_image: str, test_instance_id: str
) -> Iterator[SandboxFactory]:
    """Starts labelled sandboxes; destroys them all and checks none was left behind."""
    f = SandboxFactory(docker_client, sandbox_image, test_instance_id)
    yield f
    f.cleanup()
    for case in f.cases:
        assert f.containers_of(case) == [], "a container was left behind"
