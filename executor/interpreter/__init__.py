"""Corral's restricted interpreter: an AST allowlist on RestrictedPython, at CPython speed.

Public API::

    from executor.interpreter import Interpreter, Limits
    interp = Interpreter(authorized_imports=("numpy",), tools={"search": fn},
                         variables={"x": 1}, limits=Limits(wall_time_s=5))
    res = interp.run("y = x + 1\\ny")      # never raises; always a Result
    res.verdict, res.value.repr, res.state

Modules (each owns one thing): `rules` (allow/deny lists, with reasons),
`policy` (the AST transformer), `guards` (the few runtime checks),
`safe_builtins`, `modules` (imports and module proxies), `timeouts`,
`summary` (bounded reprs and JSON), `interpreter` (the `Interpreter` class),
`result` (the shared result types), `errors` (the exception tree).

Design log — approaches tried or considered, and why they were rejected:

- AST-walking evaluator (smolagents' LocalPythonExecutor style): every node is
  a Python-level function call and every name a dict lookup through helper
  layers; measured about 50x slower than CPython on loops and calls, and it
  re-implements Python semantics with deviations (functions copy globals at
  call time, decorators ignored, `a, *b = ...` unsupported). Rejected: we
  check the AST, then compile it to bytecode once and let CPython run it.
- RestrictedPython's stock `RestrictingNodeTransformer`: it rewrites every
  attribute read into `_getattr_(obj, name)`, every subscript into
  `_getitem_`, every iteration into `_getiter_`. Those guards exist because
  its policy delegates name checks to run time. A static attribute name can be
  checked once at compile time, and subscripts/iteration reach no attribute,
  so the guards cost 2-5x on ordinary code for no security gain. Rejected: we
  subclass it only to use its compile entry point, with our own visitors.
- Runtime guard on every attribute read: only attribute *names* matter for
  the escapes this layer stops (`__class__`, `__globals__`, `gi_frame`...), and
  the name of `obj.name` is in the source. Computed names (getattr family,
  format field paths, operator.attrgetter) are the only dynamic ones, and
  those are guarded. Module objects are the other risk (a module attribute
  can be another module); proxies resolve and cache each module attribute once.
- Catching control flow with a flag checked after `exec`: a snippet's
  `except BaseException: pass` or `with suppress(...)` would swallow
  final_answer or the timeout. Rejected: every handler re-raises
  `ControlFlow` first, every `with` is wrapped, `except*` and
  return/break/continue in `finally` are refused, and the timeout re-arms
  every 50 ms until the window closes.
- Running snippets in a thread to bound their time: a thread cannot be
  killed, and `PyThreadState_SetAsyncExc` cannot interrupt a blocking C call.
  Kept only as the fallback when `run` is called off the main thread; on the
  main thread a SIGALRM interval timer is used (it also interrupts sleeps).
- `type()` as a plain function: `isinstance(C, type)` would stop working.
  `type` is instead a class whose metaclass allows one-argument calls only,
  answers isinstance/issubclass like `type`, and never hands out a metaclass.
- `repr()` of values on the host after the run: a snippet `__repr__` that
  loops forever would hang the host. Each description that may run snippet
  code gets its own short guarded window (0.25 s, 2 s in all), with a
  type-name fallback; scalars, functions, classes and proxies are described
  without one. JSON is built only for exact builtin types, at most 1000
  elements: the state is described after every run, so this stays cheap.
- Dropping snippet objects in host code: a generator's `finally` or an
  exception's frames run snippet code when the last reference goes. The
  value, final answer and exception of a run, values replaced by
  `set_variables`, and the namespace on `close()` are released inside a
  short guarded window, followed by a young-generation GC (cheap; a full
  collection costs tens of ms with pandas loaded).
- `RestrictedPython.compile_restricted_exec(tree, policy=...)` end to end:
  its `compile()` call inherits `from __future__ import annotations` from
  RestrictedPython's own module, which turns every snippet annotation into a
  string (breaking dataclasses, and making each annotation an eval() sink for
  typing). We keep its policy protocol (the policy class is built as
  `policy(errors, warnings, used_names)` and visits the tree) and compile
  with `dont_inherit=True` ourselves.
- Refusing every `__import__` that is not authorized: C code that imports
  while a snippet frame is current (numpy's lazy imports, `_strptime`) looks
  `__import__` up in the snippet's builtins. Those calls are recognised by
  the list fromlist `PyImport_Import` passes and get the real module; the
  snippet's own `import` statements never pass a list.
- Trusting host helpers that set attributes by name: `functools.update_wrapper`
  / `wraps` with custom `updated=('__globals__',)` would merge a host module's
  globals (and a real `__builtins__`) into the snippet's namespace, and
  `dataclasses.dataclass` / `functools.total_ordering` rewrite the class they
  are given. Their proxied versions accept only the default attribute lists
  and require the target to pass the write guard.

Known limits of this layer (the container layer covers them): a single long C
call (huge sort, catastrophic regex, `math.factorial(10**7)`) cannot be
interrupted by the soft timeout; memory blow-ups other than `**`/`<<`
(`'x' * 10**10`, numpy object arrays) end in MemoryError or the container's
memory limit; a finalizer (generator `finally`) of cyclic garbage runs when
the cyclic GC does, possibly outside a run window (no timeout there: the
daemon's hard timeout ends such a session). The enum functional API would
let `Enum('E', {'__del__': f})` plant a dunder; `modules.harden_enum`
refuses '_' member names there, process-wide (no legitimate enum has them). Authorized third-party packages
are trusted not to expose modules through class attributes, and instances
of their types accept attribute writes (`df.columns = [...]`).

Standard library + RestrictedPython only: this package is copied into the
sandbox image.
"""

from __future__ import annotations

from proto.results import ErrorInfo, Result, Value, Variable, Verdict

from .errors import (
    ControlFlow,
    CpuLimitExceeded,
    FinalAnswer,
    InterpreterError,
    InvalidVariableName,
    PolicyError,
    PolicyViolation,
    ResourceLimit,
    TimeoutInterrupt,
    UnsafeImportError,
)
from .interpreter import Interpreter
from .limits import Limits
from .rules import DEFAULT_IMPORTS, NEVER_IMPORTS

__all__ = [
    "DEFAULT_IMPORTS",
    "NEVER_IMPORTS",
    "ControlFlow",
    "CpuLimitExceeded",
    "ErrorInfo",
    "FinalAnswer",
    "Interpreter",
    "InterpreterError",
    "InvalidVariableName",
    "Limits",
    "PolicyError",
    "PolicyViolation",
    "ResourceLimit",
    "Result",
    "TimeoutInterrupt",
    "UnsafeImportError",
    "Value",
    "Variable",
    "Verdict",
]
