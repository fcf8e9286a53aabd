"""Permanent tests for two reproduced faults (issue #10 items 3 and 6).

- Reconciliation never touches a container labelled with another host: two
  hosts sharing one Docker engine must not destroy each other's sessions.
- An upload that fails (the workspace runs out of space) leaves the file it
  would have replaced exactly as it was, and no partial file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from executor.daemon.reconcile import (
    LABEL_DAEMON_HOST,
    LABEL_DAEMON_MACHINE,
    LABEL_DAEMON_PID,
    LABEL_DAEMON_STARTED,
    daemon_labels,
    reconcile,
    verdict,
)
from executor.daemon.testing import running_daemon
from executor.runner.workspace import TMP_SUFFIX, Workspace, WorkspaceError
from executor.sandbox.driver import Sandbox, SandboxError
from proto import executor_pb2 as pb
from proto.limits import MiB, SessionLimits
from tests.daemon.helpers import container_names, open_session, stub_for


def _dead_pid() -> str:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return done.stdout.strip()


# --- reconciliation ----------------------------------------------------------


def test_verdict_rule_without_docker():
    """Remove only a dead daemon of this host; everything unprovable is kept."""
    mine = daemon_labels("x")
    assert verdict(mine) == "owner alive"
    assert verdict({**mine, LABEL_DAEMON_PID: _dead_pid()}) == "remove"
    assert verdict({**mine, LABEL_DAEMON_STARTED: "12.00"}) == "remove"  # pid reused
    foreign = {**mine, LABEL_DAEMON_HOST: "another-host", LABEL_DAEMON_PID: _dead_pid()}
    assert verdict(foreign) == "foreign host"
    if mine[LABEL_DAEMON_MACHINE]:  # same name, other machine: still foreign
        other_machine = {**mine, LABEL_DAEMON_MACHINE: "0" * 32, LABEL_DAEMON_PID: _dead_pid()}
        assert verdict(other_machine) == "foreign host"
    for bad in ("", "abc", "-1", "0"):
        assert verdict({**mine, LABEL_DAEMON_PID: bad}) == "unlabelled owner"
    assert verdict({k: v for k, v in mine.items() if k != LABEL_DAEMON_HOST}) == "foreign host"


def test_foreign_host_containers_survive_reconciliation(
    docker_client, sandbox_image, test_instance_id
):
    dead = _dead_pid()
    foreign_labels = {
        **daemon_labels(f"{test_instance_id}-foreign"),
        LABEL_DAEMON_HOST: "corral-test-other-host",
        LABEL_DAEMON_PID: dead,  # dead here, but that proves nothing about another host
    }
    dead_labels = {**daemon_labels(f"{test_instance_id}-dead"), LABEL_DAEMON_PID: dead}
    unlabelled = {
        k: v for k, v in daemon_labels(f"{test_instance_id}-nopid").items() if k != LABEL_DAEMON_PID
    }
    limits = SessionLimits()

    def start(labels: dict[str, str]) -> Sandbox:
        # Daemons of older checkouts sharing this engine still remove other hosts'
        # containers at their start (the bug fixed here): retry a start they cut.
        for attempt in range(5):
            try:
                return Sandbox.start(docker_client, sandbox_image, limits, labels=labels)
            except SandboxError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    foreign, stale, orphan = start(foreign_labels), start(dead_labels), start(unlabelled)
    try:
        removed = reconcile(docker_client, f"{test_instance_id}-me")
        # (Another daemon sharing this engine may have removed the stale one first.)
        assert foreign.name not in removed and orphan.name not in removed
        names = set(container_names(docker_client.api.containers(all=True)))
        assert stale.name not in names
        # A daemon starting with the very same instance id still leaves them alone.
        with running_daemon(
            image=sandbox_image,
            instance_id=f"{test_instance_id}-foreign",
            docker_client=docker_client,
            pool_warm=0,
        ) as d:
            assert foreign.name not in d.daemon.removed_at_start
    finally:
        for s in (foreign, stale, orphan):
            s.destroy()


# --- atomic uploads ----------------------------------------------------------

_FSIZE_CHILD = r"""
import os, resource, signal, sys
from executor.runner.workspace import Workspace, WorkspaceError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
ws = Workspace(sys.argv[1])
ws.write("sub/data.bin", b"A" * 4096)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
try:
    ws.write("sub/data.bin", b"B" * 200_000)
except WorkspaceError as exc:
    print("refused:", exc)
"""


def test_failed_write_keeps_the_previous_file_without_docker(tmp_path: Path):
    """A write failing midway (file size limit: a real EFBIG) changes nothing on disk."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [sys.executable, "-c", _FSIZE_CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: cannot write 'sub/data.bin'"), done.stdout
    assert (tmp_path / "sub" / "data.bin").read_bytes() == b"A" * 4096
    assert sorted(os.listdir(tmp_path / "sub")) == ["data.bin"]


def test_write_refuses_directories_and_symlinks_and_leaves_no_temporary(tmp_path: Path):
    ws = Workspace(str(tmp_path))
    (tmp_path / "d").mkdir()
    os.symlink(tmp_path / "d", tmp_path / "link")
    for path in ("d", "link"):
        with pytest.raises(WorkspaceError):
            ws.write(path, b"x")
    ws.write("d/f", b"one")
    ws.write("d/f", b"two")
    assert (tmp_path / "d" / "f").read_bytes() == b"two"
    assert not [n for n in os.listdir(tmp_path / "d") if n.endswith(TMP_SUFFIX)]


def test_upload_overwrite_out_of_space_keeps_the_acknowledged_file(
    docker_client, sandbox_image, test_instance_id
):
    size = 1536 << 10  # 1.5 MiB: two of them do not fit a 2 MiB workspace
    with running_daemon(
        image=sandbox_image,
        instance_id=test_instance_id,
        docker_client=docker_client,
        pool_warm=0,
        pool_max=2,
        max_file_bytes=2 * MiB,
        max_message_bytes=3 * MiB,
    ) as d:
        channel, stub = stub_for(d.target)
        try:
            sid = open_session(stub, limits={"workspace_bytes": 2 * MiB})
            original = bytes(range(256)) * (size // 256)
            stub.UploadFile(pb.UploadFileRequest(session_id=sid, path="f.bin", data=original))
            with pytest.raises(grpc.RpcError) as err:
                stub.UploadFile(
                    pb.UploadFileRequest(session_id=sid, path="f.bin", data=b"\xff" * size)
                )
            assert "space" in (err.value.details() or ""), err.value.details()
            got = stub.DownloadFile(pb.DownloadFileRequest(session_id=sid, path="f.bin"))
            assert got.data == original
            # No partial file anywhere in the workspace (as the snippet sees it: the client's
            # listing hides uploads in progress); the session still works.
            listing = stub.Run(pb.ExecuteStart(session_id=sid, code="sorted(listdir('.'))"))
            assert json.loads(listing.value.json) == ["f.bin"], listing
            small = b"fits"
            stub.UploadFile(pb.UploadFileRequest(session_id=sid, path="f.bin", data=small))
            got = stub.DownloadFile(pb.DownloadFileRequest(session_id=sid, path="f.bin"))
            assert got.data == small
            stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
        finally:
            channel.close()
