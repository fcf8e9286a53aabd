"""OpenAICompatibleModel on the openai package, against a local OpenAI-compatible server."""

from __future__ import annotations

import pytest

pytest.importorskip("openai")

from agent.cli import main
from agent.models import (
    ModelAuthError,
    ModelHTTPError,
    ModelRateLimited,
    ModelTimeout,
    OpenAICompatibleModel,
    TokenUsage,
)
from tests.agent.fake_openai import fake_openai

ASK = [{"role": "user", "content": "hi"}]
FAST = {"Retry-After": "0"}  # the client honours Retry-After: keep the backoff short


def test_retries_429_and_5xx_then_succeeds() -> None:
    script = [("status", 429, "slow down", FAST), ("status", 503, "busy", FAST), ("text", "ok")]
    with fake_openai(script) as server:
        model = OpenAICompatibleModel("m", server.base_url, api_key="k", max_retries=3)
        assert model.generate(ASK).content == "ok"
        assert len(server.requests) == 3
        assert all(r["auth"] == "Bearer k" for r in server.requests)


def test_errors_are_typed_after_the_retries() -> None:
    with fake_openai([("status", 429, "quota", FAST)] * 2) as server:
        model = OpenAICompatibleModel("m", server.base_url, api_key="k", max_retries=1)
        with pytest.raises(ModelRateLimited, match=r"HTTP 429.*quota") as info:
            model.generate(ASK)
        assert info.value.status_code == 429 and len(server.requests) == 2
    with fake_openai([("status", 401, "bad key")]) as server:
        model = OpenAICompatibleModel("m", server.base_url, api_key="k")
        with pytest.raises(ModelAuthError, match="--api-key-env"):
            model.generate(ASK)
        assert len(server.requests) == 1  # 401 is not retried
    with fake_openai([("status", 400, "bad request")]) as server:
        model = OpenAICompatibleModel("m", server.base_url, api_key="k")
        with pytest.raises(ModelHTTPError, match="HTTP 400") as err:
            model.generate(ASK)
        assert err.value.status_code == 400


def test_timeout_is_typed() -> None:
    with fake_openai([("sleep", 3.0), ("text", "late")]) as server:
        model = OpenAICompatibleModel("m", server.base_url, api_key="k", timeout=0.5, max_retries=0)
        with pytest.raises(ModelTimeout, match=r"did not answer within 0\.5 s"):
            model.generate(ASK)


def test_streaming_delivers_deltas_and_usage() -> None:
    pieces: list[str] = []
    answer = "Thought: streaming works.\n```py\nprint(1)\n```"
    with fake_openai([("text", answer)]) as server:
        model = OpenAICompatibleModel("m", server.base_url, stream_to=pieces.append)
        message = model.generate(ASK, stop_sequences=["Observation:"])
        body = server.requests[0]["body"]
        assert server.requests[0]["auth"] is None  # no key: no Authorization header
    assert body["stream"] is True and body["stop"] == ["Observation:"]
    assert len(pieces) > 3 and "".join(pieces) == answer
    assert message.content == answer
    assert message.token_usage == TokenUsage(20, len(pieces))


def test_cli_agent_streams_the_model_output(capsys: pytest.CaptureFixture[str]) -> None:
    script = [
        ("text", "Thought: compute.\n```py\nx = 6 * 7\nprint(x)\n```"),
        ("text", "Thought: done.\n```py\nfinal_answer(x)\n```"),
    ]
    with fake_openai(script) as server:
        code = main(
            [
                "agent",
                "What is 6*7?",
                "--model",
                "m",
                "--base-url",
                server.base_url,
                "--local",
                "--stream",
                "--api-key-env",
                "CORRAL_TEST_NO_SUCH_KEY",
            ]
        )
    out = capsys.readouterr().out
    assert code == 0
    assert "Thought: compute." in out and "Final answer: 42" in out
