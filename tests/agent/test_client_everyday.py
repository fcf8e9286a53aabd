"""What a new user trips over, client side, with no daemon: targets, limits, text, close()."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from agent import (
    AsyncClient,
    ChatMessage,
    Client,
    ClientClosed,
    InvalidArgument,
    ScriptedModel,
    SessionClosed,
    ToolCallingAgent,
    tool,
    wire,
)
from agent.models import ToolCallRequest
from proto.limits import LIMIT_FIELDS, LIMIT_MINIMUMS, LimitValueError, SessionLimits

# ---------------------------------------------------------------- targets


@pytest.mark.parametrize(
    ("given", "resolved"),
    [
        ("127.0.0.1", "127.0.0.1:50051"),
        ("corral.internal", "corral.internal:50051"),
        ("localhost:7000", "localhost:7000"),
        ("[::1]", "[::1]:50051"),
        ("[::1]:7000", "[::1]:7000"),
        ("::1", "[::1]:50051"),
        ("dns:///corral.internal:7000", "dns:///corral.internal:7000"),
        ("unix:/run/corral.sock", "unix:/run/corral.sock"),
    ],
)
def test_a_bare_host_means_the_default_port(given: str, resolved: str) -> None:
    assert wire.resolve_target(given) == resolved
    with Client(given) as client:
        assert client.target == resolved


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1.5, "float 1.5"), ("5000", "str '5000'"), (True, "bool True"), (None, "NoneType None")],
)
def test_limits_accept_integers_only(value: object, shown: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        wire.limits_proto({"wall_time_ms": value})  # type: ignore[dict-item]
    assert str(info.value) == (
        f"limit wall_time_ms must be an integer, got {shown} "
        "(whole milliseconds, e.g. wall_time_ms=10000)"
    )


def test_negative_and_unknown_limits_are_refused_with_the_fix() -> None:
    with pytest.raises(InvalidArgument, match=r"wall_time_ms=-5 is negative; give a positive"):
        wire.limits_proto({"wall_time_ms": -5})
    with pytest.raises(InvalidArgument, match=r"unknown limit.*wall_time_s.*known limits"):
        wire.limits_proto({"wall_time_s": 5})
    with pytest.raises(InvalidArgument, match="out of range"):
        wire.limits_proto({"pids": 1 << 40})  # a uint32 field
    assert wire.limits_proto({"wall_time_ms": 1500}).wall_time_ms == 1500


def test_session_limits_do_not_coerce_either() -> None:
    """The daemon side (config and merging) refuses the same values."""
    with pytest.raises(LimitValueError, match="must be an integer, got float"):
        SessionLimits().merged({"wall_time_ms": 1.5})  # type: ignore[dict-item]
    with pytest.raises(LimitValueError, match="must be an integer, got str"):
        SessionLimits.from_dict({"pids": "64"})
    assert SessionLimits().merged({"pids": 32, "wall_time_ms": 0}).pids == 32


def test_every_limit_declares_a_minimum_below_its_default() -> None:
    assert set(LIMIT_MINIMUMS) == set(LIMIT_FIELDS)
    defaults = SessionLimits()
    for name, minimum in LIMIT_MINIMUMS.items():
        assert 0 < minimum <= getattr(defaults, name), name


# ---------------------------------------------------------------- text


@pytest.mark.parametrize(
    "build",
    [
        lambda: wire.start_request("sid", "print('\udcff')"),
        lambda: wire.open_request(
            imports=["num\udc80py"], tools={}, variables=None, limits=None, labels=None
        ),
        lambda: wire.open_request(
            imports=None, tools={}, variables=None, limits=None, labels={"k": "\ud800"}
        ),
        lambda: wire.file_path("data\udce9.csv"),
        lambda: wire.file_data("caf\udce9"),
    ],
)
def test_lone_surrogates_are_a_typed_error(build: object) -> None:
    with pytest.raises(InvalidArgument, match=r"not valid Unicode text: .* lone surrogate"):
        build()  # type: ignore[operator]


def test_tool_descriptions_with_lone_surrogates_are_a_typed_error() -> None:
    def bad(x: int) -> int:
        """Bad \udcff docstring.

        Args:
            x: a number
        """
        return x

    with pytest.raises(InvalidArgument, match="description of tool 'bad'"):
        wire.open_request(
            imports=None, tools=wire.tool_table([bad]), variables=None, limits=None, labels=None
        )


def test_a_single_import_string_says_how_to_write_it() -> None:
    with pytest.raises(InvalidArgument, match=r"not a single string: use \['numpy'\]"):
        wire.open_request(imports="numpy", tools={}, variables=None, limits=None, labels=None)


# ---------------------------------------------------------------- close()


def test_calls_after_close_raise_client_closed() -> None:
    client = Client("127.0.0.1:1")
    client.close()
    client.close()  # twice is fine
    for call in (client.stats, lambda: client.session(), lambda: client.wait_ready(0.1)):
        with pytest.raises(ClientClosed, match="create a new Client"):
            call()
    assert issubclass(ClientClosed, SessionClosed)


def test_async_calls_after_close_raise_client_closed() -> None:
    async def main() -> None:
        client = AsyncClient("127.0.0.1:1")
        await client.close()
        with pytest.raises(ClientClosed, match="create a new AsyncClient"):
            await client.stats()
        with pytest.raises(ClientClosed):
            await client.session()

    asyncio.run(main())


def test_rpc_errors_map_to_the_typed_tree() -> None:
    from agent.errors import from_rpc_error

    class Fake(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.INVALID_ARGUMENT

        def details(self) -> str:
            return "limit pids=1 is below the minimum of 16"

    err = from_rpc_error(Fake())
    assert isinstance(err, InvalidArgument) and "minimum of 16" in str(err)


# ---------------------------------------------------------------- ToolCallingAgent messages


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers.

    Args:
        a: first factor
        b: second factor
    """
    return a * b


@tool
def broken(x: str) -> str:
    """Always fails.

    Args:
        x: anything
    """
    raise ConnectionError(f"service down for {x}")


def test_tool_results_go_back_as_tool_messages_with_the_call_id() -> None:
    model = ScriptedModel(
        [
            ChatMessage(
                content="",
                tool_calls=[
                    ToolCallRequest("multiply", {"a": 6, "b": 7}, "call_A"),
                    ToolCallRequest("broken", {"x": "db"}, "call_B"),
                ],
            ),
            ChatMessage(
                content="", tool_calls=[ToolCallRequest("final_answer", {"answer": 42}, "c")]
            ),
        ]
    )
    agent = ToolCallingAgent(tools=[multiply, broken], model=model, max_steps=3)
    assert agent.run("6 times 7?") == 42
    seen = model.calls_log[1]["messages"]
    assistant, first, second = seen[2], seen[3], seen[4]
    assert assistant["role"] == "assistant" and assistant["content"] is None
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_A", "call_B"]
    assert assistant["tool_calls"][0]["function"] == {
        "name": "multiply",
        "arguments": json.dumps({"a": 6, "b": 7}),
    }
    assert first == {"role": "tool", "tool_call_id": "call_A", "content": "42"}
    assert second["role"] == "tool" and second["tool_call_id"] == "call_B"
    assert "ConnectionError: service down for db" in second["content"]
    assert len(seen) == 5  # no extra user message repeating the observations


def test_text_tool_calls_still_go_back_as_text() -> None:
    model = ScriptedModel(
        [
            'Calling tools:\n{"name": "multiply", "arguments": {"a": 2, "b": 3}}',
            '{"name": "final_answer", "arguments": {"answer": 6}}',
        ]
    )
    agent = ToolCallingAgent(tools=[multiply], model=model, max_steps=3)
    assert agent.run("2*3?") == 6
    roles = [m["role"] for m in model.calls_log[1]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


def test_a_token_no_header_can_carry_is_a_typed_error() -> None:
    with pytest.raises(InvalidArgument, match="printable ASCII without spaces"):
        Client("127.0.0.1:1", token="s3cret\n")
    assert wire.call_metadata("abc") == (("authorization", "Bearer abc"),)


@pytest.mark.parametrize("bad", [0, -1, "30", True, float("nan")])
def test_timeouts_are_positive_numbers(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="must be a positive number of seconds"):
        Client("127.0.0.1:1", timeout=bad)  # type: ignore[arg-type]
    with (
        Client("127.0.0.1:1") as client,
        pytest.raises(InvalidArgument, match="wait_ready timeout must be a positive"),
    ):
        client.wait_ready(bad)  # type: ignore[arg-type]
