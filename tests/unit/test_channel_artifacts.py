"""Artifacts, stderr and tracebacks in the channel core, fed hostile bytes without Docker.

A runner that is compromised can claim any type, size or count for an
artifact. The core checks each (valid base64, size, count, and bytes that are
what the type says) and treats any violation as a broken channel: only a
hostile runner sends one, because the interpreter bounds and encodes
artifacts itself.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import pytest

from executor.sandbox import events
from executor.sandbox.errors import SandboxProtocolError
from tests.unit.test_channel_protocol import (
    assert_broken,
    executing,
    frame,
    ready_channel,
    result,
    sent,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + b"\0" * 20
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 20
GIF = b"GIF89a" + b"\0" * 20
SVG = (
    b'<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
    b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"\n'
    b'  "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>'
)


def art(rid: str, data: bytes, mime: str = "image/png", **fields: Any) -> dict[str, Any]:
    return {
        "type": "artifact",
        "id": rid,
        "name": "figure-1",
        "mime_type": mime,
        "data_b64": base64.b64encode(data).decode(),
        "metadata": {"width": 640, "height": 480},
        **fields,
    }


@pytest.mark.parametrize(
    ("mime", "data"),
    [("image/png", PNG), ("image/jpeg", JPEG), ("image/gif", GIF), ("image/svg+xml", SVG)],
)
def test_each_type_with_matching_bytes_is_an_artifact_event(mime: str, data: bytes) -> None:
    proto, rid = executing()
    proto.receive_data(frame(art(rid, data, mime)))
    event = proto.next_event()
    assert isinstance(event, events.Artifact)
    assert event.artifact.data == data and event.artifact.mime_type == mime
    assert event.artifact.metadata == {"width": 640, "height": 480}
    proto.receive_data(frame(result(rid)))
    assert isinstance(proto.next_event(), events.ExecuteResult)


@pytest.mark.parametrize(
    ("mime", "data", "why"),
    [
        ("image/png", JPEG, "wrong magic"),
        ("image/jpeg", PNG, "wrong magic"),
        ("image/gif", b"<svg/>", "wrong magic"),
        ("image/png", b"", "wrong magic"),
        ("image/svg+xml", PNG, "not well-formed"),
        ("image/svg+xml", b"<html/>", "not <svg>"),
        ("image/svg+xml", b'<?xml version="1.0"?><svg><script>', "not well-formed"),
        # Billion laughs and external entities: any entity declaration is refused.
        (
            "image/svg+xml",
            b'<!DOCTYPE svg [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;">]><svg>&b;</svg>',
            "declares entities",
        ),
        (
            "image/svg+xml",
            b'<!DOCTYPE svg [<!ELEMENT svg ANY>]><svg xmlns="http://www.w3.org/2000/svg"/>',
            "internal subset",
        ),
        ("image/svg+xml", b"<svg>&undefined;</svg>", "not well-formed"),
        ("text/html", b"<html/>", "is not one of"),
        ("image/webp", b"RIFF....WEBP", "is not one of"),
    ],
)
def test_an_artifact_whose_bytes_are_not_its_type_breaks_the_channel(
    mime: str, data: bytes, why: str
) -> None:
    proto, rid = executing()
    with pytest.raises(SandboxProtocolError, match=why):
        proto.receive_data(frame(art(rid, data, mime)))
    assert_broken(proto, SandboxProtocolError)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"data_b64": "!!!not base64"}, "not base64"),
        ({"data_b64": 7}, "must be a string"),
        ({"name": ""}, "'name'"),
        ({"name": "../../etc/passwd"}, "'name'"),
        ({"name": "a\nb"}, "'name'"),
        ({"mime_type": None}, "must be a string"),
        ({"metadata": []}, "must be an object"),
        ({"metadata": {"width": -1}}, "width"),
        ({"metadata": {"width": "640"}}, "width"),
        ({"metadata": {f"k{i}": i for i in range(100)}}, "small JSON"),
    ],
)
def test_a_malformed_artifact_frame_breaks_the_channel(fields: dict[str, Any], why: str) -> None:
    proto, rid = executing()
    with pytest.raises(SandboxProtocolError, match=why):
        proto.receive_data(frame(art(rid, PNG, **fields)))


def test_size_is_checked_against_max_artifact_bytes_before_decoding() -> None:
    proto, rid = executing(limits={"max_artifact_bytes": 1024})
    proto.receive_data(frame(art(rid, PNG + b"\0" * (1024 - len(PNG)))))  # exactly the cap
    assert isinstance(proto.next_event(), events.Artifact)
    with pytest.raises(SandboxProtocolError, match="max_artifact_bytes=1024"):
        proto.receive_data(frame(art(rid, PNG + b"\0" * 1024)))


def test_count_is_checked_against_max_artifacts_per_snippet() -> None:
    proto = ready_channel()
    sent(proto.request({"type": "init", "limits": {"max_artifacts": 2}}, 5))
    proto.receive_data(frame({"type": "ack", "id": "q1"}))
    assert isinstance(proto.next_event(), events.Ack)
    for _ in range(2):  # the cap holds per snippet, not per session
        rid = sent(proto.execute("1", timeout=5))["id"]
        proto.receive_data(frame(art(rid, PNG)) + frame(art(rid, PNG)))
        proto.receive_data(frame(result(rid)))
        assert [type(proto.next_event()) for _ in range(3)] == [
            events.Artifact,
            events.Artifact,
            events.ExecuteResult,
        ]
    rid = sent(proto.execute("1", timeout=5))["id"]
    with pytest.raises(SandboxProtocolError, match="max_artifacts=2"):
        proto.receive_data(frame(art(rid, PNG)) * 3)


def test_an_artifact_outside_an_execute_breaks_the_channel() -> None:
    proto = ready_channel()
    with pytest.raises(SandboxProtocolError, match="no request in flight"):
        proto.receive_data(frame(art("q1", PNG)))


def test_a_compressed_bomb_is_only_bytes_here() -> None:
    """The daemon never decodes an image: a PNG whose pixels would take gigabytes is
    carried as the few kilobytes it is (the client decodes only when asked)."""
    ihdr = b"\0\0\0\rIHDR" + (100_000).to_bytes(4, "big") * 2 + b"\x08\x00\x00\x00\x00"
    bomb = b"\x89PNG\r\n\x1a\n" + ihdr + zlib.compress(b"\0" * (1 << 20))
    proto, rid = executing()
    proto.receive_data(frame(art(rid, bomb, metadata={"width": 100_000, "height": 100_000})))
    event = proto.next_event()
    assert isinstance(event, events.Artifact) and len(event.artifact.data) < 10_000


# -- stderr and tracebacks ---------------------------------------------------------


def test_stderr_output_is_its_own_stream_with_its_own_cap() -> None:
    proto, rid = executing(limits={"output_bytes": 100})
    proto.receive_data(
        frame({"type": "output", "id": rid, "data": "o" * 100})
        + frame({"type": "output", "id": rid, "data": "e" * 100, "stream": "stderr"})
    )
    out, err = proto.next_event(), proto.next_event()
    assert isinstance(out, events.Output) and out.stream == "stdout"
    assert isinstance(err, events.Output) and err.stream == "stderr"
    with pytest.raises(SandboxProtocolError, match="stderr"):
        proto.receive_data(
            frame({"type": "output", "id": rid, "data": "e" * 5000, "stream": "stderr"})
        )


def test_an_unknown_stream_breaks_the_channel() -> None:
    proto, rid = executing()
    with pytest.raises(SandboxProtocolError, match="'stream'"):
        proto.receive_data(frame({"type": "output", "id": rid, "data": "x", "stream": "tty"}))


def test_result_carries_stderr_frames_and_traceback_checked() -> None:
    proto, rid = executing(limits={"output_bytes": 10})
    error = {
        "type": "ZeroDivisionError",
        "message": "division by zero",
        "line": 3,
        "source_line": "return a / b",
        "frames": [
            {"snippet": 2, "line": 1, "function": "<module>", "source_line": "f(1)"},
            {"snippet": 1, "line": 3, "function": "f", "source_line": "\ud800return a / b"},
        ],
        "traceback": "Traceback (most recent call last):\n...",
    }
    proto.receive_data(frame(result(rid, verdict="ERROR", error=error, stderr="é" * 20)))
    done = proto.next_event()
    assert isinstance(done, events.ExecuteResult)
    r = done.result
    assert r.stderr == "é" * 5  # cut to the output cap in UTF-8 bytes
    assert r.error is not None and [(f.snippet, f.line) for f in r.error.frames] == [(2, 1), (1, 3)]
    assert r.error.frames[1].source_line == "?return a / b"  # lone surrogate replaced
    assert r.error.traceback.startswith("Traceback")


@pytest.mark.parametrize(
    "error_fields",
    [
        {"frames": "x"},
        {"frames": [{"snippet": "1", "line": 1, "function": "f"}]},
        {"frames": [{"snippet": 1, "line": -1, "function": "f"}]},
        {"frames": [{"snippet": 1, "line": 1, "function": None}]},
        {"frames": [{"snippet": 1, "line": 1, "function": "f"}] * 201},
        {"traceback": 5},
    ],
)
def test_malformed_traceback_frames_break_the_channel(error_fields: dict[str, Any]) -> None:
    proto, rid = executing()
    error = {"type": "E", "message": "m", **error_fields}
    with pytest.raises(SandboxProtocolError):
        proto.receive_data(frame(result(rid, verdict="ERROR", error=error)))
