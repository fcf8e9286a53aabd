"""Everyday use against a real daemon: limits, imports, text, close(), workspace files."""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import grpc
import pytest

from agent import (
    AsyncClient,
    Client,
    ClientClosed,
    CorralWarning,
    FailedPrecondition,
    FileInfo,
    InvalidArgument,
    Verdict,
)
from proto import executor_pb2 as pb
from proto import executor_pb2_grpc as pb_grpc
from proto.limits import LIMIT_MINIMUMS

pytestmark = pytest.mark.docker


@pytest.fixture
def client(daemon: Any) -> Any:
    with Client(daemon.target) as c:
        yield c


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("field", "value", "minimum"),
    [
        ("pids", 1, LIMIT_MINIMUMS["pids"]),
        ("memory_bytes", 1000, LIMIT_MINIMUMS["memory_bytes"]),
        ("cpu_millis", 1, 100),
        ("workspace_bytes", 10, 1 << 20),
        ("wall_time_ms", 1, 10),
    ],
)
def test_impossible_limits_are_invalid_argument_naming_the_minimum(
    daemon: Any, field: str, value: int, minimum: int
) -> None:
    """Checked on the server (a raw stub, no client-side check) before any container is taken."""
    with grpc.insecure_channel(daemon.target) as channel:
        stub = pb_grpc.ExecutorStub(channel)
        before = stub.GetStats(pb.GetStatsRequest(), timeout=10)
        with pytest.raises(grpc.RpcError) as info:
            stub.OpenSession(pb.OpenSessionRequest(limits=pb.Limits(**{field: value})), timeout=30)
        after = stub.GetStats(pb.GetStatsRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        f"limit {field}={value} is below the minimum of {minimum}: a sandbox cannot run with "
        f"less; ask for at least {minimum} (or 0 for the default)"
    )
    assert after.in_use == before.in_use and after.sessions == before.sessions


def test_the_client_reports_the_minimum_as_invalid_argument(client: Client) -> None:
    with pytest.raises(InvalidArgument, match="pids=1 is below the minimum of 16"):
        client.session(limits={"pids": 1})
    with pytest.raises(InvalidArgument, match=r"must be an integer, got float 1.5"):
        client.session(limits={"wall_time_ms": 1.5})  # type: ignore[dict-item]
    with client.session(limits={"pids": 16, "wall_time_ms": 2000}) as s:
        assert s.limits["pids"] == 16 and s.run("1 + 1").python_value == 2


# ---------------------------------------------------------------- imports


def test_a_never_import_says_what_can_be_done_instead(client: Client) -> None:
    with pytest.raises(InvalidArgument) as info:
        client.session(imports=["os"])
    text = str(info.value)
    assert "'os' cannot be authorized for a session" in text
    assert "no daemon setting allows it" in text and "tools=[...]" in text
    assert "unsafe_allow_never_imports" not in text
    with pytest.raises(InvalidArgument, match=r"'subprocess.run' cannot be authorized"):
        client.session(imports=["subprocess.run"])


def test_unknown_modules_are_warned_about_at_open(client: Client) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with client.session(imports=["nunpy", "numpy", "json", "pandas.*"]) as s:
            (warning,) = s.warnings
            assert warning.startswith(
                "authorized import 'nunpy' names no module in the sandbox image (a typo?); "
                "importing it will fail. Third-party modules in the image: "
            )
            listed = warning.rsplit(": ", 1)[1].split(", ")
            assert {"numpy", "pandas", "matplotlib", "PIL"} <= set(listed)
            assert listed == sorted(listed, key=str.lower)
            assert s.run("import numpy\nnumpy.zeros(2).tolist()").python_value == [0.0, 0.0]
    assert [w.category for w in caught] == [CorralWarning]
    assert "'nunpy'" in str(caught[0].message)


def test_async_sessions_get_the_warnings_too(daemon: Any) -> None:
    async def main() -> list[str]:
        async with AsyncClient(daemon.target) as client:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                async with client.session(imports=["nunpy"]) as s:
                    return s.warnings

    assert "'nunpy' names no module" in asyncio.run(main())[0]


# ---------------------------------------------------------------- text and close()


def test_lone_surrogates_never_reach_grpc(client: Client) -> None:
    with client.session() as s:
        with pytest.raises(InvalidArgument, match="code is not valid Unicode text"):
            s.run("print('\udcff')")
        with pytest.raises(InvalidArgument, match="path is not valid Unicode text"):
            s.upload("x\udce9.txt", b"1")
        # the session is intact
        assert s.run("'é' * 2").python_value == "éé"


def test_sessions_of_a_closed_client_raise_client_closed(daemon: Any) -> None:
    client = Client(daemon.target)
    s = client.session()
    client.close()
    with pytest.raises(ClientClosed):
        s.run("1")
    with pytest.raises(ClientClosed):
        s.download("x")
    with pytest.raises(ClientClosed):
        s.files()
    s.close()  # nothing to send; no error
    assert s.closed


# ---------------------------------------------------------------- files


def test_workspace_paths_in_both_forms(client: Client) -> None:
    with client.session() as s:
        assert s.upload("/workspace/a.txt", "one") == 3
        assert s.upload("b/c.txt", b"two") == 3
        assert s.download("a.txt") == b"one"
        assert s.download("/workspace/b/c.txt") == b"two"
        r = s.run("open('/workspace/a.txt').read() + open('b/c.txt').read()")
        assert r.python_value == "onetwo"
        for bad, message in [
            ("/etc/passwd", "'/etc/passwd' is outside the workspace; give it relative"),
            ("/workspacex/a", "is outside the workspace"),
            ("../a.txt", "contains '..'"),
            ("/workspace/../etc/passwd", "contains '..'"),
        ]:
            with pytest.raises(InvalidArgument, match=message):
                s.download(bad)
        for root in (".", "", "/workspace", "/workspace/", "./"):
            with pytest.raises(InvalidArgument, match="names the workspace itself, not a file"):
                s.download(root)


def test_list_remove_and_make_directories(client: Client) -> None:
    with client.session() as s:
        assert s.files() == []
        t0 = time.time()
        s.upload("data/in.csv", "a,b\n1,2\n")
        s.mkdir("results/deep")
        s.mkdir("/workspace/results")  # existing: fine
        s.run("open('notes.txt', 'w').write('x' * 10)")
        entries = s.files()
        assert [(e.path, e.size, e.is_dir) for e in entries] == [
            ("data", 0, True),
            ("notes.txt", 10, False),
            ("results", 0, True),
        ]
        assert all(isinstance(e, FileInfo) and abs(e.mtime - t0) < 300 for e in entries)
        assert [(e.path, e.name) for e in s.files("/workspace/data")] == [("data/in.csv", "in.csv")]
        assert [e.path for e in s.files("results")] == ["results/deep"]
        with pytest.raises(FailedPrecondition, match="not empty; remove its files first"):
            s.remove("results")
        s.remove("results/deep")
        s.remove("/workspace/results")
        s.remove("notes.txt")
        assert [e.path for e in s.files()] == ["data"]
        with pytest.raises(FailedPrecondition, match=r"cannot remove 'nothing.txt'"):
            s.remove("nothing.txt")
        with pytest.raises(FailedPrecondition, match=r"cannot list 'data/in.csv'"):
            s.files("data/in.csv")
        with pytest.raises(InvalidArgument, match="names the workspace itself"):
            s.remove("/workspace")
        # what a snippet sees agrees
        r = s.run("listdir('.'), listdir('data'), exists('notes.txt'), isdir('data')")
        assert r.python_value == [["data"], ["in.csv"], False, True]


def test_snippet_file_helpers_are_confined(client: Client) -> None:
    with client.session() as s:
        r = s.run("makedirs('out/x')\nopen('out/x/f', 'w').write('abc')\ngetsize('out/x/f')")
        assert r.python_value == 3 and s.download("out/x/f") == b"abc"
        r = s.run("listdir('/etc')")
        assert r.verdict == Verdict.ERROR and r.error is not None
        assert r.error.type == "PermissionError" and "outside the workspace" in r.error.message
        r = s.run("remove('..')")
        assert r.verdict == Verdict.ERROR and "outside the workspace" in r.error.message  # type: ignore[union-attr]


def test_one_file_size_cap_reported_the_same_way(client: Client, daemon: Any) -> None:
    cap = daemon.config.max_file_bytes
    with client.session() as s:
        with pytest.raises(InvalidArgument) as up:
            s.upload("big.bin", b"\0" * (cap + 1))
        assert str(up.value).endswith(
            f"is {cap + 1} bytes; the server accepts at most {cap} bytes (config: max_file_bytes)"
        )
        r = s.run(f"open('big.bin', 'w').write('x' * {cap + 1})")
        assert r.python_value == cap + 1
        with pytest.raises(FailedPrecondition) as down:
            s.download("big.bin")
        assert str(down.value).endswith(
            f"the file 'big.bin' is {cap + 1} bytes; the server accepts at most {cap} bytes "
            "(config: max_file_bytes)"
        )
        assert [e.size for e in s.files()] == [cap + 1]


def test_async_file_operations(daemon: Any) -> None:
    async def main() -> tuple[list[str], bytes, list[str]]:
        async with AsyncClient(daemon.target) as client, client.session() as s:
            await s.upload("/workspace/in/a.txt", "hi")
            await s.mkdir("out")
            listed = [f.path for f in await s.files()]
            data = await s.download("in/a.txt")
            await s.remove("/workspace/in/a.txt")
            with pytest.raises(InvalidArgument, match="names the workspace itself"):
                await s.download(".")
            return listed, data, [f.path for f in await s.files("in")]

    assert asyncio.run(main()) == (["in", "out"], b"hi", [])


def test_a_session_at_the_container_minimums_runs(client: Client) -> None:
    """The minimums are what a sandbox needs, not guesses: a session at all of them works."""
    from proto.limits import LIMIT_MINIMUMS

    container = ("memory_bytes", "pids", "cpu_millis", "workspace_bytes")
    with client.session(limits={k: LIMIT_MINIMUMS[k] for k in container}) as s:
        assert s.limits["pids"] == LIMIT_MINIMUMS["pids"]
        r = s.run("import json\nprint('ok')\njson.dumps({'a': sum(range(1000))})")
        assert (r.verdict, r.stdout, r.python_value) == (Verdict.OK, "ok\n", '{"a": 499500}')
        s.upload("f.txt", b"x" * 1000)
        assert s.download("f.txt") == b"x" * 1000
