"""The policy: one AST transformer that checks and rewrites a snippet.

Deny by default. `visit` dispatches only to the `visit_X` methods defined in
this class; a node type without one (including every node a future Python adds)
is refused until someone reviews it. Each visitor has a one-line docstring
saying what it allows or why it refuses.

What is decided here, at compile time, costs nothing at run time: names,
static attribute names (read, write, delete), imports, class bodies, handler
shapes. Only what cannot be decided statically is rewritten into a call of a
reserved guard (names start with `_corral_`, which a snippet cannot spell
because identifiers starting with "_" are refused):

- `obj.attr = v` / `del obj.attr`  ->  `_corral_write_(obj).attr = v`
- `x.format` / `x.format_map`      ->  `_corral_format_(x, "format")`
- `a ** b`, `a << b` (non-literal) ->  `_corral_pow_(a, b)`, `_corral_lshift_(a, b)`
- every `except` body starts with `_corral_reraise_()` (ControlFlow escapes)
- every `with` item is wrapped: `with _corral_with_(cm) as x:`
- every `finally` body runs inside `with _corral_finally_():`
- the last expression statement  ->  `_corral_value_(expr)` (REPL value)

It subclasses RestrictedPython's `RestrictingNodeTransformer` so that
`RestrictedPython.compile_restricted_exec(tree, policy=...)` drives it, but it
inherits none of RestrictedPython's visitors: those add a runtime guard to
every attribute read, subscript and iteration, which this design avoids.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn

from RestrictedPython.transformer import RestrictingNodeTransformer

from .errors import PolicyError
from .rules import DEFINABLE_DUNDERS, DENIED_ATTRIBUTES, READABLE_DUNDERS

# Reserved names the rewritten code calls; defined in the snippet's builtins.
G_WRITE = "_corral_write_"
G_FORMAT = "_corral_format_"
G_POW = "_corral_pow_"
G_IPOW = "_corral_ipow_"
G_LSHIFT = "_corral_lshift_"
G_ILSHIFT = "_corral_ilshift_"
G_RERAISE = "_corral_reraise_"
G_WITH = "_corral_with_"
G_VALUE = "_corral_value_"
G_FINALLY = "_corral_finally_"
TMP_PREFIX = "_corral_t"

# A literal exponent up to this at most doubles the bit length; a literal shift
# up to this adds at most 4096 bits, so `x ** 2` and `x << 8` run unguarded at
# full speed. Larger literal exponents stay guarded: `x = x ** 64` in a loop
# reaches a single uninterruptible multiplication of gigabit integers in four
# steps. Augmented `**=` / `<<=` are always guarded (they are the loop form).
SMALL_POW_LITERAL = 2
SMALL_SHIFT_LITERAL = 4096

FORMAT_ATTRIBUTES = frozenset({"format", "format_map"})


def attribute_refusal(name: str, *, reading: bool = True) -> str | None:
    """Why an attribute name is refused, or None if allowed (shared with the guards)."""
    if name.startswith("_"):
        if reading and name in READABLE_DUNDERS:
            return None
        return (
            f"Attribute names starting with '_' are not allowed ('{name}'): "
            "use the public API instead"
        )
    if name in DENIED_ATTRIBUTES:
        return f"The introspection attribute '{name}' is not allowed"
    return None


def name_refusal(name: str) -> str | None:
    """Why a plain identifier is refused, or None if allowed."""
    if name.startswith("_") and name != "_":
        return (
            f"Names starting with '_' are not allowed ('{name}'): "
            "rename it without the leading underscore"
        )
    return None


def _call(name: str, *args: ast.expr, like: ast.AST) -> ast.Call:
    """`name(*args)` located at `like` (generated nodes carry locations: no fix-up pass)."""
    func = ast.copy_location(ast.Name(id=name, ctx=ast.Load()), like)
    for arg in args:
        if getattr(arg, "lineno", None) is None:
            ast.copy_location(arg, like)
    return ast.copy_location(ast.Call(func=func, args=list(args), keywords=[]), like)


def _is_small_int_literal(node: ast.expr, limit: int) -> bool:
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, float):
            return True  # int ** float is a float: OverflowError, never a huge int
        return type(v) is int and 0 <= v <= limit
    return False


class CorralPolicy(RestrictingNodeTransformer):
    """Deny-by-default checker and rewriter of snippet ASTs.

    Configured per interpreter by subclassing (`bind_policy`), because
    RestrictedPython instantiates the policy class itself.
    """

    reserved_names: ClassVar[frozenset[str]] = frozenset()
    import_refusal: ClassVar[Callable[[str], str | None]] = staticmethod(lambda name: None)

    def __init__(
        self,
        errors: list[str] | None = None,
        warnings: list[str] | None = None,
        used_names: dict[str, bool] | None = None,
    ) -> None:
        super().__init__(errors, warnings, used_names)
        self._scopes: list[str] = ["module"]
        self._line: int | None = None
        self._tmp_count = 0

    # ------------------------------------------------------------ machinery

    def visit(self, node: ast.AST) -> Any:
        """Dispatch to our own visitor; refuse node types we have not reviewed."""
        method = _VISITORS.get(type(node).__name__)
        line = getattr(node, "lineno", None)
        if line is not None:
            self._line = line
        if method is None:
            self.deny(node, f"{type(node).__name__} is not allowed in snippets")
        return method(self, node)

    def generic_visit(self, node: ast.AST) -> NoReturn:
        """Refuse: every allowed node type has its own visitor."""
        self.deny(node, f"{type(node).__name__} is not allowed in snippets")

    def children(self, node: ast.AST) -> ast.AST:
        """Visit (and possibly rewrite) every child through `visit`.

        Like ast.NodeTransformer.generic_visit, but faster on the common case
        (visitors return the node unchanged) and without dispatching the
        reviewed leaf types (contexts and operators): policy time is part of
        every run.
        """
        visit = self.visit
        for field in node._fields:
            value = getattr(node, field, None)
            if type(value) is list:
                changed = False
                out: list[Any] = []
                for item in value:
                    if not isinstance(item, ast.AST) or type(item) in _LEAF_TYPES:
                        out.append(item)
                        continue
                    new = visit(item)
                    if new is not item:
                        changed = True
                        if new is None:
                            continue
                        if isinstance(new, list):
                            out.extend(new)
                            continue
                    out.append(new)
                if changed:
                    value[:] = out
            elif isinstance(value, ast.AST) and type(value) not in _LEAF_TYPES:
                new = visit(value)
                if new is not value:
                    setattr(node, field, new)
        return node

    def deny(self, node: ast.AST | None, message: str) -> NoReturn:
        line = getattr(node, "lineno", None) if node is not None else None
        raise PolicyError(message, line if isinstance(line, int) else self._line)

    def check_binding(self, name: str, node: ast.AST) -> None:
        """Names a snippet binds: the "_" rule, dunders only in class bodies, no tool names."""
        if self._scopes[-1] == "class" and name in DEFINABLE_DUNDERS:
            return
        if name.startswith("__") and name.endswith("__") and self._scopes[-1] == "class":
            self.deny(
                node,
                f"Classes may not define '{name}': it is not on the reviewed list of dunder "
                "methods (e.g. __init__, __repr__, __eq__, __len__, __iter__, __call__)",
            )
        refusal = name_refusal(name)
        if refusal:
            self.deny(node, refusal)
        if name in self.reserved_names:
            self.deny(
                node,
                f"'{name}' is a tool name and cannot be rebound: choose another variable name",
            )

    def check_load(self, name: str, node: ast.AST) -> None:
        refusal = name_refusal(name)
        if refusal:
            self.deny(node, refusal)

    def check_annotation(self, node: ast.expr | None) -> None:
        """Refuse string annotations: typing machinery would eval() them."""
        if node is None:
            return
        for sub in ast.walk(node):
            if isinstance(sub, ast.Subscript) and _is_literal_subscript(sub):
                continue
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                if _inside_literal(node, sub):
                    continue
                self.deny(
                    node,
                    "String annotations are not allowed (they are evaluated later): "
                    "write the type itself, e.g. `x: int` instead of `x: 'int'`",
                )

    def tmp_name(self) -> str:
        self._tmp_count += 1
        return f"{TMP_PREFIX}{self._tmp_count}"

    # ------------------------------------------------------------ modules

    def visit_Module(self, node: ast.Module) -> ast.Module:
        """Allow a module; its last expression statement becomes the REPL value."""
        self.children(node)
        if node.body and isinstance(node.body[-1], ast.Expr):
            last = node.body[-1]
            last.value = _call(G_VALUE, last.value, like=last.value)
        return node

    # ------------------------------------------------------------ literals

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        """Allow constants (numbers, strings, bytes, None, True, False, ...)."""
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        """Allow f-strings: their expressions are checked like any other code."""
        return self.children(node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        """Allow f-string fields."""
        return self.children(node)

    def visit_List(self, node: ast.List) -> ast.AST:
        """Allow list displays and list targets."""
        return self.children(node)

    def visit_Tuple(self, node: ast.Tuple) -> ast.AST:
        """Allow tuple displays and tuple targets."""
        return self.children(node)

    def visit_Set(self, node: ast.Set) -> ast.AST:
        """Allow set displays."""
        return self.children(node)

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        """Allow dict displays, including `**` unpacking."""
        return self.children(node)

    # ------------------------------------------------------------ contexts and operators

    def visit_Load(self, node: ast.Load) -> ast.Load:
        """Allow load context."""
        return node

    def visit_Store(self, node: ast.Store) -> ast.Store:
        """Allow store context."""
        return node

    def visit_Del(self, node: ast.Del) -> ast.Del:
        """Allow delete context."""
        return node

    def _op(self, node: ast.AST) -> ast.AST:
        return node

    visit_And = visit_Or = _op  # boolean operators
    visit_Add = visit_Sub = visit_Mult = visit_MatMult = visit_Div = visit_Mod = _op
    visit_Pow = visit_LShift = visit_RShift = visit_BitOr = visit_BitXor = _op
    visit_BitAnd = visit_FloorDiv = _op
    visit_Invert = visit_Not = visit_UAdd = visit_USub = _op
    visit_Eq = visit_NotEq = visit_Lt = visit_LtE = visit_Gt = visit_GtE = _op
    visit_Is = visit_IsNot = visit_In = visit_NotIn = _op

    # ------------------------------------------------------------ expressions

    def visit_Name(self, node: ast.Name) -> ast.Name:
        """Allow names, except those starting with '_' and rebinding of tools."""
        if isinstance(node.ctx, ast.Load):
            self.check_load(node.id, node)
        else:
            self.check_binding(node.id, node)
        return node

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        """Allow expression statements."""
        return self.children(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        """Allow unary operators."""
        return self.children(node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        """Allow binary operators; guard `**` and `<<` unless the right side is a small literal."""
        self.children(node)
        if isinstance(node.op, ast.Pow) and not _is_small_int_literal(
            node.right, SMALL_POW_LITERAL
        ):
            return _call(G_POW, node.left, node.right, like=node)
        if isinstance(node.op, ast.LShift) and not _is_small_int_literal(
            node.right, SMALL_SHIFT_LITERAL
        ):
            return _call(G_LSHIFT, node.left, node.right, like=node)
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        """Allow `and` / `or`."""
        return self.children(node)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        """Allow comparisons."""
        return self.children(node)

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        """Allow conditional expressions."""
        return self.children(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> ast.AST:
        """Allow the walrus operator (its target follows the binding rule)."""
        return self.children(node)

    def visit_Starred(self, node: ast.Starred) -> ast.AST:
        """Allow `*x` in calls, displays and targets."""
        return self.children(node)

    def visit_Slice(self, node: ast.Slice) -> ast.AST:
        """Allow slices."""
        return self.children(node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        """Allow subscripts without a runtime guard (items are data, not attributes)."""
        return self.children(node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        """Allow static attribute names that pass the '_' and introspection rules.

        Reads need no runtime guard. Writes and deletes go through `_corral_write_`,
        which only lets snippet-made objects be changed. `.format`/`.format_map`
        reads go through `_corral_format_`, which checks format field paths.
        """
        reading = isinstance(node.ctx, ast.Load)
        refusal = attribute_refusal(node.attr, reading=reading)
        if refusal:
            self.deny(node, refusal)
        self.children(node)
        if not reading:
            node.value = _call(G_WRITE, node.value, like=node.value)
            return node
        if node.attr in FORMAT_ATTRIBUTES:
            return _call(G_FORMAT, node.value, ast.Constant(node.attr), like=node)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        """Allow calls; keyword argument names follow the '_' rule."""
        for kw in node.keywords:
            if kw.arg is not None and kw.arg.startswith("_"):
                self.deny(
                    kw, f"Keyword argument names starting with '_' are not allowed ('{kw.arg}')"
                )
        return self.children(node)

    def visit_keyword(self, node: ast.keyword) -> ast.AST:
        """Allow keyword arguments (names checked in visit_Call)."""
        return self.children(node)

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        """Allow lambdas (defaults, keyword-only arguments)."""
        self._scopes.append("function")
        try:
            return self.children(node)
        finally:
            self._scopes.pop()

    def visit_arguments(self, node: ast.arguments) -> ast.AST:
        """Allow argument lists."""
        return self.children(node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        """Allow a parameter: its name follows the binding rule; no string annotation."""
        self.check_binding(node.arg, node)
        self.check_annotation(node.annotation)
        return self.children(node)

    def visit_Yield(self, node: ast.Yield) -> ast.AST:
        """Allow `yield` (generators)."""
        return self.children(node)

    def visit_YieldFrom(self, node: ast.YieldFrom) -> ast.AST:
        """Allow `yield from`."""
        return self.children(node)

    def visit_Await(self, node: ast.Await) -> NoReturn:
        """Deny `await`: snippets run synchronously."""
        self.deny(node, "'await' is not supported: snippets run synchronously")

    # ------------------------------------------------------------ comprehensions

    def visit_ListComp(self, node: ast.ListComp) -> ast.AST:
        """Allow list comprehensions."""
        return self.children(node)

    def visit_SetComp(self, node: ast.SetComp) -> ast.AST:
        """Allow set comprehensions."""
        return self.children(node)

    def visit_DictComp(self, node: ast.DictComp) -> ast.AST:
        """Allow dict comprehensions."""
        return self.children(node)

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> ast.AST:
        """Allow generator expressions."""
        return self.children(node)

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        """Allow `for ... in ... if ...` clauses; refuse `async for`."""
        if node.is_async:
            self.deny(node.target, "'async for' is not supported: snippets run synchronously")
        return self.children(node)

    # ------------------------------------------------------------ statements

    def visit_Pass(self, node: ast.Pass) -> ast.Pass:
        """Allow `pass`."""
        return node

    def visit_Break(self, node: ast.Break) -> ast.Break:
        """Allow `break` (not directly in `finally`, see visit_Try)."""
        return node

    def visit_Continue(self, node: ast.Continue) -> ast.Continue:
        """Allow `continue` (not directly in `finally`, see visit_Try)."""
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        """Allow assignment (targets follow the binding and attribute rules)."""
        return self.children(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        """Allow annotated assignment; refuse string annotations."""
        self.check_annotation(node.annotation)
        return self.children(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        """Allow augmented assignment; guard `**=` and `<<=` like `**` and `<<`."""
        self.children(node)
        if isinstance(node.op, ast.Pow):
            return self._guarded_augassign(node, G_IPOW)
        if isinstance(node.op, ast.LShift):
            return self._guarded_augassign(node, G_ILSHIFT)
        return node

    def _guarded_augassign(self, node: ast.AugAssign, guard: str) -> list[ast.stmt]:
        """`t op= v` -> `t = guard(t, v)`, evaluating the target's object and key once."""
        target = node.target
        stmts: list[ast.stmt] = []
        temps: list[str] = []

        def bind(expr: ast.expr) -> ast.Name:
            name = self.tmp_name()
            temps.append(name)
            stmts.append(
                ast.copy_location(
                    ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())], value=expr), node
                )
            )
            return ast.Name(id=name, ctx=ast.Load())

        if isinstance(target, ast.Name):
            load: ast.expr = ast.Name(id=target.id, ctx=ast.Load())
            store: ast.expr = ast.Name(id=target.id, ctx=ast.Store())
        elif isinstance(target, ast.Attribute):
            # visit_Attribute already wrapped the object in the write guard.
            obj = bind(target.value)
            load = ast.Attribute(value=obj, attr=target.attr, ctx=ast.Load())
            store = ast.Attribute(value=obj, attr=target.attr, ctx=ast.Store())
        elif isinstance(target, ast.Subscript):
            obj = bind(target.value)
            index = target.slice
            if isinstance(index, ast.Slice):
                none = ast.Constant(None)
                index = ast.Call(
                    func=ast.Name(id="slice", ctx=ast.Load()),
                    args=[index.lower or none, index.upper or none, index.step or none],
                    keywords=[],
                )
            key = bind(index)
            load = ast.Subscript(value=obj, slice=key, ctx=ast.Load())
            store = ast.Subscript(value=obj, slice=key, ctx=ast.Store())
        else:  # pragma: no cover - the grammar allows no other augassign target
            self.deny(node, "unsupported augmented assignment target")
        value = _call(guard, load, node.value, like=node)
        stmts.append(ast.copy_location(ast.Assign(targets=[store], value=value), node))
        if temps:
            stmts.append(
                ast.copy_location(
                    ast.Delete(targets=[ast.Name(id=t, ctx=ast.Del()) for t in temps]), node
                )
            )
        return [ast.fix_missing_locations(stmt) for stmt in stmts]

    def visit_Delete(self, node: ast.Delete) -> ast.AST:
        """Allow `del` (targets follow the binding and attribute rules)."""
        return self.children(node)

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        """Allow `assert`."""
        return self.children(node)

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        """Allow `raise`."""
        return self.children(node)

    def visit_Global(self, node: ast.Global) -> ast.Global:
        """Allow `global` of the snippet's own names (not tools, not '_' names)."""
        for name in node.names:
            self.check_binding(name, node)
        return node

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.Nonlocal:
        """Allow `nonlocal` of the snippet's own names (not tools, not '_' names)."""
        for name in node.names:
            self.check_binding(name, node)
        return node

    # ------------------------------------------------------------ control flow

    def visit_If(self, node: ast.If) -> ast.AST:
        """Allow `if`."""
        return self.children(node)

    def visit_For(self, node: ast.For) -> ast.AST:
        """Allow `for` loops."""
        return self.children(node)

    def visit_While(self, node: ast.While) -> ast.AST:
        """Allow `while` loops."""
        return self.children(node)

    def visit_AsyncFor(self, node: ast.AsyncFor) -> NoReturn:
        """Deny `async for`: snippets run synchronously."""
        self.deny(node, "'async for' is not supported: snippets run synchronously")

    def visit_Try(self, node: ast.Try) -> ast.AST:
        """Allow try/except/else/finally; handlers re-raise interpreter control flow first.

        `return`/`break`/`continue` directly inside `finally` are refused: they
        would swallow the exception in flight (final_answer, the timeout).
        """
        _check_finally(self, node.finalbody)
        self.children(node)
        for handler in node.handlers:
            reraise = ast.Expr(value=_call(G_RERAISE, like=handler))
            handler.body.insert(0, ast.copy_location(reraise, handler))
        if node.finalbody:
            first = node.finalbody[0]
            guard = ast.With(
                items=[ast.withitem(context_expr=_call(G_FINALLY, like=first))],
                body=node.finalbody,
            )
            node.finalbody = [ast.copy_location(guard, first)]
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        """Allow an `except` clause (its name follows the binding rule)."""
        if node.name is not None:
            self.check_binding(node.name, node)
        return self.children(node)

    def visit_TryStar(self, node: ast.AST) -> NoReturn:
        """Deny `try/except*`: exception groups could carry control flow past handlers."""
        self.deny(node, "'except*' is not supported: use a plain 'except'")

    def visit_With(self, node: ast.With) -> ast.AST:
        """Allow `with`; each context manager is wrapped so `__exit__` cannot swallow control flow."""
        self.children(node)
        for item in node.items:
            item.context_expr = _call(G_WITH, item.context_expr, like=item.context_expr)
        return node

    def visit_withitem(self, node: ast.withitem) -> ast.AST:
        """Allow a `with` item (its target follows the binding rule)."""
        return self.children(node)

    def visit_AsyncWith(self, node: ast.AsyncWith) -> NoReturn:
        """Deny `async with`: snippets run synchronously."""
        self.deny(node, "'async with' is not supported: snippets run synchronously")

    def visit_Return(self, node: ast.Return) -> ast.AST:
        """Allow `return` (not directly in `finally`, see visit_Try)."""
        return self.children(node)

    # ------------------------------------------------------------ pattern matching

    def visit_Match(self, node: ast.Match) -> ast.AST:
        """Allow `match`."""
        return self.children(node)

    def visit_match_case(self, node: ast.match_case) -> ast.AST:
        """Allow a `case` clause."""
        return self.children(node)

    def visit_MatchValue(self, node: ast.MatchValue) -> ast.AST:
        """Allow value patterns."""
        return self.children(node)

    def visit_MatchSingleton(self, node: ast.MatchSingleton) -> ast.AST:
        """Allow None/True/False patterns."""
        return node

    def visit_MatchSequence(self, node: ast.MatchSequence) -> ast.AST:
        """Allow sequence patterns."""
        return self.children(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> ast.AST:
        """Allow `*rest` in sequence patterns (the name follows the binding rule)."""
        if node.name is not None:
            self.check_binding(node.name, node)
        return node

    def visit_MatchMapping(self, node: ast.MatchMapping) -> ast.AST:
        """Allow mapping patterns (`**rest` follows the binding rule)."""
        if node.rest is not None:
            self.check_binding(node.rest, node)
        return self.children(node)

    def visit_MatchClass(self, node: ast.MatchClass) -> ast.AST:
        """Allow class patterns; keyword patterns read attributes, so their names are checked.

        Positional patterns read the attributes named by `__match_args__`, which
        snippet classes cannot define (see rules.DEFINABLE_DUNDERS).
        """
        for attr in node.kwd_attrs:
            refusal = attribute_refusal(attr, reading=False)
            if refusal:
                self.deny(node, refusal)
        return self.children(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> ast.AST:
        """Allow capture and `as` patterns (the name follows the binding rule)."""
        if node.name is not None:
            self.check_binding(node.name, node)
        return self.children(node)

    def visit_MatchOr(self, node: ast.MatchOr) -> ast.AST:
        """Allow `|` patterns."""
        return self.children(node)

    # ------------------------------------------------------------ definitions

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        """Allow functions and methods (decorators, defaults, annotations without strings)."""
        self.check_binding(node.name, node)
        self.check_annotation(node.returns)
        self._scopes.append("function")
        try:
            self.children(node)
        finally:
            self._scopes.pop()
        return node

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> NoReturn:
        """Deny `async def`: snippets run synchronously, there is no event loop."""
        self.deny(node, "'async def' is not supported: snippets run synchronously, use 'def'")

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        """Allow classes without keywords (no `metaclass=`); bodies define reviewed dunders only."""
        self.check_binding(node.name, node)
        if node.keywords:
            self.deny(
                node,
                "Class keywords (such as metaclass=) are not allowed: "
                "use plain inheritance, e.g. `class B(A):`",
            )
        for expr in (*node.bases, *node.decorator_list):
            self.visit(expr)
        self._scopes.append("class")
        try:
            node.body = self._visit_body(node.body)
        finally:
            self._scopes.pop()
        return node

    def _visit_body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in body:
            new = self.visit(stmt)
            if isinstance(new, list):
                out.extend(new)
            elif new is not None:
                out.append(new)
        return out

    # ------------------------------------------------------------ imports

    def visit_Import(self, node: ast.Import) -> ast.Import:
        """Allow `import a.b [as c]` of authorized modules."""
        for alias in node.names:
            self._check_module(alias.name, node)
            bound = alias.asname or alias.name.split(".")[0]
            self.check_binding(bound, node)
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.ImportFrom:
        """Allow `from a import b` of authorized modules; refuse `*`, relative and __future__ imports."""
        if node.level:
            self.deny(node, "Relative imports are not allowed: import by absolute module name")
        module = node.module or ""
        if module == "__future__":
            self.deny(node, "'from __future__ import' is not allowed in snippets")
        self._check_module(module, node)
        for alias in node.names:
            if alias.name == "*":
                self.deny(
                    node,
                    f"'from {module} import *' is not allowed: import the names you need",
                )
            refusal = attribute_refusal(alias.name, reading=False)
            if refusal:
                self.deny(node, refusal)
            self.check_binding(alias.asname or alias.name, node)
        return node

    def visit_alias(self, node: ast.alias) -> ast.alias:
        """Allow import aliases (checked by the import visitors)."""
        return node

    def _check_module(self, module: str, node: ast.AST) -> None:
        if any(part.startswith("_") for part in module.split(".")):
            self.deny(node, f"Import of '{module}' is not allowed: private modules are refused")
        refusal = type(self).import_refusal(module)
        if refusal:
            self.deny(node, refusal)

    def visit_TypeIgnore(self, node: ast.AST) -> ast.AST:
        """Allow `# type: ignore` markers (comments, no code)."""
        return node


# Leaf node types with no children and nothing to check: expression contexts
# and operators. Each has its own allowing visitor above (the review record);
# `children` skips dispatching them for speed.
_LEAF_TYPES: frozenset[type] = frozenset(
    getattr(ast, name)
    for name in [
        "Load",
        "Store",
        "Del",
        "And",
        "Or",
        "Add",
        "Sub",
        "Mult",
        "MatMult",
        "Div",
        "Mod",
        "Pow",
        "LShift",
        "RShift",
        "BitOr",
        "BitXor",
        "BitAnd",
        "FloorDiv",
        "Invert",
        "Not",
        "UAdd",
        "USub",
        "Eq",
        "NotEq",
        "Lt",
        "LtE",
        "Gt",
        "GtE",
        "Is",
        "IsNot",
        "In",
        "NotIn",
    ]
)

_VISITORS: dict[str, Callable[[CorralPolicy, Any], Any]] = {
    name[len("visit_") :]: method
    for name, method in vars(CorralPolicy).items()
    if name.startswith("visit_") and callable(method) and name != "visit"
}


def _is_literal_subscript(node: ast.Subscript) -> bool:
    value = node.value
    name = value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", None)
    return name == "Literal"


def _inside_literal(root: ast.AST, target: ast.AST) -> bool:
    """True when `target` sits inside a `Literal[...]` subscript of `root`."""
    for sub in ast.walk(root):
        if (
            isinstance(sub, ast.Subscript)
            and _is_literal_subscript(sub)
            and any(n is target for n in ast.walk(sub.slice))
        ):
            return True
    return False


def _check_finally(policy: CorralPolicy, body: list[ast.stmt]) -> None:
    """Refuse return/break/continue that would leave a `finally` block early."""

    def walk(stmts: list[ast.stmt], in_loop: bool) -> None:
        for stmt in stmts:
            if isinstance(stmt, ast.Return):
                policy.deny(stmt, "'return' inside 'finally' is not allowed (it hides exceptions)")
            if isinstance(stmt, ast.Break | ast.Continue) and not in_loop:
                kind = "break" if isinstance(stmt, ast.Break) else "continue"
                policy.deny(stmt, f"'{kind}' inside 'finally' is not allowed (it hides exceptions)")
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            loop = isinstance(stmt, ast.For | ast.While | ast.AsyncFor)
            for field in ("body", "orelse", "finalbody"):
                walk(getattr(stmt, field, []) or [], in_loop or (loop and field == "body"))
            for handler in getattr(stmt, "handlers", []) or []:
                walk(handler.body, in_loop)
            for case in getattr(stmt, "cases", []) or []:
                walk(case.body, in_loop)

    walk(body, False)


def bind_policy(
    reserved_names: frozenset[str], import_refusal: Callable[[str], str | None]
) -> type[CorralPolicy]:
    """A policy class configured for one interpreter (RestrictedPython instantiates it)."""
    return type(
        "BoundCorralPolicy",
        (CorralPolicy,),
        {"reserved_names": reserved_names, "import_refusal": staticmethod(import_refusal)},
    )
