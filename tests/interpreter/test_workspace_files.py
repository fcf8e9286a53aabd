"""open() confined to the workspace: present only with a workspace, never leaving it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from executor.interpreter import Interpreter, Limits, Verdict


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "in.csv").write_text("a,b\n1,2\n")
    return ws


def make(ws: Path) -> Interpreter:
    return Interpreter(workspace=str(ws), limits=Limits(wall_time_s=2))


def test_no_workspace_means_no_open():
    result = Interpreter().run("open('x')")
    assert result.verdict in (Verdict.POLICY_DENIED, Verdict.ERROR)
    assert result.error is not None


def test_reads_and_writes_inside_the_workspace(workspace: Path):
    interp = make(workspace)
    assert interp.run("open('in.csv').read()").value.json == "a,b\n1,2\n"
    result = interp.run(
        "with open('out.txt', 'w') as f:\n    f.write('hi')\nopen('out.txt').read()"
    )
    assert result.verdict == Verdict.OK and result.value.json == "hi"
    assert (workspace / "out.txt").read_text() == "hi"
    assert interp.run(f"open({str(workspace / 'in.csv')!r}).read()").value.json.startswith("a,b")


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "../outside.txt", "sub/../../outside.txt", "link-out", "link-dir/passwd"],
)
def test_paths_leaving_the_workspace_are_refused(workspace: Path, tmp_path: Path, path: str):
    secret = tmp_path / "outside.txt"
    secret.write_text("CANARY-outside")
    os.symlink(secret, workspace / "link-out")
    os.symlink("/etc", workspace / "link-dir")
    for mode in ("r", "w", "a"):
        result = make(workspace).run(f"open({path!r}, {mode!r}).read()")
        assert result.verdict == Verdict.ERROR
        assert result.error is not None and result.error.type == "PermissionError"
        assert "CANARY" not in result.stdout
    assert secret.read_text() == "CANARY-outside"
    assert not (tmp_path / "outside.txt.new").exists()


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("open(0).read()", "TypeError"),  # a host file descriptor
        ("open('in.csv', opener=print)", "TypeError"),  # an opener callable
        ("open('in.csv', closefd=False)", "TypeError"),
        ("open('in.csv', 'rz')", "ValueError"),
        ("open('in\\x00.csv')", "ValueError"),
    ],
)
def test_open_refuses_descriptors_openers_and_bad_modes(workspace: Path, code: str, error: str):
    result = make(workspace).run(code)
    assert result.verdict == Verdict.ERROR
    assert result.error is not None and result.error.type == error


def test_file_objects_expose_nothing_private(workspace: Path):
    result = make(workspace).run("f = open('in.csv')\nf.buffer.raw._blksize")
    assert result.verdict == Verdict.POLICY_DENIED
