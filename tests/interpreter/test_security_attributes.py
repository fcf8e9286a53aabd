"""Escapes through attributes: dunders, introspection names, computed names, format paths.

Each test runs a snippet that, if the interpreter let it through, would create
the canary file, print the host's canary environment variable or reach a real
module object; the test asserts the verdict AND that none of that happened.
Attribute names are checked on the AST (static: nothing runs) or by a runtime
guard (computed names: `getattr`, format field paths, `operator` getters).
"""

from __future__ import annotations

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

GEN = "def g():\n    yield 1\ngen = g()\nnext(gen)\n"

# ---- static attribute names: refused on the AST, before anything runs

STATIC_CASES = [
    ("dunder-read-class", "c = ().__class__\nprint(c)"),
    (
        "subclasses-walk",
        "for c in ().__class__.__bases__[0].__subclasses__():\n"
        "    if c.__name__ == 'catch_warnings':\n"
        "        c()._module.__builtins__['open'](PATH, 'w').close()",
    ),
    (
        # CVE-2025-9959 (smolagents LocalPythonExecutor): class hierarchy traversal to
        # subprocess.Popen. Cited in huggingface/smolagents#2125; technique from its tests.
        "subclasses-popen",
        "for cls in ().__class__.__base__.__subclasses__():\n"
        "    if 'Popen' in cls.__class__.__repr__(cls):\n"
        "        break\n"
        "cls(['touch', PATH]).wait()",
    ),
    (
        # smolagents tests: BuiltinImporter.load_module reached through __subclasses__.
        "subclasses-builtin-importer",
        "classes = {}.__class__.__base__.__subclasses__()\n"
        "for cls in classes:\n"
        "    if cls.__name__ == 'BuiltinImporter':\n"
        "        break\n"
        "print(cls().load_module('posix').environ[ENVNAME])",
    ),
    ("dunder-dict-read", "class A:\n    pass\nprint(A().__dict__)"),
    # smolagents tests: random.__dict__['_os'].
    ("module-dict", "import random\nrandom.__dict__['_os'].open(PATH, 65)"),
    ("private-attr", "import random\nrandom._os.open(PATH, 65)"),
    ("func-globals", "def f():\n    pass\nf.__globals__['__builtins__']['open'](PATH, 'w')"),
    ("builtin-self", "len.__self__.open(PATH, 'w')"),
    ("func-code", "c = (lambda: 0).__code__\nprint(c.co_code)"),
    ("dunder-write", "def f(x=1):\n    return x\nf.__defaults__ = (PATH,)\nprint(f())"),
    ("dunder-write-class", "class A:\n    pass\na = A()\na.__class__ = int"),
    ("dunder-write-init", "class A:\n    pass\nA.__init__ = lambda self: print('HOOK')\nA()"),
    ("dunder-delete", "class A:\n    def __init__(self):\n        self.v = 1\ndel A.__init__"),
    ("dunder-delete-dict", "class A:\n    pass\na = A()\ndel a.__dict__"),
    ("dunder-augassign", "class A:\n    pass\nA.__doc__ += 'x'"),
    ("mro-method", "print(int.mro())"),
    ("mro-chain", "print(type(1).mro()[-1])"),
    ("dunder-mro", "print(int.__mro__)"),
    ("dunder-in-fstring", "print(f'{().__class__}')"),
    ("dunder-in-lambda-body", "f = lambda o: o.__class__\nprint(f(1))"),
    ("dunder-in-class-body", "class A:\n    x = ().__class__"),
    ("dunder-in-comprehension", "print([x.__class__ for x in [1]])"),
    ("dunder-in-default-arg", "def f(a=().__class__):\n    return a"),
    ("dunder-in-decorator", "@().__class__.__base__\ndef f():\n    pass"),
    ("match-class-dunder-kw", "match 1:\n    case int(__class__=c):\n        print(c)"),
    (
        # smolagents tests: sys._getframe().f_builtins.
        "getframe-f-builtins",
        "x = 1\nb = x._getframe().f_builtins\nb['open'](PATH, 'w')",
    ),
    (
        # smolagents tests: e.__traceback__.tb_frame.f_back.f_globals.
        "traceback-frame-globals",
        "try:\n    1 / 0\nexcept Exception as e:\n"
        "    g = e.__traceback__.tb_frame.f_back.f_globals\n"
        "    g['__builtins__']['open'](PATH, 'w')",
    ),
    (
        # CVE-2023-37271 (RestrictedPython): a generator's frame walks back to the
        # caller's globals.
        "generator-frame-walk",
        GEN
        + "fr = gen.gi_frame\nwhile fr is not None:\n    b = fr.f_builtins\n    fr = fr.f_back\n"
        "b['open'](PATH, 'w')",
    ),
    (
        "coroutine-frame",
        "async def c():\n    pass\nco = c()\nco.cr_frame.f_builtins['open'](PATH, 'w')",
    ),
    (
        # RestrictedPython 8.5 added ag_frame/ag_code/ag_await to its restricted names.
        "async-generator-frame",
        "async def ag():\n    yield 1\na = ag()\na.ag_frame.f_builtins['open'](PATH, 'w')",
    ),
]

# Introspection names refused whatever the receiver (RestrictedPython's
# INSPECT_ATTRIBUTES plus `mro`); the receiver here is an int so the snippet
# would only raise AttributeError under CPython: refusal must be static.
INSPECT_NAMES = [
    "gi_frame",
    "gi_code",
    "gi_yieldfrom",
    "f_back",
    "f_globals",
    "f_locals",
    "f_builtins",
    "f_code",
    "f_trace",
    "tb_frame",
    "tb_next",
    "co_code",
    "cr_frame",
    "cr_code",
    "cr_await",
    "ag_frame",
    "ag_code",
    "ag_await",
    "mro",
]


@pytest.mark.parametrize("code", [c for _, c in STATIC_CASES], ids=[i for i, _ in STATIC_CASES])
def test_static_attribute_refused(make_interp: MakeInterp, canary: Canary, code: str) -> None:
    res = assert_refused(make_interp(), canary, code, DENIED, static=True)
    assert "HOOK" not in res.stdout
    assert res.error is not None, "a refusal must say what was refused"


@pytest.mark.parametrize("name", INSPECT_NAMES)
def test_introspection_name_refused(make_interp: MakeInterp, canary: Canary, name: str) -> None:
    for code in (
        f"x = 1\nx.{name}",
        f"x = 1\ny = x.{name}",
        f"x = 1\nx.{name} = 2",
        f"x = 1\ndel x.{name}",
    ):
        assert_refused(make_interp(), canary, code, DENIED, static=True)


# Dunders whose value leads to frames, globals, modules, code, the class graph or
# attribute hooks. Whatever harmless dunders the policy chooses to allow
# (`__name__`, `__init__` for `super().__init__`...), these stay refused.
DANGEROUS_DUNDERS = [
    "__class__",
    "__dict__",
    "__globals__",
    "__self__",
    "__func__",
    "__objclass__",
    "__base__",
    "__bases__",
    "__mro__",
    "__subclasses__",
    "__code__",
    "__closure__",
    "__defaults__",
    "__kwdefaults__",
    "__builtins__",
    "__getattribute__",
    "__getattr__",
    "__setattr__",
    "__delattr__",
    "__reduce__",
    "__reduce_ex__",
    "__getstate__",
    "__setstate__",
    "__init_subclass__",
    "__subclasshook__",
    "__new__",
    "__get__",
    "__set_name__",
    "__class_getitem__",
    "__traceback__",
    "__loader__",
    "__spec__",
    "__file__",
    "__path__",
    "__weakref__",
    "__annotations__",
    "__del__",
]


@pytest.mark.parametrize("name", DANGEROUS_DUNDERS)
def test_dangerous_dunders_refused(make_interp: MakeInterp, canary: Canary, name: str) -> None:
    for code in (f"x = 1\nx.{name}", f"print(int.{name})", f"class A:\n    pass\nA.{name} = 1"):
        assert_refused(make_interp(), canary, code, DENIED, static=True)


def test_refusal_names_the_attribute(make_interp: MakeInterp) -> None:
    res = make_interp().run("x = 1\nx = ().__class__")
    assert verdict_of(res) is Verdict.POLICY_DENIED
    assert res.error is not None
    assert "__class__" in res.error.message
    assert res.error.line == 2


# ---- computed names: getattr & co follow the same rule at run time

COMPUTED_CASES = [
    (
        "getattr-concat",
        "c = getattr((), '_' + '_class__')\n"
        "for s in getattr(getattr(c, '__ba' + 'se__'), '__subcl' + 'asses__')():\n"
        "    if getattr(s, '__na' + 'me__') == 'catch_warnings':\n"
        "        getattr(getattr(s(), '_mod' + 'ule'), '__buil' + 'tins__')['open'](PATH, 'w')",
    ),
    (
        "getattr-gi-frame",
        GEN
        + "fr = getattr(gen, 'gi_' + 'frame')\ngetattr(fr, 'f_buil' + 'tins')['open'](PATH, 'w')",
    ),
    ("getattr-mro", "print(getattr(int, 'm' + 'ro')())"),
    ("getattr-private-module", "import random\ngetattr(random, '_' + 'os').open(PATH, 65)"),
    ("getattr-builtin-self", "b = getattr(len, '__se' + 'lf__')\nb.open(PATH, 'w')"),
    (
        "getattr-globals",
        "def f():\n    pass\ngetattr(f, '__glob' + 'als__')['__builtins__']['open'](PATH, 'w')",
    ),
    (
        "setattr-dunder",
        "def f(x=1):\n    return x\nsetattr(f, '__def' + 'aults__', (PATH,))\nprint(f())",
    ),
    ("setattr-private", "class A:\n    pass\nsetattr(A, '_' + 'secret', 1)\nprint('SETATTR-DONE')"),
    (
        "delattr-dunder",
        "class A:\n    def __init__(self):\n        print('INIT')\ndelattr(A, '__in' + 'it__')\nprint('DELATTR-DONE')",
    ),
    # smolagents CVE-2025-5120 family: getattr reached through map/filter/partial.
    ("map-getattr", "print(list(map(getattr, [()], ['__cl' + 'ass__'])))"),
    (
        "map-partial-getattr",
        "import functools\nimport typing\nm = list(map(functools.partial(getattr, typing), ['s' + 'ys']))\nprint(m[0].modules['os'].environ[ENVNAME])",
    ),
    (
        "filter-partial-getattr",
        "import functools\nimport typing\nprint(list(filter(functools.partial(getattr, typing), ['s' + 'ys'])))",
    ),
    ("getattr-via-alias", "ga = getattr\nf = [ga][0]\nprint(f((), '__cl' + 'ass__'))"),
    (
        # RestrictedPython 7.2 (safer_getattr): a str subclass whose methods lie to the
        # guard while C code sees the real characters.
        "getattr-str-subclass-name",
        "class S(str):\n"
        "    def startswith(self, *a):\n        return False\n"
        "    def __contains__(self, x):\n        return False\n"
        "    def lower(self):\n        return 'x'\n"
        "    def strip(self, *a):\n        return 'x'\n"
        "    def isidentifier(self):\n        return False\n"
        "c = getattr((), S('__class__'))\nprint(c)",
    ),
]


@pytest.mark.parametrize("code", [c for _, c in COMPUTED_CASES], ids=[i for i, _ in COMPUTED_CASES])
def test_computed_attribute_refused(make_interp: MakeInterp, canary: Canary, code: str) -> None:
    res = assert_refused(make_interp(), canary, code, DENIED_OR_ERROR)
    assert "<class" not in res.stdout
    assert "SETATTR-DONE" not in res.stdout and "DELATTR-DONE" not in res.stdout
    assert "module 'sys'" not in res.stdout


def test_getattr_default_does_not_leak(make_interp: MakeInterp, canary: Canary) -> None:
    code = "print(getattr((), '__cl' + 'ass__', 'DEFAULT'))\nprint(hasattr((), '__cl' + 'ass__'))"
    res = make_interp().run(code)
    canary.assert_clean(res)
    assert verdict_of(res) in {Verdict.POLICY_DENIED, Verdict.ERROR, Verdict.OK}
    assert "<class" not in res.stdout
    assert "True" not in res.stdout


def test_getattr_with_safe_names_still_works(make_interp: MakeInterp) -> None:
    res = make_interp().run(
        "class K:\n    a = 1\nk = K()\nsetattr(k, 'b', 2)\n"
        "getattr(k, 'a') + getattr(k, 'b') + getattr(k, 'zz', 10), hasattr(k, 'b')"
    )
    assert verdict_of(res) is Verdict.OK, res.error
    assert res.value is not None and res.value.repr == "(13, True)"


# ---- format field paths (CVE-2023-41039 RestrictedPython; Armin Ronacher,
# "Be Careful with Python's New-Style String Format", 2016) and string.Formatter
# (CVE-2026-76825 RestrictedPython 8.4; operator getters re-opening it: PR #330)

FORMAT_CASES = [
    ("format-dunder", "print('{0.__class__}'.format(1))"),
    ("format-subclasses", "print('{0.__class__.__base__.__subclasses__}'.format(()))"),
    ("format-gi-frame", GEN + "print('{0.gi_frame}'.format(gen))"),
    ("format-gi-frame-globals", GEN + "print('{0.gi_frame.f_globals}'.format(gen))"),
    ("format-globals-item", "def f():\n    pass\nprint('{0.__globals__[__builtins__]}'.format(f))"),
    ("format-map-dunder", "print('{x.__class__}'.format_map({'x': 1}))"),
    ("format-unbound", "print(str.format('{0.__class__}', 1))"),
    ("format-map-unbound", "print(str.format_map('{x.__class__}', {'x': 1}))"),
    ("format-bound-via-map", "print(list(map('{0.__class__}'.format, [1])))"),
    ("format-unbound-via-map", "print(list(map(str.format, ['{0.__class__}'], [1])))"),
    ("format-str-subclass", "class S(str):\n    pass\nprint(S('{0.__class__}').format(1))"),
    ("format-nested-spec", "print('{0:{1.__class__.__basicsize__}}'.format(1, 2))"),
    ("format-computed-template", "fmt = '{0.__cl' + 'ass__}'\nprint(fmt.format(1))"),
    ("format-private", "import random\nprint('{0._os}'.format(random))"),
    ("format-mro", "print('{0.mro}'.format(int))"),
    # Through dunders a policy may allow for reading (`__init__`, `__call__`).
    (
        "format-init-globals",
        "import json\nprint('{0.__init__.__globals__}'.format(json.JSONDecoder))",
    ),
    ("format-call-self", "print('{0.__call__.__self__}'.format(len))"),
    (
        "attrgetter-init-globals",
        "import json, operator\nprint(operator.attrgetter('__init__.__globals__')(json.JSONDecoder))",
    ),
    (
        "getattr-init-globals",
        "import json\ng = getattr(json.JSONDecoder.__init__, '__glob' + 'als__')\ng['__builtins__']['open'](PATH, 'w')",
    ),
    ("formatter-format", "import string\nprint(string.Formatter().format('{0.__class__}', 1))"),
    (
        "formatter-vformat",
        "import string\nprint(string.Formatter().vformat('{0.__class__}', (1,), {}))",
    ),
    (
        "formatter-get-field",
        "import string\nprint(string.Formatter().get_field('0.__class__', (1,), {}))",
    ),
    (
        "formatter-get-field-frame",
        GEN + "import string\nprint(string.Formatter().get_field('0.gi_frame', (gen,), {}))",
    ),
    (
        "formatter-subclass",
        "import string\nclass F(string.Formatter):\n    pass\nprint(F().format('{0.__class__}', 1))",
    ),
    ("attrgetter-dunder", "import operator\nprint(operator.attrgetter('__class__')(1))"),
    ("attrgetter-dotted", "import operator\nprint(operator.attrgetter('real.__class__')(1))"),
    ("attrgetter-gi-frame", GEN + "import operator\nprint(operator.attrgetter('gi_frame')(gen))"),
    ("attrgetter-computed", "import operator\nprint(operator.attrgetter('__cl' + 'ass__')(1))"),
    ("methodcaller-dunder", "import operator\nprint(operator.methodcaller('__reduce_ex__', 2)(1))"),
    (
        "methodcaller-get-field",
        "import operator, string\nprint(operator.methodcaller('get_field', '0.__class__', (1,), {})(string.Formatter()))",
    ),
    (
        "methodcaller-format",
        "import operator\nprint(operator.methodcaller('format', 1)('{0.__class__}'))",
    ),
]


@pytest.mark.parametrize("code", [c for _, c in FORMAT_CASES], ids=[i for i, _ in FORMAT_CASES])
def test_format_paths_refused(make_interp: MakeInterp, canary: Canary, code: str) -> None:
    res = assert_refused(make_interp(), canary, code, DENIED_OR_ERROR)
    for leak in ("<class", "<frame", "<built-in", "<module", "<method", "{'__name__'", "<bound"):
        assert leak not in res.stdout, res.stdout


def test_format_with_safe_paths_still_works(make_interp: MakeInterp) -> None:
    res = make_interp().run(
        "import string\n"
        "class P:\n    def __init__(self):\n        self.x = 3\n"
        "a = '{0.x}-{1[k]}-{n:>3}'.format(P(), {'k': 'v'}, n=7)\n"
        "b = '{p.x}'.format_map({'p': P()})\n"
        "c = string.Formatter().format('{0}+{x}', 1, x=2)\n"
        "a, b, c"
    )
    assert verdict_of(res) is Verdict.OK, res.error
    assert res.value is not None and res.value.repr == "('3-v-  7', '3', '1+2')"


def test_attribute_error_obj_does_not_leak_module(make_interp: MakeInterp, canary: Canary) -> None:
    """CVE-2024-47532 (RestrictedPython): `AttributeError.obj` handed out the real object."""
    code = (
        "import json\n"
        "try:\n    json.no_such_name\nexcept AttributeError as e:\n    m = e.obj\n"
        "m.codecs.open(PATH, 'w').close()"
    )
    assert_refused(make_interp(), canary, code, DENIED_OR_ERROR)


def test_positional_only_guard_names_refused(make_interp: MakeInterp, canary: Canary) -> None:
    """RestrictedPython 8.3: a positional-only parameter shadowing a guard name (`_getattr_`)."""
    for code in (
        "def f(_getattr_, /):\n    return ().real\nf(getattr)",
        "def f(_getattr_):\n    return 1\nf(1)",
        "f = lambda _getiter_: [x for x in _getiter_]",
        "def f(*, _write_=None):\n    pass",
        "def f(*_print_):\n    pass",
    ):
        assert_refused(make_interp(), canary, code, DENIED, static=True)
