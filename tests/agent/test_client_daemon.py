"""The sync and asyncio clients against a real daemon (with auth on)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import (
    AsyncClient,
    Client,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Result,
    SessionClosed,
    Unauthenticated,
    Unavailable,
    Verdict,
    tool,
)
from agent.client import Session
from tests.agent.conftest import DAEMON_CONFIG, TOKEN, start_daemon

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def daemon(docker_client, sandbox_image, test_instance_id) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """This module's daemon requires a bearer token."""
    with start_daemon(
        docker_client, sandbox_image, test_instance_id, tokens={"alice": TOKEN}
    ) as handle:
        yield handle


@pytest.fixture
def client(daemon: Any) -> Iterator[Client]:
    with Client(daemon.target, token=TOKEN) as c:
        yield c


@tool
def lookup(key: str, default: str | None = None) -> str:
    """Look a key up in the client's table.

    Args:
        key: the key
        default: returned when the key is missing
    """
    return {"secret": "only-on-the-client"}.get(key, default or "missing")


@tool
def explode(reason: str) -> str:
    """Always raises.

    Args:
        reason: the message
    """
    raise ValueError(f"exploded: {reason}")


def test_every_result_field(client: Client) -> None:
    with client.session(variables={"base": 40}, labels={"test": "fields"}) as s:
        r = s.run("items = [base, 2]\nprint('sum is', sum(items))\nsum(items)")
        assert isinstance(r, Result)
        assert r.verdict is Verdict.OK and r.ok
        assert r.stdout == "sum is 42\n"
        assert r.value is not None
        assert (r.value.type, r.value.repr, r.value.json, r.value.has_json) == (
            "int",
            "42",
            42,
            True,
        )
        assert not r.is_final_answer and r.final_answer is None and r.answer is None
        assert r.error is None
        state = {v.name: v for v in r.state}
        assert state["items"].json == [40, 2] and state["items"].type == "list"
        assert state["base"].json == 40
        assert r.truncated is False
        assert r.usage.output_bytes == len("sum is 42\n")
        assert r.session_lost is False

        fa = s.run("final_answer({'answer': sum(items)})")
        assert fa.is_final_answer and fa.verdict is Verdict.OK
        assert fa.final_answer is not None and fa.final_answer.json == {"answer": 42}
        assert fa.answer == {"answer": 42}

        err = s.run("x = 1\n1 / 0")
        assert err.verdict is Verdict.ERROR and not err.ok
        assert err.error is not None
        assert (err.error.type, err.error.line) == ("ZeroDivisionError", 2)
        assert "division by zero" in err.error.message

        syntax = s.run("def (:")
        assert syntax.verdict is Verdict.SYNTAX_ERROR and syntax.error is not None

        denied = s.run("import os")
        assert denied.verdict is Verdict.POLICY_DENIED
        assert denied.error is not None and "os" in denied.error.message

        opaque = s.run("f = lambda: 1\nf")
        assert opaque.value is not None and opaque.value.has_json is False
        assert opaque.value.type == "function" and opaque.python_value == opaque.value.repr


def test_truncated_output_and_soft_timeout_keep_the_session(client: Client) -> None:
    with client.session(limits={"output_bytes": 1000, "wall_time_ms": 1000}) as s:
        assert s.limits["output_bytes"] == 1000 and s.limits["wall_time_ms"] == 1000
        r = s.run("for i in range(500):\n    print('line', i)\nkept = 1")
        assert r.truncated is True
        assert r.verdict is Verdict.OUTPUT_TRUNCATED and r.ok
        assert len(r.stdout.encode()) <= 1000
        t = s.run("while True:\n    pass")
        assert t.verdict is Verdict.TIMEOUT and t.error is not None and not t.session_lost
        assert s.run("kept + 1").python_value == 2  # state survived the soft timeout


def test_hard_timeout_loses_the_session(client: Client) -> None:
    s = client.session(limits={"wall_time_ms": 1000, "cpu_time_ms": 20_000})
    # a C-level loop the soft timeout cannot interrupt: the daemon kills the container
    r = s.run("x = 1\nsum(range(10**12))")
    assert r.verdict is Verdict.TIMEOUT and r.session_lost is True
    assert r.error is not None and "killed" in r.error.message
    assert s.lost
    with pytest.raises(SessionClosed, match=r"lost its sandbox; recover\(\) continues it"):
        s.run("x")
    s.close()  # closing a lost session is quiet


def test_streaming_yields_output_before_the_result(client: Client) -> None:
    seen: list[str] = []

    def checkpoint() -> int:
        """Called mid-snippet: what the client had received by then."""
        return len("".join(seen))

    with client.session(tools=[checkpoint]) as s:
        items = []
        for item in s.stream("print('one')\nprint('two')\nn = checkpoint()\nprint('three')\nn"):
            items.append(item)
            if isinstance(item, str):
                seen.append(item)
        assert isinstance(items[-1], Result)
        assert all(isinstance(i, str) for i in items[:-1])
        result = items[-1]
        assert (
            "".join(i for i in items[:-1] if isinstance(i, str))
            == result.stdout
            == "one\ntwo\nthree\n"
        )
        # the first two lines had reached the client before the snippet called the tool
        assert result.python_value == len("one\ntwo\n")


def test_tool_callbacks_run_on_the_client(client: Client) -> None:
    calls: list[tuple[int, int]] = []

    def add(a, b):  # type: ignore[no-untyped-def]
        calls.append((a, b))
        return a + b

    with client.session(tools=[lookup, explode, add]) as s:
        r = s.run("v = lookup('secret')\nw = lookup(key='nope', default='dflt')\n[v, w, add(2, 3)]")
        assert r.verdict is Verdict.OK, r.error
        assert r.python_value == ["only-on-the-client", "dflt", 5]
        assert calls == [(2, 3)]

        caught = s.run(
            "try:\n    explode('boom')\nexcept ValueError as e:\n    print('caught', e)\n'after'"
        )
        assert caught.verdict is Verdict.OK, caught.error
        assert caught.stdout == "caught exploded: boom\n"
        assert caught.python_value == "after"

        raised = s.run("explode('loud')")
        assert raised.verdict is Verdict.ERROR and raised.error is not None
        assert raised.error.type == "ValueError" and "exploded: loud" in raised.error.message

        bad = s.run("lookup(123)")  # validated on the client against the schema
        assert bad.verdict is Verdict.ERROR and bad.error is not None
        assert "argument 'key' must be of type string" in bad.error.message


def test_variables_and_files(client: Client) -> None:
    with client.session() as s:
        s.set_variables({"data": {"a": [1, 2]}, "name": "corral"})
        got = s.get_variables(["data", "name"])
        assert got["data"].json == {"a": [1, 2]} and got["name"].json == "corral"
        assert s.get_variables("name")["name"].type == "str"
        assert s.upload("in.csv", b"a,b\n1,2\n") == 8
        assert s.download("in.csv") == b"a,b\n1,2\n"
        assert s.upload("sub/data.bin", bytes(range(256))) == 256
        assert s.download("sub/data.bin") == bytes(range(256))
        with pytest.raises(InvalidArgument):
            s.upload("../escape.txt", b"x")
        # the daemon reports a missing file as FAILED_PRECONDITION (NOT_FOUND would also do)
        with pytest.raises((NotFound, FailedPrecondition), match=r"missing\.txt"):
            s.download("missing.txt")
        with pytest.raises(InvalidArgument, match="JSON-serialisable"):
            s.set_variables({"bad": object()})


def test_typed_errors(daemon: Any, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORRAL_TOKEN", raising=False)  # token=None must mean "no token"
    # the daemon is down: a closed port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with Client(f"127.0.0.1:{closed_port}", token=TOKEN, timeout=5) as down:
        with pytest.raises(Unavailable) as info:
            down.session()
        assert info.value.code is not None and info.value.code.name == "UNAVAILABLE"
        assert "corrald serve" in str(info.value)

    for token in ("wrong", None):
        with Client(daemon.target, token=token) as bad:
            with pytest.raises(Unauthenticated) as auth:
                bad.session()
            assert auth.value.code is not None and auth.value.code.name == "UNAUTHENTICATED"

    with pytest.raises(InvalidArgument, match="wall_time_ms"):
        client.session(limits={"wall_time_ms": 10_000_000})  # above the server's maximum
    with pytest.raises(InvalidArgument, match="unknown limit"):
        client.session(limits={"wall_seconds": 1})

    ghost = Session(client, "not-a-real-session-id", {}, {})
    with pytest.raises(NotFound):
        ghost.run("1")

    s = client.session()
    s.close()
    s.close()  # idempotent
    with pytest.raises(SessionClosed, match="is closed; open a new one"):
        s.run("1")


def test_async_client(daemon: Any) -> None:
    async def fetch(url: str) -> str:
        """Fetch a page (pretend).

        Args:
            url: where
        """
        await asyncio.sleep(0)
        return f"<html>{url}</html>"

    async def scenario() -> None:
        async with AsyncClient(daemon.target, token=TOKEN) as client:
            async with client.session(tools=[fetch, lookup], variables={"n": 2}) as s:
                r = await s.run("page = fetch('x.org')\nprint(page)\n[n, lookup('secret')]")
                assert r.verdict is Verdict.OK, r.error
                assert r.stdout == "<html>x.org</html>\n"
                assert r.python_value == [2, "only-on-the-client"]
                items = [i async for i in s.stream("for i in range(3):\n    print(i)")]
                assert isinstance(items[-1], Result)
                assert "".join(i for i in items if isinstance(i, str)) == "0\n1\n2\n"
                await s.set_variables({"m": 5})
                assert (await s.get_variables(["m"]))["m"].json == 5
                assert await s.upload("f.txt", "hey") == 3
                assert await s.download("f.txt") == b"hey"
            assert s.closed
            session = await client.session()
            err = await session.run("raise KeyError('k')")
            assert err.verdict is Verdict.ERROR and err.error is not None
            assert err.error.type == "KeyError"
            await session.close()
            stats = await client.stats()
            assert stats.max_containers == DAEMON_CONFIG["pool_max"]
        async with AsyncClient(daemon.target, token="wrong") as bad:
            with pytest.raises(Unauthenticated):
                await bad.open_session()

    asyncio.run(scenario())


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_with_a_ca_path(
    docker_client: Any, sandbox_image: str, test_instance_id: str, tmp_path: Path
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")

    cert, key = _self_signed(tmp_path)
    _tls_round_trip(docker_client, sandbox_image, test_instance_id, cert, key, {"pool_warm": 1})


def _tls_round_trip(
    docker_client: Any,
    sandbox_image: str,
    instance: str,
    cert: Path,
    key: Path,
    config: dict[str, Any],
) -> None:
    with start_daemon(
        docker_client, sandbox_image, instance, tls_cert=str(cert), tls_key=str(key), **config
    ) as d:
        with Client(d.target, tls=str(cert)) as c, c.session() as s:
            assert s.run("print('over tls')").stdout == "over tls\n"
        # system roots do not trust the test certificate
        with Client(d.target, tls=True, timeout=5) as untrusted, pytest.raises(Unavailable):
            untrusted.session()
        with Client(d.target, timeout=5) as plaintext, pytest.raises(Unavailable):
            plaintext.session()
