"""Container-layer tests run under each OCI runtime: runc and runsc (gVisor).

`runtime` is a module-scoped fixture parametrised over both, so every test
that uses it (directly, or through `run` / `factory`) runs twice. runsc must
be registered with the engine (`corrald setup-runtime gvisor`; `.ci/run`
does it): under CI its absence fails the run, elsewhere those cases skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from executor.sandbox.hardening import runtime_settings
from executor.sandbox.runtimes import RUNSC, engine_runtimes
from proto.limits import SessionLimits
from tests.conftest import IN_CI
from tests.runner.sandboxes import SandboxFactory

RUNTIMES = ("runc", "runsc")


def require_runtime(client: Any, runtime: str) -> None:
    """Skip (fail under CI) when the engine cannot run `runtime`."""
    if runtime != RUNSC or RUNSC in engine_runtimes(client):
        return
    msg = (
        "gVisor (runsc) is not registered with the Docker engine: run "
        "`corrald setup-runtime gvisor` (or scripts/setup-gvisor.sh) as root"
    )
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module", params=RUNTIMES)
def runtime(request: pytest.FixtureRequest, docker_client: Any) -> str:
    require_runtime(docker_client, request.param)
    return str(request.param)


def overrides_for(
    runtime: str, limits: SessionLimits | None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`run_snippet` config_overrides selecting `runtime` (plus a test's own overrides)."""
    return {**runtime_settings(runtime, limits or SessionLimits()), **(extra or {})}


class RuntimeSandboxFactory(SandboxFactory):
    """A SandboxFactory whose sandboxes run under one runtime."""

    def __init__(self, client: Any, image: str, instance: str, runtime: str) -> None:
        super().__init__(client, image, instance)
        self.runtime = runtime

    def start(self, limits: SessionLimits | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("runtime", self.runtime)
        return super().start(limits, **kwargs)


@pytest.fixture
def runtime_factory(
    docker_client: Any, sandbox_image: str, test_instance_id: str, runtime: str
) -> Iterator[RuntimeSandboxFactory]:
    f = RuntimeSandboxFactory(docker_client, sandbox_image, test_instance_id, runtime)
    yield f
    f.cleanup()
    for case in f.cases:
        assert f.containers_of(case) == [], "a container was left behind"


@pytest.fixture
def factory(runtime_factory: RuntimeSandboxFactory) -> RuntimeSandboxFactory:
    """Starts labelled sandboxes under each runtime; destroys them all and checks none was
    left behind (the driver, hostile-runner, runner and sessions tests)."""
    return runtime_factory
