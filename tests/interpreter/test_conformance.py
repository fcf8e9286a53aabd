"""Ordinary snippets give exactly what plain CPython gives.

Every snippet in the table runs twice in this process: under plain CPython
(`exec` in a fresh dict, print output captured, the last expression statement
evaluated REPL-style) and under a fresh `Interpreter`. Printed output and the
repr of the last value must be identical. The table covers the language
features an LLM-written snippet uses, the standard modules of the default safe
list, and the places where smolagents' LocalPythonExecutor deviates from
CPython (functions that copy globals at call time, fuzzy-matched undefined
names, ignored decorators, `a, *b = ...`): there Corral must behave like
CPython. Sources of behaviours: CPython's language reference and smolagents'
tests/test_local_python_executor.py (the cases that are correct Python).
"""

from __future__ import annotations

import ast
import contextlib
import io
import textwrap
from typing import Any

import pytest

from executor.interpreter import Interpreter, Limits, Verdict
from tests.interpreter.conftest import verdict_of

LIMITS = Limits(wall_time_s=5.0)


def d(code: str) -> str:
    return textwrap.dedent(code).strip("\n") + "\n"


# (id, code). Values are small and have deterministic reprs (no addresses).
CASES: list[tuple[str, str]] = [
    # ---- arithmetic and numbers
    ("int-arith", "(7 + 3) * 2 - 4 // 3 % 5"),
    ("true-division", "7 / 2, -7 // 2, -7 % 3"),
    ("power-and-neg", "2 ** 10, (-2) ** 3, 2 ** -1"),
    ("divmod-abs-round", "divmod(17, 5), abs(-3.5), round(2.675, 2), round(7.5)"),
    ("float-fmt", "0.1 + 0.2, 1e300 * 10, float('nan') == float('nan')"),
    ("bitwise", "(0b1010 & 0b0110, 5 | 2, 5 ^ 1, ~5, 1 << 10, 1024 >> 3)"),
    ("complex", "(1 + 2j) * (3 - 1j), abs(3 + 4j)"),
    ("big-int", "2 ** 200 + 1"),
    ("chained-compare", "0 <= -1 < 4, 0 <= 3 < 4, 1 < 2 > 0 == 0"),
    ("bool-ops", "(None or '' or 'found'), ('a' and ''), not 0, (1 and 2 and 3)"),
    (
        "int-conversions",
        "int('42'), int('ff', 16), float('3.5'), str(10), bin(5), hex(255), oct(8)",
    ),
    ("min-max-sum", "min([3, 1, 2]), max('abc'), sum(range(101)), sum([0.5, 0.25], 1)"),
    ("aug-assign", "x = 5\nx += 3\nx *= 2\nx -= 1\nx //= 3\nx **= 2\nx %= 7\nx"),
    ("list-inplace-repeat", "x = [1, 2]\nx *= 2\nx"),
    # ---- strings
    ("str-methods", "'hello'.replace('h', 'o').split('e')"),
    ("str-more", "' Ab c '.strip().lower(), 'a,b,,c'.split(','), '-'.join('xyz'), 'abc'.upper()"),
    (
        "str-find",
        "'banana'.find('an'), 'banana'.rfind('an'), 'banana'.count('a'), 'ban' in 'banana'",
    ),
    ("str-predicates", "'abc'.isalpha(), '123'.isdigit(), 'Ab'.istitle(), ' '.isspace()"),
    ("str-format-method", "'{} + {} = {}'.format(1, 2, 3)"),
    ("str-format-named", "'{name} is {age:>4}'.format(name='Ann', age=7)"),
    ("str-format-index", "'{0[1]} {1[k]}'.format([1, 2], {'k': 'v'})"),
    ("str-format-map", "'{a}-{b}'.format_map({'a': 1, 'b': 2})"),
    ("percent-format", "'%s has %d items (%.2f%%)' % ('cart', 3, 12.345)"),
    ("f-string-basic", "x = 3.336\nf'x is {x:.2f}, {x!r}, {x=}'"),
    ("f-string-nested-spec", "x, width, precision = 3.336, 10, 2\nf'[{x:>{width}.{precision}f}]'"),
    ("f-string-expr", "items = ['a', 'b']\nf\"{len(items)} items: {', '.join(items)!s:>10}\""),
    ("str-slicing", "s = 'hello world'\ns[1:3], s[::-1], s[-5:], s[::2], s[100:]"),
    ("str-join-comp", "''.join(c.lower() for c in 'THESEAGULL43' if c.isalpha())"),
    ("str-encode", "'héllo'.encode('utf-8'), b'abc'.decode(), bytes([65, 66])"),
    ("str-misc", "'a b c'.partition(' '), 'x'.center(5, '*'), 'abc'.zfill(5), 'Hello'.swapcase()"),
    ("ord-chr", "[ord(c) for c in 'AZ'], chr(97), repr('quote\\'s')"),
    ("multiline-string", "s = '''line1\nline2'''\ns.splitlines()"),
    # ---- lists, tuples, dicts, sets
    (
        "list-ops",
        "a = [3, 1, 2]\na.append(5)\na.extend([0])\na.insert(1, 9)\na.remove(9)\na.pop(), a",
    ),
    ("list-sort", "a = [3, 1, 2]\na.sort(reverse=True)\na"),
    ("sorted-key", "sorted(['bb', 'a', 'ccc'], key=len), sorted([(1, 'b'), (1, 'a'), (0, 'z')])"),
    (
        "sorted-key-lambda",
        "people = [('ann', 31), ('bob', 25)]\nsorted(people, key=lambda p: p[1])",
    ),
    ("list-slice-assign", "a = list(range(6))\na[1:3] = ['x']\ndel a[-1]\na[::2]"),
    ("tuple-ops", "t = (1, 2, 3)\nt[1], t + (4,), t * 2, t.index(3), len(t)"),
    (
        "dict-ops",
        "dd = {'a': 1}\ndd['b'] = 2\ndd.update(c=3)\ndd.get('z', 0), dd.pop('a'), dd, list(dd.items())",
    ),
    ("dict-methods", "dd = {}\ndd.setdefault('k', []).append(1)\ndd, {'x': 1} | {'y': 2}"),
    ("dict-ordering", "dd = {'z': 1, 'a': 2}\ndd['m'] = 3\nlist(dd), list(dd.values())"),
    (
        "set-ops",
        "s1, s2 = {1, 2, 3}, {2, 3, 4}\nsorted(s1 & s2), sorted(s1 | s2), sorted(s1 - s2), sorted(s1 ^ s2)",
    ),
    (
        "set-methods",
        "s = {'a', 'b', 'c'}\nsorted(s.difference({'b'})), sorted(s.intersection({'b', 'c', 'd'}))",
    ),
    ("frozenset", "frozenset([1, 2]) == frozenset([2, 1]), len(frozenset('aab'))"),
    (
        "nested-subscript-aug",
        "counts = {'a': 0}\ncounts['a'] += 1\nlst = [[1], [2]]\nlst[1][0] *= 10\ncounts, lst",
    ),
    (
        "swap",
        "digits, i = [1, 2, 3], 1\ndigits[i], digits[i + 1] = digits[i + 1], digits[i]\ndigits",
    ),
    ("chained-assign", "a = b = (lambda: 1)()\na, b"),
    ("multi-target-assign", "a, b = c, dd = 1, 2\na, b, c, dd"),
    (
        "enumerate-zip",
        "list(enumerate('ab', 1)), list(zip([1, 2], 'xy')), dict(zip('ab', range(2)))",
    ),
    ("reversed-range", "list(reversed(range(0, 10, 3))), range(5)[-1], 3 in range(5)"),
    (
        "any-all-filter-map",
        "any([0, 1]), all([]), list(filter(None, [0, 1, 2])), list(map(str, [1, 2]))",
    ),
    ("isinstance-type", "isinstance(1, (int, str)), type('x') is str, issubclass(bool, int)"),
    ("hash-len-id-free", "len({'a': 1}), hash(1) == hash(1.0), callable(len)"),
    # ---- unpacking
    ("star-unpack-assign", "a, *b = [1, 2, 3]\na, b"),
    ("star-unpack-middle", "first, *mid, last = range(6)\nfirst, mid, last"),
    ("star-unpack-nested", "(a, b), *rest = [(1, 2), 3, 4]\na, b, rest"),
    ("star-in-list-literal", "x, y = [1, 2], (3, 4)\n[*x, *y, 5]"),
    ("star-in-set-tuple", "x = [1, 1, 2]\n{*x}, (*x, 0)"),
    ("double-star-dict", "d1 = {'a': 1}\n{**d1, 'b': 2, **{'a': 3}}"),
    (
        "star-call",
        "def f(a, b, c): return a + b * c\nargs = [1, 2]\nf(*args, 3), f(**{'a': 1, 'b': 2, 'c': 3})",
    ),
    (
        "for-tuple-target",
        "res = []\nfor a, (b, c) in [(1, (2, 3)), (4, (5, 6))]:\n    res.append(a + b + c)\nres",
    ),
    ("for-star-target", "out = []\nfor h, *t in ['abc', 'de']:\n    out.append((h, t))\nout"),
    # ---- comprehensions
    ("listcomp", "[i * i for i in range(5) if i % 2 == 0]"),
    ("listcomp-nested", "[(i, j) for i in range(3) for j in range(i)]"),
    ("listcomp-of-listcomp", "[[i * j for j in range(3)] for i in range(3)]"),
    ("setcomp", "{entry['time'] for entry in [{'time': 10}, {'time': 19}, {'time': 10}]}"),
    ("dictcomp", "{num: name for num, name in {101: 'a', 102: 'b'}.items() if name not in ['a']}"),
    (
        "dictcomp-tuple-unpack",
        "shifts = {'A': ('6:45', '8:00')}\n{w: (s, e) for w, (s, e) in shifts.items()}",
    ),
    ("genexp", "a = [1, 2, 3]\nb = (i ** 2 for i in a)\nlist(b), sum(x for x in range(4))"),
    ("comp-scope", "x = 'outer'\n[x for x in range(2)], x"),
    ("comp-uses-global-in-fn", "k = 10\ndef f():\n    return [k + i for i in range(3)]\nf()"),
    # ---- walrus
    ("walrus-if", "data = [1, 2, 3, 4]\nif (n := len(data)) > 3:\n    print(n)\nn"),
    ("walrus-comp", "data = [1, 2, 3]\n[y for x in data if (y := x * 2) > 2], y"),
    (
        "walrus-while",
        "it = iter([1, 2, 0, 3])\nout = []\nwhile (v := next(it)):\n    out.append(v)\nout",
    ),
    # ---- control flow
    (
        "if-elif-else",
        "x = 5\nif x > 10:\n    r = 'big'\nelif x > 3:\n    r = 'mid'\nelse:\n    r = 'small'\nr",
    ),
    ("while-break-else", "i = 0\nwhile True:\n    i += 1\n    if i == 3:\n        break\ni"),
    ("for-else", "for i in range(3):\n    pass\nelse:\n    print('done', i)"),
    (
        "for-continue",
        "total = 0\nfor i in range(10):\n    if i % 2:\n        continue\n    total += i\ntotal",
    ),
    ("ternary", "x = 4\n'even' if x % 2 == 0 else 'odd'"),
    ("pass-ellipsis", "def f():\n    ...\nf() is None"),
    ("assert-ok", "assert 1 == 1, 'never'\n'fine'"),
    # ---- functions
    ("def-defaults", "def f(a, b=333, n=1000):\n    return b + n\nf(1, n=667)"),
    ("kw-only", "def f(a, *, b=2, c):\n    return a + b + c\nf(1, c=3), f(1, b=0, c=1)"),
    ("pos-only", "def f(a, /, b, *, c=0):\n    return (a, b, c)\nf(1, 2), f(1, b=3, c=4)"),
    (
        "varargs-kwargs",
        "def f(*args, **kwargs):\n    return sum(args) + sum(kwargs.values()), sorted(kwargs)\nf(1, 2, 3, x=4, y=5)",
    ),
    ("lambda-defaults", "fs = [lambda i=i: i * 10 for i in range(3)]\n[f() for f in fs]"),
    ("lambda-closure-late", "fs = [lambda: i for i in range(3)]\n[f() for f in fs]"),
    ("nested-lambda", "add = lambda x: lambda y: x + y\nadd(2)(3)"),
    (
        "closure-nonlocal",
        "def counter():\n    n = 0\n    def inc():\n        nonlocal n\n        n += 1\n        return n\n    return inc\nc = counter()\nc(), c(), c()",
    ),
    (
        "global-in-fn",
        "count = 0\ndef bump():\n    global count\n    count += 1\nbump()\nbump()\ncount",
    ),
    ("fn-sees-later-global", "def f():\n    return g() + 1\ndef g():\n    return 41\nf()"),
    ("fn-sees-updated-global", "x = 1\ndef f():\n    return x\nx = 2\nf()"),
    (
        "fn-global-mutation-visible",
        "data = []\ndef add(v):\n    data.append(v)\nadd(1)\nadd(2)\ndata",
    ),
    ("recursion-fib", "def fib(n):\n    return n if n <= 1 else fib(n - 1) + fib(n - 2)\nfib(15)"),
    (
        "recursion-mutual",
        "def even(n):\n    return True if n == 0 else odd(n - 1)\ndef odd(n):\n    return False if n == 0 else even(n - 1)\neven(10), odd(7)",
    ),
    ("early-return", "def f(n):\n    if n > 0:\n        return 'pos'\n    return\nf(1), f(-1)"),
    ("default-mutable", "def f(x, acc=[]):\n    acc.append(x)\n    return acc\nf(1)\nf(2)"),
    ("fn-docstring-name", "def f():\n    'doc'\n    return 1\nf()"),
    ("call-from-dict", "dd = {'func': lambda x: x + 10}\ndd['func'](1)"),
    (
        "subscript-call",
        "def foo(x, y): return x * y\ndef boo(y): return y ** 3\nfun = [foo, boo]\nfun[0](4, 2), fun[1](4)",
    ),
    # ---- decorators (smolagents ignores them; CPython applies them)
    (
        "decorator-applied",
        d("""
        def twice(fn):
            def wrapper(*a, **k):
                return fn(*a, **k) * 2
            return wrapper
        @twice
        def three():
            return 3
        three()
    """),
    ),
    (
        "decorator-with-args",
        d("""
        def tag(label):
            def deco(fn):
                def wrapper(x):
                    return f'{label}:{fn(x)}'
                return wrapper
            return deco
        @tag('a')
        @tag('b')
        def ident(x):
            return x
        ident(1)
    """),
    ),
    (
        "decorator-registry",
        d("""
        registry = []
        def register(fn):
            registry.append(fn)
            return fn
        @register
        def one():
            return 1
        len(registry), registry[0] is one, one()
    """),
    ),
    (
        "functools-wraps",
        d("""
        import functools
        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*a):
                print('calling')
                return fn(*a)
            return wrapper
        @logged
        def add(a, b):
            return a + b
        add(2, 3)
    """),
    ),
    # ---- generators
    ("generator-yield", "def gen():\n    yield 1\n    yield 2\n    return 3\nlist(gen())"),
    (
        "generator-next",
        "def gen():\n    for i in range(3):\n        yield i * i\ng = gen()\nnext(g), next(g), next(g), next(g, 'done')",
    ),
    (
        "generator-send",
        d("""
        def acc():
            total = 0
            while True:
                v = yield total
                total += v
        g = acc()
        next(g)
        g.send(5), g.send(10)
    """),
    ),
    (
        "yield-from",
        "def inner():\n    yield 1\n    yield 2\n    return 'r'\ndef outer():\n    r = yield from inner()\n    yield r\nlist(outer())",
    ),
    (
        "generator-return-value",
        d("""
        def g():
            yield 1
            return 'ret'
        it = g()
        next(it)
        try:
            next(it)
        except StopIteration as e:
            print(e.value)
    """),
    ),
    (
        "infinite-gen-islice",
        "import itertools\ndef nat():\n    n = 0\n    while True:\n        yield n\n        n += 1\nlist(itertools.islice(nat(), 5))",
    ),
    # ---- exceptions
    (
        "try-except-else-finally",
        d("""
        def f(x):
            out = []
            try:
                out.append(10 // x)
            except ZeroDivisionError as e:
                out.append(str(e))
            else:
                out.append('else')
            finally:
                out.append('finally')
            return out
        f(2), f(0)
    """),
    ),
    (
        "except-tuple",
        "try:\n    int('x')\nexcept (TypeError, ValueError) as e:\n    r = repr(e)\nr",
    ),
    (
        "raise-from",
        d("""
        try:
            try:
                {}['k']
            except KeyError as e:
                raise ValueError('wrapped') from e
        except ValueError as e:
            print(repr(e), isinstance(e, ValueError))
    """),
    ),
    (
        "reraise",
        "try:\n    try:\n        1 / 0\n    except ZeroDivisionError:\n        raise\nexcept ArithmeticError as e:\n    print('caught', e)",
    ),
    (
        "custom-exception",
        d("""
        class AppError(Exception):
            def __init__(self, code):
                super().__init__(f'code {code}')
                self.code = code
        try:
            raise AppError(7)
        except AppError as e:
            print(e, e.code, e.args)
    """),
    ),
    (
        "exception-in-method",
        d("""
        class T:
            def boom(self):
                raise ValueError('An error occurred')
        try:
            T().boom()
        except ValueError as e:
            msg = str(e)
        msg
    """),
    ),
    (
        "finally-order",
        "def f():\n    try:\n        print('body')\n        return 'r'\n    finally:\n        print('fin')\nf()",
    ),
    (
        "nested-loop-break-finally",
        "for i in range(3):\n    try:\n        if i == 1:\n            break\n    finally:\n        print('f', i)",
    ),
    # ---- with
    (
        "with-user-cm",
        d("""
        class Lock:
            def __init__(self):
                self.locked = False
            def __enter__(self):
                self.locked = True
                return self
            def __exit__(self, exc_type, exc, tb):
                self.locked = False
                return False
        lock = Lock()
        with lock as held:
            inside = held.locked
        inside, lock.locked
    """),
    ),
    (
        "with-suppress-user",
        d("""
        class Quiet:
            def __enter__(self):
                return self
            def __exit__(self, exc_type, exc, tb):
                print('exit', exc_type is ValueError)
                return exc_type is ValueError
        with Quiet():
            raise ValueError('hidden')
        'after'
    """),
    ),
    (
        "with-multiple",
        d("""
        class CM:
            def __init__(self, n):
                self.n = n
            def __enter__(self):
                print('enter', self.n)
                return self.n
            def __exit__(self, *exc):
                print('exit', self.n)
        with CM(1) as a, CM(2) as b:
            print(a + b)
    """),
    ),
    # ---- classes
    (
        "class-basic",
        d("""
        class MyClass:
            '''A class with a value.'''
            def __init__(self, value):
                self.value = value
            def get_value(self):
                return self.value
        MyClass(42).get_value()
    """),
    ),
    (
        "class-inheritance-super",
        d("""
        class Animal:
            species = 'Generic'
            def __init__(self, name, age):
                self.name = name
                self.age = age
            def describe(self):
                return f'{self.name}, {self.age}'
        class Dog(Animal):
            species = 'Canine'
            def __init__(self, name, age, breed):
                super().__init__(name, age)
                self.breed = breed
            def describe(self):
                return super().describe() + f', {self.breed}'
        class Cat(Animal):
            pass
        Dog('Fido', 3, 'Lab').describe(), Cat('Tom', 2).species, Dog.species
    """),
    ),
    (
        "class-super-method",
        d("""
        class A:
            def hello(self):
                return 'A'
        class B(A):
            def hello(self):
                return 'B>' + super().hello()
        class C(B):
            def hello(self):
                return 'C>' + super().hello()
        C().hello()
    """),
    ),
    (
        "class-mro-diamond",
        d("""
        class Base:
            def who(self):
                return ['Base']
        class L(Base):
            def who(self):
                return ['L'] + super().who()
        class R(Base):
            def who(self):
                return ['R'] + super().who()
        class D(L, R):
            def who(self):
                return ['D'] + super().who()
        D().who()
    """),
    ),
    (
        "class-dunders",
        d("""
        class Vec:
            def __init__(self, x, y):
                self.x, self.y = x, y
            def __repr__(self):
                return f'Vec({self.x}, {self.y})'
            def __eq__(self, other):
                return (self.x, self.y) == (other.x, other.y)
            def __hash__(self):
                return hash((self.x, self.y))
            def __len__(self):
                return 2
            def __lt__(self, other):
                return (self.x, self.y) < (other.x, other.y)
        vs = [Vec(2, 1), Vec(1, 5)]
        sorted(vs), Vec(1, 2) == Vec(1, 2), len(Vec(0, 0)), len({Vec(1, 1), Vec(1, 1)})
    """),
    ),
    (
        "class-container-protocol",
        d("""
        class Bag:
            def __init__(self, items):
                self.items = list(items)
            def __iter__(self):
                return iter(self.items)
            def __getitem__(self, i):
                return self.items[i]
            def __contains__(self, x):
                return x in self.items
            def __call__(self, n):
                return self.items[:n]
        b = Bag('abc')
        list(b), b[1], 'c' in b, b(2)
    """),
    ),
    (
        "class-iterator-protocol",
        d("""
        class Countdown:
            def __init__(self, n):
                self.n = n
            def __iter__(self):
                return self
            def __next__(self):
                if self.n <= 0:
                    raise StopIteration
                self.n -= 1
                return self.n + 1
        list(Countdown(3))
    """),
    ),
    ("class-str", "class P:\n    def __str__(self):\n        return 'P!'\nprint(P())\nstr(P())"),
    (
        "class-property",
        d("""
        class Temp:
            def __init__(self, c):
                self.c = c
            @property
            def f(self):
                return self.c * 9 / 5 + 32
            @f.setter
            def f(self, value):
                self.c = (value - 32) * 5 / 9
        t = Temp(100)
        before = t.f
        t.f = 32
        before, t.c
    """),
    ),
    (
        "class-classmethod-staticmethod",
        d("""
        class Pt:
            count = 0
            def __init__(self, x):
                self.x = x
                Pt.count += 1
            @classmethod
            def origin(cls):
                return cls(0)
            @staticmethod
            def dist(a, b):
                return abs(a.x - b.x)
        Pt.dist(Pt.origin(), Pt(5)), Pt.count
    """),
    ),
    (
        "class-attr-aug-assign",
        "class Counter:\n    def __init__(self):\n        self.count = 0\nc = Counter()\nc.count += 1\nc.count += 1\nc.count",
    ),
    (
        "class-body-assign-target",
        d("""
        class Sub:
            attr1 = 1
        class Holder:
            data = Sub()
            data.attr1 = 'value1'
            data.attr2 = 'value2'
        Holder.data.attr1, Holder.data.attr2
    """),
    ),
    (
        "class-instance-isinstance",
        "class A: pass\nclass B(A): pass\nisinstance(B(), A), issubclass(B, A), isinstance(A(), B)",
    ),
    (
        "class-operator-overload",
        d("""
        class Money:
            def __init__(self, v):
                self.v = v
            def __add__(self, other):
                return Money(self.v + other.v)
            def __repr__(self):
                return f'Money({self.v})'
        Money(2) + Money(3)
    """),
    ),
    (
        "class-decorated-method",
        d("""
        def shout(fn):
            def w(self):
                return fn(self).upper()
            return w
        class G:
            @shout
            def hi(self):
                return 'hi'
        G().hi()
    """),
    ),
    # ---- dataclasses and enum
    (
        "dataclass-basic",
        d("""
        from dataclasses import dataclass, field
        @dataclass
        class Item:
            name: str
            qty: int = 1
            tags: list = field(default_factory=list)
        a = Item('x')
        b = Item('x', 1)
        a, a == b, Item('y', 2, ['t'])
    """),
    ),
    (
        "dataclass-order-frozen",
        d("""
        import dataclasses
        @dataclasses.dataclass(order=True, frozen=True)
        class V:
            major: int
            minor: int
        sorted([V(1, 2), V(0, 9)]), dataclasses.asdict(V(1, 0)), dataclasses.replace(V(1, 0), minor=5)
    """),
    ),
    (
        "enum-basic",
        d("""
        from enum import Enum, auto
        class Color(Enum):
            RED = 1
            GREEN = auto()
        Color.RED, Color(2).name, [c.value for c in Color], Color['RED'] is Color.RED
    """),
    ),
    (
        "enum-intenum-flag",
        "import enum\nclass P(enum.IntEnum):\n    LOW = 1\n    HIGH = 2\nP.HIGH > P.LOW, P.LOW + 1, enum.Flag is not None",
    ),
    # ---- match
    (
        "match-literal",
        d("""
        def f(cmd):
            match cmd:
                case 'go':
                    return 1
                case 'stop' | 'halt':
                    return 2
                case _:
                    return 0
        f('go'), f('halt'), f('x')
    """),
    ),
    (
        "match-sequence",
        d("""
        def f(v):
            match v:
                case []:
                    return 'empty'
                case [x]:
                    return f'one {x}'
                case [x, *rest]:
                    return f'{x} then {rest}'
        f([]), f([1]), f([1, 2, 3])
    """),
    ),
    (
        "match-mapping",
        d("""
        def f(ev):
            match ev:
                case {'type': 'click', 'pos': (x, y)}:
                    return x + y
                case {'type': t, **rest}:
                    return (t, rest)
        f({'type': 'click', 'pos': (1, 2)}), f({'type': 'key', 'k': 'a'})
    """),
    ),
    (
        "match-class-keyword",
        d("""
        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y
        def where(p):
            match p:
                case Point(x=0, y=0):
                    return 'origin'
                case Point(x=0, y=yy):
                    return f'y-axis {yy}'
                case Point():
                    return 'other'
        where(Point(0, 0)), where(Point(0, 4)), where(Point(1, 1))
    """),
    ),
    (
        "match-class-positional-dataclass",
        d("""
        from dataclasses import dataclass
        @dataclass
        class P:
            x: int
            y: int
        def f(p):
            match p:
                case P(0, y):
                    return y
                case P(x, y) if x > y:
                    return 'guard'
                case _:
                    return None
        f(P(0, 7)), f(P(5, 1)), f(P(1, 5))
    """),
    ),
    (
        "match-builtin-class-guard",
        d("""
        def kind(v):
            match v:
                case int(n) if n < 0:
                    return 'neg'
                case int() | float():
                    return 'num'
                case str() as s:
                    return 'str:' + s
        kind(-1), kind(2.5), kind('a')
    """),
    ),
    # ---- state of names: CPython semantics where smolagents deviates
    ("for-underscore", "total = 0\nfor _ in range(3):\n    total += 1\ntotal"),
    ("del-name", "x = 1\ny = 2\ndel x\ny"),
    ("print-kwargs", "print('a', 'b', sep='-', end='!\\n')\nprint()\nprint(1, [2], {'k': 3})"),
    (
        "print-in-function-and-comp",
        "def f():\n    print('2')\nprint('1')\n[f() for i in range(3)]\nNone",
    ),
    ("no-trailing-value", "x = 3"),
    ("trailing-none-call", "print('x')"),
    ("semicolons", "a = 1; b = 2; a + b"),
    # ---- modules of the default safe list
    (
        "math",
        "import math\nmath.sqrt(16), math.floor(2.7), math.pi, math.gcd(12, 18), math.inf > 1e308, math.isclose(0.1 + 0.2, 0.3)",
    ),
    ("math-from-import", "from math import ceil, factorial as fact\nstr(ceil(149)), fact(10)"),
    (
        "collections-counter",
        "from collections import Counter\nc = Counter('abracadabra')\nc.most_common(2), c['z']",
    ),
    (
        "collections-defaultdict-deque",
        d("""
        import collections
        dd = collections.defaultdict(list)
        dd['a'].append(1)
        q = collections.deque([1, 2, 3], maxlen=3)
        q.append(4)
        q.appendleft(0)
        dict(dd), list(q)
    """),
    ),
    (
        "collections-namedtuple-ordereddict",
        d("""
        from collections import namedtuple, OrderedDict
        Pt = namedtuple('Pt', 'x y')
        p = Pt(1, y=2)
        od = OrderedDict(a=1)
        od.move_to_end('a', last=False)
        p, p.x + p.y, tuple(p), list(od)
    """),
    ),
    (
        "itertools",
        d("""
        import itertools
        (list(itertools.chain([1], (2, 3))), list(itertools.product('ab', repeat=2)),
         list(itertools.permutations([1, 2, 3], 2))[:3], list(itertools.combinations(range(4), 2))[:2],
         [(k, len(list(g))) for k, g in itertools.groupby('aabccc')],
         list(itertools.accumulate([1, 2, 3])), list(itertools.islice(itertools.count(5, 2), 3)))
    """),
    ),
    (
        "functools",
        d("""
        import functools, operator
        @functools.lru_cache(maxsize=None)
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)
        add3 = functools.partial(operator.add, 3)
        functools.reduce(lambda a, b: a * b, range(1, 6)), fib(60), add3(4)
    """),
    ),
    (
        "functools-cache-total-ordering",
        d("""
        from functools import cache, total_ordering
        @cache
        def sq(n):
            print('computing', n)
            return n * n
        @total_ordering
        class V:
            def __init__(self, n):
                self.n = n
            def __eq__(self, o):
                return self.n == o.n
            def __lt__(self, o):
                return self.n < o.n
        sq(3), sq(3), V(1) >= V(0), V(2) <= V(1)
    """),
    ),
    (
        "operator-itemgetter",
        "from operator import itemgetter\nrows = [('b', 2), ('a', 1)]\nsorted(rows, key=itemgetter(1)), itemgetter(0, 1)('xyz')",
    ),
    (
        "re",
        d("""
        import re
        m = re.search(r'(\\d+)-(\\d+)', 'tel 12-34')
        (m.group(0), m.groups(), re.findall(r'[a-z]+', 'ab 12 cd'), re.sub(r'\\s+', ' ', 'a   b'),
         re.split(r',\\s*', 'a, b,c'), bool(re.fullmatch(r'\\w+', 'abc')), re.compile('x', re.I).match('X') is not None)
    """),
    ),
    (
        "re-named-groups",
        "import re\nm = re.match(r'(?P<k>\\w+)=(?P<v>\\w+)', 'a=1')\nm.groupdict(), m['k']",
    ),
    (
        "json",
        d("""
        import json
        s = json.dumps({'b': [1, 2.5, None, True], 'a': 'x'}, sort_keys=True)
        s, json.loads(s), json.dumps('é'), json.dumps([1, 2], indent=1)
    """),
    ),
    (
        "datetime",
        d("""
        import datetime
        d1 = datetime.date(2024, 2, 28)
        d2 = d1 + datetime.timedelta(days=2)
        dt = datetime.datetime(2024, 1, 2, 3, 4, 5)
        d2, d2.isoformat(), (d2 - d1).days, dt.strftime('%Y/%m/%d %H:%M'), datetime.datetime.fromisoformat('2024-01-02T03:04:05') == dt
    """),
    ),
    (
        "datetime-from-import",
        "from datetime import datetime, timedelta\n(datetime(2020, 1, 1) + timedelta(hours=36)).isoformat()",
    ),
    (
        "decimal",
        d("""
        from decimal import Decimal, getcontext, ROUND_HALF_UP
        getcontext().prec = 10
        (Decimal('0.1') + Decimal('0.2'), Decimal('1') / Decimal('3'),
         Decimal('2.675').quantize(Decimal('0.01'), rounding=ROUND_HALF_UP))
    """),
    ),
    (
        "fractions",
        "from fractions import Fraction\nFraction(1, 3) + Fraction(1, 6), Fraction('0.75'), Fraction(3, 4).limit_denominator(2)",
    ),
    (
        "statistics",
        "import statistics\nstatistics.mean([1, 2, 3, 4, 4]), statistics.median([3, 1, 2]), statistics.mode('aab'), round(statistics.stdev([1, 2, 3, 4]), 6)",
    ),
    (
        "string-module",
        "import string\nstring.ascii_lowercase[:5], string.digits, string.capwords('hello world'), string.Template('$a-$b').substitute(a=1, b=2)",
    ),
    (
        "heapq",
        "import heapq\nh = [5, 1, 3]\nheapq.heapify(h)\nheapq.heappush(h, 0)\n[heapq.heappop(h) for i in range(2)], heapq.nlargest(2, [4, 9, 1]), heapq.nsmallest(1, [4, 9, 1])",
    ),
    (
        "bisect",
        "import bisect\na = [1, 3, 5]\nbisect.insort(a, 4)\na, bisect.bisect_left(a, 3), bisect.bisect_right(a, 3), bisect.bisect(a, 10)",
    ),
    (
        "typing-annotations",
        d("""
        from typing import Optional, List, Dict, Union, Any, Callable
        def f(x: Optional[int] = None, ys: List[int] = []) -> Dict[str, Union[int, None]]:
            return {'x': x, 'n': len(ys)}
        handler: Callable[[int], int] = lambda v: v + 1
        total: int = 0
        f(), f(3, [1, 2]), handler(1), total
    """),
    ),
    (
        "typing-namedtuple-typeddict",
        d("""
        from typing import NamedTuple, TypedDict
        class Emp(NamedTuple):
            name: str
            id: int = 3
        class Movie(TypedDict):
            title: str
        Emp('guido'), Movie(title='x')
    """),
    ),
    (
        "copy",
        "import copy\na = [[1], {'k': [2]}]\nb = copy.deepcopy(a)\nb[0].append(9)\nc = copy.copy(a)\nc[1]['k'].append(3)\na, b",
    ),
    (
        "textwrap",
        "import textwrap\ntextwrap.wrap('the quick brown fox jumps', 10), textwrap.dedent('  a\\n  b'), textwrap.shorten('hello big world', 12)",
    ),
    (
        "random-seeded",
        "import random\nrandom.seed(12)\nr = random.Random(5)\nrandom.choice(['win', 'lose', 'draw']), r.randint(1, 100), r.sample(range(10), 3)",
    ),
    (
        "time-module",
        "import time\nt0 = time.monotonic()\ntime.sleep(0.01)\ntime.monotonic() >= t0, isinstance(time.time(), float)",
    ),
    (
        "unicodedata",
        "import unicodedata\nunicodedata.name('A'), unicodedata.normalize('NFKC', 'ｅ')",
    ),
    ("import-multi-alias", "import math as m, json as j\nm.floor(j.loads('2.5'))"),
    ("import-inside-function", "def f():\n    import math\n    return math.factorial(5)\nf()"),
    # ---- misc builtins that are ordinary
    ("iter-next-default", "it = iter([1])\nnext(it), next(it, None)"),
    ("repr-ascii-format", "repr([1, 'a']), ascii('é'), format(1234.5, ',.1f'), format(255, 'x')"),
    ("slice-object", "s = slice(1, None, 2)\n[0, 1, 2, 3, 4][s]"),
    ("bytes-bytearray", "ba = bytearray(b'ab')\nba.append(99)\nbytes(ba), b'x' * 3, b'abc'[1:]"),
    (
        "dir-free-getattr-static",
        "class K:\n    a = 1\ngetattr(K, 'a'), getattr(K, 'b', 'dflt'), hasattr(K, 'a')",
    ),
    ("setattr-plain", "class K: pass\nk = K()\nsetattr(k, 'v', 5)\nk.v"),
    ("object-sentinel", "SENT = object()\nx = SENT\nx is SENT"),
    (
        "zip-strict-like",
        "list(zip('abc', range(2))), list(map(lambda a, b: a * b, [1, 2], [3, 4]))",
    ),
    (
        "nested-data",
        "data = {'users': [{'n': 'a', 'age': 3}, {'n': 'b', 'age': 5}]}\n[u['n'] for u in data['users'] if u['age'] > 4]",
    ),
    (
        "string-indexing-loop",
        d("""
        text_block = ['THESE', 'AGULL']
        sentence = ''
        for block in text_block:
            for col in range(len(text_block[0])):
                sentence += block[col]
        sentence
    """),
    ),
    (
        "isbn-check",
        d("""
        def check(number):
            total = sum((10 - i) * int(digit) for i, digit in enumerate(number))
            r = 11 - total % 11
            return 'X' if r == 10 else '0' if r == 11 else str(r)
        [check(n) for n in ['478225952', '643485613', '739394228']]
    """),
    ),
]


def snippet_lines(err: BaseException) -> set[int]:
    """Line numbers of the snippet's own frames in a CPython traceback."""
    lines = set()
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<snippet>":
            lines.add(tb.tb_lineno)
        tb = tb.tb_next
    return lines


def run_cpython(code: str) -> tuple[str, Any, BaseException | None]:
    """Plain CPython: exec in a fresh dict, REPL-style value of the last expression."""
    tree = ast.parse(code)
    last = None
    tail = tree.body[-1] if tree.body else None
    if isinstance(tail, ast.Expr):
        tree.body.pop()
        last = ast.Expression(tail.value)
    ns: dict[str, Any] = {"__name__": "__main__"}
    out = io.StringIO()
    value: Any = None
    err: BaseException | None = None
    with contextlib.redirect_stdout(out):
        try:
            exec(compile(tree, "<snippet>", "exec"), ns)
            if last is not None:
                value = eval(compile(last, "<snippet>", "eval"), ns)
        except Exception as exc:
            err = exc
    return out.getvalue(), value, err


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 120
    assert len({case_id for case_id, _ in CASES}) == len(CASES), "duplicate ids"


@pytest.mark.parametrize("code", [c for _, c in CASES], ids=[i for i, _ in CASES])
def test_same_as_cpython(code: str) -> None:
    want_out, want_value, want_err = run_cpython(code)
    assert want_err is None, f"table bug: CPython raised {want_err!r}"
    res = Interpreter(limits=LIMITS).run(code)
    assert verdict_of(res) is Verdict.OK, f"{res.verdict}: {res.error}"
    assert res.error is None
    assert res.stdout == want_out
    assert not res.is_final_answer
    if want_value is None:
        # The REPL shows nothing for None; accept no value or an explicit None.
        assert res.value is None or res.value.repr == "None"
    else:
        assert res.value is not None, "the last expression's value is missing"
        assert res.value.repr == repr(want_value)
        assert res.value.type == type(want_value).__name__


# Snippets that raise: the error (type, message, line) must be CPython's, and
# output printed before the error is kept.
ERROR_CASES: list[tuple[str, str, int]] = [
    ("zero-division", "print('before')\nx = 1\ny = x / 0", 3),
    ("name-error-no-fuzzy-match", "value = 1\nprint(valu)", 2),
    ("name-error-in-function", "def f():\n    return undefined_thing\nf()", 2),
    ("key-error", "dd = {'a': 1}\ndd['c']", 2),
    ("index-error", "lst = [1, 2, 3]\nlst[3]", 2),
    ("type-error-add", "counts = [1, 2, 3]\ncounts += 1", 2),
    ("type-error-call", "def f(a):\n    return a\nf(1, 2)", 3),
    ("unpack-too-many", "a, b = 1, 2, 3", 1),
    ("value-error-int", "int('abc')", 1),
    ("attribute-error", "x = 5\nx.nope", 2),
    ("assert-fail", "assert 1 == 1\nassert 1 == 2, 'bad math'", 2),
    ("raise-custom", "class MyErr(Exception):\n    pass\nraise MyErr('boom')", 3),
    ("unbound-local", "x = 1\ndef f():\n    x += 1\nf()", 3),
    ("stop-iteration", "next(iter([]))", 1),
    ("string-index-by-str", "s = 'abc'\ns['title']", 2),
    ("raised-inside-host-module", "import json\nx = 1\njson.loads('{')", 3),
    ("raised-inside-host-callback", "data = [3, 'a']\nsorted(data)", 2),
]


@pytest.mark.parametrize(
    "code,line", [(c, n) for _, c, n in ERROR_CASES], ids=[i for i, _, _ in ERROR_CASES]
)
def test_errors_match_cpython(code: str, line: int) -> None:
    want_out, _, want_err = run_cpython(code)
    assert want_err is not None, "table bug: CPython did not raise"
    res = Interpreter(limits=LIMITS).run(code)
    assert verdict_of(res) is Verdict.ERROR, f"{res.verdict}: {res.error}"
    assert res.error is not None
    assert res.error.type == type(want_err).__name__
    assert res.error.message == str(want_err)
    # The innermost snippet line (where it raised) or the top-level statement's line.
    assert line in snippet_lines(want_err), "table bug: wrong line"
    assert res.error.line in snippet_lines(want_err)
    assert res.error.source_line == code.splitlines()[res.error.line - 1].strip()
    assert res.stdout == want_out


def test_errors_show_no_host_frames() -> None:
    """Error messages speak about the snippet, never the interpreter's own files."""
    interp = Interpreter(limits=LIMITS)
    for code in (
        "import json\njson.loads('{')",
        "def f():\n    return 1 / 0\nf()",
        "().__class__",
        "import os",
    ):
        res = interp.run(code)
        assert res.error is not None
        text = str(res.error) + res.stdout
        assert (
            "Traceback" not in text and "executor/interpreter" not in text and '.py"' not in text
        ), text


def test_syntax_error_is_clean() -> None:
    res = Interpreter(limits=LIMITS).run("def f(:\n    pass")
    assert verdict_of(res) is Verdict.SYNTAX_ERROR
    assert res.error is not None and res.error.line == 1


# ---- state across run() calls


def test_state_persists_across_runs() -> None:
    interp = Interpreter(limits=LIMITS)
    steps = [
        ("x = 1\ny = [1, 2]", None),
        ("x + 1", "2"),
        ("def f(n):\n    return n * x", None),
        ("x = 10\nf(2)", "20"),
        ("class Box:\n    def __init__(self, v):\n        self.v = v", None),
        ("b = Box(y)\nb.v.append(3)\ny", "[1, 2, 3]"),
        ("import math", None),
        ("math.floor(2.5) + len(y)", "5"),
        ("from collections import Counter as C", None),
        ("C('aab')['a']", "2"),
        ("def g():\n    global x\n    x = 'set in g'", None),
        ("g()\nx", "'set in g'"),
        ("del y", None),
    ]
    for code, want in steps:
        res = interp.run(code)
        assert verdict_of(res) is Verdict.OK, f"{code!r}: {res.verdict} {res.error}"
        if want is not None:
            assert res.value is not None and res.value.repr == want, code
    res = interp.run("y")
    assert verdict_of(res) is Verdict.ERROR
    assert res.error is not None and res.error.type == "NameError"
    # The error did not wipe earlier state.
    res = interp.run("x")
    assert res.value is not None and res.value.repr == "'set in g'"


def test_state_reports_user_variables() -> None:
    interp = Interpreter(limits=LIMITS, variables={"given": [1, 2]})
    res = interp.run("a = 1\nb = 'two'\nc = {'k': [1, 2.5, None]}\nd = (1, 2)\nimport math")
    assert verdict_of(res) is Verdict.OK
    by_name = {v.name: v for v in res.state}
    assert by_name["a"].type == "int" and by_name["a"].repr == "1"
    assert by_name["a"].has_json and by_name["a"].json == 1
    assert by_name["b"].json == "two" and by_name["b"].repr == "'two'"
    assert by_name["c"].has_json and by_name["c"].json == {"k": [1, 2.5, None]}
    assert by_name["d"].repr == "(1, 2)"
    # No interpreter internals (guards, builtins) are reported as user state.
    for name in by_name:
        assert not name.startswith("_"), name


def test_variables_are_visible_to_the_snippet() -> None:
    interp = Interpreter(limits=LIMITS, variables={"data": {"n": 3}, "items": [1, 2]})
    res = interp.run("data['n'] * len(items)")
    assert verdict_of(res) is Verdict.OK
    assert res.value is not None and res.value.repr == "6"


def test_tools_are_callable() -> None:
    calls: list[tuple[Any, ...]] = []

    def add_two(x: int) -> int:
        calls.append((x,))
        return x + 2

    interp = Interpreter(limits=LIMITS, tools={"add_two": add_two})
    res = interp.run("y = add_two(3)\n[add_two(i) for i in range(2)], y")
    assert verdict_of(res) is Verdict.OK
    assert res.value is not None and res.value.repr == "([2, 3], 5)"
    assert calls == [(3,), (0,), (1,)]


def test_final_answer_ends_snippet() -> None:
    res = Interpreter(limits=LIMITS).run("print('a')\nfinal_answer({'x': [1, 2]})\nprint('b')")
    assert verdict_of(res) is Verdict.OK
    assert res.is_final_answer
    assert res.final_answer is not None
    assert res.final_answer.repr == "{'x': [1, 2]}"
    assert res.final_answer.has_json and res.final_answer.json == {"x": [1, 2]}
    assert res.stdout == "a\n"
