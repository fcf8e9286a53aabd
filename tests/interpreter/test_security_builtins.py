"""Escapes through builtins, class definitions, name rebinding and unicode identifiers.

Covers: forbidden builtins (also reached through aliases), 3-argument `type()`
and other class factories, forbidden dunder methods and metaclasses,
`__builtins__` rebinding, rebinding a tool's name, writing attributes of tools,
modules and builtins, and identifiers that NFKC-normalize to forbidden names
(CPython normalizes identifiers with NFKC, PEP 3131).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from executor.interpreter import Verdict
from tests.interpreter.conftest import (
    DENIED,
    DENIED_OR_ERROR,
    Canary,
    MakeInterp,
    assert_refused,
    verdict_of,
)

# ---- forbidden builtins

BUILTIN_CASES = [
    ("eval", 'eval("SUBCLASS_OPEN")'),
    ("exec", 'exec("SUBCLASS_OPEN")'),
    ("compile", "c = compile('1', 'x', 'eval')\nprint(c)"),
    ("open", "open(PATH, 'w').close()"),
    ("input", "print(input())"),
    ("breakpoint", "breakpoint()"),
    ("help", "help(len)"),
    ("globals", "g = globals()\ng['__builtins__']['open'](PATH, 'w')"),
    ("locals", "print(locals())"),
    ("vars", "print(vars())"),
    ("memoryview", "m = memoryview(b'abc')\nprint(m)"),
    ("dunder-import", "__import__('os').open(PATH, 65)"),
    ("eval-alias", 'e = eval\ne("SUBCLASS_OPEN")'),
    ("eval-in-list", '[eval][0]("SUBCLASS_OPEN")'),
    ("exec-in-function", 'def f():\n    exec("SUBCLASS_OPEN")\nf()'),
    ("open-as-default", "def f(o=open):\n    o(PATH, 'w')\nf()"),
    # Merely reaching these must fail: under pytest, calling them proves nothing.
    ("input-ref", "print(input)"),
    ("breakpoint-ref", "print(breakpoint)"),
    ("help-ref", "print(help)"),
    ("compile-ref", "print(compile)"),
    ("globals-ref", "print(globals)"),
    ("vars-ref", "print(vars)"),
]


@pytest.mark.parametrize("code", [c for _, c in BUILTIN_CASES], ids=[i for i, _ in BUILTIN_CASES])
def test_forbidden_builtins(make_interp: MakeInterp, canary: Canary, code: str) -> None:
    res = assert_refused(make_interp(), canary, code, DENIED_OR_ERROR)
    for leak in (
        "<code object",
        "<memory",
        "<built-in function",
        "interactive help",
        "'__builtins__'",
    ):
        assert leak not in res.stdout, res.stdout


@pytest.mark.parametrize(
    "code",
    [
        "print(type('X', (), {}))",
        "T = type\nX = T('X', (object,), {'__del__': lambda self: print('HOOK')})\nx = X()\ndel x",
        "T = type(type(1))\nX = T('X', (), {'__getattribute__': lambda s, n: print('HOOK')})\nX().a",
        "print([type][0]('X', (), {}))",
        "T = type(int)\nc = T.__call__\nX = c('X', (), {'__del__': lambda s: print('HOOK')})\nx = X()\ndel x",
        "X = type.__new__(type, 'X', (), {'__del__': lambda s: print('HOOK')})\nx = X()\ndel x",
        "class A:\n    pass\nX = A.__class__('X', (), {})",
        # Metaclasses of authorized classes (ABCMeta, EnumType) reached through type(x).
        "import fractions\nM = type(fractions.Fraction)\nX = M('X', (), {'__getattr__': lambda s, n: 'HOOK'})\nprint(X().zzz)",
        "import enum\nM = type(enum.Enum)\nX = M('X', (), {'__getattr__': lambda s, n: 'HOOK'})\nprint(X().zzz)",
        "import functools, fractions\nM = type(fractions.Fraction)\n"
        "X = functools.partial(M, 'X')((), {'__getattr__': lambda s, n: 'HOOK'})\nprint(X().zzz)",
    ],
    ids=[
        "direct",
        "alias-del",
        "type-of-type",
        "in-list",
        "type-call",
        "type-new",
        "class-of-class",
        "abcmeta",
        "enumtype",
        "metaclass-via-partial",
    ],
)
def test_type_with_three_args_refused(make_interp: MakeInterp, canary: Canary, code: str) -> None:
    res = assert_refused(make_interp(), canary, code, DENIED_OR_ERROR)
    assert "HOOK" not in res.stdout
    assert "<class" not in res.stdout


def test_type_with_one_arg_works(make_interp: MakeInterp) -> None:
    res = make_interp().run("type(1) is int, type('a').upper('b'), type([]) is list")
    assert verdict_of(res) is Verdict.OK, res.error
    assert res.value is not None and res.value.repr == "(True, 'B', True)"


def test_system_exit_and_friends_do_not_escape_run(make_interp: MakeInterp) -> None:
    interp = make_interp()
    for code in (
        "raise SystemExit(3)",
        "raise KeyboardInterrupt",
        "raise GeneratorExit",
        "exit()",
        "quit()",
        "def g():\n    yield 1\nx = g()\nnext(x)\nx.throw(SystemExit)",
    ):
        res = interp.run(code)  # must not raise
        assert verdict_of(res) in DENIED_OR_ERROR, (code, res.verdict)
    res = interp.run("1 + 1")
    assert verdict_of(res) is Verdict.OK


# ---- class tricks: forbidden dunder methods, metaclasses, class factories

FORBIDDEN_DUNDERS = [
    "__del__",
    "__getattribute__",
    "__getattr__",
    "__setattr__",
    "__delattr__",
    "__reduce__",
    "__reduce_ex__",
    "__init_subclass__",
    "__class_getitem__",
    "__set_name__",
    "__format__",
    "__get__",
    "__set__",
    "__delete__",
    "__new__",
    "__instancecheck__",
    "__subclasscheck__",
    "__mro_entries__",
    "__prepare__",
]


@pytest.mark.parametrize("dunder", FORBIDDEN_DUNDERS)
def test_forbidden_dunder_method_refused(
    make_interp: MakeInterp, canary: Canary, dunder: str
) -> None:
    for code in (
        f"class A:\n    def {dunder}(self, *a, **k):\n        print('HOOK')\na = A()",
        f"class A:\n    {dunder} = lambda self, *a, **k: print('HOOK')\na = A()",
        f"def hook(*a, **k):\n    print('HOOK')\nclass A:\n    pass\nA.{dunder} = hook",
        f"def hook(*a, **k):\n    print('HOOK')\nclass A:\n    pass\nsetattr(A, '{dunder}', hook)",
    ):
        res = assert_refused(make_interp(), canary, code, DENIED_OR_ERROR)
        assert "HOOK" not in res.stdout, code


@pytest.mark.parametrize(
    "code",
    [
        "class M(type):\n    pass\nclass A(metaclass=M):\n    pass",
        "class A(metaclass=type):\n    pass",
        "import enum\nclass A(metaclass=enum.EnumMeta):\n    pass",
        "class Base:\n    pass\nclass A(Base, flag=1):\n    pass",
        "kw = {'metaclass': type}\nclass A(**kw):\n    pass",
        "class D:\n    def __get__(self, obj, typ=None):\n        print('HOOK')\nclass A:\n    d = D()\nA().d",
        "class N:\n    def __set_name__(self, owner, name):\n        print('HOOK')\nclass A:\n    n = N()",
        "class F:\n    def __format__(self, spec):\n        print('HOOK')\n        return ''\nf'{F()}'",
        "class A:\n    __class__ = int",
    ],
    ids=[
        "metaclass-user",
        "metaclass-type",
        "metaclass-module",
        "class-keyword",
        "metaclass-kwargs",
        "descriptor-get",
        "set-name",
        "format-hook",
        "class-attr-dunder",
    ],
)
def test_class_tricks_refused(make_interp: MakeInterp, canary: Canary, code: str) -> None:
    res = assert_refused(make_interp(), canary, code, DENIED_OR_ERROR)
    assert "HOOK" not in res.stdout


@pytest.mark.parametrize(
    "code",
    [
        "import dataclasses\nX = dataclasses.make_dataclass('X', ['a'], namespace={'__del__': lambda s: print('HOOK')})\n"
        "x = X(1)\ndel x",
        "import dataclasses\nX = dataclasses.make_dataclass('X', ['a'], namespace={'__getattr__': lambda s, n: print('HOOK')})\n"
        "X(1).zzz",
        "import collections\nP = collections.namedtuple('P', ['a'])\nclass Q(P):\n    pass\nQ.__del__ = lambda s: print('HOOK')\n"
        "q = Q(1)\ndel q",
        # Enum's functional API takes a mapping of names: dunder keys become methods.
        "import enum\nE = enum.Enum('E', {'A': 1, '__getattr__': lambda s, n: 'HOOK'})\nprint(E.A.zzz)",
        "import enum\nE = enum.Enum('E', {'A': 1, '__format__': lambda s, spec: 'HOOK'})\nprint(f'{E.A}')",
        "import enum\nE = enum.IntEnum('E', {'A': 1, '__getattribute__': lambda s, n: 'HOOK'})\nprint(E.A.real)",
        "import enum\nE = enum.Enum('E', {'A': 1, '__init_subclass__': classmethod(lambda c: print('HOOK'))})\n"
        "print(E.A)",
    ],
    ids=[
        "make-dataclass-del",
        "make-dataclass-getattr",
        "namedtuple-subclass-del",
        "enum-functional-getattr",
        "enum-functional-format",
        "enum-functional-getattribute",
        "enum-functional-init-subclass",
    ],
)
def test_class_factories_cannot_install_forbidden_dunders(
    make_interp: MakeInterp, canary: Canary, code: str
) -> None:
    interp = make_interp()
    res = interp.run(canary.fill(code))
    canary.assert_clean(res)
    assert "HOOK" not in res.stdout
    # Whatever the verdict, a later snippet and the state summary never trigger a hook.
    later = interp.run("y = 1")
    assert "HOOK" not in later.stdout
    assert verdict_of(later) is Verdict.OK


# Host functions that get and set attributes by name on the snippet's behalf
# (functools.update_wrapper's `assigned`/`updated`): they must not become an
# unguarded getattr/setattr, nor replace the code of host functions.
HOST_ATTR_COPIERS = [
    (
        "update-wrapper-code",
        "import functools, json\ndef f(*a, **k):\n    return codecs.open(PATH, 'w')\n"
        "functools.update_wrapper(json.dumps, f, assigned=('__code__',), updated=())\njson.dumps(1)",
    ),
    (
        "update-wrapper-globals-match",
        "import functools, dataclasses, json\nD = dataclasses.make_dataclass('D', ['__globals__'])\nd = D(0)\n"
        "functools.update_wrapper(d, json.dumps, assigned=('__globals__',), updated=())\n"
        "match d:\n    case D(g):\n        g['codecs'].open(PATH, 'w').close()",
    ),
    (
        "update-wrapper-dict",
        "import functools, json\nclass W:\n    pass\nw = W()\n"
        "functools.update_wrapper(w, json, assigned=(), updated=('__dict__',))\nw.codecs.open(PATH, 'w').close()",
    ),
    (
        "update-wrapper-host-class",
        "import functools, json\ndef f():\n    pass\nfunctools.update_wrapper(json.JSONDecoder, f)",
    ),
    (
        "wraps-host-function",
        "import functools, json\ndef f():\n    pass\nfunctools.wraps(f)(json.dumps)",
    ),
]


@pytest.mark.parametrize(
    "code", [c for _, c in HOST_ATTR_COPIERS], ids=[i for i, _ in HOST_ATTR_COPIERS]
)
def test_host_attribute_copiers_refused(make_interp: MakeInterp, canary: Canary, code: str) -> None:
    dumps_code, decoder_name = json.dumps.__code__, json.JSONDecoder.__name__
    assert_refused(make_interp(), canary, code, DENIED_OR_ERROR)
    assert json.dumps.__code__ is dumps_code
    assert json.dumps.__name__ == "dumps" and not hasattr(json.dumps, "__wrapped__")
    assert json.JSONDecoder.__name__ == decoder_name and not hasattr(
        json.JSONDecoder, "__wrapped__"
    )


def test_allowed_dunders_work(make_interp: MakeInterp) -> None:
    res = make_interp().run(
        "class A:\n"
        "    def __init__(self, v):\n        self.v = v\n"
        "    def __repr__(self):\n        return f'A({self.v})'\n"
        "    def __eq__(self, o):\n        return self.v == o.v\n"
        "    def __hash__(self):\n        return hash(self.v)\n"
        "    def __len__(self):\n        return self.v\n"
        "    def __call__(self):\n        return self.v * 2\n"
        "A(2), A(1) == A(1), len(A(3)), A(4)(), len({A(1), A(1)})"
    )
    assert verdict_of(res) is Verdict.OK, res.error
    assert res.value is not None and res.value.repr == "(A(2), True, 3, 8, 1)"


# ---- __builtins__ and guard names cannot be rebound


@pytest.mark.parametrize(
    "code",
    [
        "__builtins__ = {}",
        "__builtins__['open'] = print",
        "def f():\n    global __builtins__\n    __builtins__ = {}\nf()",
        "def f(__builtins__):\n    return 1",
        "import math as __builtins__",
        "for __builtins__ in [1]:\n    pass",
        "del __builtins__",
        "(__builtins__ := {})",
        "class __builtins__:\n    pass",
        "_print_ = 1",
        "_getattr_ = getattr",
        "_getiter_ = iter",
        "_write_ = lambda x: x",
    ],
)
def test_builtins_and_guard_names_not_rebindable(
    make_interp: MakeInterp, canary: Canary, code: str
) -> None:
    interp = make_interp()
    assert_refused(interp, canary, code, DENIED, static=True)
    res = interp.run("print('still', len([1, 2]))\nx = 3")
    assert verdict_of(res) is Verdict.OK, res.error
    assert res.stdout == "still 2\n"


# ---- tools cannot be rebound; their attributes, modules' and builtins' cannot be written


class Probe:
    """A host tool with state a snippet must not be able to change."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.mode = "safe"

    def __call__(self, x: Any) -> Any:
        self.calls.append(x)
        return ("probe", x)


TOOL_REBINDS = [
    ("assign", "probe = lambda x: 'fake'"),
    ("augassign", "probe += 1"),
    ("annassign", "probe: int = 1"),
    ("for-target", "for probe in [1]:\n    pass"),
    ("def", "def probe(x):\n    return 'fake'"),
    ("async-def", "async def probe(x):\n    return 'fake'"),
    ("class", "class probe:\n    pass"),
    ("import-as", "import math as probe"),
    ("from-import-as", "from math import floor as probe"),
    ("del", "del probe"),
    ("global", "def f():\n    global probe\n    probe = 1\nf()"),
    ("walrus", "(probe := 1)"),
    ("tuple-target", "a, probe = 1, 2"),
    ("star-target", "a, *probe = 1, 2"),
    (
        "with-target",
        "class C:\n    def __enter__(self):\n        return 1\n    def __exit__(self, *a):\n        return False\nwith C() as probe:\n    pass",
    ),
    ("except-target", "try:\n    1 / 0\nexcept Exception as probe:\n    pass"),
    ("match-capture", "match 1:\n    case probe:\n        pass"),
    ("final-answer-assign", "final_answer = lambda x: None"),
    ("final-answer-def", "def final_answer(x):\n    return None"),
]


@pytest.mark.parametrize("code", [c for _, c in TOOL_REBINDS], ids=[i for i, _ in TOOL_REBINDS])
def test_tool_name_not_rebindable(make_interp: MakeInterp, canary: Canary, code: str) -> None:
    probe = Probe()
    interp = make_interp(tools={"probe": probe})
    assert_refused(interp, canary, code, DENIED_OR_ERROR)
    # The tool and final_answer are intact for the rest of the session.
    res = interp.run("probe(7)")
    assert verdict_of(res) is Verdict.OK, res.error
    assert res.value is not None and res.value.repr == "('probe', 7)"
    assert probe.calls[-1] == 7
    fa = interp.run("final_answer(5)\nprint('AFTER')")
    assert fa.is_final_answer and "AFTER" not in fa.stdout
    assert fa.final_answer is not None and fa.final_answer.repr == "5"


def test_tool_local_names_in_functions_are_harmless(make_interp: MakeInterp) -> None:
    """A parameter or comprehension variable that shadows a tool locally is ordinary Python."""
    probe = Probe()
    interp = make_interp(tools={"probe": probe})
    res = interp.run("def f(probe):\n    return probe + 1\nf(1), [probe for probe in range(2)]")
    # Refusing is acceptable too; what matters is that the tool survives.
    assert verdict_of(res) in {Verdict.OK, Verdict.POLICY_DENIED}
    after = interp.run("probe(1)")
    assert after.value is not None and after.value.repr == "('probe', 1)"


ATTR_WRITES = [
    ("tool-attr-write", "probe.mode = 'pwned'"),
    ("tool-attr-setattr", "setattr(probe, 'mode', 'pwned')"),
    ("tool-attr-delete", "del probe.mode"),
    ("tool-attr-delattr", "delattr(probe, 'mode')"),
    ("tool-attr-aug", "probe.mode += 'pwned'"),
    ("tool-calls-mutate", "probe.calls.append('pwned')"),
    ("tool-dunder-call", "probe.__call__ = lambda x: 'fake'"),
    ("module-attr-write", "import math\nmath.pi = 3"),
    ("module-attr-setattr", "import math\nsetattr(math, 'pi', 3)"),
    ("module-attr-delete", "import math\ndel math.pi"),
    ("module-func-replace", "import json\njson.dumps = lambda *a, **k: 'pwned'"),
    ("module-alias-write", "import json as j\nj.loads = None"),
    ("from-module-then-write", "from json import decoder\ndecoder.JSONDecoder = None"),
    ("module-class-attr-write", "import json\njson.JSONEncoder.item_separator = 'pwned'"),
    ("builtin-attr-write", "len.x = 1"),
    ("builtin-type-attr-write", "str.upper = lambda self: 'pwned'"),
    ("builtin-type-setattr", "setattr(int, 'pwned', 1)"),
    ("builtin-exception-attr", "ValueError.pwned = 1"),
]


@pytest.mark.parametrize("code", [c for _, c in ATTR_WRITES], ids=[i for i, _ in ATTR_WRITES])
def test_attribute_writes_refused(make_interp: MakeInterp, canary: Canary, code: str) -> None:
    probe = Probe()
    json_dumps, json_loads, sep = json.dumps, json.loads, json.JSONEncoder.item_separator
    interp = make_interp(tools={"probe": probe})
    assert_refused(interp, canary, code, DENIED_OR_ERROR)
    # Host objects unchanged.
    assert probe.mode == "safe" and "pwned" not in probe.calls
    assert type(probe).__call__ is Probe.__call__
    assert math.pi == 3.141592653589793
    assert json.dumps is json_dumps and json.loads is json_loads
    assert json.JSONEncoder.item_separator == sep
    assert not hasattr(int, "pwned") and not hasattr(ValueError, "pwned")
    # And unchanged as the session sees them.
    res = interp.run("import math, json\nmath.pi, json.dumps([1]), 'a'.upper(), probe(2)")
    assert verdict_of(res) is Verdict.OK, res.error
    assert res.value is not None
    assert res.value.repr == "(3.141592653589793, '[1]', 'A', ('probe', 2))"


def test_module_writes_do_not_leak_into_other_sessions(make_interp: MakeInterp) -> None:
    tau = math.tau
    a, b = make_interp(), make_interp()
    a.run("import math\nmath.tau = 1")
    res = b.run("import math\nmath.tau")
    assert math.tau == tau
    assert res.value is not None and res.value.repr == repr(tau)


# ---- unicode identifiers that normalize to forbidden names (PEP 3131: NFKC)

UNICODE_CASES = [
    ("fullwidth-eval", 'ｅｖａｌ("SUBCLASS_OPEN")'),
    ("math-bold-eval", '𝐞𝐯𝐚𝐥("SUBCLASS_OPEN")'),
    ("math-italic-open", "𝘰𝘱𝘦𝘯(PATH, 'w').close()"),
    ("fullwidth-lowline-import", "_＿import＿＿('os').open(PATH, 65)"),
    ("vertical-lowline-class", "print(()._︳class︳︳)"),
    ("wavy-lowline-builtins", "_﹏builtins﹏_['open'](PATH, 'w')"),
    ("fullwidth-getattr-string", "print(getattr((), '＿＿class＿＿'))"),
    ("fullwidth-format-field", "print('{0.＿＿class＿＿}'.format(1))"),
    ("fullwidth-exec", 'ｅｘｅｃ("SUBCLASS_OPEN")'),
    ("fullwidth-globals", "print(ｇｌｏｂａｌｓ())"),
]


@pytest.mark.parametrize("code", [c for _, c in UNICODE_CASES], ids=[i for i, _ in UNICODE_CASES])
def test_unicode_identifiers(make_interp: MakeInterp, canary: Canary, code: str) -> None:
    res = assert_refused(make_interp(), canary, code, DENIED_OR_ERROR)
    assert "<class" not in res.stdout and "'__builtins__'" not in res.stdout


def test_unicode_tool_rebind(make_interp: MakeInterp, canary: Canary) -> None:
    probe = Probe()
    interp = make_interp(tools={"probe": probe})
    assert_refused(interp, canary, "ｐｒｏｂｅ = 1", DENIED_OR_ERROR)
    res = interp.run("𝐩𝐫𝐨𝐛𝐞(3)")  # the same name, NFKC-normalized: calls the real tool
    assert verdict_of(res) is Verdict.OK, res.error
    assert res.value is not None and res.value.repr == "('probe', 3)"
