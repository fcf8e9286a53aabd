"""AST mutations of attack snippets: the same attack, spelled differently.

Each mutator takes a parsed module and a `random.Random`, and returns a new
module (or None when it does not apply). Every output is produced by
`ast.unparse`, so it parses. Generated names never start with `_` (the policy
refuses those outright, which would hide the construct under test).

Why these: a policy that checks `obj.__class__` but not `getattr(obj, "__cl" +
"ass__")`, or that checks top-level statements but not the body of a
decorated function or a class method, is exactly what a mutation finds.
"""

from __future__ import annotations

import ast
import builtins
import copy
import random
from collections.abc import Callable

from executor.fuzz.tools import TOOLBOX

Mutator = Callable[[ast.Module, random.Random], ast.Module | None]

_BUILTIN_NAMES = frozenset(dir(builtins))
# Names the sandbox itself gives meaning to: rebinding them is an attack to keep as is.
SANDBOX_NAMES = frozenset({"final_answer", *TOOLBOX})
_WORDS = ("val", "obj", "tmp", "item", "node", "acc", "res", "cur", "thing", "data", "elem")


def fresh_name(rng: random.Random, taken: set[str]) -> str:
    """A new identifier that is not in `taken` and does not start with '_'."""
    while True:
        name = f"{rng.choice(_WORDS)}{rng.randrange(10_000)}"
        if name not in taken:
            taken.add(name)
            return name


def _all_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            names.add(node.name)
    return names


def _body_stmts(tree: ast.Module) -> list[ast.stmt]:
    return copy.deepcopy(tree.body)


def _module_level_nodes(tree: ast.Module) -> list[ast.AST]:
    """Nodes executed in the module scope itself (not inside nested functions or classes)."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def _has_toplevel_only(tree: ast.Module) -> bool:
    """Module-level statements that are invalid or change meaning inside a function."""
    for node in _module_level_nodes(tree):
        if isinstance(node, ast.ImportFrom) and (
            node.module == "__future__" or any(a.name == "*" for a in node.names)
        ):
            return True
        if isinstance(node, ast.Global | ast.Nonlocal | ast.Return | ast.Yield | ast.YieldFrom):
            return True
    return False


# -- renaming --------------------------------------------------------------------------


def _method_names(tree: ast.AST) -> set[str]:
    """Functions defined directly in a class body: their names are a protocol (get_value...)."""
    return {
        item.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for item in node.body
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def rename_variables(tree: ast.Module, rng: random.Random) -> ast.Module | None:
    """Rename every name the snippet binds itself (variables, functions, classes, args).

    Never renamed: names starting with '_' and builtins (rebinding them is the
    attack), names the sandbox gives meaning to (final_answer, tools), and
    method names (overriding a base-class method is the attack).
    """
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.ExceptHandler) and node.name:
            bound.add(node.name)
    # Names starting with '_' are the attack itself (guard shadowing); builtins rebinding too.
    keep = _BUILTIN_NAMES | SANDBOX_NAMES | _method_names(tree)
    bound = {n for n in bound if not n.startswith("_") and n not in keep}
    if not bound:
        return None
    taken = _all_names(tree)
    mapping = {n: fresh_name(rng, taken) for n in sorted(bound)}
    tree = copy.deepcopy(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in mapping:
            node.id = mapping[node.id]
        elif isinstance(node, ast.arg) and node.arg in mapping:
            node.arg = mapping[node.arg]
        elif (
            isinstance(node, ast.FunctionDef | ast.ClassDef | ast.ExceptHandler)
            and node.name in mapping
        ):
            node.name = mapping[node.name]
        elif isinstance(node, ast.Global | ast.Nonlocal):
            node.names = [mapping.get(n, n) for n in node.names]
    return tree


# -- wrapping --------------------------------------------------------------------------


def _parse_stmts(src: str) -> list[ast.stmt]:
    return ast.parse(src).body


def wrap_function(tree: ast.Module, rng: random.Random) -> ast.Module | None:
    """Move the body into a function and call it."""
    if _has_toplevel_only(tree):
        return None
    name = fresh_name(rng, _all_names(tree))
    fn = ast.FunctionDef(
        name=name,
        args=ast.arguments(
            posonlyargs=[],
            args=[],
            vararg=None,
            kwonlyargs=[],
            kw_defaults=[],
            kwarg=None,
            defaults=[],
        ),
        body=_body_stmts(tree),
        decorator_list=[],
        returns=None,
        type_comment=None,
    )
    return ast.Module(body=[fn, *_parse_stmts(f"{name}()")], type_ignores=[])


def wrap_decorator(tree: ast.Module, rng: random.Random) -> ast.Module | None:
    """Run the body from a decorator: the function executes while it is being defined."""
    if _has_toplevel_only(tree):
        return None
    taken = _all_names(tree)
    deco, fn_name = fresh_name(rng, taken), fresh_name(rng, taken)
    style = rng.choice(("named", "lambda"))
    pre = _parse_stmts(f"def {deco}(fn):\n    fn()\n    return fn\n") if style == "named" else []
    deco_expr = (
        ast.Name(id=deco, ctx=ast.Load())
        if style == "named"
        else ast.parse("lambda fn: fn()", mode="eval").body
    )
    fn = ast.FunctionDef(
        name=fn_name,
        args=ast.arguments(
            posonlyargs=[],
            args=[],
            vararg=None,
            kwonlyargs=[],
            kw_defaults=[],
            kwarg=None,
            defaults=[],
        ),
        body=_body_stmts(tree),
        decorator_list=[deco_expr],
        returns=None,
        type_comment=None,
    )
    return ast.Module(body=[*pre, fn], type_ignores=[])


def wrap_class(tree: ast.Module, rng: random.Random) -> ast.Module | None:
    """Move the body into a method of a snippet class and call it on an instance."""
    if _has_toplevel_only(tree):
        return None
    taken = _all_names(tree)
    cls, meth = fresh_name(rng, taken), fresh_name(rng, taken)
    method = ast.FunctionDef(
        name=meth,
        args=ast.arguments(
            posonlyargs=[],
            args=[ast.arg(arg="self")],
            vararg=None,
            kwonlyargs=[],
            kw_defaults=[],
            kwarg=None,
            defaults=[],
        ),
        body=_body_stmts(tree),
        decorator_list=[],
        returns=None,
        type_comment=None,
    )
    klass = ast.ClassDef(name=cls, bases=[], keywords=[], body=[method], decorator_list=[])
    return ast.Module(body=[klass, *_parse_stmts(f"{cls}().{meth}()")], type_ignores=[])


def wrap_try(tree: ast.Module, rng: random.Random) -> ast.Module | None:
    """Put the body in try blocks with handlers that re-raise or ignore unrelated errors."""
    if any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in tree.body):
        return None
    body = _body_stmts(tree)
    style = rng.choice(("reraise", "unrelated", "finally"))
    if style == "reraise":
        handler = _parse_stmts("try:\n    pass\nexcept Exception as err:\n    raise err\n")[0]
    elif style == "unrelated":
        handler = _parse_stmts("try:\n    pass\nexcept ZeroDivisionError:\n    pass\n")[0]
    else:
        handler = _parse_stmts("try:\n    pass\nfinally:\n    pass\n")[0]
    assert isinstance(handler, ast.Try)
    handler.body = body
    return ast.Module(body=[handler], type_ignores=[])


class _ExprWrapper(ast.NodeTransformer):
    def __init__(self, rng: random.Random, taken: set[str], mode: str) -> None:
        self.rng, self.taken, self.mode, self.count = rng, taken, mode, 0

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        if self.rng.random() < 0.5 and not isinstance(
            node.value, ast.Constant | ast.Yield | ast.YieldFrom | ast.Await
        ):
            self.count += 1
            if self.mode == "lambda":
                call = ast.Call(
                    func=ast.Lambda(
                        args=ast.arguments(
                            posonlyargs=[],
                            args=[],
                            vararg=None,
                            kwonlyargs=[],
                            kw_defaults=[],
                            kwarg=None,
                            defaults=[],
                        ),
                        body=node.value,
                    ),
                    args=[],
                    keywords=[],
                )
                return ast.Expr(value=call)
            var = fresh_name(self.rng, self.taken)
            comp = ast.ListComp(
                elt=node.value,
                generators=[
                    ast.comprehension(
                        target=ast.Name(id=var, ctx=ast.Store()),
                        iter=ast.List(elts=[ast.Constant(0)], ctx=ast.Load()),
                        ifs=[],
                        is_async=0,
                    )
                ],
            )
            return ast.Expr(value=comp)
        return node


def wrap_exprs_lambda(tree: ast.Module, rng: random.Random) -> ast.Module | None:
    """Evaluate expression statements inside immediately called lambdas."""
    w = _ExprWrapper(rng, _all_names(tree), "lambda")
    out = w.visit(copy.deepcopy(tree))
    return out if w.count else None


def wrap_exprs_comprehension(tree: ast.Module, rng: random.Random) -> ast.Module | None:
    """Evaluate expression statements inside list comprehensions."""
    w = _ExprWrapper(rng, _all_names(tree), "comp")
    out = w.visit(copy.deepcopy(tree))
    return out if w.count else None


# -- indirect attribute access ---------------------------------------------------------


class _IndirectAttr(ast.NodeTransformer):
    def __init__(self, rng: random.Random, taken: set[str]) -> None:
        self.rng, self.taken = rng, taken
        self.count = 0
        self.need_operator = False

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        if not isinstance(node.ctx, ast.Load) or self.rng.random() < 0.4:
            return node
        self.count += 1
        name = ast.Constant(node.attr)
        style = self.rng.choice(("getattr", "attrgetter", "map", "format"))
        if style == "getattr":
            return ast.Call(
                func=ast.Name(id="getattr", ctx=ast.Load()), args=[node.value, name], keywords=[]
            )
        if style == "attrgetter":
            self.need_operator = True
            getter = ast.Call(
                func=ast.Attribute(
                    value=ast.Name(id="operator", ctx=ast.Load()), attr="attrgetter", ctx=ast.Load()
                ),
                args=[name],
                keywords=[],
            )
            return ast.Call(func=getter, args=[node.value], keywords=[])
        if style == "map":
            var = fresh_name(self.rng, self.taken)
            lam = ast.Lambda(
                args=ast.arguments(
                    posonlyargs=[],
                    args=[ast.arg(arg=var)],
                    vararg=None,
                    kwonlyargs=[],
                    kw_defaults=[],
                    kwarg=None,
                    defaults=[],
                ),
                body=ast.Call(
                    func=ast.Name(id="getattr", ctx=ast.Load()),
                    args=[ast.Name(id=var, ctx=ast.Load()), name],
                    keywords=[],
                ),
            )
            mapped = ast.Call(
                func=ast.Name(id="map", ctx=ast.Load()),
                args=[lam, ast.List(elts=[node.value], ctx=ast.Load())],
                keywords=[],
            )
            listed = ast.Call(func=ast.Name(id="list", ctx=ast.Load()), args=[mapped], keywords=[])
            return ast.Subscript(value=listed, slice=ast.Constant(0), ctx=ast.Load())
        # format: the field path reads the attribute (the result is its str()).
        fmt = ast.Attribute(
            value=ast.Constant("{0." + node.attr + "}"), attr="format", ctx=ast.Load()
        )
        return ast.Call(func=fmt, args=[node.value], keywords=[])


def indirect_attributes(tree: ast.Module, rng: random.Random) -> ast.Module | None:
    """Reach attributes through getattr, operator.attrgetter, map+getattr or a format path."""
    w = _IndirectAttr(rng, _all_names(tree))
    out = w.visit(copy.deepcopy(tree))
    if not w.count:
        return None
    if w.need_operator:
        out.body.insert(_import_position(out), _parse_stmts("import operator")[0])
    return ast.fix_missing_locations(out)


def _import_position(tree: ast.Module) -> int:
    """After any `from __future__` imports (which must come first)."""
    i = 0
    while (
        i < len(tree.body)
        and isinstance(tree.body[i], ast.ImportFrom)
        and getattr(tree.body[i], "module", None) == "__future__"
    ):
        i += 1
    return i


class _SplitStrings(ast.NodeTransformer):
    def __init__(self, rng: random.Random, taken: set[str]) -> None:
        self.rng, self.taken, self.count = rng, taken, 0

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        return node  # f-string parts must stay constants

    def visit_MatchValue(self, node: ast.MatchValue) -> ast.AST:
        return node  # patterns accept literals only

    def visit_MatchMapping(self, node: ast.MatchMapping) -> ast.AST:
        return node  # mapping-pattern keys accept literals only

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if not isinstance(value, str) or not (2 <= len(value) <= 64) or "ESCAPED" in value:
            return node
        self.count += 1
        cut = self.rng.randrange(1, len(value))
        style = self.rng.choice(("concat", "join", "chr", "reverse"))
        left, right = value[:cut], value[cut:]
        if style == "concat":
            return ast.BinOp(left=ast.Constant(left), op=ast.Add(), right=ast.Constant(right))
        if style == "join":
            parts = ast.List(elts=[ast.Constant(left), ast.Constant(right)], ctx=ast.Load())
            return ast.Call(
                func=ast.Attribute(value=ast.Constant(""), attr="join", ctx=ast.Load()),
                args=[parts],
                keywords=[],
            )
        if style == "reverse":
            return ast.Subscript(
                value=ast.Constant(value[::-1]),
                slice=ast.Slice(
                    lower=None, upper=None, step=ast.UnaryOp(op=ast.USub(), operand=ast.Constant(1))
                ),
                ctx=ast.Load(),
            )
        codes = ast.List(elts=[ast.Constant(ord(c)) for c in value], ctx=ast.Load())
        var = fresh_name(self.rng, self.taken)
        gen = ast.GeneratorExp(
            elt=ast.Call(
                func=ast.Name(id="chr", ctx=ast.Load()),
                args=[ast.Name(id=var, ctx=ast.Load())],
                keywords=[],
            ),
            generators=[
                ast.comprehension(
                    target=ast.Name(id=var, ctx=ast.Store()), iter=codes, ifs=[], is_async=0
                )
            ],
        )
        return ast.Call(
            func=ast.Attribute(value=ast.Constant(""), attr="join", ctx=ast.Load()),
            args=[gen],
            keywords=[],
        )


def split_strings(tree: ast.Module, rng: random.Random) -> ast.Module | None:
    """Build string constants at run time (concatenation, join, chr codes, reversal)."""
    # Only strings that are call arguments or subscripts matter; docstrings and
    # import names are not Constant nodes in positions we touch.
    w = _SplitStrings(rng, _all_names(tree))
    out = w.visit(copy.deepcopy(tree))
    return ast.fix_missing_locations(out) if w.count else None


def alias_builtins(tree: ast.Module, rng: random.Random) -> ast.Module | None:
    """Call builtins (getattr, print, type...) through local aliases."""
    used = sorted(
        {
            n.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Name)
            and isinstance(getattr(n, "ctx", None), ast.Load)
            and n.id in _BUILTIN_NAMES
            and not n.id.startswith("_")
        }
    )
    if not used:
        return None
    taken = _all_names(tree)
    chosen = rng.sample(used, k=min(len(used), rng.randint(1, 3)))
    mapping = {n: fresh_name(rng, taken) for n in chosen}
    out = copy.deepcopy(tree)
    for node in ast.walk(out):
        if isinstance(node, ast.Name) and node.id in mapping:
            node.id = mapping[node.id]
    pre = [_parse_stmts(f"{new} = {old}")[0] for old, new in mapping.items()]
    pos = _import_position(out)
    out.body[pos:pos] = pre
    return out


MUTATORS: dict[str, Mutator] = {
    "rename": rename_variables,
    "function": wrap_function,
    "decorator": wrap_decorator,
    "class": wrap_class,
    "try": wrap_try,
    "lambda": wrap_exprs_lambda,
    "comprehension": wrap_exprs_comprehension,
    "indirect_attr": indirect_attributes,
    "split_strings": split_strings,
    "alias_builtins": alias_builtins,
}


def mutate(code: str, rng: random.Random, *, steps: int = 2) -> tuple[str, list[str]] | None:
    """Apply up to `steps` applicable mutators; return (code, names applied) or None.

    None when the code does not parse or no mutator applied.
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    applied: list[str] = []
    names = list(MUTATORS)
    for _ in range(steps):
        rng.shuffle(names)
        for name in names:
            out = MUTATORS[name](tree, rng)
            if out is not None:
                tree = ast.fix_missing_locations(out)
                applied.append(name)
                break
    if not applied:
        return None
    try:
        return ast.unparse(tree) + "\n", applied
    except (ValueError, RecursionError):
        return None
