"""Bad input never escapes `run`: a clean SYNTAX_ERROR or POLICY_DENIED, and the session lives on."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor.interpreter import Interpreter, Limits, Verdict

FAST = Limits(wall_time_s=1.0)
CLEAN = {Verdict.SYNTAX_ERROR, Verdict.POLICY_DENIED}


def still_works(interp: Interpreter) -> None:
    res = interp.run("1 + 1")
    assert res.verdict is Verdict.OK and res.value is not None and res.value.json == 2


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "empty"),
        ("   \n\t\n", "empty"),
        (b"", "empty"),
        ("x = 1\x00", "NUL"),
        (b"print('a')\xff\xfe", "UTF-8"),
        ("x = '\ud800'", "surrogates"),
        ("def f(:\n  pass", "invalid syntax"),
        ("x = (1,", "never closed"),
        ("  x = 1", "indent"),
        ("return 5", "'return' outside function"),
        ("break", "'break' outside loop"),
        ("nonlocal x", "nonlocal declaration not allowed at module level"),
    ],
)
def test_bad_text_is_a_syntax_error(code: str | bytes, message: str) -> None:
    interp = Interpreter(limits=FAST)
    res = interp.run(code)
    assert res.verdict is Verdict.SYNTAX_ERROR, res
    assert res.error is not None and message.lower() in res.error.message.lower(), res.error
    still_works(interp)


def test_syntax_error_reports_line() -> None:
    res = Interpreter(limits=FAST).run("a = 1\nb = (\nc = 2\n")
    assert res.verdict is Verdict.SYNTAX_ERROR and res.error is not None
    assert res.error.line == 2 and res.error.source_line == "b = ("


def test_comment_only_snippet_is_ok() -> None:
    res = Interpreter(limits=FAST).run("# nothing to do\n")
    assert res.verdict is Verdict.OK and res.value is None


def test_oversized_code_is_refused_before_parsing() -> None:
    interp = Interpreter(limits=FAST.with_(code_bytes=1000))
    res = interp.run("x = 1\n" * 500)
    assert res.verdict is Verdict.SYNTAX_ERROR
    assert res.error is not None and "1000-byte limit" in res.error.message
    res = interp.run(("é" * 600).encode())  # 1200 bytes although 600 characters
    assert res.verdict is Verdict.SYNTAX_ERROR
    still_works(interp)


@pytest.mark.parametrize(
    "code",
    [
        "(" * 500 + ")" * 500,
        "x = " + "-" * 100_000 + "1",
        "x = " + "[" * 5000 + "]" * 5000,
        "x = " + "+".join(["1"] * 100_000),
        "x = " + "not " * 50_000 + "1",
        "f" + "()" * 50_000,
        "a" + ".b" * 50_000,
        "x = 1" + " if 1 else 1" * 20_000,
        "def f():\n"
        + "".join("    " * i + "if 1:\n" for i in range(1, 120))
        + "    " * 120
        + "pass",
    ],
)
def test_deeply_nested_code_is_clean(code: str) -> None:
    interp = Interpreter(limits=FAST)
    res = interp.run(code)
    assert res.verdict in CLEAN | {Verdict.OK, Verdict.ERROR}, res
    still_works(interp)


def test_non_text_input_is_refused() -> None:
    res = Interpreter(limits=FAST).run(12345)  # type: ignore[arg-type]
    assert res.verdict is Verdict.SYNTAX_ERROR
    assert res.error is not None and "text" in res.error.message


def test_bytearray_input_is_accepted() -> None:
    res = Interpreter(limits=FAST).run(bytearray(b"6 * 7"))
    assert res.value is not None and res.value.json == 42


@pytest.mark.parametrize(
    "code",
    [
        "from __future__ import annotations",
        "async def f():\n    pass",
        "try:\n    pass\nexcept* ValueError:\n    pass",
        "for i in range(3):\n    try:\n        pass\n    finally:\n        break",
        "def f():\n    try:\n        pass\n    finally:\n        return 1",
        "from math import *",
        "from . import x",
        "x: 'int' = 1",
        "class A(metaclass=type):\n    pass",
        "class A:\n    def __del__(self):\n        pass",
        "_private = 1",
        "print(__name__)",
    ],
)
def test_refused_constructs_are_policy_denied_with_line(code: str) -> None:
    res = Interpreter(limits=FAST).run("x0 = 0\n" + code)
    assert res.verdict is Verdict.POLICY_DENIED, res
    assert res.error is not None and res.error.line is not None and res.error.line >= 2
    assert res.error.source_line


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape(data: bytes) -> None:
    res = Interpreter(limits=Limits(wall_time_s=0.5)).run(data)
    assert res.verdict is not Verdict.INTERNAL, res


@settings(max_examples=150, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("()[]{}:=+-*/%<>!.,'\"\\\n\t #abcx0123_@lambdaifor")),
        max_size=120,
    )
)
def test_random_source_text_never_escapes(text: str) -> None:
    res = Interpreter(limits=Limits(wall_time_s=0.5)).run(text)
    assert res.verdict is not Verdict.INTERNAL, res
