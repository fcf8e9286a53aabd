"""Client internals that need no daemon: result decoding, tool dispatch, requests."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from agent import InvalidArgument, Result, ToolError, Verdict, tool, wire
from agent.errors import NotFound, Unauthenticated, Unavailable, from_rpc_error
from proto import executor_pb2 as pb


@tool
def divide(a: float, b: float) -> float:
    """Divide.

    Args:
        a: numerator
        b: denominator
    """
    return a / b


def _call(
    name: str,
    args: list[Any] | tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    cid: str = "c1",
) -> pb.ToolCall:
    return pb.ToolCall(
        call_id=cid,
        name=name,
        args_json=json.dumps(list(args)),
        kwargs_json=json.dumps(kwargs or {}),
    )


def test_result_from_proto_every_field() -> None:
    msg = pb.ExecuteResult(
        verdict=pb.VERDICT_OK,
        stdout="hi\n",
        value=pb.Value(
            type="int", repr="354224848179261915075", json="354224848179261915075", has_json=True
        ),
        is_final_answer=False,
        state=[
            pb.Variable(name="x", type="list", repr="[1, 2]", json="[1, 2]", has_json=True),
            pb.Variable(name="f", type="function", repr="<function f>"),
            pb.Variable(name="bad", type="str", repr="'?'", json="{not json", has_json=True),
        ],
        truncated=True,
        usage=pb.Usage(wall_ms=5, cpu_ms=3, peak_memory_bytes=1024, output_bytes=3),
    )
    r = Result.from_proto(msg)
    assert r.verdict is Verdict.OK and r.ok
    assert r.stdout == "hi\n"
    assert r.value is not None and r.value.json == 354224848179261915075
    assert r.python_value == 354224848179261915075
    assert [(v.name, v.json, v.has_json) for v in r.state] == [
        ("x", [1, 2], True),
        ("f", None, False),
        ("bad", None, False),  # undecodable JSON is not trusted
    ]
    assert r.truncated and not r.session_lost and r.error is None and r.final_answer is None
    assert (r.usage.wall_ms, r.usage.cpu_ms, r.usage.peak_memory_bytes, r.usage.output_bytes) == (
        5,
        3,
        1024,
        3,
    )
    d = r.to_dict()
    assert d["verdict"] == "OK" and d["usage"]["cpu_ms"] == 3 and d["ok"] is True


def test_result_never_hides_an_error() -> None:
    lost = Result.from_proto(pb.ExecuteResult(verdict=pb.VERDICT_SANDBOX_LOST, session_lost=True))
    assert lost.verdict is Verdict.SANDBOX_LOST and lost.session_lost
    assert lost.error is not None and lost.error.type == "SANDBOX_LOST"
    unspecified = Result.from_proto(pb.ExecuteResult())
    assert unspecified.verdict is Verdict.INTERNAL and not unspecified.ok
    err = Result.from_proto(
        pb.ExecuteResult(
            verdict=pb.VERDICT_ERROR,
            error=pb.ErrorInfo(
                type="ZeroDivisionError", message="division by zero", line=2, source_line="1/0"
            ),
        )
    )
    assert str(err.error) == "ZeroDivisionError: division by zero (line 2: 1/0)"
    fa = Result.from_proto(
        pb.ExecuteResult(
            verdict=pb.VERDICT_OK,
            is_final_answer=True,
            final_answer=pb.Value(type="dict", repr="{'a': 1}", json='{"a": 1}', has_json=True),
        )
    )
    assert fa.answer == {"a": 1}


def test_tool_dispatch_success_error_and_hostile_input() -> None:
    tools = wire.tool_table([divide])
    ok = wire.run_tool_call(tools, _call("divide", [1], {"b": 4}))
    assert (ok.call_id, ok.ok, json.loads(ok.value_json)) == ("c1", True, 0.25)

    raised = wire.run_tool_call(tools, _call("divide", [], {"a": 1, "b": 0}, cid="c2"))
    assert (raised.call_id, raised.ok, raised.error_type) == ("c2", False, "ZeroDivisionError")
    assert raised.error_message == "division by zero"

    bad_args = wire.run_tool_call(tools, _call("divide", ["x", 1]))
    assert (bad_args.ok, bad_args.error_type) == (False, "TypeError")
    assert "argument 'a' must be of type number, got str 'x'" in bad_args.error_message

    unknown = wire.run_tool_call(tools, _call("rm_rf"))
    assert (unknown.error_type, unknown.error_message) == (
        "NameError",
        "no tool named 'rm_rf' (tools: divide)",
    )

    garbage = wire.run_tool_call(tools, pb.ToolCall(call_id="c3", name="divide", args_json="[1,"))
    assert (garbage.ok, garbage.error_type) == (False, "ValueError")
    wrong_shape = wire.run_tool_call(
        tools, pb.ToolCall(call_id="c4", name="divide", args_json="{}")
    )
    assert wrong_shape.error_type == "TypeError"


def test_tool_returning_non_json_is_an_error_in_the_snippet() -> None:
    def make_set() -> set[int]:
        return {1}

    tools = wire.tool_table([make_set])
    answer = wire.run_tool_call(tools, _call("make_set"))
    assert not answer.ok and answer.error_type == "TypeError"
    assert "returned a set, which cannot cross into the sandbox as JSON" in answer.error_message


def test_tool_table_refuses_duplicates_and_final_answer() -> None:
    with pytest.raises(ToolError, match="two tools are named 'divide'"):
        wire.tool_table([divide, divide])

    def final_answer(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(ToolError, match="final_answer is built into every session"):
        wire.tool_table([final_answer])


def test_requests_validate_limits_and_variables() -> None:
    limits = wire.limits_proto({"wall_time_ms": 500, "memory_bytes": 1 << 28})
    assert limits.wall_time_ms == 500 and limits.memory_bytes == 1 << 28
    with pytest.raises(
        InvalidArgument, match="unknown limit\\(s\\) wall_time_s; known limits: wall_time_ms"
    ):
        wire.limits_proto({"wall_time_s": 1})
    with pytest.raises(InvalidArgument, match="JSON-serialisable"):
        wire.variables_json({"x": object()})
    with pytest.raises(InvalidArgument, match="variable name '_x' is not usable"):
        wire.variables_json({"_x": 1})
    req = wire.open_request(
        imports=["numpy"],
        tools=wire.tool_table([divide]),
        variables={"x": 1},
        limits=None,
        labels={"a": "b"},
    )
    assert list(req.authorized_imports) == ["numpy"]
    assert [t.name for t in req.tools] == ["divide"]
    assert json.loads(req.variables_json) == {"x": 1}
    with pytest.raises(InvalidArgument, match="imports must be a list"):
        wire.open_request(imports="numpy", tools={}, variables=None, limits=None, labels=None)
    assert wire.call_metadata("s3cret") == (("authorization", "Bearer s3cret"),)
    assert wire.call_metadata(None) == ()


def test_target_and_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORRAL_TARGET", raising=False)
    assert wire.resolve_target(None) == "127.0.0.1:50051"
    monkeypatch.setenv("CORRAL_TARGET", "10.0.0.1:7000")
    monkeypatch.setenv("CORRAL_TOKEN", "tok")
    assert wire.resolve_target(None) == "10.0.0.1:7000"
    assert wire.resolve_target("h:1") == "h:1"
    assert wire.resolve_token(None) == "tok"
    assert wire.resolve_token("x") == "x"


def test_tls_options(tmp_path: object) -> None:
    assert wire.channel_credentials(None) is None
    assert isinstance(wire.channel_credentials(True), grpc.ChannelCredentials)
    with pytest.raises(InvalidArgument, match="cannot read the CA certificate"):
        wire.channel_credentials("/nonexistent/ca.pem")


class _FakeRpcError(grpc.RpcError):
    """A grpc.RpcError as grpc raises it (code() and details())."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_status_codes_map_to_typed_errors() -> None:
    err = from_rpc_error(_FakeRpcError(grpc.StatusCode.NOT_FOUND, "no session abc"))
    assert isinstance(err, NotFound) and err.code == grpc.StatusCode.NOT_FOUND
    assert err.details == "no session abc"
    assert str(err).startswith("NOT_FOUND: no session abc (")
    assert isinstance(from_rpc_error(_FakeRpcError(grpc.StatusCode.UNAVAILABLE, "x")), Unavailable)
    auth = from_rpc_error(_FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, "bad token"))
    assert isinstance(auth, Unauthenticated) and "CORRAL_TOKEN" in str(auth)
