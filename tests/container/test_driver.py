"""The synchronous driver's own contract, against real containers."""

from __future__ import annotations

from typing import Any

import pytest

from executor.sandbox import CONTAINER_PREFIX, LABEL_INSTANCE, LABEL_MANAGED
from executor.sandbox.driver import (
    Sandbox,
    SandboxError,
    SandboxGone,
    SandboxRequestError,
)
from proto.limits import MiB, SessionLimits
from tests.runner.sandboxes import SandboxFactory

pytestmark = pytest.mark.docker


def test_start_labels_and_names_the_container(
    factory: SandboxFactory, docker_client: Any, test_instance_id: str
) -> None:
    sb = factory.start()
    assert sb.name.startswith(CONTAINER_PREFIX)
    assert sb.ready is not None and sb.ready.interpreter is True and sb.ready.pid > 1
    attrs = docker_client.api.inspect_container(sb.container_id)
    labels = attrs["Config"]["Labels"]
    assert labels[LABEL_MANAGED] == "1"
    assert labels[LABEL_INSTANCE] == test_instance_id
    assert attrs["Name"] == "/" + sb.name
    assert sb.fileno() > 0
    assert sb.ping()


def test_destroy_is_idempotent(factory: SandboxFactory) -> None:
    sb = factory.start()
    case = factory.cases[-1]
    sb.destroy()
    sb.destroy()
    assert factory.containers_of(case) == []
    assert sb.fileno() == -1
    assert sb.ping() is False
    with pytest.raises(SandboxGone):
        sb.execute("1", timeout=2)


def test_kill_then_gone_with_exit_code(factory: SandboxFactory) -> None:
    sb = factory.start()
    sb.init(limits=SessionLimits().runner_limits())
    sb.kill()
    sb.kill()  # idempotent
    with pytest.raises(SandboxGone):
        sb.execute("1", timeout=10)
    exit_info = sb.inspect_exit()
    assert exit_info["oom_killed"] is False
    assert exit_info["exit_code"] == 137  # SIGKILL


def test_oom_kill_is_reported(factory: SandboxFactory) -> None:
    # 64 MiB of container memory is below the runner's address-space floor, so
    # the allocation really touches memory past the cgroup limit: the kernel's
    # OOM killer ends the container and the driver must say so.
    limits = SessionLimits(memory_bytes=64 * MiB)
    sb = factory.start(limits, raw=True)
    sb.init(limits=limits.runner_limits())
    with pytest.raises(SandboxGone):
        sb.execute("x = bytearray(200 << 20)", timeout=30)
    assert sb.inspect_exit()["oom_killed"] is True


def test_missing_image_is_a_sandbox_error(docker_client: Any, test_instance_id: str) -> None:
    before = docker_client.containers.list(
        all=True, filters={"label": f"{LABEL_INSTANCE}={test_instance_id}"}
    )
    with pytest.raises(SandboxError, match="build-image"):
        Sandbox.start(
            docker_client,
            "corral-sandbox:no-such-tag",
            SessionLimits(),
            labels={LABEL_INSTANCE: test_instance_id},
        )
    after = docker_client.containers.list(
        all=True, filters={"label": f"{LABEL_INSTANCE}={test_instance_id}"}
    )
    assert len(after) == len(before)


def test_vars_round_trip_and_refusal(factory: SandboxFactory) -> None:
    sb = factory.start()
    sb.init(limits=SessionLimits().runner_limits(), variables={"a": 1})
    sb.set_vars({"b": {"k": [1, 2]}})
    state = {v.name: v.json for v in sb.get_vars()}
    assert state == {"a": 1, "b": {"k": [1, 2]}}
    assert [v.name for v in sb.get_vars(["b"])] == ["b"]
    with pytest.raises(SandboxRequestError):
        sb.set_vars({"_private": 1})
    assert sb.ping()  # a refused request leaves the sandbox usable


def test_tool_call_without_handler_fails_in_snippet(factory: SandboxFactory) -> None:
    sb = factory.start()
    tool = {"name": "t", "description": "A tool.", "inputs": {}, "output_type": "any"}
    sb.init(limits=SessionLimits().runner_limits(), tools=[tool])
    result = sb.execute(
        "try:\n    t()\nexcept RuntimeError as e:\n    msg = str(e)\nmsg", timeout=20
    )
    assert result.result.value is not None and "no tools" in result.result.value.json


def test_numpy_and_pandas_import_under_the_rlimits(factory: SandboxFactory) -> None:
    sb = factory.start()
    sb.init(limits=SessionLimits().runner_limits(), authorized_imports=["numpy", "pandas"])
    code = "import numpy as np\nimport pandas as pd\nint(pd.Series(np.arange(10)).sum())"
    result = sb.execute(code, timeout=60)
    assert result.result.verdict == "OK", result
    assert result.result.value is not None and result.result.value.json == 45


def test_request_error_keeps_channel(factory: SandboxFactory) -> None:
    sb = factory.start()
    with pytest.raises(SandboxRequestError, match="init"):
        sb.execute("1", timeout=10)  # execute before init is refused, not fatal
    assert sb.ping()
