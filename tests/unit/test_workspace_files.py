"""Workspace file operations at each layer, without Docker: client paths, runner, snippet helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from executor.daemon.errors import InvalidArgument
from executor.daemon.files import workspace_path
from executor.daemon.imports import IMAGE_MODULES, check_imports
from executor.interpreter.files import make_workspace_helpers
from executor.runner.workspace import Workspace, WorkspaceError
from executor.sandbox import events
from executor.sandbox.errors import FrameSchemaError

REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------- daemon: client paths


@pytest.mark.parametrize(
    ("given", "clean"),
    [
        ("a.txt", "a.txt"),
        ("/workspace/a.txt", "a.txt"),
        ("/workspace//d/./e.txt", "d/e.txt"),
        ("./d/", "d"),
    ],
)
def test_both_path_forms_name_the_same_file(given: str, clean: str) -> None:
    assert workspace_path(given) == clean


@pytest.mark.parametrize("root", ["", ".", "./", "/workspace", "/workspace/", "/workspace/."])
def test_the_root_is_a_directory_not_a_file(root: str) -> None:
    assert workspace_path(root, allow_root=True) == "."
    with pytest.raises(InvalidArgument, match="names the workspace itself, not a file"):
        workspace_path(root)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("/etc/passwd", "is outside the workspace; give it relative to it"),
        ("/workspacefoo/x", "is outside the workspace"),
        ("../x", "contains '..'"),
        ("/workspace/../x", "contains '..'"),
        ("a/../../x", "contains '..'"),
        ("a\x00b", "without NUL"),
        ("x" * 2000, "at most 1024 characters"),
    ],
)
def test_paths_leaving_the_workspace_are_refused(bad: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        workspace_path(bad, allow_root=True)


def file_entries(entries: object) -> tuple[events.FileEntry, ...]:
    """The channel's one schema check of a `files` answer."""
    return events.files({"type": "files", "id": "q1", "entries": entries}).entries


def test_listing_entries_from_the_runner_are_checked() -> None:
    good = {"path": "a", "size": 1, "is_dir": False, "mtime_ms": 5}
    assert [e.path for e in file_entries([good])] == ["a"]
    for bad in (
        "nope",
        [good] * 10_001,
        [{**good, "size": -1}],
        [{**good, "size": True}],
        [{**good, "size": 1 << 64}],
        [{**good, "is_dir": 1}],
        [{**good, "path": ""}],
        [{**good, "path": 7}],
        [{**good, "mtime_ms": 1.5}],
        [["a", 1]],
    ):
        with pytest.raises(FrameSchemaError):
            file_entries(bad)


# ---------------------------------------------------------------- daemon: imports


def test_never_imports_are_refused_with_what_to_do_instead() -> None:
    for name in ("os", "os.path", "subprocess.*", "socket", "_thread", "ctypes"):
        with pytest.raises(InvalidArgument, match="cannot be authorized for a session") as info:
            check_imports([name])
        assert "tools=[...]" in str(info.value) and "open()" in str(info.value)


def test_unknown_modules_are_warnings_and_known_ones_are_not() -> None:
    assert check_imports(["numpy", "numpy.*", "pandas", "json", "collections.abc", "*"]) == []
    warned = check_imports(["nunpy", "requests.*"])
    assert len(warned) == 2 and "'nunpy' names no module" in warned[0]


def test_image_modules_follow_the_image_requirements() -> None:
    names = {"python-dateutil": "dateutil", "pillow": "PIL", "fonttools": "fontTools"}
    pinned = [
        line.split("==")[0]
        for line in (REPO / "sandbox_images" / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert {names.get(p, p) for p in pinned} == set(IMAGE_MODULES)


# ---------------------------------------------------------------- runner


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace(str(root), max_file_bytes=1000)


def test_runner_lists_removes_and_makes_directories(ws: Workspace, tmp_path: Path) -> None:
    ws.make_dir("d/e")
    ws.make_dir("d/e")  # existing: fine
    ws.write("d/f.txt", b"abc")
    ws.write("top.bin", b"")
    (tmp_path / "outside").write_text("secret")
    os.symlink(tmp_path / "outside", os.path.join(ws.root, "link"))
    os.mkfifo(os.path.join(ws.root, "fifo"))
    listed = ws.list_dir(".")
    assert [(e["path"], e["size"], e["is_dir"]) for e in listed] == [
        ("d", 0, True),
        ("top.bin", 0, False),
    ]  # no symlink, no fifo
    assert [e["path"] for e in ws.list_dir("d")] == ["d/e", "d/f.txt"]
    assert isinstance(listed[0]["mtime_ms"], int)
    with pytest.raises(WorkspaceError, match="not empty; remove its files first"):
        ws.remove("d")
    ws.remove("d/f.txt")
    ws.remove("d/e")
    ws.remove("d")
    ws.remove("link")  # removes the link, never its target
    assert (tmp_path / "outside").read_text() == "secret"
    with pytest.raises(WorkspaceError, match="cannot remove 'gone'"):
        ws.remove("gone")
    with pytest.raises(WorkspaceError, match=r"cannot list 'top.bin'"):
        ws.list_dir("top.bin")


def test_runner_refuses_directories_through_symlinks(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", os.path.join(ws.root, "out"))
    with pytest.raises(WorkspaceError):
        ws.list_dir("out")
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        ws.make_dir("out/x")
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        ws.remove("out/x")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_runner_read_uses_the_cap_it_is_given(ws: Workspace) -> None:
    ws.write("f", b"x" * 600)
    assert len(ws.read("f")) == 600
    with pytest.raises(WorkspaceError) as info:
        ws.read("f", 500)
    assert str(info.value) == (
        "the file 'f' is 600 bytes; the server accepts at most 500 bytes (config: max_file_bytes)"
    )


# ---------------------------------------------------------------- snippet helpers


def test_snippet_helpers_stay_in_the_workspace(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "secret").write_text("s")
    h = make_workspace_helpers(str(root))
    assert sorted(h) == ["exists", "getsize", "isdir", "isfile", "listdir", "makedirs", "remove"]
    h["makedirs"]("a/b")
    (root / "a" / "f").write_text("hello")
    os.symlink(tmp_path / "secret", root / "lnk")
    assert h["listdir"]() == ["a", "lnk"] and h["listdir"]("a") == ["b", "f"]
    assert (h["exists"]("a/f"), h["isfile"]("a/f"), h["isdir"]("a"), h["getsize"]("a/f")) == (
        True,
        True,
        True,
        5,
    )
    # a symlink leading out is neither followed nor reported as a file
    assert (h["exists"]("nothing"), h["isfile"]("a"), h["isdir"]("a/f")) == (False, False, False)
    for name in ("listdir", "exists", "isfile", "getsize", "remove", "makedirs"):
        with pytest.raises(PermissionError, match="outside the workspace"):
            h[name]("../secret")
        with pytest.raises(PermissionError, match="outside the workspace"):
            h[name]("lnk")
        with pytest.raises(TypeError, match="path string"):
            h[name](3)
    with pytest.raises(PermissionError, match="workspace itself cannot be removed"):
        h["remove"](".")
    h["remove"]("a/f")
    h["remove"]("a/b")
    assert h["listdir"]("a") == [] and (tmp_path / "secret").read_text() == "s"


def test_names_that_are_not_utf8_are_left_out_of_listings(ws: Workspace) -> None:
    with open(os.path.join(os.fsencode(ws.root), b"caf\xe9"), "wb"):
        pass
    ws.write("ok", b"1")
    assert [e["path"] for e in ws.list_dir(".")] == ["ok"]
    entry = {"path": "caf\udce9", "size": 0, "is_dir": False, "mtime_ms": 0}
    with pytest.raises(FrameSchemaError, match="UTF-8"):
        file_entries([entry])
