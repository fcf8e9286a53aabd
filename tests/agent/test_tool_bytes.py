"""Bytes cross the tool boundary both ways: a tool returning an image, a snippet passing
bytes to a tool, a managed agent answering with an image (issues 13 and 15)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from agent import Client, tool
from agent.executors import ProcessExecutor
from proto.values import BYTES_KEY, from_wire, to_wire

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@tool
def render() -> bytes:
    """An image a tool made (on the client side)."""
    return PNG


@tool
def measure(blob: Any) -> int:
    """The size of the bytes the snippet passed.

    Args:
        blob: bytes from the snippet.
    """
    assert isinstance(blob, bytes)
    return len(blob)


# ---------------------------------------------------------------- codec (no sandbox)


def test_bytes_round_trip_nested_and_everything_else_unchanged() -> None:
    value = {"a": [b"\x00\xff", {"b": bytearray(b"xy")}], "n": 1, "s": "t", "z": None}
    wire = to_wire(value)
    assert wire["a"][0] == {BYTES_KEY: "AP8="}
    assert from_wire(wire) == {"a": [b"\x00\xff", {"b": b"xy"}], "n": 1, "s": "t", "z": None}


def test_a_tagged_object_that_is_not_base64_stays_data() -> None:
    bad = {BYTES_KEY: "not base64!"}
    assert from_wire(bad) == bad
    assert from_wire({BYTES_KEY: "AA==", "other": 1}) == {BYTES_KEY: "AA==", "other": 1}


# ---------------------------------------------------------------- the real runner, no Docker


def test_bytes_cross_both_ways_through_the_runner() -> None:
    with ProcessExecutor().open(tools=[render, measure]) as s:
        r = s.run("img = render()\n(type(img).__name__, len(img), measure(img[:10]), img[:4])")
        assert r.ok, r.error
        assert r.value is not None and r.value.repr == repr(("bytes", len(PNG), 10, PNG[:4]))


# ---------------------------------------------------------------- through a live daemon


@pytest.fixture(scope="module")
def client(daemon: Any) -> Iterator[Client]:
    with Client(daemon.target) as c:
        yield c


@pytest.mark.docker
def test_a_tool_image_shown_by_the_snippet_comes_back_as_an_artifact(client: Client) -> None:
    with client.session(tools=[render, measure]) as s:
        r = s.run("img = render()\ndisplay(img)\nmeasure(img)")
        assert r.ok, r.error
        assert r.python_value == len(PNG)
        assert [a.mime_type for a in r.artifacts] == ["image/png"]
        assert r.artifacts[0].data == PNG


@pytest.mark.docker
def test_a_managed_agents_image_answer_reaches_the_manager(client: Client) -> None:
    pytest.importorskip("PIL")
    from PIL import Image

    from agent import CodeAgent, ScriptedModel

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, format="PNG")
    painter = CodeAgent(
        model=ScriptedModel(
            ["```py\nfrom PIL import Image\nfinal_answer(Image.new('RGB', (8, 8), 'red'))\n```"]
        ),
        name="painter",
        description="Paints a small red square.",
        authorized_imports=["PIL.*"],
    )
    manager = CodeAgent(
        model=ScriptedModel(
            ["```py\nimg = painter(task='paint')\ndisplay(img)\nfinal_answer(len(img))\n```"]
        ),
        client=client,
        managed_agents=[painter],
    )
    with manager:
        answer = manager.run("Get a red square from the painter.")
    assert isinstance(answer, int) and answer > 8
    step = manager.memory.steps[-1]
    assert step.result is not None
    assert [a.mime_type for a in step.result.artifacts] == ["image/png"]


def test_a_bytes_value_comes_back_as_bytes() -> None:
    with ProcessExecutor().open() as s:
        r = s.run("bytes([0, 255]) * 3")
        assert r.ok and r.python_value == b"\x00\xff" * 3
        big = s.run("bytes(1 << 20)")  # over the value's JSON cap: its repr only
        assert big.ok and isinstance(big.python_value, str)
