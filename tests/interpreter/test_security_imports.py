"""Escapes through imports: the never-list, unauthorized modules, leaking module attributes,
and host-side eval sinks reachable from authorized modules.

Sources: issue 2 (never-list, `random._os`, `queue.threading`, `json.decoder.re`);
smolagents' tests/test_local_python_executor.py (submodule leaks, `getattr` through
`functools.partial`), smolagents issue #2094 (`ctypes` missing from its deny list),
CVE-2025-5120 (smolagents: `getattr` leakage to restricted modules).
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

NEVER = [
    "os",
    "sys",
    "subprocess",
    "socket",
    "builtins",
    "importlib",
    "ctypes",
    "inspect",
    "gc",
    "pickle",
    "marshal",
    "code",
    "codeop",
    "signal",
    "threading",
    "multiprocessing",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "pty",
    "types",
]

# A real attribute of each never-list module, for `from X import Y`.
FROM_NAME = {
    "os": "system",
    "sys": "modules",
    "subprocess": "Popen",
    "socket": "socket",
    "builtins": "open",
    "importlib": "import_module",
    "ctypes": "CDLL",
    "inspect": "currentframe",
    "gc": "get_objects",
    "pickle": "loads",
    "marshal": "loads",
    "code": "InteractiveInterpreter",
    "codeop": "compile_command",
    "signal": "signal",
    "threading": "Thread",
    "multiprocessing": "Process",
    "io": "open",
    "pathlib": "Path",
    "shutil": "rmtree",
    "tempfile": "mkstemp",
    "pty": "spawn",
    "types": "FunctionType",
}


# Never-list modules that `import` answers with a reviewed facade (facades.py).
FACADES = ("sys", "io", "pathlib")


@pytest.mark.parametrize("mod", FACADES)
def test_facade_imports_never_hand_out_the_module(
    make_interp: MakeInterp, canary: Canary, mod: str
) -> None:
    """`import sys` works, but only the facade: the dangerous names are not there."""
    interp = make_interp()
    res = interp.run(f"import {mod}\nrepr({mod})")
    assert verdict_of(res) is Verdict.OK and res.value is not None
    assert res.value.repr == repr(f"<module '{mod}'>")
    for code in (
        f"from {mod} import {FROM_NAME[mod]}",
        f"import {mod}\n{mod}.{FROM_NAME[mod]}",
        f"import {mod}\ngetattr({mod}, {FROM_NAME[mod]!r})",
    ):
        res = interp.run(code)
        assert res.verdict in (Verdict.ERROR, Verdict.POLICY_DENIED), code
        assert res.error is not None
        assert "not available in snippets" in res.error.message or (
            f"cannot import name {FROM_NAME[mod]!r} from {mod!r}" in res.error.message
        ), res.error
    res = assert_refused(interp, canary, f"import {mod}.x\nprint('IMPORTED')", DENIED)
    assert "IMPORTED" not in res.stdout
    res = assert_refused(interp, canary, f"import {mod}\n{mod}.x = 1", DENIED)


@pytest.mark.parametrize("mod", [m for m in NEVER if m not in FACADES])
def test_never_list_import_forms_refused(make_interp: MakeInterp, canary: Canary, mod: str) -> None:
    forms = [
        f"import {mod}\nprint('IMPORTED')",
        f"import {mod} as m\nprint('IMPORTED')",
        f"from {mod} import {FROM_NAME[mod]}\nprint('IMPORTED')",
        f"from {mod} import {FROM_NAME[mod]} as x\nprint('IMPORTED')",
        f"import json, {mod}\nprint('IMPORTED')",
        f"def f():\n    import {mod}\n    return {mod}\nf()\nprint('IMPORTED')",
    ]
    interp = make_interp()
    for code in forms:
        res = assert_refused(interp, canary, code, DENIED)
        assert "IMPORTED" not in res.stdout, code
        assert res.error is not None and mod in res.error.message, res.error


@pytest.mark.parametrize(
    "code",
    [
        "import os.path\nprint(os.path.exists(PATH))",
        "from os import path\nprint('IMPORTED')",
        "from os.path import join\nprint('IMPORTED')",
        "import importlib.util\nprint('IMPORTED')",
        "import importlib.machinery\nprint('IMPORTED')",
        "import multiprocessing.pool\nprint('IMPORTED')",
        "import ctypes.util\nprint('IMPORTED')",
        "from xml.etree import ElementTree\nprint('IMPORTED')",
        "import os\nprint(os.environ[ENVNAME])",
        "import io\nio.open(PATH, 'w').close()",
        "import pathlib\npathlib.Path(PATH).touch()",
        "import sys\nprint(sys.modules['os'].environ[ENVNAME])",
        "from . import x",
        "from .. import os",
    ],
    ids=[
        "os.path",
        "from-os-path",
        "from-os.path",
        "importlib.util",
        "importlib.machinery",
        "multiprocessing.pool",
        "ctypes.util",
        "xml-unauthorized",
        "os-environ",
        "io-open",
        "pathlib-touch",
        "sys-modules",
        "relative",
        "relative-parent",
    ],
)
def test_submodule_and_relative_imports_refused(
    make_interp: MakeInterp, canary: Canary, code: str
) -> None:
    res = assert_refused(make_interp(), canary, code, DENIED_OR_ERROR)
    assert "IMPORTED" not in res.stdout


# Not on the never-list, but not authorized by default, and each reaches the OS.
UNAUTHORIZED = [
    "posix",
    "_thread",
    "_posixsubprocess",
    "_io",
    "_ctypes",
    "_pickle",
    "_socket",
    "mmap",
    "resource",
    "fcntl",
    "select",
    "faulthandler",
    "runpy",
    "zipimport",
    "webbrowser",
    "urllib.request",
    "http.client",
    "asyncio",
    "concurrent.futures",
    "warnings",
    "doctest",
    "sysconfig",
    "site",
    "__main__",
    "codecs",
    "copyreg",
    "numpy",
]


@pytest.mark.parametrize("mod", UNAUTHORIZED)
def test_unauthorized_modules_refused_by_default(
    make_interp: MakeInterp, canary: Canary, mod: str
) -> None:
    res = assert_refused(make_interp(), canary, f"import {mod}\nprint('IMPORTED')", DENIED)
    assert "IMPORTED" not in res.stdout


@pytest.mark.parametrize(
    "code",
    [
        "__import__('os').open(PATH, 65)",
        "__builtins__['__import__']('os')",
        "__loader__.load_module('os')",
        "__spec__.loader.load_module('os')",
        "imp = __import__\nimp('os')",
    ],
    ids=["dunder-import", "builtins-dict", "loader", "spec", "alias"],
)
def test_dunder_import_paths_refused(make_interp: MakeInterp, canary: Canary, code: str) -> None:
    assert_refused(make_interp(), canary, code, DENIED, static=True)


# ---- authorizing a never-list module needs the loudly named unsafe option


@pytest.mark.parametrize(
    "authorized",
    [
        ("os",),
        ("sys",),
        ("subprocess",),
        ("builtins",),
        ("importlib",),
        ("ctypes",),
        ("pickle",),
        ("io",),
        ("types",),
        ("os.*",),
        ("os.path",),
    ],
    ids=lambda a: a[0],
)
def test_authorizing_never_list_is_refused(
    make_interp: MakeInterp, canary: Canary, authorized: tuple[str, ...]
) -> None:
    """The constructor refuses, or the import stays denied: either way no module object."""
    mod = authorized[0].split(".")[0]
    try:
        interp = make_interp(authorized_imports=authorized)
    except Exception as exc:
        assert mod in str(exc), f"refusal does not name the module: {exc!r}"
        return
    res = assert_refused(interp, canary, f"import {mod}\nprint('IMPORTED')", DENIED)
    assert "IMPORTED" not in res.stdout


def test_wildcard_does_not_unlock_never_list(make_interp: MakeInterp, canary: Canary) -> None:
    """`"*"` (smolagents-compatible "anything") still stops at the never-list and its C aliases."""
    try:
        interp = make_interp(authorized_imports=("*",))
    except Exception as exc:
        pytest.fail(f"'*' is a supported pattern and must not be refused: {exc!r}")
    ok = interp.run("import json, math\njson.dumps([math.floor(1.5)])")
    assert verdict_of(ok) is Verdict.OK, ok.error
    for mod in [
        *(m for m in NEVER if m not in FACADES),
        "posix",
        "_posixsubprocess",
        "_io",
        "_thread",
        "_socket",
        "_ctypes",
        "_pickle",
    ]:
        res = assert_refused(interp, canary, f"import {mod}\nprint('IMPORTED')", DENIED)
        assert "IMPORTED" not in res.stdout, mod


# ---- authorized modules never hand out a module that is not itself authorized

LEAK_CASES = [
    ("json.codecs", "import json\njson.codecs.open(PATH, 'w').close()"),
    ("from-json-import-codecs", "from json import codecs\ncodecs.open(PATH, 'w').close()"),
    ("enum.bltns", "import enum\nenum.bltns.open(PATH, 'w').close()"),
    ("from-enum-import-bltns", "from enum import bltns\nbltns.open(PATH, 'w').close()"),
    ("dataclasses.builtins", "import dataclasses\ndataclasses.builtins.open(PATH, 'w').close()"),
    ("dataclasses.inspect", "import dataclasses\nprint(dataclasses.inspect.currentframe())"),
    (
        "dataclasses.sys",
        "import dataclasses\nprint(dataclasses.sys.modules['os'].environ[ENVNAME])",
    ),
    ("typing.sys", "import typing\nprint(typing.sys.modules['os'].environ[ENVNAME])"),
    ("from-typing-import-sys", "from typing import sys\nprint(sys.modules['os'].environ[ENVNAME])"),
    ("typing.types", "import typing\nprint(typing.types.FunctionType)"),
    ("typing.warnings", "import typing\nprint(typing.warnings.sys)"),
    ("datetime.sys", "import datetime\nprint(datetime.sys.modules['os'].environ[ENVNAME])"),
    ("statistics.sys", "import statistics\nprint(statistics.sys.modules['os'].environ[ENVNAME])"),
    ("fractions.sys", "import fractions\nprint(fractions.sys.modules['os'].environ[ENVNAME])"),
    ("re.copyreg", "import re\nprint(re.copyreg)"),
    (
        "collections-private-sys",
        "import collections\nprint(collections._sys.modules['os'].environ[ENVNAME])",
    ),
    ("statistics.random._os", "import statistics\nstatistics.random._os.open(PATH, 65)"),
    (
        "getattr-module-sys",
        "import typing\nprint(getattr(typing, 'sy' + 's').modules['os'].environ[ENVNAME])",
    ),
    ("module-function-globals", "import json\nprint(json.dumps.__globals__['codecs'])"),
    (
        "json.decoder-chain",
        # json's own modules are reachable (issue 14); a module json imported is not.
        "import json\nd = json.decoder\nprint(getattr(d, 'sc' + 'anner'), getattr(json, 'cod' + 'ecs'))",
    ),
]


@pytest.mark.parametrize("code", [c for _, c in LEAK_CASES], ids=[i for i, _ in LEAK_CASES])
def test_module_attribute_leaks_refused(make_interp: MakeInterp, canary: Canary, code: str) -> None:
    res = assert_refused(make_interp(), canary, code, DENIED_OR_ERROR)
    for leak in (
        "<module 'sys'",
        "<module 'types'",
        "<module 'copyreg'",
        "<module 'inspect'",
        "<frame",
    ):
        assert leak not in res.stdout


def test_module_attribute_leak_refused_for_extra_modules(
    make_interp: MakeInterp, canary: Canary
) -> None:
    """`queue` authorized does not authorize `queue.threading` (smolagents tests)."""
    interp = make_interp(authorized_imports=("queue",))
    ok = interp.run("import queue\nq = queue.Queue()\nq.put(1)\nq.get()")
    assert verdict_of(ok) is Verdict.OK, ok.error
    assert ok.value is not None and ok.value.repr == "1"
    for code in (
        "import queue\nqueue.threading.Thread(target=print, args=('THREAD',)).start()",
        "import queue\nt = getattr(queue, 'thread' + 'ing')\nprint(t)",
        "from queue import threading\nprint(threading)",
        "import queue\nprint(queue.threading._sys.modules['os'].environ[ENVNAME])",
        "import queue\nprint(queue.types.FunctionType)",
    ):
        res = assert_refused(interp, canary, code, DENIED_OR_ERROR)
        assert "THREAD" not in res.stdout and "<module" not in res.stdout


def test_wildcard_submodule_pattern_does_not_leak_never_list(
    make_interp: MakeInterp, canary: Canary
) -> None:
    """`numpy.*` authorizes numpy's submodules but not the os/ctypes/subprocess they import."""
    interp = make_interp(authorized_imports=("numpy.*",))
    ok = interp.run("import numpy as np\nint(np.array([1, 2]).sum())")
    assert verdict_of(ok) is Verdict.OK, ok.error
    for code in (
        "import numpy\nprint(numpy.ctypeslib.ctypes)",
        "import numpy.ctypeslib as c\nprint(c.ctypes.CDLL)",
        "import numpy.f2py as f\nf.subprocess.run(['touch', PATH])",
        "import numpy.f2py as f\nprint(f.os.environ[ENVNAME])",
        "from numpy.f2py import os\nprint(os.environ[ENVNAME])",
    ):
        res = assert_refused(interp, canary, code, DENIED_OR_ERROR)
        assert "<module" not in res.stdout


# ---- eval sinks: host code that evaluates strings (where the AST check cannot look)

EVAL_SINKS = [
    (
        "get-type-hints-string-annotation",
        'import typing\ndef f(x: "SUBCLASS_OPEN"):\n    pass\ntyping.get_type_hints(f)',
    ),
    (
        "typing-list-forward-ref",
        'import typing\ndef f(x: typing.List["SUBCLASS_OPEN"]):\n    pass\ntyping.get_type_hints(f)',
    ),
    (
        "typing-forwardref",
        'import typing\nr = typing.ForwardRef("SUBCLASS_OPEN")\ndef f(x: r):\n    pass\ntyping.get_type_hints(f)',
    ),
    (
        "class-annotation",
        'import typing\nclass C:\n    x: "SUBCLASS_OPEN"\ntyping.get_type_hints(C)',
    ),
    (
        "namedtuple-field-type",
        'import typing\nN = typing.NamedTuple("N", [("x", "SUBCLASS_OPEN")])\ntyping.get_type_hints(N)',
    ),
    (
        "typeddict-field-type",
        'import typing\nT = typing.TypedDict("T", {"x": "SUBCLASS_OPEN"})\ntyping.get_type_hints(T)',
    ),
    (
        "singledispatch-register",
        "import functools\n@functools.singledispatch\ndef f(x):\n    return 0\n"
        '@f.register\ndef g(x: "SUBCLASS_OPEN"):\n    return 1\nf(1)',
    ),
    (
        "future-annotations",
        'from __future__ import annotations\nimport typing\ndef f(x: "SUBCLASS_OPEN") -> int:\n    pass\n'
        "typing.get_type_hints(f)",
    ),
    (
        "dataclass-string-annotation",
        'import dataclasses, typing\n@dataclasses.dataclass\nclass D:\n    x: "SUBCLASS_OPEN" = 1\n'
        "typing.get_type_hints(D)",
    ),
]


@pytest.mark.parametrize("code", [c for _, c in EVAL_SINKS], ids=[i for i, _ in EVAL_SINKS])
def test_eval_sinks_do_not_run_strings(make_interp: MakeInterp, canary: Canary, code: str) -> None:
    # Refusing, raising, or evaluating safely are all acceptable; creating the file is not.
    assert_refused(
        make_interp(), canary, code, frozenset({Verdict.POLICY_DENIED, Verdict.ERROR, Verdict.OK})
    )


def test_eval_sink_env_leak(make_interp: MakeInterp, canary: Canary) -> None:
    # A list is not a type: typing's error message (or the printed hints) would carry it out.
    payload = (
        "[[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'catch_warnings'][0]()"
        "._module.sys.modules['os'].environ[ENVNAME]]"
    )
    code = f'import typing\ndef f(x: "{payload}"):\n    pass\nprint(typing.get_type_hints(f))'
    assert_refused(
        make_interp(), canary, code, frozenset({Verdict.POLICY_DENIED, Verdict.ERROR, Verdict.OK})
    )
