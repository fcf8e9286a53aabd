"""The seccomp profile, applied: raw CPython probes inside the hardened container.

One container runs every probe (`seccomp_tool.verify`); each denied syscall is
then asserted to have returned EPERM (clone3: ENOSYS), each allowed one to have
got past the filter.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from executor.sandbox import LABEL_INSTANCE
from executor.sandbox.seccomp_tool import PROBES, Row, format_table, run_snippet, verify

pytestmark = pytest.mark.docker

DENIED = [(label, exp) for label, _nr, _args, exp in PROBES if exp != "allowed"]
ALLOWED = [label for label, _nr, _args, exp in PROBES if exp == "allowed"]


@pytest.fixture(scope="module")
def rows(docker_client: Any, sandbox_image: str, test_instance_id: str) -> dict[str, Row]:
    result = verify(docker_client, sandbox_image, labels={LABEL_INSTANCE: test_instance_id})
    print(format_table(result))
    return {r.probe: r for r in result}


@pytest.mark.parametrize(("label", "expected"), DENIED, ids=[d[0] for d in DENIED])
def test_denied_syscall_returns_the_profiles_errno(
    rows: dict[str, Row], label: str, expected: str
) -> None:
    assert rows[label].observed == expected


@pytest.mark.parametrize("label", ALLOWED)
def test_allowed_syscall_gets_past_the_filter(rows: dict[str, Row], label: str) -> None:
    assert rows[label].observed.startswith("allowed")


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
    docker_client: Any, sandbox_image: str, test_instance_id: str
) -> None:
    """Same container with Docker's default profile: an AF_INET socket can be created
    (no network to use it on); with ours it cannot. So the EPERM is our profile's."""
    labels = {LABEL_INSTANCE: test_instance_id}
    ours = run_snippet(docker_client, sandbox_image, INET_SOCKET, labels=labels)
    default = run_snippet(
        docker_client,
        sandbox_image,
        INET_SOCKET,
        labels=labels,
        config_overrides={"security_opt": ["no-new-privileges:true"]},
    )
    assert json.loads(ours.text) == [-1, 1]  # EPERM
    fd, _ = json.loads(default.text)
    assert fd >= 0
