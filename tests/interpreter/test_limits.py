"""Every in-process limit guard: sizes, recursion, soft timeout, output cap, CPU signal."""

from __future__ import annotations

import signal
import sys
import threading
import time

import pytest

from executor.interpreter import CpuLimitExceeded, Interpreter, Limits, Verdict

FAST = Limits(wall_time_s=1.0)


def make(**changes: object) -> Interpreter:
    return Interpreter(limits=FAST.with_(**changes))


# ---------------------------------------------------------------- ** and <<


@pytest.mark.parametrize(
    "code",
    [
        "2 ** 10**9",
        "x = 10\ny = x ** x ** x",
        "n = 10**8\npow(3, n)",
        "b = 7\nb **= 10**8",
        "import operator\noperator.pow(2, 10**9)",
        "from fractions import Fraction\nFraction(3, 2) ** 10**8",
        "d = {'k': 5}\nd['k'] **= 10**8",
    ],
)
def test_huge_power_is_memory_limit(code: str) -> None:
    res = make().run(code)
    assert res.verdict is Verdict.MEMORY_LIMIT, res
    assert res.error is not None and "bit limit" in res.error.message


@pytest.mark.parametrize(
    "code",
    ["1 << 10**9", "s = 10**9\nv = 1\nv <<= s", "import operator\noperator.lshift(1, 10**10)"],
)
def test_huge_shift_is_memory_limit(code: str) -> None:
    res = make().run(code)
    assert res.verdict is Verdict.MEMORY_LIMIT, res


def test_size_guard_is_uncatchable() -> None:
    res = make().run("try:\n    2 ** 10**9\nexcept BaseException:\n    print('caught')")
    assert res.verdict is Verdict.MEMORY_LIMIT and "caught" not in res.stdout


def test_int_bits_limit_is_configurable_and_normal_powers_work() -> None:
    res = make(int_bits=64).run("2 ** 100")  # literal exponent over 64: guarded
    assert res.verdict is Verdict.MEMORY_LIMIT
    res = make().run("e = 100\n(2 ** e, 3 ** 0.5, pow(2, 10**9, 7), 2 ** -1, (-1) ** 10**9)")
    assert res.verdict is Verdict.OK and res.value is not None
    assert res.value.json == [2**100, 3**0.5, pow(2, 10**9, 7), 0.5, 1]


def test_augmented_power_keeps_semantics() -> None:
    code = (
        "class P:\n    def __init__(self):\n        self.v = 3\n"
        "p = P()\ne = 3\np.v **= e\nlst = [2, 5]\nlst[1] <<= e\nlst[0:1] = [9]\nx = 2\nx **= e\n"
        "(p.v, lst, x)"
    )
    res = make().run(code)
    assert res.value is not None and res.value.json == [27, [9, 40], 8], res


# ---------------------------------------------------------------- int <-> str


@pytest.mark.parametrize("code", ["str(10**5000)", "int('9' * 5000)", "x = 7 ** 6000\nf'{x}'"])
def test_int_str_conversion_limit(code: str) -> None:
    res = make().run(code)
    assert res.verdict is Verdict.MEMORY_LIMIT, res
    assert res.error is not None and "4300 digits" in res.error.message


def test_int_str_limit_is_restored_after_run() -> None:
    before = sys.get_int_max_str_digits()
    make(int_str_digits=500).run("1")
    assert sys.get_int_max_str_digits() == before


def test_huge_int_value_is_described_without_conversion() -> None:
    res = make().run("x = 7 ** 100000\nx")
    assert res.verdict is Verdict.OK and res.value is not None
    assert res.value.repr.startswith("<int with") and not res.value.has_json


# ---------------------------------------------------------------- recursion


def test_recursion_depth_is_bounded_and_restored() -> None:
    before = sys.getrecursionlimit()
    res = make(recursion_depth=50).run("def f(n):\n    return f(n + 1)\nf(0)")
    assert res.verdict is Verdict.ERROR and res.error is not None
    assert res.error.type == "RecursionError" and "limit: 50" in res.error.message
    assert sys.getrecursionlimit() == before
    ok = make(recursion_depth=50).run("def g(n):\n    return 0 if n == 0 else 1 + g(n - 1)\ng(30)")
    assert ok.value is not None and ok.value.json == 30


# ---------------------------------------------------------------- soft timeout


def test_timeout_interrupts_loop_and_keeps_earlier_state() -> None:
    interp = Interpreter(limits=Limits(wall_time_s=0.5))
    assert interp.run("kept = [1, 2, 3]").ok
    res = interp.run(
        "partial = 'set before loop'\nwhile True:\n    kept.append(0) if False else None"
    )
    assert res.verdict is Verdict.TIMEOUT
    assert res.error is not None and res.error.line in (2, 3)
    names = {v.name: v for v in res.state}
    assert names["kept"].json == [1, 2, 3] and names["partial"].json == "set before loop"
    after = interp.run("len(kept)")
    assert after.verdict is Verdict.OK and after.value is not None and after.value.json == 3


@pytest.mark.parametrize(
    "code",
    [
        "while True:\n    try:\n        pass\n    except BaseException:\n        pass",
        "while True:\n    try:\n        while True: pass\n    finally:\n        pass",
        "class CM:\n    def __enter__(self):\n        return self\n"
        "    def __exit__(self, *a):\n        return True\nwhile True:\n    with CM():\n        while True: pass",
    ],
)
def test_timeout_cannot_be_swallowed(code: str) -> None:
    res = Interpreter(limits=Limits(wall_time_s=0.3)).run(code)
    assert res.verdict is Verdict.TIMEOUT, res


def test_sleep_is_interrupted_on_main_thread() -> None:
    started = time.monotonic()
    res = Interpreter(limits=Limits(wall_time_s=0.3)).run("import time\ntime.sleep(30)")
    assert res.verdict is Verdict.TIMEOUT
    assert time.monotonic() - started < 25  # interrupted, not slept through


def test_sleep_is_interrupted_off_main_thread() -> None:
    out = []

    def worker() -> None:
        out.append(Interpreter(limits=Limits(wall_time_s=0.3)).run("import time\ntime.sleep(30)"))

    t = threading.Thread(target=worker)
    t.start()
    t.join(25)
    assert not t.is_alive() and out[0].verdict is Verdict.TIMEOUT


def test_signal_handler_and_timer_are_restored() -> None:
    handler = signal.getsignal(signal.SIGALRM)
    outer, _ = signal.getitimer(signal.ITIMER_REAL)  # pytest-timeout may own one
    Interpreter(limits=Limits(wall_time_s=0.2)).run("while True:\n    pass")
    assert signal.getsignal(signal.SIGALRM) is handler
    left, _ = signal.getitimer(signal.ITIMER_REAL)
    if outer == 0:
        assert left == 0
    else:
        assert 0 < left <= outer  # the outer timer is given back, minus the time used


def test_hostile_repr_does_not_hang_state() -> None:
    interp = Interpreter(limits=Limits(wall_time_s=0.5))
    res = interp.run(
        "class Slow:\n    def __repr__(self):\n        while True: pass\ns = Slow()\nn = 1"
    )
    assert res.verdict is Verdict.OK
    st = {v.name: v for v in res.state}
    assert st["s"].repr == "<Slow object>" and st["n"].json == 1


# ---------------------------------------------------------------- output cap


def test_output_is_capped_and_flagged() -> None:
    res = make(output_bytes=100).run("for i in range(1000):\n    print('line', i)\n'done'")
    assert res.verdict is Verdict.OUTPUT_TRUNCATED and res.ok
    assert res.truncated and len(res.stdout.encode()) <= 100
    assert res.stdout.startswith("line 0\nline 1\n")
    assert res.value is not None and res.value.json == "done"


def test_output_cap_counts_utf8_bytes_and_keeps_the_error_verdict() -> None:
    res = make(output_bytes=10).run("print('é' * 20)\n1 / 0")
    assert res.verdict is Verdict.ERROR and res.truncated
    assert len(res.stdout.encode()) <= 10 and set(res.stdout) == {"é"}


def test_print_callback_gets_only_kept_output() -> None:
    chunks: list[str] = []
    interp = Interpreter(limits=FAST.with_(output_bytes=8), print_callback=chunks.append)
    interp.run("print('12345')\nprint('67890')\nprint('more')")
    assert "".join(chunks) == "12345\n67"


# ---------------------------------------------------------------- CPU limit signal


def test_cpu_limit_exceeded_surfaces_as_cpu_limit_and_keeps_state() -> None:
    interp = Interpreter(limits=Limits(wall_time_s=5.0))
    interp.run("before = 'kept'")

    def on_xcpu(signum: int, frame: object) -> None:
        raise CpuLimitExceeded("CPU time limit exceeded")

    old = signal.signal(signal.SIGXCPU, on_xcpu)
    try:
        code = (
            "import time\nn = 0\n"
            "try:\n    while True:\n        n += 1\n        if n == 1000:\n            time.sleep(0)\n"
            "except BaseException:\n    print('caught')\n"
        )
        timer = threading.Timer(0.2, lambda: signal.raise_signal(signal.SIGXCPU))
        # raise_signal from another thread still delivers to the main thread's handler
        timer.start()
        res = interp.run(code)
        timer.join()
    finally:
        signal.signal(signal.SIGXCPU, old)
    assert res.verdict is Verdict.CPU_LIMIT, res
    assert "caught" not in res.stdout
    assert {v.name for v in res.state} >= {"before", "n"}


# ---------------------------------------------------------------- memory


def test_memory_error_is_memory_limit() -> None:
    res = make().run("x = [0] * (10**15)")
    assert res.verdict is Verdict.MEMORY_LIMIT, res
    assert res.error is not None and res.error.type == "MemoryError"


def test_limits_can_change_between_runs() -> None:
    interp = make()
    assert interp.run("e = 100\n2 ** e").ok
    interp.limits = FAST.with_(int_bits=50, output_bytes=3)
    assert interp.run("2 ** e").verdict is Verdict.MEMORY_LIMIT
    assert interp.run("print('hello')").stdout == "hel"


# ---------------------------------------------------------------- finalizers under limits

LOOPING_GENERATOR = (
    "def g():\n    try:\n        yield 1\n    finally:\n        while True:\n            pass\n"
)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_finalizer_of_released_value_runs_under_a_timeout() -> None:
    interp = Interpreter(limits=Limits(wall_time_s=0.5))
    started = time.monotonic()
    # The generator's only reference is the REPL value: the host drops it after the run.
    res = interp.run(LOOPING_GENERATOR + "(lambda it: (next(it), it)[1])(g())")
    assert res.verdict is Verdict.OK and res.value is not None
    assert res.value.type == "generator"
    assert time.monotonic() - started < 20  # returned: the finalizer was interrupted
    assert interp.run("1 + 1").ok


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_rebinding_in_a_snippet_runs_finalizer_under_the_snippet_timeout() -> None:
    interp = Interpreter(limits=Limits(wall_time_s=0.5))
    assert interp.run(LOOPING_GENERATOR + "it = g()\nnext(it)").ok
    res = interp.run("it = None\n5")
    assert res.verdict is Verdict.TIMEOUT  # swallowed by the finalizer, still reported


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_set_variables_and_close_release_under_a_timeout() -> None:
    interp = Interpreter(limits=Limits(wall_time_s=0.5))
    interp.run(LOOPING_GENERATOR + "a = g()\nnext(a)\nb = g()\nnext(b)")
    started = time.monotonic()
    interp.set_variables({"a": 1})
    interp.close()
    assert time.monotonic() - started < 20
    assert interp.state() == []
    assert interp.run("1 + 1").ok  # a closed interpreter is just empty
