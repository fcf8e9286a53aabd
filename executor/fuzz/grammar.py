"""Grammar-based generation of escape attempts.

A program is: some imports, a *source* object bound to a name, a chain of
attribute *steps* (each spelled in one of several ways), and a *sink* that
prints the marker. Every chain that reaches the sink contains at least one
forbidden step (a `_` name or an introspection name the policy refuses), so a
printed marker always means that a forbidden step succeeded. Chains of only
allowed steps are generated too (they exercise the allowed paths) but print
without the marker.

The programs are then wrapped by the same mutators as the corpus (function,
class, decorator, try, lambda...), so the grammar covers "where" as well as
"what".
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from executor.fuzz.corpus import MARKER
from executor.fuzz.mutators import mutate

# (setup statements, expression) for objects an attacker starts from.
SOURCES: tuple[tuple[str, str], ...] = (
    ("", "()"),
    ("", "''"),
    ("", "1"),
    ("", "[]"),
    ("", "{}"),
    ("", "print"),
    ("", "len"),
    ("", "type(1)"),
    ("", "(x for x in [1])"),
    ("", "lambda: 0"),
    ("def fn():\n    return 1\n", "fn"),
    ("def gen():\n    yield 1\n", "gen()"),
    ("class K:\n    def m(self):\n        return 1\n", "K()"),
    ("class K:\n    pass\n", "K"),
    ("try:\n    1 / 0\nexcept Exception as exc:\n    caught = exc\n", "caught"),
    ("import math\n", "math"),
    ("import json\n", "json"),
    ("import random\n", "random"),
    ("import string\n", "string"),
    ("import datetime\n", "datetime"),
    ("import statistics\n", "statistics"),
    ("import collections\n", "collections"),
    ("import functools\n", "functools"),
    ("import re\n", "re"),
    ("import typing\n", "typing"),
    ("import dataclasses\n", "dataclasses"),
    ("import queue\n", "queue"),
)

# Refused by the policy wherever they appear (issue 2): '_' names and introspection names.
# Not here: the dunders the policy lets snippets read on purpose (__init__ for
# `Base.__init__(self)`, __name__, __doc__...: executor.interpreter.rules.READABLE_DUNDERS).
FORBIDDEN_ATTRS: tuple[str, ...] = (
    "__class__",
    "__bases__",
    "__base__",
    "__mro__",
    "__subclasses__",
    "__globals__",
    "__builtins__",
    "__dict__",
    "__self__",
    "__code__",
    "__closure__",
    "__traceback__",
    "__reduce_ex__",
    "__getattribute__",
    "__loader__",
    "__spec__",
    "_os",
    "_sys",
    "gi_frame",
    "gi_code",
    "f_back",
    "f_globals",
    "f_locals",
    "f_builtins",
    "tb_frame",
    "tb_next",
    "co_code",
    "co_consts",
    "mro",
)
# Module-valued attributes that are not authorized modules (refused by the module proxies).
FORBIDDEN_MODULE_ATTRS: tuple[str, ...] = (
    "sys",
    "inspect",
    "builtins",
    "types",
    "threading",
    "bltns",
    "copyreg",
)
ALLOWED_ATTRS: tuple[str, ...] = (
    "real",
    "upper",
    "keys",
    "append",
    "join",
    "pi",
    "dumps",
    "args",
    "count",
    "name",
)


@dataclass(frozen=True)
class Program:
    code: str
    forbidden: bool  # the chain has a forbidden step (so the sink prints the marker)
    shape: str  # short description for the report


def _step(rng: random.Random, expr: str, attr: str) -> str:
    style = rng.choice(
        (
            *("dot", "dot", "getattr", "getattr_built", "attrgetter", "format", "map", "vars"),
            *("format_map", "formatter", "methodcaller", "fstring"),
        )
    )
    if style == "dot" and attr.isidentifier():
        return f"{expr}.{attr}"
    if style == "getattr_built":
        cut = rng.randrange(1, len(attr)) if len(attr) > 1 else 1
        return f"getattr({expr}, {attr[:cut]!r} + {attr[cut:]!r})"
    if style == "attrgetter":
        return f"operator.attrgetter({attr!r})({expr})"
    if style == "format":
        return f"'{{0.{attr}}}'.format({expr})"
    if style == "map":
        return f"list(map(lambda o: getattr(o, {attr!r}), [{expr}]))[0]"
    if style == "vars":
        return f"vars({expr})[{attr!r}]"
    if style == "format_map":
        return f"'{{o.{attr}}}'.format_map({{'o': {expr}}})"
    if style == "formatter":
        return f"string.Formatter().get_field('0.{attr}', [{expr}], {{}})[0]"
    if style == "methodcaller":
        return f"operator.methodcaller('__getattribute__', {attr!r})({expr})"
    if style == "fstring" and attr.isidentifier():
        return f"f'{{{expr}.{attr}}}'"
    return f"getattr({expr}, {attr!r})"


def program(rng: random.Random) -> Program:
    """One random escape attempt (before wrapping)."""
    setup, source = rng.choice(SOURCES)
    lines = ["import operator", "import string"]
    if setup:
        lines.append(setup.rstrip("\n"))
    lines.append(f"v0 = {source}")
    n_steps = rng.randint(1, 4)
    forbidden = False
    names = []
    for i in range(n_steps):
        roll = rng.random()
        if roll < 0.6:
            attr = rng.choice(FORBIDDEN_ATTRS)
            forbidden = True
        elif roll < 0.75:
            attr = rng.choice(FORBIDDEN_MODULE_ATTRS)
            forbidden = True
        else:
            attr = rng.choice(ALLOWED_ATTRS)
        names.append(attr)
        expr = _step(rng, f"v{i}", attr)
        if rng.random() < 0.2 and not expr.endswith("'"):
            expr = f"{expr}()"  # call what we reached (e.g. __subclasses__())
        if rng.random() < 0.15:
            expr = f"{expr}[0]"
        lines.append(f"v{i + 1} = {expr}")
    last = f"v{n_steps}"
    if forbidden:
        lines.append(f"print({MARKER!r}, {last})")
    else:
        lines.append(f"print('reached', {last} is not None)")
    return Program(code="\n".join(lines) + "\n", forbidden=forbidden, shape=".".join(names))


def generate_program(rng: random.Random) -> tuple[str, Program, list[str]]:
    """A grammar program, wrapped by 0-2 mutators: (code, program, mutations)."""
    prog = program(rng)
    wraps = rng.randint(0, 2)
    if wraps:
        out = mutate(prog.code, rng, steps=wraps)
        if out is not None:
            return out[0], prog, out[1]
    return prog.code, prog, []
