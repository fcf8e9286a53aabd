"""The interpreter's public API: run/Result, state, tools, final_answer, variables, printing."""

from __future__ import annotations

import json
import threading

import pytest

from executor.interpreter import (
    DEFAULT_IMPORTS,
    NEVER_IMPORTS,
    CpuLimitExceeded,
    ErrorInfo,
    Interpreter,
    InvalidVariableName,
    Limits,
    Result,
    UnsafeImportError,
    Value,
    Variable,
    Verdict,
)
from proto.results import TraceFrame

FAST = Limits(wall_time_s=2.0)


def make(**kwargs: object) -> Interpreter:
    kwargs.setdefault("limits", FAST)
    return Interpreter(**kwargs)  # type: ignore[arg-type]


def state_of(res: Result) -> dict[str, Variable]:
    return {v.name: v for v in res.state}


# ---------------------------------------------------------------- run / Result


def test_contract_names_are_exported() -> None:
    assert issubclass(CpuLimitExceeded, BaseException)
    assert not issubclass(CpuLimitExceeded, Exception)
    assert "math" in DEFAULT_IMPORTS and "os" in NEVER_IMPORTS
    assert {ErrorInfo, Value, Variable, Result, Limits}  # importable from the package


def test_value_is_last_expression_and_not_printed() -> None:
    res = make().run("x = 20\nx * 2 + 2")
    assert res.verdict is Verdict.OK and res.ok
    assert res.stdout == ""
    assert res.value == Value(type="int", repr="42", json=42, has_json=True)


def test_no_value_when_last_statement_is_not_an_expression() -> None:
    res = make().run("x = 1")
    assert res.verdict is Verdict.OK and res.value is None


def test_none_value_is_reported_as_no_value() -> None:
    res = make().run("print('hi')")
    assert res.stdout == "hi\n" and res.value is None


def test_result_round_trips_through_dict_and_json() -> None:
    res = make().run("d = {'a': [1, 2.5, None, True]}\nprint('out')\nd")
    wire = json.loads(json.dumps(res.to_dict()))
    back = Result.from_dict(wire)
    assert back == res
    assert back.value is not None and back.value.json == {"a": [1, 2.5, None, True]}


def test_state_persists_across_runs_with_real_function_globals() -> None:
    interp = make()
    assert interp.run("def f():\n    return later * 2").ok
    assert interp.run("later = 21").ok
    res = interp.run("f()")
    assert res.value is not None and res.value.json == 42


def test_error_reports_snippet_line_without_interpreter_frames() -> None:
    res = make().run("a = 1\n\nb = a / 0\n")
    assert res.verdict is Verdict.ERROR
    assert res.error is not None
    assert (res.error.type, res.error.message, res.error.line, res.error.source_line) == (
        "ZeroDivisionError",
        "division by zero",
        3,
        "b = a / 0",
    )
    assert res.error.frames == [TraceFrame(1, 3, "<module>", "b = a / 0")]
    assert "executor" not in str(res.error) and "executor" not in res.error.traceback


def test_error_line_is_innermost_snippet_frame() -> None:
    res = make().run("def f(x):\n    return x['missing']\n\nf({})")
    assert res.error is not None
    assert (res.error.type, res.error.line, res.error.message) == ("KeyError", 2, "'missing'")


def test_state_summary_json_only_for_exact_builtin_types() -> None:
    code = (
        "class Box(list):\n    pass\n"
        "plain = [1, 'a', {'k': (1, 2)}]\nboxed = Box([1])\nnan = float('nan')\n"
        "keys = {1: 'int key'}\nname = 'corral'\n"
    )
    st = state_of(make().run(code))
    assert st["plain"].has_json and st["plain"].json == [1, "a", {"k": [1, 2]}]
    assert st["boxed"].type == "Box" and not st["boxed"].has_json
    assert st["boxed"].repr == "[1]"
    assert not st["nan"].has_json and st["nan"].repr == "nan"
    assert not st["keys"].has_json and st["keys"].repr == "{1: 'int key'}"
    assert st["name"].json == "corral"
    assert st["Box"].type == "type"


def test_state_excludes_tools_modules_and_private_names() -> None:
    interp = make(tools={"search": lambda q: q})
    res = interp.run("import math\nfrom math import sqrt\nalias = search\nn = 3")
    names = set(state_of(res))
    assert "n" in names and "sqrt" in names
    assert not names & {"math", "alias", "search", "final_answer", "__builtins__", "__name__"}


def test_state_items_and_repr_are_capped() -> None:
    limits = FAST.with_(state_items=5, repr_chars=50, json_bytes=100)
    res = make(limits=limits).run(
        "\n".join(f"v{i} = {i}" for i in range(20)) + "\nbig = 'x' * 10000"
    )
    assert len(res.state) == 5
    res = make(limits=limits).run("big = 'x' * 10000\nbig")
    assert res.value is not None
    assert len(res.value.repr) <= 53 and res.value.repr.endswith("...")
    assert not res.value.has_json  # over json_bytes


def test_state_and_get_variables_methods() -> None:
    interp = make(variables={"seed": [1, 2]})
    interp.run("total = sum(seed)")
    st = {v.name: v for v in interp.state()}
    assert st["total"].json == 3 and st["seed"].json == [1, 2]
    got = interp.get_variables(["total", "nope"])
    assert [v.name for v in got] == ["total"]


def test_set_variables_validates_names() -> None:
    interp = make(tools={"search": lambda q: q})
    interp.set_variables({"y": 2})
    assert interp.run("y + 1").value == Value("int", "3", 3, True)
    for bad in ("_hidden", "__builtins__", "search", "final_answer", "not valid", "class", 3):
        with pytest.raises(InvalidVariableName):
            interp.set_variables({bad: 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidVariableName):
        make(variables={"_x": 1})


def test_variables_seeded_at_construction_are_visible() -> None:
    res = make(variables={"data": {"a": 1}}).run("data['a'] + 1")
    assert res.value is not None and res.value.json == 2


# ---------------------------------------------------------------- tools


def test_tools_are_called_with_plain_arguments() -> None:
    calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def search(*args: object, **kwargs: object) -> str:
        calls.append((args, kwargs))
        return "result"

    res = make(tools={"search": search}).run("r = search('cats', limit=3)\nr")
    assert calls == [(("cats",), {"limit": 3})]
    assert res.value is not None and res.value.json == "result"


def test_tool_errors_surface_as_snippet_errors() -> None:
    def broken(q: str) -> str:
        raise ValueError("backend down")

    res = make(tools={"broken": broken}).run("broken('x')")
    assert res.verdict is Verdict.ERROR
    assert res.error is not None and res.error.type == "ValueError"
    assert res.error.message == "backend down" and res.error.line == 1


@pytest.mark.parametrize(
    "code",
    [
        "search = 1",
        "def search():\n    pass",
        "import math as search",
        "for search in range(3):\n    pass",
        "del search",
        "def f():\n    global search\n    search = 1",
        "[search := 1]",
        "final_answer = print",
    ],
)
def test_tool_names_cannot_be_rebound(code: str) -> None:
    res = make(tools={"search": lambda q: q}).run(code)
    assert res.verdict is Verdict.POLICY_DENIED, res
    assert res.error is not None and "cannot be rebound" in res.error.message


@pytest.mark.parametrize(
    "code", ["search.x = 1", "setattr(search, 'x', 1)", "del search.y", "final_answer.x = 1"]
)
def test_tool_attributes_cannot_be_written(code: str) -> None:
    res = make(tools={"search": lambda q: q}).run(code)
    assert res.verdict is Verdict.POLICY_DENIED, res


def test_tool_object_methods_are_not_reachable() -> None:
    class Tool:
        def __call__(self, q: str) -> str:
            return q

        def dangerous(self) -> str:
            return "reached"

    res = make(tools={"t": Tool()}).run("t.dangerous()")
    assert res.verdict is Verdict.ERROR and res.error is not None
    assert res.error.type == "AttributeError"


def test_invalid_tool_names_are_refused() -> None:
    for bad in ("_t", "not-ident", "def"):
        with pytest.raises(InvalidVariableName):
            make(tools={bad: print})


# ---------------------------------------------------------------- final_answer


def test_final_answer_ends_the_snippet() -> None:
    res = make().run("print('before')\nfinal_answer({'answer': 42})\nprint('after')")
    assert res.verdict is Verdict.OK and res.is_final_answer
    assert res.stdout == "before\n"
    assert res.final_answer == Value("dict", "{'answer': 42}", {"answer": 42}, True)


@pytest.mark.parametrize(
    "code",
    [
        "try:\n    final_answer(1)\nexcept:\n    print('SWALLOWED')",
        "try:\n    final_answer(1)\nexcept BaseException:\n    print('SWALLOWED')",
        "try:\n    final_answer(1)\nexcept Exception:\n    print('SWALLOWED')",
        "for i in range(3):\n    try:\n        final_answer(i)\n    finally:\n        print('cleanup')\nprint('SWALLOWED')",
    ],
)
def test_final_answer_is_uncatchable(code: str) -> None:
    res = make().run(code)
    assert res.is_final_answer and "SWALLOWED" not in res.stdout
    assert res.final_answer is not None and res.final_answer.json in (0, 1)


def test_host_final_answer_tool_transforms_the_answer() -> None:
    res = make(tools={"final_answer": lambda a: f"<{a}>"}).run("final_answer('x')")
    assert res.is_final_answer and res.final_answer is not None
    assert res.final_answer.json == "<x>"


# ---------------------------------------------------------------- printing


def test_print_callback_streams_chunks_in_order() -> None:
    chunks: list[str] = []
    res = make(print_callback=chunks.append).run("for i in range(3):\n    print(i, end=';')")
    assert chunks == ["0;", "1;", "2;"] and res.stdout == "0;1;2;"


def test_print_supports_sep_end_and_file() -> None:
    res = make().run("print(1, 2, sep='-', end='!')")
    assert res.stdout == "1-2!"
    res = make().run("print('x', file=None)")
    assert res.stdout == "x\n"
    res = make().run("import sys\nprint('oops', file=sys.stderr)\nprint('ok', file=sys.stdout)")
    assert res.ok and res.stdout == "ok\n" and res.stderr == "oops\n"
    res = make().run("import io\nb = io.StringIO()\nprint('x', file=b)\nb.getvalue()")
    assert res.ok and res.value is not None and res.value.json == "x\n"
    res = make().run("print('x', file=[])")
    assert res.verdict is Verdict.ERROR and res.error is not None
    assert res.error.type == "AttributeError"


def test_host_library_prints_are_captured_not_leaked(capsys: pytest.CaptureFixture[str]) -> None:
    res = make(authorized_imports=("pprint",)).run("import pprint\npprint.pprint({'a': 1})")
    assert res.stdout == "{'a': 1}\n"
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------- imports


def test_authorized_imports_follow_smolagents_matching() -> None:
    assert make().run("import math\nmath.floor(2.5)").ok
    assert make().run("import numpy").verdict is Verdict.POLICY_DENIED
    assert make(authorized_imports=("numpy",)).run("import numpy\nnumpy.int64(3)").ok
    # Authorizing a package authorizes its submodules reached as attributes...
    res = make(authorized_imports=("numpy",)).run("import numpy\nnumpy.linalg.norm([3, 4])")
    assert res.ok
    # ...but an explicit submodule import still follows the rule.
    res = make(authorized_imports=("numpy",)).run("import numpy.linalg")
    assert res.verdict is Verdict.POLICY_DENIED
    res = make(authorized_imports=("numpy.*",)).run("import numpy\nnumpy.linalg.norm([3, 4])")
    assert res.ok and res.value is not None and res.value.repr == "np.float64(5.0)"
    assert make(authorized_imports=("*",)).run("import numpy.linalg").ok
    assert make(authorized_imports=("*",)).run("import os").verdict is Verdict.POLICY_DENIED


def test_never_imports_need_the_loud_unsafe_option() -> None:
    with pytest.raises(UnsafeImportError):
        Interpreter(authorized_imports=("os",))
    with pytest.raises(UnsafeImportError):
        Interpreter(authorized_imports=("importlib.*",))
    interp = Interpreter(authorized_imports=("platform",), unsafe_allow_never_imports=True)
    assert interp.run("import platform\nplatform.python_implementation()").ok


# ---------------------------------------------------------------- threads


def test_run_works_off_the_main_thread_with_timeout() -> None:
    results: list[Result] = []

    def worker() -> None:
        interp = make(limits=Limits(wall_time_s=0.5))
        interp.run("x = 5")
        results.append(interp.run("while True:\n    pass"))
        results.append(interp.run("x + 1"))

    t = threading.Thread(target=worker)
    t.start()
    t.join(30)
    assert not t.is_alive()
    assert results[0].verdict is Verdict.TIMEOUT
    assert results[1].value is not None and results[1].value.json == 6


# ---------------------------------------------------------------- corrald run


def test_corrald_run_prints_output_value_and_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from executor.local import add_parser, run_command

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["run", "-c", "print('hi')\n6 * 7"])
    assert run_command(args) == 0
    out, err = capsys.readouterr()
    assert out == "hi\n42\n" and "verdict: OK" in err

    args = parser.parse_args(["run", "-c", "import os", "--json"])
    assert run_command(args) == 1
    out, _ = capsys.readouterr()
    assert json.loads(out)["verdict"] == "POLICY_DENIED"


def test_corrald_run_reads_a_file_and_takes_imports(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    from executor.cli import main

    script = Path(str(tmp_path)) / "snippet.py"
    script.write_text("import numpy\nfinal_answer(int(numpy.int64(5)))\n")
    assert main(["run", str(script), "--imports", "numpy"]) == 0
    assert "final answer: 5" in capsys.readouterr().out
    assert main(["run", str(script)]) == 1  # numpy not authorized
    assert main(["run", str(Path(str(tmp_path)) / "missing.py")]) == 2


# ---------------------------------------------------------------- host helpers that set attributes


@pytest.mark.parametrize(
    "code",
    [
        "import functools, json\ndef w():\n    pass\n"
        "functools.update_wrapper(w, json.dumps, (), ('__globals__',))",
        "import functools, json\ndef w():\n    pass\nfunctools.update_wrapper(json.dumps, w)",
        "import functools, json\nfunctools.wraps(json.dumps, updated=('__globals__',))",
        "import dataclasses, random\ndataclasses.dataclass(random.Random)",
        "import functools, fractions\nfunctools.total_ordering(fractions.Fraction)",
    ],
)
def test_attribute_setting_helpers_only_touch_snippet_objects(code: str) -> None:
    interp = make()
    res = interp.run(code)
    assert res.verdict is Verdict.POLICY_DENIED, res
    assert "__builtins__" not in {v.name for v in interp.state()}


def test_attribute_setting_helpers_work_on_snippet_objects() -> None:
    code = (
        "import functools\nfrom dataclasses import dataclass\n"
        "def deco(f):\n    @functools.wraps(f)\n    def inner(*a):\n        return f(*a) + 1\n"
        "    return inner\n"
        "@deco\ndef g(x):\n    '''doc'''\n    return x\n"
        "@dataclass(frozen=True, order=True)\nclass P:\n    x: int\n    y: int = 2\n"
        "@functools.total_ordering\nclass V:\n    def __init__(self, v):\n        self.v = v\n"
        "    def __eq__(self, o):\n        return self.v == o.v\n"
        "    def __lt__(self, o):\n        return self.v < o.v\n"
        "(g(1), g.__name__, g.__doc__, repr(P(1)), P(1) < P(2), V(2) >= V(1))"
    )
    res = make().run(code)
    assert res.value is not None and res.value.json == [2, "g", "doc", "P(x=1, y=2)", True, True]


def test_a_class_cannot_pose_as_a_module_proxy() -> None:
    interp = make(limits=Limits(wall_time_s=0.5))
    res = interp.run(
        "class X:\n    corral_module_proxy = True\n    def __repr__(self):\n"
        "        while True:\n            pass\nx = X()"
    )
    assert res.verdict is Verdict.OK
    assert {v.name: v.repr for v in res.state}["x"] == "<X object>"


@pytest.mark.parametrize(
    "names",
    ["{'__del__': (lambda s: print('HOOK')), 'a': 1}", "[('__getattr__', 1)]", "'__del__ b'"],
)
def test_enum_functional_api_cannot_plant_dunders(names: str) -> None:
    res = make().run(f"import enum\nE = enum.Enum('E', {names})")
    assert res.verdict is Verdict.POLICY_DENIED and "HOOK" not in res.stdout


def test_enum_functional_api_still_works() -> None:
    res = make().run(
        "import enum\nE = enum.Enum('E', 'a b, c')\nF = enum.IntEnum('F', [('x', 5)])\n"
        "G = enum.Enum('G', {'r': 1})\n([m.name for m in E], F.x + 1, G(1).name)"
    )
    assert res.value is not None and res.value.json == [["a", "b", "c"], 6, "r"]


def test_string_formatter_parent_is_unreachable_through_super() -> None:
    res = make().run(
        "import string\nclass F(string.Formatter):\n    pass\n"
        "super(string.Formatter, F()).get_field('0.__class__', [1], {})"
    )
    assert res.verdict is Verdict.ERROR and res.error is not None
    assert res.error.type == "AttributeError"
    ok = make().run("import string\nstring.Formatter().format('{0.real}-{x[0]}', 3, x=[4])")
    assert ok.value is not None and ok.value.json == "3-4"
