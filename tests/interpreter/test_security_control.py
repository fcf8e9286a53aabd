"""Control-flow escapes: swallowing final_answer or the timeout, exception groups,
hostile objects the host later touches, and code planted for the interpreter to call.

Every test here must also end: a hostile `__repr__` that loops forever, a
`finally:` that loops, or an exception whose `__str__` never returns must not
hang `run()` (the per-test pytest timeout turns a hang into a failure).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from executor.interpreter import Interpreter, Limits, Verdict
from proto.results import Result
from tests.interpreter.conftest import DENIED, Canary, MakeInterp, assert_refused, verdict_of

SHORT = Limits(wall_time_s=0.5)

# Liveness, not speed: a run with a 0.5 s or 2 s limit that has not returned after
# this long is hung. Measured here because a pytest timeout that fires inside a
# hung run() could be caught by the interpreter and turned into a normal result.
HANG_S = 10.0


REPO = Path(__file__).resolve().parents[2]

# Runs snippets in a child process so that a run() that never returns is killed
# with the child instead of hanging the test session (the child's stdout is the
# interpreter's host side; snippets' own prints are captured by run()).
_DRIVER = """
import json, sys
from executor.interpreter import Interpreter, Limits
spec = json.loads(sys.stdin.read())
interp = Interpreter(limits=Limits(**spec["limits"]))
out = [interp.run(code).to_dict() for code in spec["steps"]]
sys.stdout.write("RESULTS:" + json.dumps(out, default=str))
"""


def run_isolated(steps: list[str], limits: Limits = SHORT) -> list[Result]:
    """Run snippets in order in one Interpreter in a child process; fail if it hangs."""
    spec = json.dumps({"steps": steps, "limits": asdict(limits)})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _DRIVER],
            input=spec,
            capture_output=True,
            text=True,
            timeout=HANG_S,
            cwd=REPO,
            env=env,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"run() hung: no result after {HANG_S:.0f}s (child process killed)")
    assert proc.returncode == 0, f"host process died: rc={proc.returncode} {proc.stderr[-2000:]}"
    _, _, payload = proc.stdout.rpartition("RESULTS:")
    return [Result.from_dict(d) for d in json.loads(payload)]


def timed_run(interp: Interpreter, code: str) -> Result:
    start = time.monotonic()
    res = interp.run(code)
    elapsed = time.monotonic() - start
    assert elapsed < HANG_S, f"run() took {elapsed:.1f}s: hung past its wall-clock limit"
    return res


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    may_deny: bool = False  # refusing the construct up front is an acceptable answer


# ---- final_answer cannot be swallowed

EXIT_TRUE = (
    "class Swallow:\n"
    "    def __enter__(self):\n        return self\n"
    "    def __exit__(self, *exc):\n        return True\n"
)

FINAL_ANSWER_CASES = [
    Case(
        "except-exception",
        "try:\n    final_answer(1)\nexcept Exception:\n    print('CAUGHT')\nprint('AFTER')",
    ),
    Case("bare-except", "try:\n    final_answer(1)\nexcept:\n    print('CAUGHT')\nprint('AFTER')"),
    Case(
        "except-baseexception",
        "try:\n    final_answer(1)\nexcept BaseException as e:\n    print('CAUGHT', e)\nprint('AFTER')",
    ),
    Case(
        "except-tuple",
        "try:\n    final_answer(1)\nexcept (ValueError, BaseException):\n    print('CAUGHT')\nprint('AFTER')",
    ),
    Case("with-exit-true", EXIT_TRUE + "with Swallow():\n    final_answer(1)\nprint('AFTER')"),
    Case(
        "finally-return",
        "def f():\n    try:\n        final_answer(1)\n    finally:\n        return 5\nprint(f())\nprint('AFTER')",
        may_deny=True,
    ),
    Case(
        "finally-break",
        "for i in range(2):\n    try:\n        final_answer(1)\n    finally:\n        break\nprint('AFTER')",
        may_deny=True,
    ),
    Case(
        "finally-continue",
        "for i in range(2):\n    try:\n        final_answer(1)\n    finally:\n        continue\nprint('AFTER')",
        may_deny=True,
    ),
    Case(
        "finally-raises-other",
        "try:\n    try:\n        final_answer(1)\n    finally:\n        raise ValueError('replaced')\n"
        "except ValueError:\n    print('CAUGHT')\nprint('AFTER')",
    ),
    Case(
        "second-answer-in-handler",
        "try:\n    final_answer(1)\nexcept BaseException:\n    final_answer(2)",
    ),
    Case(
        "nested-function",
        "def b():\n    final_answer(1)\ndef a():\n    try:\n        b()\n    except BaseException:\n        return 'CAUGHT'\n"
        "print(a())\nprint('AFTER')",
    ),
    Case(
        "in-comprehension",
        "try:\n    [final_answer(i) for i in [1]]\nexcept BaseException:\n    print('CAUGHT')\nprint('AFTER')",
    ),
    Case(
        "in-generator",
        "def g():\n    try:\n        yield final_answer(1)\n    except BaseException:\n        yield 'CAUGHT'\n"
        "print(list(g()))\nprint('AFTER')",
    ),
    Case(
        "retry-loop",
        "n = 0\nwhile n < 1000:\n    n += 1\n    try:\n        final_answer(1)\n    except BaseException:\n        continue\nprint('AFTER')",
    ),
    Case(
        "except-star",
        "try:\n    final_answer(1)\nexcept* BaseException:\n    print('CAUGHT')\nprint('AFTER')",
        may_deny=True,
    ),
    Case(
        "enum-missing-swallow",
        "import enum\ndef answer(cls, value):\n    final_answer(1)\n"
        "E = enum.Enum('E', {'A': 1, '_missing_': classmethod(answer)})\n"
        "try:\n    E(99)\nexcept ValueError:\n    print('CAUGHT')\nprint('AFTER')",
        may_deny=True,
    ),
    Case(
        "tool-swallows",
        "def cb():\n    final_answer(1)\ntry:\n    list(map(lambda f: f(), [cb]))\nexcept BaseException:\n    print('CAUGHT')\nprint('AFTER')",
    ),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", FINAL_ANSWER_CASES, ids=lambda c: c.id)
def test_final_answer_not_swallowable(make_interp: MakeInterp, case: Case) -> None:
    res = timed_run(make_interp(), case.code)
    assert "AFTER" not in res.stdout and "CAUGHT" not in res.stdout, res.stdout
    if case.may_deny and verdict_of(res) is Verdict.POLICY_DENIED:
        assert not res.is_final_answer
        return
    assert verdict_of(res) is Verdict.OK, f"{res.verdict}: {res.error}"
    assert res.is_final_answer
    assert res.final_answer is not None and res.final_answer.repr == "1"


# ---- the timeout cannot be swallowed either, and keeps earlier state

LOOP = "while True:\n        pass"

TIMEOUT_CASES = [
    Case("plain", "while True:\n    pass"),
    Case(
        "except-exception",
        f"try:\n    {LOOP}\nexcept Exception:\n    print('CAUGHT')\nprint('AFTER')",
    ),
    Case("bare-except", f"try:\n    {LOOP}\nexcept:\n    print('CAUGHT')\nprint('AFTER')"),
    Case(
        "except-baseexception",
        f"try:\n    {LOOP}\nexcept BaseException:\n    print('CAUGHT')\nprint('AFTER')",
    ),
    Case(
        "retry-loop",
        "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass",
    ),
    Case("with-exit-true", EXIT_TRUE + f"with Swallow():\n    {LOOP}\nprint('AFTER')"),
    Case(
        "finally-return",
        "def f():\n    try:\n        while True:\n            pass\n    finally:\n        return 1\nf()\nprint('AFTER')",
        may_deny=True,
    ),
    Case("finally-loops", f"try:\n    {LOOP}\nfinally:\n    {LOOP}"),
    Case("handler-loops", f"try:\n    {LOOP}\nexcept BaseException:\n    {LOOP}"),
    Case(
        "exit-loops",
        "class S:\n    def __enter__(self):\n        return self\n    def __exit__(self, *a):\n"
        "        while True:\n            pass\nwith S():\n    while True:\n        pass",
    ),
    Case(
        "generator-finally-loops",
        "def g():\n    try:\n        while True:\n            yield 1\n    finally:\n        while True:\n            pass\n"
        "for x in g():\n    pass",
    ),
    Case(
        "except-star",
        f"try:\n    {LOOP}\nexcept* BaseException:\n    print('CAUGHT')\nprint('AFTER')",
        may_deny=True,
    ),
    Case("sleep", "import time\ntime.sleep(3)\nprint('AFTER')"),
    # Enum's value lookup calls `_missing_` under `except Exception`: a stdlib swallower.
    Case(
        "enum-missing-swallow",
        "import enum\ndef spin(cls, value):\n    while True:\n        pass\n"
        "E = enum.Enum('E', {'A': 1, '_missing_': classmethod(spin)})\n"
        "for k in range(3):\n    try:\n        E(99)\n    except ValueError:\n        print('CAUGHT')\nprint('AFTER')",
        may_deny=True,
    ),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", TIMEOUT_CASES, ids=lambda c: c.id)
def test_timeout_not_swallowable(make_interp: MakeInterp, case: Case) -> None:
    interp = make_interp(limits=SHORT)
    assert verdict_of(timed_run(interp, "keep = 41")) is Verdict.OK
    res = timed_run(interp, case.code)
    assert "AFTER" not in res.stdout and "CAUGHT" not in res.stdout, res.stdout
    if not (case.may_deny and verdict_of(res) is Verdict.POLICY_DENIED):
        assert verdict_of(res) is Verdict.TIMEOUT, f"{res.verdict}: {res.error}"
    after = timed_run(interp, "keep + 1")
    assert verdict_of(after) is Verdict.OK, after.error
    assert after.value is not None and after.value.repr == "42"


@pytest.mark.timeout(30)
def test_state_before_timeout_in_same_snippet_is_kept(make_interp: MakeInterp) -> None:
    interp = make_interp(limits=SHORT)
    res = timed_run(interp, "before = 'set'\nwhile True:\n    pass")
    assert verdict_of(res) is Verdict.TIMEOUT
    after = timed_run(interp, "before")
    assert after.value is not None and after.value.repr == "'set'"


# ---- exception groups (CVE-2025-22153: RestrictedPython disallowed `except*`)


@pytest.mark.parametrize(
    "code",
    [
        "try:\n    raise ExceptionGroup('g', [ValueError('v')])\nexcept* ValueError as eg:\n    print(eg.exceptions[0].__traceback__)",
        "try:\n    raise ExceptionGroup('g', [ValueError('v')])\nexcept* ValueError as eg:\n"
        "    fr = eg.exceptions[0].__traceback__.tb_frame\n    fr.f_builtins['open'](PATH, 'w')",
        "eg = ExceptionGroup('g', [ValueError('v')])\nm, rest = eg.split(ValueError)\nprint(m.exceptions[0].__traceback__)",
    ],
    ids=["star-traceback", "star-frame", "split-traceback"],
)
def test_exception_group_tricks(make_interp: MakeInterp, canary: Canary, code: str) -> None:
    res = assert_refused(make_interp(), canary, code, DENIED, static=True)
    assert "<traceback" not in res.stdout


# ---- hostile objects left in state, as the value, as the answer, or raised

LOOPS = "        while True:\n            pass\n"

HOSTILE_CASES = [
    Case("repr-loops-in-state", "class B:\n    def __repr__(self):\n" + LOOPS + "b = B()"),
    Case("repr-loops-as-value", "class B:\n    def __repr__(self):\n" + LOOPS + "B()"),
    Case(
        "repr-raises",
        "class B:\n    def __repr__(self):\n        raise ValueError('no repr')\nb = B()\nb",
    ),
    Case(
        "repr-recurses", "class B:\n    def __repr__(self):\n        return repr(self)\nb = B()\nb"
    ),
    Case(
        "repr-huge", "class B:\n    def __repr__(self):\n        return 'x' * 5_000_000\nb = B()\nb"
    ),
    Case("repr-not-str", "class B:\n    def __repr__(self):\n        return 1\nb = B()\nb"),
    Case("str-loops", "class B:\n    def __str__(self):\n" + LOOPS + "b = B()\nb"),
    Case(
        "eq-hash-loop",
        "class B:\n    def __eq__(self, o):\n"
        + LOOPS
        + "    def __hash__(self):\n"
        + LOOPS
        + "b = B()\nc = [b]\nb",
    ),
    Case("bool-loops", "class B:\n    def __bool__(self):\n" + LOOPS + "b = B()\nb"),
    Case("len-loops", "class B(list):\n    def __len__(self):\n" + LOOPS + "b = B([1])\nb"),
    Case(
        "list-iter-loops",
        "class L(list):\n    def __iter__(self):\n        while True:\n            yield 1\nl = L([1, 2])\nl",
    ),
    Case(
        "dict-methods-loop",
        "class D(dict):\n    def items(self):\n"
        + LOOPS
        + "    def keys(self):\n"
        + LOOPS
        + "    def __iter__(self):\n"
        + LOOPS
        + "    def __getitem__(self, k):\n"
        + LOOPS
        + "d = D(a=1)\nd",
    ),
    Case(
        "str-subclass",
        "class S(str):\n    def __repr__(self):\n"
        + LOOPS
        + "    def __str__(self):\n"
        + LOOPS
        + "    def __len__(self):\n"
        + LOOPS
        + "    def __iter__(self):\n"
        + LOOPS
        + "s = S('abc')\ns",
    ),
    Case(
        "int-subclass",
        "class I(int):\n    def __repr__(self):\n"
        + LOOPS
        + "    def __str__(self):\n"
        + LOOPS
        + "    def __eq__(self, o):\n"
        + LOOPS
        + "    def __hash__(self):\n"
        + LOOPS
        + "i = I(3)\ni",
    ),
    Case(
        "float-subclass",
        "class F(float):\n    def __repr__(self):\n"
        + LOOPS
        + "    def __str__(self):\n"
        + LOOPS
        + "f = F(1.5)\nf",
    ),
    Case(
        "tuple-subclass",
        "class T(tuple):\n    def __iter__(self):\n"
        + LOOPS
        + "    def __len__(self):\n"
        + LOOPS
        + "    def __getitem__(self, i):\n"
        + LOOPS
        + "t = T((1, 2))\nt",
    ),
    Case(
        "hostile-inside-list",
        "class B:\n    def __repr__(self):\n" + LOOPS + "x = [1, B(), {'k': B()}]\nx",
    ),
    Case(
        "hostile-dict-key",
        "class K:\n    def __repr__(self):\n"
        + LOOPS
        + "    def __hash__(self):\n        return 1\nd = {K(): 1}\nd",
    ),
    Case("self-referencing", "a = []\na.append(a)\nd = {}\nd['d'] = d\na"),
    Case("deep-nesting", "x = []\nfor i in range(200000):\n    x = [x]\nx"),
    Case("deep-nesting-dict", "x = {}\nfor i in range(200000):\n    x = {'k': x}\nx"),
    Case(
        "exception-str-loops", "class E(Exception):\n    def __str__(self):\n" + LOOPS + "raise E()"
    ),
    Case(
        "exception-str-raises",
        "class E(Exception):\n    def __str__(self):\n        raise E()\nraise E()",
    ),
    Case(
        "exception-str-huge",
        "class E(Exception):\n    def __str__(self):\n        return 'x' * 5_000_000\nraise E()",
    ),
    Case(
        "exception-args-hostile",
        "class B:\n    def __repr__(self):\n"
        + LOOPS
        + "    def __str__(self):\n"
        + LOOPS
        + "raise ValueError(B())",
    ),
    Case(
        "final-answer-hostile", "class B:\n    def __repr__(self):\n" + LOOPS + "final_answer(B())"
    ),
    Case(
        "final-answer-hostile-list",
        "class L(list):\n    def __iter__(self):\n"
        + LOOPS
        + "    def __repr__(self):\n"
        + LOOPS
        + "final_answer(L([1]))",
    ),
]

# str subclasses that lie about their length and content, or loop, when host code
# measures, slices, encodes or iterates them (repr() accepts a str subclass).
LYING_STR = (
    "class S(str):\n"
    "    def encode(self, *a, **k):\n        return b''\n"
    "    def __len__(self):\n        return 0\n"
    "    def __getitem__(self, i):\n        return ''\n"
    "    def __str__(self):\n        return self\n"
)
LOOPING_STR = "class L(str):\n" + "".join(
    f"    def {m}(self, *a, **k):\n" + LOOPS
    for m in ("__len__", "__getitem__", "encode", "__iter__")
)

HOSTILE_CASES += [
    Case(
        "repr-returns-lying-str",
        LYING_STR + "class B:\n    def __repr__(self):\n        return S('z' * 100000)\nb = B()\nb",
    ),
    Case(
        "repr-returns-looping-str",
        LOOPING_STR + "class B:\n    def __repr__(self):\n        return L('abc')\nb = B()\nb",
    ),
    Case("looping-str-value", LOOPING_STR + "x = L('abc')\nx"),
    Case("looping-str-dict", LOOPING_STR + "x = {L('k'): L('v')}\nx"),
    Case("lying-str-dict-key", LYING_STR + "x = {S('k' * 100000): 1}\nx"),
    Case("exception-looping-str", LOOPING_STR + "raise ValueError(L('abc'))"),
    Case("exception-lying-str", LYING_STR + "raise ValueError(S('m' * 1000000))"),
    Case("final-answer-looping-str", LOOPING_STR + "final_answer(L('abc'))"),
    # Built-ins that end or interrupt a snippet, raised from inside host-side reprs.
    Case(
        "repr-calls-final-answer",
        "class B:\n    def __repr__(self):\n        final_answer('r')\n        return 'b'\nb = B()",
    ),
    Case(
        "repr-raises-system-exit",
        "class B:\n    def __repr__(self):\n        raise SystemExit(1)\nb = B()\nb",
    ),
    Case(
        "repr-raises-keyboard-interrupt",
        "class B:\n    def __repr__(self):\n        raise KeyboardInterrupt\nb = B()\nb",
    ),
    Case(
        "repr-raises-base-exception",
        "class B:\n    def __repr__(self):\n        raise BaseException('x')\nb = B()\nb",
    ),
]

ACCEPTABLE_HOSTILE = {Verdict.OK, Verdict.ERROR, Verdict.TIMEOUT}


def _bounded(res: Result, limits: Limits) -> None:
    """Every repr leaving the interpreter is capped; the whole result stays small."""
    slack = 64  # room for a truncation marker
    cap = limits.repr_chars + slack
    if res.value is not None:
        assert len(res.value.repr) <= cap
    if res.final_answer is not None:
        assert len(res.final_answer.repr) <= cap
    for var in res.state:
        assert len(var.repr) <= cap, var.name
    size = len(json.dumps(res.to_dict(), default=str))
    assert size <= limits.output_bytes + 256 * 1024, f"result is {size} bytes"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", HOSTILE_CASES, ids=lambda c: c.id)
def test_hostile_objects_do_not_hang_or_break_host(case: Case) -> None:
    # The hostile snippet, then a check that the session (with the hostile object
    # possibly still in state) works and reports state without hanging or failing.
    res, after = run_isolated([case.code, "ok_marker = 1 + 1\nok_marker"])
    assert verdict_of(res) in ACCEPTABLE_HOSTILE, f"{res.verdict}: {res.error}"
    _bounded(res, SHORT)
    if res.error is not None:
        assert len(res.error.message) <= 64 * 1024
    assert verdict_of(after) is Verdict.OK, f"{after.verdict}: {after.error}"
    assert after.value is not None and after.value.repr == "2"
    _bounded(after, SHORT)
    assert any(v.name == "ok_marker" for v in after.state)


@pytest.mark.timeout(60)
def test_generator_finalizer_runs_under_limits() -> None:
    """A generator whose `finally` loops, dropped in a later snippet, cannot hang the host."""
    plant, res, after = run_isolated(
        [
            "def g():\n    try:\n        yield 1\n    finally:\n        while True:\n            pass\n"
            "x = g()\nnext(x)",
            "x = 0",  # drops the last reference: the finally runs now
            "1 + 1",
        ]
    )
    assert verdict_of(plant) is Verdict.OK, plant.error
    assert verdict_of(res) in {Verdict.OK, Verdict.TIMEOUT}
    assert verdict_of(after) is Verdict.OK
    assert after.value is not None and after.value.repr == "2"


# ---- code planted for the interpreter to call


@pytest.mark.parametrize(
    "shadow",
    [
        "repr = lambda o: 'pwned'",
        "str = lambda o='': 'pwned'",
        "type = lambda *a: 'pwned'",
        "len = lambda o: 10 ** 9",
        "isinstance = lambda *a: True",
        "print = lambda *a, **k: None",
        "hasattr = lambda *a: True",
        "iter = lambda o: None",
        "json = None",
        "def sorted(*a, **k):\n    while True:\n        pass",
        "def dict(*a, **k):\n    while True:\n        pass",
        "def list(*a, **k):\n    while True:\n        pass",
    ],
    ids=lambda s: s.split("=")[0].split("(")[0].replace("def ", "").strip(),
)
@pytest.mark.timeout(30)
def test_shadowed_builtins_not_used_by_host(make_interp: MakeInterp, shadow: str) -> None:
    """The interpreter builds reprs, JSON and state with its own builtins, not the snippet's."""
    interp = make_interp(limits=SHORT)
    first = timed_run(interp, shadow)
    assert verdict_of(first) in {Verdict.OK, Verdict.POLICY_DENIED}, first.error
    res = timed_run(interp, "x = 5\ny = [1, {'a': 'b'}]\nx")
    assert verdict_of(res) is Verdict.OK, f"{res.verdict}: {res.error}"
    assert res.value is not None and res.value.repr == "5" and res.value.type == "int"
    by_name = {v.name: v for v in res.state}
    assert by_name["x"].repr == "5" and by_name["x"].type == "int"
    assert by_name["y"].repr == "[1, {'a': 'b'}]"
    assert by_name["y"].has_json and by_name["y"].json == [1, {"a": "b"}]


@pytest.mark.timeout(30)
def test_module_replacement_not_used_by_host(make_interp: MakeInterp) -> None:
    """Replacing functions of authorized modules (json, copy, reprlib-like helpers) plants nothing."""
    interp = make_interp(limits=SHORT)
    timed_run(
        interp,
        "import json, copy, functools, itertools\n"
        "def trap(*a, **k):\n    while True:\n        pass\n"
        "json.dumps = trap\njson.JSONEncoder = trap\ncopy.deepcopy = trap\ncopy.copy = trap\n"
        "functools.reduce = trap\nitertools.islice = trap",
    )
    res = timed_run(interp, "z = {'k': [1, 2]}\nz")
    assert verdict_of(res) is Verdict.OK, f"{res.verdict}: {res.error}"
    assert res.value is not None and res.value.has_json and res.value.json == {"k": [1, 2]}
    fresh = timed_run(
        Interpreter(limits=SHORT), "import json, copy\njson.dumps(copy.deepcopy([1]))"
    )
    assert fresh.value is not None and fresh.value.repr == "'[1]'"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "code",
    [
        "print(S('x' * 100000))",
        "print('a', end=S('y' * 100000))",
        "print(S('x' * 5000), sep=S('-' * 5000))",
        "for i in range(100):\n    print(S('w' * 1000))",
    ],
    ids=["print", "end", "sep", "many"],
)
def test_output_cap_not_fooled_by_str_subclass(make_interp: MakeInterp, code: str) -> None:
    limits = Limits(wall_time_s=2.0, output_bytes=1000)
    res = timed_run(make_interp(limits=limits), LYING_STR + code)
    assert len(res.stdout.encode()) <= limits.output_bytes + 64
    assert res.truncated
    assert verdict_of(res) in {Verdict.OUTPUT_TRUNCATED, Verdict.OK}


@pytest.mark.parametrize(
    "code",
    [
        "print(chr(0xD800))",
        "x = chr(0xD800)\nx",
        "raise ValueError(chr(0xDCFF))",
        "final_answer(chr(0xD800))",
        "y = {chr(0xD800): [chr(0xDFFF)]}",
        "print('ok', end=chr(0xDFFF))",
    ],
    ids=["stdout", "value", "error", "final-answer", "state-json", "print-end"],
)
def test_results_are_valid_utf8(make_interp: MakeInterp, code: str) -> None:
    """Lone surrogates made at run time must not reach the result: every layer after
    the interpreter (frames, protobuf strings) needs valid UTF-8 text."""
    res = timed_run(make_interp(), code)
    blob = json.dumps(res.to_dict(), ensure_ascii=False)
    blob.encode("utf-8")  # raises UnicodeEncodeError on a lone surrogate


@pytest.mark.timeout(30)
def test_tool_calling_snippet_hooks_stays_under_limits(make_interp: MakeInterp) -> None:
    """A tool that calls str() on a snippet object runs the snippet's hook under the snippet's limits."""

    def show(x: object) -> str:
        return str(x)

    interp = make_interp(limits=SHORT, tools={"show": show})
    res = timed_run(
        interp, "class B:\n    def __str__(self):\n" + LOOPS + "show(B())\nprint('AFTER')"
    )
    assert verdict_of(res) is Verdict.TIMEOUT, f"{res.verdict}: {res.error}"
    assert "AFTER" not in res.stdout
    after = timed_run(interp, "show(12)")
    assert after.value is not None and after.value.repr == "'12'"


@pytest.mark.timeout(30)
def test_tool_result_values_with_hostile_args(make_interp: MakeInterp, canary: Canary) -> None:
    """A tool receives snippet objects; the interpreter does not call their hooks on the host side."""
    seen: list[str] = []

    def echo(x: object) -> str:
        seen.append(type(x).__name__)
        return "ok"

    interp = make_interp(limits=SHORT, tools={"echo": echo})
    res = timed_run(
        interp,
        "class B:\n    def __repr__(self):\n"
        + LOOPS
        + "    def __eq__(self, o):\n"
        + LOOPS
        + "echo(B())",
    )
    assert verdict_of(res) is Verdict.OK, res.error
    assert res.value is not None and res.value.repr == "'ok'"
    assert seen == ["B"]
    canary.assert_clean(res)
