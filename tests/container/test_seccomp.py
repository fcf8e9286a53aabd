"""The seccomp profile, applied: raw CPython probes inside the hardened container,
under each runtime (runc: the host kernel applies the profile; runsc: gVisor's
kernel applies it, `--oci-seccomp`).

One container runs every probe (`seccomp_tool.verify`), a second one runs the
syscall probes with the profile off; each denied syscall is then asserted to
have returned EPERM (clone3: ENOSYS), each allowed one to have got past the
filter, and each refusal to name the layer that made it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from executor.sandbox import LABEL_INSTANCE
from executor.sandbox.seccomp_tool import (
    LAYER_BELOW,
    LAYER_SECCOMP,
    PROBES,
    Row,
    format_table,
    layer_of,
    run_snippet,
    verify,
)
from tests.container.conftest import overrides_for

pytestmark = pytest.mark.docker

DENIED = [(label, exp) for label, _nr, _args, exp in PROBES if exp != "allowed"]
ALLOWED = [label for label, _nr, _args, exp in PROBES if exp == "allowed"]


@pytest.fixture(scope="module")
def rows(
    docker_client: Any, sandbox_image: str, test_instance_id: str, runtime: str
) -> dict[str, Row]:
    result = verify(
        docker_client, sandbox_image, labels={LABEL_INSTANCE: test_instance_id}, runtime=runtime
    )
    print(f"runtime {runtime}\n" + format_table(result))
    return {r.probe: r for r in result}


@pytest.mark.parametrize(("label", "expected"), DENIED, ids=[d[0] for d in DENIED])
def test_denied_syscall_returns_the_profiles_errno(
    rows: dict[str, Row], label: str, expected: str
) -> None:
    assert rows[label].observed == expected


@pytest.mark.parametrize("label", ALLOWED)
def test_allowed_syscall_gets_past_the_filter(rows: dict[str, Row], label: str) -> None:
    assert rows[label].observed.startswith("allowed")
    assert rows[label].layer == ""


def test_every_refusal_names_its_layer(rows: dict[str, Row], runtime: str) -> None:
    for label, _expected in DENIED:
        layer = rows[label].layer
        assert layer, label
        assert LAYER_SECCOMP[runtime] in layer or layer == LAYER_BELOW[runtime], (label, layer)


def test_the_profile_refuses_each_network_socket_on_its_own(
    rows: dict[str, Row], runtime: str
) -> None:
    """AF_INET sockets are allowed by both kernels without the profile: the profile alone refuses."""
    for label in ("socket(AF_INET, SOCK_STREAM)", "socket(AF_INET6, SOCK_STREAM)"):
        assert rows[label].layer == LAYER_SECCOMP[runtime]


def test_clone3_is_enosys_so_that_threads_fall_back_to_clone(
    rows: dict[str, Row], runtime: str
) -> None:
    # runc: the profile answers ENOSYS; runsc ignores errnoRet, gVisor answers ENOSYS itself.
    assert rows["clone3"].observed == "ENOSYS"
    assert rows["clone3"].layer == ("seccomp" if runtime == "runc" else "gVisor")
    assert rows["thread start"].observed == "ok"


def test_layer_of_distinguishes_profile_runtime_and_both() -> None:
    assert layer_of("runc", (-1, "EPERM"), (3, "")) == "seccomp"
    assert layer_of("runc", (-1, "EPERM"), (-1, "EPERM")) == "seccomp + kernel (no caps, uid 65534)"
    assert layer_of("runsc", (-1, "ENOSYS"), (-1, "ENOSYS")) == "gVisor"
    assert layer_of("runsc", (-1, "EPERM"), (-1, "EACCES")) == "seccomp (in gVisor) + gVisor"
    assert layer_of("runsc", (0, ""), (0, "")) == ""


def test_seccomp_is_in_filter_mode(rows: dict[str, Row]) -> None:
    assert rows["/proc/self/status Seccomp"].observed == "2"


def test_no_new_privileges_is_set(rows: dict[str, Row]) -> None:
    assert rows["/proc/self/status NoNewPrivs"].observed == "1"


def test_threads_fork_and_unix_sockets_still_work(rows: dict[str, Row]) -> None:
    for label in ("fork()", "thread start", "socketpair(AF_UNIX)"):
        assert rows[label].observed == "ok", label


def test_verify_table_shows_nothing_unexpected(rows: dict[str, Row]) -> None:
    bad = [r for r in rows.values() if not r.ok]
    assert bad == []


INET_SOCKET = """
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.socket(2, 1, 0)  # AF_INET, SOCK_STREAM
print(json.dumps([fd, ctypes.get_errno()]))
"""


def test_the_denial_comes_from_our_profile_not_from_elsewhere(
    docker_client: Any, sandbox_image: str, test_instance_id: str, runtime: str
) -> None:
    """Same container with Docker's default profile: an AF_INET socket can be created
    (no network to use it on); with ours it cannot. So the EPERM is our profile's."""
    labels = {LABEL_INSTANCE: test_instance_id}
    ours = run_snippet(
        docker_client,
        sandbox_image,
        INET_SOCKET,
        labels=labels,
        config_overrides=overrides_for(runtime, None),
    )
    default = run_snippet(
        docker_client,
        sandbox_image,
        INET_SOCKET,
        labels=labels,
        config_overrides=overrides_for(runtime, None, {"security_opt": ["no-new-privileges:true"]}),
    )
    assert json.loads(ours.text) == [-1, 1]  # EPERM
    fd, _ = json.loads(default.text)
    assert fd >= 0
