"""Imports: which modules a snippet may import, and the proxies it gets instead.

A snippet never holds a real module object. `import x` goes through
`Importer.import_`, the `__import__` of the snippet's builtins, which checks
the authorization rules and returns a `ModuleProxy`. A proxy resolves each
public attribute once (checking the "_" rule, the introspection names, the
per-module denylist, and that module-valued attributes are themselves
authorized), then caches it in its instance dict, so `math.sqrt` in a hot loop
is a plain attribute read. Proxies refuse attribute writes and deletes.

Authorization follows smolagents' matching: an entry "numpy" authorizes
exactly `numpy`, "numpy.*" authorizes numpy and its submodules, "*" anything
(except the never-list, which always wins).

Standard library only: this module is copied into the sandbox image.
"""

from __future__ import annotations

import enum
import importlib
import operator
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from types import CodeType, FunctionType, MethodType, ModuleType
from typing import Any

from .errors import PolicyViolation, UnsafeImportError
from .guards import SafeFormatter, check_attribute_name
from .policy import attribute_refusal
from .rules import (
    DEFAULT_IMPORTS,
    FACADE_IMPORTS,
    MODULE_DENYLIST,
    MODULE_READABLE_DUNDERS,
    NEVER_IMPORTS,
    SUBMODULE_DENYLIST,
)

# Objects a module may never hand out: constructors of code and function
# objects (a function built from a code object runs unchecked bytecode).
NEVER_VALUES: tuple[type, ...] = (CodeType, FunctionType, MethodType, type(sys._getframe()))

SLEEP_SLICE_S = 0.05  # time.sleep granularity, so the watchdog timeout can interrupt it


# Every proxy class ever made (exact types: a snippet class cannot pose as one).
PROXY_TYPES: set[type] = set()


def is_proxy(obj: Any) -> bool:
    """True when obj is a module proxy."""
    return type(obj) in PROXY_TYPES


def is_never(module: str) -> bool:
    """True when `module` or one of its parents is on the never-list, or is private."""
    parts = module.split(".")
    return any(".".join(parts[: i + 1]) in NEVER_IMPORTS for i in range(len(parts))) or any(
        p.startswith("_") for p in parts
    )


def _enum_names(names: Any) -> tuple[Any, list[Any]]:
    """Normalise the functional API's `names` to exact types; return (names, member names)."""
    if isinstance(names, str):
        return names, str.__str__(names).replace(",", " ").split()
    if names is None:
        return names, []
    if isinstance(names, Mapping):
        exact = {(str.__str__(k) if isinstance(k, str) else k): names[k] for k in list(names)}
        return exact, list(exact)
    items: list[Any] = []
    for item in names:
        if isinstance(item, str):
            items.append(str.__str__(item))
        else:
            pair = tuple(item)
            if pair and isinstance(pair[0], str):
                pair = (str.__str__(pair[0]), *pair[1:])
            items.append(pair)
    return items, [i if isinstance(i, str) else (i[0] if i else None) for i in items]


def harden_enum() -> None:
    """Refuse '_' member names in the enum functional API (`Enum('E', {...})`).

    Through it a dunder "member" becomes a plain class attribute, so
    `Enum('E', {'__del__': f})` would plant a finalizer that the garbage
    collector runs outside any run window. No legitimate enum has such
    member names, so the check is installed process-wide, once.
    """
    meta = enum.EnumType
    original = meta.__dict__["_create_"]
    if getattr(original, "corral_checked", False):
        return

    def _create_(cls: Any, class_name: Any, names: Any, *args: Any, **kwargs: Any) -> Any:
        names, members = _enum_names(names)
        for name in members:
            if isinstance(name, str) and name.startswith("_"):
                raise PolicyViolation(
                    f"Enum member names starting with '_' are not allowed ({name!r})"
                )
        return original(cls, class_name, names, *args, **kwargs)

    _create_.corral_checked = True  # type: ignore[attr-defined]
    _create_.__doc__ = original.__doc__
    meta._create_ = _create_  # type: ignore[attr-defined]


class ImportRules:
    """The authorization rule of one interpreter (defaults + the session's extras)."""

    def __init__(self, authorized: Iterable[str], *, unsafe_allow_never_imports: bool = False):
        self.entries = tuple(dict.fromkeys((*DEFAULT_IMPORTS, *authorized)))
        self.unsafe = unsafe_allow_never_imports
        if not self.unsafe:
            for entry in self.entries:
                base = entry[:-2] if entry.endswith(".*") else entry
                if entry != "*" and is_never(base):
                    raise UnsafeImportError(
                        f"'{entry}' is on the never-import list (it reaches the process, files, "
                        "network or code objects), so no session may import it: compute what "
                        "you need with a tool that runs on the client instead"
                    )
        self.exact = frozenset(e for e in self.entries if not e.endswith("*"))
        self.prefixes = tuple(e[:-2] for e in self.entries if e.endswith(".*"))
        self.everything = "*" in self.entries
        # Third-party packages the session authorized explicitly: instances of
        # their types may have attributes set (df.columns = [...]).
        self.extra_packages = frozenset(
            e.split(".")[0]
            for e in authorized
            if e != "*" and e.split(".")[0] not in sys.stdlib_module_names
        )

    def import_refusal(self, module: str) -> str | None:
        """Why an `import` statement of `module` is refused, or None.

        Like `refusal`, except for the facade names (sys, io, pathlib): the
        Importer answers those with the reviewed facade, never the module. The
        real modules stay refused everywhere else (as attributes of modules).
        """
        return None if module in FACADE_IMPORTS else self.refusal(module)

    def refusal(self, module: str) -> str | None:
        """Why `module` may not be imported, or None."""
        if not module:
            return "An empty module name cannot be imported"
        if not self.unsafe and is_never(module):
            return (
                f"Import of '{module}' is not allowed: it is on the never-import list "
                "(process, files, network or code objects)"
            )
        if self.everything or module in self.exact:
            return None
        for prefix in self.prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return None
        root = module.split(".")[0]
        return (
            f"Import of '{module}' is not allowed: authorized modules are "
            f"{', '.join(sorted(self.entries))}. To allow it, authorize it when the session "
            f"opens: imports=['{module}'] (CodeAgent: additional_authorized_imports), or "
            f"'{root}.*' for the package and its submodules; on the command line "
            f"--import {module}"
        )


class Importer:
    """`__import__` for snippets, and the factory of module proxies."""

    def __init__(
        self,
        rules: ImportRules,
        size_guards: dict[str, Any],
        write_guard: Callable[[Any], Any],
    ) -> None:
        self.rules = rules
        self.size_guards = size_guards  # operator.pow & co. (see guards.make_size_guards)
        self.write_guard = write_guard  # for host helpers that set attributes on arguments
        self.proxies: dict[str, Any] = {}
        # Never-list modules served as reviewed facades (facades.py), by name.
        self.facades: dict[str, Any] = {}
        self.artifacts: Any = None  # the interpreter's ArtifactCollector (plt.show)
        harden_enum()

    def import_(
        self,
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> Any:
        """The snippet's `__import__`: checked, returns proxies.

        C code that imports while a snippet frame is current (numpy's lazy
        `npy_cache_import`, datetime's `_strptime`) goes through
        `PyImport_Import`, which looks `__import__` up in the *current frame's*
        builtins, i.e. here. It always passes the list `['__doc__']` as
        fromlist, while the IMPORT_NAME opcode of snippet code passes None or
        a tuple of constant names, so a list marks a host import: it gets the
        real module, as the C caller needs, and the snippet never sees it.
        """
        if type(fromlist) is list:
            return importlib.__import__(name, globals, locals, fromlist, level)
        if level:
            raise PolicyViolation("Relative imports are not allowed: import by absolute name")
        if type(name) is not str:
            raise TypeError("module name must be a string")
        if name in FACADE_IMPORTS:
            facade = self.facades.get(name)
            if facade is None:
                raise PolicyViolation(f"Import of '{name}' is not available here")
            PROXY_TYPES.add(type(facade))
            return facade
        refusal = self.rules.import_refusal(name)
        if refusal:
            raise PolicyViolation(refusal)
        module = importlib.import_module(name)
        if fromlist:
            self._import_submodules(module, fromlist)
            return self.proxy(module)
        top = name.split(".")[0]
        return self.proxy(sys.modules[top])

    def _import_submodules(self, module: ModuleType, fromlist: Any) -> None:
        """`from PIL import Image`: import the submodules a from-import names, as CPython's
        own `_handle_fromlist` does, when the package's `__init__` did not (the same
        rule as reaching a submodule as an attribute: `submodule_refusal`)."""
        for sub in fromlist:
            if type(sub) is not str or sub == "*" or hasattr(module, sub):
                continue
            full = f"{module.__name__}.{sub}"
            refusal = self.submodule_refusal(module.__name__, full)
            if refusal is not None:
                raise PolicyViolation(refusal)
            try:
                importlib.import_module(full)
            except ModuleNotFoundError as exc:
                if exc.name != full:
                    raise  # the submodule exists but an import inside it failed

    def proxy(self, module: ModuleType) -> Any:
        """The (one, cached) proxy of a real module."""
        proxy = self.proxies.get(module.__name__)
        if proxy is None:
            proxy = make_proxy(module, self)
            self.proxies[module.__name__] = proxy
        return proxy

    def submodule_refusal(self, parent: str, full: str) -> str | None:
        """Why a module reached as an attribute of `parent` is refused, or None.

        A module of the same authorized package (`np.linalg`, `pd.api`,
        `json.decoder.scanner`) is fine unless it or a parent is on the reviewed
        SUBMODULE_DENYLIST; anything else (a module another package imported,
        `datetime.sys`-style re-exports) follows the import rule.
        """
        parts = full.split(".")
        if any(".".join(parts[: i + 1]) in SUBMODULE_DENYLIST for i in range(len(parts))):
            return (
                f"'{full}' reaches the process, files, native code or the network and is "
                "never available in snippets"
            )
        same_package = parts[0] == parent.split(".")[0]  # np.linalg, json.decoder.scanner
        if same_package and self.rules.refusal(parts[0]) is None:
            if is_never(full) and not self.rules.unsafe:
                return self.rules.refusal(full)
            return None
        return self.rules.refusal(full)

    def resolve(self, module: ModuleType, name: str) -> Any:
        """One checked attribute of a module (called once per name per proxy)."""
        modname = module.__name__
        if name in MODULE_READABLE_DUNDERS:
            value = getattr(module, name, None)
            if isinstance(value, str | tuple) and type(value) in (str, tuple):
                return value
            raise AttributeError(f"module '{modname}' has no attribute '{name}'")
        refusal = attribute_refusal(name, reading=False)
        if refusal:
            raise PolicyViolation(refusal)
        if name in MODULE_DENYLIST.get(modname, ()):
            raise PolicyViolation(
                f"'{modname}.{name}' is not available in snippets (it evaluates strings "
                "or plants code the interpreter would later run)"
            )
        override = OVERRIDES.get((modname, name))
        if override is not None:
            return override(self)
        try:
            value = getattr(module, name)
        except AttributeError:
            # `from pkg import sub` falls back to sys.modules["pkg.sub"]; answer it here
            # so that fallback never sees a real module.
            value = sys.modules.get(f"{modname}.{name}")
            if value is None:
                raise AttributeError(f"module '{modname}' has no attribute '{name}'") from None
        if isinstance(value, ModuleType):
            full = value.__name__
            refusal = self.submodule_refusal(modname, full)
            if refusal:
                raise PolicyViolation(
                    f"'{modname}.{name}' is the module '{full}', which is not authorized: {refusal}"
                )
            return self.proxy(value)
        if isinstance(value, type) and issubclass(value, type):
            raise PolicyViolation(
                f"'{modname}.{name}' is a metaclass; metaclasses are not available in snippets"
            )
        if isinstance(value, type) and value in NEVER_VALUES:
            raise PolicyViolation(f"'{modname}.{name}' constructs code or function objects")
        return value


def make_proxy(module: ModuleType, importer: Importer) -> Any:
    """Build the proxy class and instance for one module."""
    modname = module.__name__

    class ModuleProxy:
        """A module as snippets see it: checked, cached, read-only attributes."""

        def __getattr__(self, name: str) -> Any:
            value = importer.resolve(module, name)
            self.__dict__[name] = value
            return value

        def __setattr__(self, name: str, value: Any) -> None:
            raise PolicyViolation(f"Cannot set attributes of the module '{modname}'")

        def __delattr__(self, name: str) -> None:
            raise PolicyViolation(f"Cannot delete attributes of the module '{modname}'")

        def __repr__(self) -> str:
            return f"<module '{modname}'>"

        def __dir__(self) -> list[str]:
            return sorted(n for n in dir(module) if not n.startswith("_"))

    ModuleProxy.__name__ = ModuleProxy.__qualname__ = "module"
    ModuleProxy.__module__ = "builtins"
    PROXY_TYPES.add(ModuleProxy)
    proxy = ModuleProxy()
    proxy.__dict__["__name__"] = modname
    proxy.__dict__["__doc__"] = module.__doc__
    return proxy


# ------------------------------------------------------------------ overrides
# Attributes replaced by safe versions: (module, name) -> factory(importer).


def _sliced_sleep(seconds: float) -> None:
    """time.sleep in short slices, so a timeout can interrupt it in watchdog mode."""
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, SLEEP_SLICE_S))


_sliced_sleep.__name__ = "sleep"


def _checked_names(names: tuple[Any, ...]) -> None:
    for name in names:
        for part in check_attribute_name(name, reading=True).split("."):
            check_attribute_name(part, reading=True)
            if part in ("format", "format_map"):
                raise PolicyViolation(
                    "operator getters cannot fetch 'format'/'format_map': call it directly"
                )


def _attrgetter(*names: Any) -> Any:
    _checked_names(names)
    return operator.attrgetter(*names)


def _methodcaller(name: Any, /, *args: Any, **kwargs: Any) -> Any:
    _checked_names((name,))
    return operator.methodcaller(name, *args, **kwargs)


_attrgetter.__name__ = "attrgetter"
_methodcaller.__name__ = "methodcaller"


def _size_guard(kind: str) -> Callable[[Importer], Any]:
    def factory(importer: Importer) -> Any:
        return importer.size_guards[kind]

    return factory


def _setattr_helpers(importer: Importer, name: str) -> Any:
    """Host helpers that set attributes on an argument: the argument must be writable.

    functools.update_wrapper/wraps with custom `assigned`/`updated` read and
    write arbitrary attribute names (`updated=('__globals__',)` would merge a
    host module's globals into the snippet's), so only the defaults are
    accepted; their target must pass the write guard like `obj.attr = v`.
    """
    import dataclasses
    import functools

    write = importer.write_guard

    def update_wrapper(wrapper: Any, wrapped: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            raise PolicyViolation(
                "functools.update_wrapper/wraps accept no 'assigned'/'updated' arguments here"
            )
        return functools.update_wrapper(write(wrapper), wrapped)

    def wraps(wrapped: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            raise PolicyViolation(
                "functools.update_wrapper/wraps accept no 'assigned'/'updated' arguments here"
            )
        return functools.partial(update_wrapper, wrapped=wrapped)

    def total_ordering(cls: Any) -> Any:
        return functools.total_ordering(write(cls))

    def dataclass(cls: Any = None, /, **kwargs: Any) -> Any:
        if cls is None:
            return lambda c: dataclass(c, **kwargs)
        return dataclasses.dataclass(write(cls), **kwargs)

    helpers = {
        "update_wrapper": update_wrapper,
        "wraps": wraps,
        "total_ordering": total_ordering,
        "dataclass": dataclass,
    }
    helper = helpers[name]
    helper.__name__ = helper.__qualname__ = name
    original = dataclasses.dataclass if name == "dataclass" else getattr(functools, name)
    helper.__doc__ = original.__doc__
    return helper


def _pyplot_show(importer: Importer) -> Any:
    """`plt.show()`: every open figure becomes an artifact now, and is closed."""

    def show(*args: Any, format: Any = None, **kwargs: Any) -> None:
        if importer.artifacts is not None:
            importer.artifacts.collect_figures(format)

    show.__name__ = show.__qualname__ = "show"
    show.__doc__ = (
        "Send every open figure to the agent as an image (format='svg' for SVG), then close it."
    )
    return show


OVERRIDES: dict[tuple[str, str], Callable[[Importer], Any]] = {
    ("matplotlib.pyplot", "show"): _pyplot_show,
    ("functools", "update_wrapper"): lambda imp: _setattr_helpers(imp, "update_wrapper"),
    ("functools", "wraps"): lambda imp: _setattr_helpers(imp, "wraps"),
    ("functools", "total_ordering"): lambda imp: _setattr_helpers(imp, "total_ordering"),
    ("dataclasses", "dataclass"): lambda imp: _setattr_helpers(imp, "dataclass"),
    ("time", "sleep"): lambda imp: _sliced_sleep,
    ("string", "Formatter"): lambda imp: SafeFormatter,
    ("operator", "attrgetter"): lambda imp: _attrgetter,
    ("operator", "methodcaller"): lambda imp: _methodcaller,
    ("operator", "pow"): _size_guard("pow"),
    ("operator", "ipow"): _size_guard("ipow"),
    ("operator", "lshift"): _size_guard("lshift"),
    ("operator", "ilshift"): _size_guard("ilshift"),
}
