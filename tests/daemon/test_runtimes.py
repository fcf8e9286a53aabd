"""The daemon end to end under each OCI runtime: runc and runsc (gVisor).

A small daemon per runtime (real gRPC on an ephemeral port, real containers):
the pool, the attach channel, state, files, the memory limit and cleanup
must behave the same; and `corrald doctor` names the runtime and the kernel
the sandbox sees. The rest of tests/daemon runs under `runtime=auto`, which
is gVisor wherever it is registered (CI registers it).
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterator
from typing import Any

import pytest

from executor.daemon import doctor
from executor.daemon.testing import DaemonHandle, running_daemon
from proto import executor_pb2 as pb
from tests.container.conftest import require_runtime
from tests.daemon.helpers import execute, managed_containers, open_session, stub_for

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module", params=["runc", "runsc"])
def runtime_daemon(
    request: pytest.FixtureRequest, docker_client: Any, sandbox_image: str, test_instance_id: str
) -> Iterator[tuple[str, DaemonHandle]]:
    runtime = str(request.param)
    require_runtime(docker_client, runtime)
    with running_daemon(
        image=sandbox_image,
        instance_id=f"{test_instance_id}-{runtime}",
        docker_client=docker_client,
        runtime=runtime,
        pool_warm=1,
        pool_max=3,
        metrics_address="0",
        default_wall_time_ms=5000,
    ) as handle:
        yield runtime, handle
    assert managed_containers(docker_client, f"{test_instance_id}-{runtime}") == []


def test_sessions_run_under_the_chosen_runtime(
    runtime_daemon: tuple[str, DaemonHandle], docker_client: Any
) -> None:
    runtime, handle = runtime_daemon
    assert handle.daemon.runtime == runtime
    channel, stub = stub_for(handle.target)
    try:
        sid = open_session(stub)
        sandbox = handle.daemon.sessions.get(sid, "anonymous").sandbox
        host = docker_client.api.inspect_container(sandbox.container_id)["HostConfig"]
        assert host["Runtime"] == runtime
        assert execute(stub, sid, "x = 21 * 2").result.verdict == pb.VERDICT_OK
        assert json.loads(execute(stub, sid, "x").result.value.json) == 42
        up = stub.UploadFile(pb.UploadFileRequest(session_id=sid, path="in.txt", data=b"hello"))
        assert up.size == 5
        r = execute(stub, sid, "open('in.txt').read().upper()").result
        assert json.loads(r.value.json) == "HELLO"
        r = execute(stub, sid, "blob = 'x' * (2 * 1024 ** 3)").result
        assert r.verdict == pb.VERDICT_MEMORY_LIMIT, r
        stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
    finally:
        channel.close()


def test_doctor_names_the_runtime_and_the_sandbox_kernel(
    runtime_daemon: tuple[str, DaemonHandle],
    docker_client: Any,
    sandbox_image: str,
    test_instance_id: str,
) -> None:
    runtime, _ = runtime_daemon
    checks, _ = doctor.run_checks(
        docker_client, sandbox_image, instance_id=test_instance_id, runtime=runtime
    )
    by_name = {c.name: c for c in checks}
    assert doctor.all_ok(checks), doctor.format_table(checks)
    assert by_name["runtime"].detail.startswith(f"{runtime}:")
    assert doctor.resolved_runtime(checks) == runtime
    kernel = by_name["sandbox kernel"].detail.split()[0]
    if runtime == "runsc":
        assert kernel != platform.release()  # gVisor's own kernel
    else:
        assert kernel == platform.release()
