"""Allow and deny lists of the restricted interpreter, as immutable data.

Each entry carries its reason; an entry that was considered and left out stays
as a comment saying why. The policy (`policy.py`), the builtins
(`safe_builtins.py`) and the module proxies (`modules.py`) read these sets and
hold no lists of their own, so a security review reads this one file.

Standard library only: this module is copied into the sandbox image.
"""

from __future__ import annotations

from proto.imports import DEFAULT_IMPORTS as _DEFAULT_IMPORTS

# The module name and file names snippet code runs under. Classes defined by a
# snippet get `__module__ == SNIPPET_MODULE`; functions get a `co_filename` of
# `snippet_filename(n)` (n counts the session's snippets, so a traceback can name
# the snippet that defined each frame's code). Guards use both to tell snippet
# objects (writable) from host objects (not writable). No host code is compiled
# under such a name, and snippets cannot compile code or reach code objects.
SNIPPET_MODULE = "__corral__"
SNIPPET_FILENAME = "<snippet>"  # before the first run, and for single-shot tools
_SNIPPET_PREFIX = "<snippet-"


def snippet_filename(number: int) -> str:
    """The file name of the session's `number`-th snippet (1-based)."""
    return f"{_SNIPPET_PREFIX}{number}>"


def snippet_number(filename: object) -> int | None:
    """The snippet number of a code object's file name, None for host code."""
    if type(filename) is not str:
        return None
    if filename == SNIPPET_FILENAME:
        return 0
    if filename.startswith(_SNIPPET_PREFIX) and filename.endswith(">"):
        digits = filename[len(_SNIPPET_PREFIX) : -1]
        if digits.isdigit():
            return int(digits)
    return None


# ---------------------------------------------------------------- attribute names
# Refused for read, write and delete in every form (static `obj.name`, the
# getattr family, str.format field paths, operator.attrgetter/methodcaller,
# match class patterns), in addition to every name starting with "_".
DENIED_ATTRIBUTES: frozenset[str] = frozenset(
    {
        # generator internals: the frame leads to f_globals/f_builtins
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "gi_running",  # harmless flag, denied with its family for a simple rule
        "gi_suspended",
        # coroutine / async generator internals (async is refused, but a
        # host library could still hand out such objects)
        "cr_frame",
        "cr_code",
        "cr_await",
        "cr_origin",
        "cr_running",
        "ag_frame",
        "ag_code",
        "ag_await",
        "ag_running",
        # frame objects: the way from any frame to globals, builtins and callers
        "f_back",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_code",
        "f_trace",
        "f_trace_lines",
        "f_trace_opcodes",
        "f_lasti",
        "f_lineno",
        # traceback objects: tb_frame leads to interpreter frames
        "tb_frame",
        "tb_next",
        "tb_lasti",
        "tb_lineno",
        # code objects: reading them is a step to building functions
        "co_code",
        "co_consts",
        "co_names",
        "co_varnames",
        "co_freevars",
        "co_cellvars",
        "co_filename",
        "co_name",
        "co_qualname",
        "co_lines",
        "co_positions",
        "co_linetable",
        "co_exceptiontable",
        # "replace" and "clear" are NOT listed: str.replace, dict.clear are everyday
        # methods; code.replace/frame.clear need objects the rules above withhold.
        # class introspection: reaches every loaded class (and so the host's modules)
        "mro",
        # Python 2 spellings, kept so an old exploit recipe fails loudly
        "func_globals",
        "func_code",
        "func_closure",
        "func_defaults",
        "im_func",
        "im_self",
        "im_class",
    }
)

# Dunder methods a snippet's class body may define. Each one is only ever
# called by CPython while the snippet itself runs (operators, protocols).
DEFINABLE_DUNDERS: frozenset[str] = frozenset(
    {
        "__init__",
        "__post_init__",  # dataclasses
        "__repr__",
        "__str__",
        "__eq__",
        "__ne__",
        "__lt__",
        "__le__",
        "__gt__",
        "__ge__",
        "__hash__",
        "__bool__",
        "__len__",
        "__iter__",
        "__next__",
        "__reversed__",
        "__getitem__",
        "__setitem__",
        "__delitem__",
        "__contains__",
        "__enter__",
        "__exit__",
        "__call__",
        "__neg__",
        "__pos__",
        "__abs__",
        "__invert__",
        "__round__",
        "__int__",
        "__float__",
        "__complex__",
        *(
            f"__{p}{op}__"
            for op in (
                "add",
                "sub",
                "mul",
                "matmul",
                "truediv",
                "floordiv",
                "mod",
                "divmod",
                "pow",
                "lshift",
                "rshift",
                "and",
                "xor",
                "or",
            )
            for p in ("", "r", "i")
            if not (p == "i" and op == "divmod")
        ),
        "__slots__",  # a data attribute: declares instance slots, runs no code
        "__doc__",  # set by a class docstring
        # Considered and refused:
        # __del__: runs at garbage collection, possibly outside the run window
        #   (no timeout), e.g. while the host builds the state summary.
        # __getattribute__/__getattr__/__setattr__/__delattr__: run on every
        #   host-side attribute access of the object.
        # __reduce__/__reduce_ex__/__getstate__/__setstate__/__copy__/__deepcopy__:
        #   serialisation hooks; copy/pickle machinery calls them from host code.
        # __init_subclass__/__class_getitem__/__set_name__/__prepare__/__new__:
        #   class-creation hooks; run inside class machinery, and __new__ can
        #   return arbitrary objects from constructors.
        # __format__: format() and str.format call it from the formatter machinery.
        # __get__/__set__/__delete__: descriptors run on attribute access of *other*
        #   objects, including host-side lookups.
        # __instancecheck__/__subclasscheck__: only meaningful on metaclasses,
        #   which are refused anyway.
        # __index__: lets an object masquerade as an int inside C code (slices,
        #   range, bit lengths); the size guards read ints, so it stays out.
        # __missing__: called by dict.__getitem__ of a subclass; harmless but
        #   left out until a snippet needs it (defaultdict covers the use).
        # __match_args__: positional class patterns read the attributes it names,
        #   so it would bypass the attribute-name rule.
        # __length_hint__/__sizeof__/__dir__/__aiter__/__anext__/__await__: no need.
    }
)

# Dunder attributes a snippet may READ (beyond the "_" rule). Bound methods of
# the definable dunders are what `super().__init__(...)` needs; the data
# dunders are plain strings.
READABLE_DUNDERS: frozenset[str] = (
    DEFINABLE_DUNDERS
    | frozenset({"__name__", "__qualname__", "__module__", "__doc__", "__version__"})
) - frozenset({"__slots__"})
# Dunder attributes of a module a snippet may read through its proxy (each must
# hold a plain string or tuple; anything else is refused).
MODULE_READABLE_DUNDERS: frozenset[str] = frozenset({"__version__"})

# Submodules of an authorized package that snippets may NOT reach as attributes
# (`np.linalg` is fine when "numpy" is authorized; these are not): they reach the
# process, files, native code or the network, or exist only to test the package.
# An explicit `import pkg.sub` still follows the authorization rule ("pkg.*").
SUBMODULE_DENYLIST: frozenset[str] = frozenset(
    {
        # numpy: ctypes bridge, Fortran/C build tools, test helpers, on-disk formats
        "numpy.ctypeslib",
        "numpy.f2py",
        "numpy.distutils",
        "numpy.testing",
        "numpy.lib.format",  # .npy file reading with allow_pickle switches
        "numpy.lib.npyio",
        # pandas: test helpers, clipboard/IO plumbing, plotting backends loading modules
        "pandas.testing",
        "pandas.io",
        "pandas.util",
        "pandas.plotting",
        # matplotlib: test helpers, backends (GUI toolkits, subprocesses), font files
        "matplotlib.testing",
        "matplotlib.backends",
        "matplotlib.font_manager",
        "matplotlib.animation",  # writers spawn ffmpeg/imagemagick subprocesses
        "matplotlib.texmanager",  # runs latex
        "matplotlib.dviread",
        # Pillow: external viewers, screen grabs, GUI toolkits
        "PIL.ImageShow",
        "PIL.ImageGrab",
        "PIL.ImageTk",
        "PIL.ImageQt",
        "PIL.ImageWin",
        "PIL.EpsImagePlugin",  # runs Ghostscript
    }
)

# ---------------------------------------------------------------- builtins
# Builtins handed to snippets unchanged.
PLAIN_BUILTINS: frozenset[str] = frozenset(
    {
        "abs",
        "all",
        "any",
        "ascii",
        "bin",
        "bool",
        "bytearray",
        "bytes",
        "callable",
        "chr",
        "classmethod",
        "complex",
        "dict",
        "divmod",
        "enumerate",
        "filter",
        "float",
        "format",  # calls __format__, which snippet classes cannot define
        "frozenset",
        "hash",
        "hex",
        "id",
        "int",
        "isinstance",
        "issubclass",
        "iter",
        "len",
        "list",
        "map",
        "max",
        "min",
        "next",
        "object",  # its dunders (__subclasses__, __setattr__) fall under the "_" rule
        "oct",
        "ord",
        "property",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "slice",
        "sorted",
        "staticmethod",
        "str",
        "sum",
        "super",
        "tuple",
        "zip",
        "dir",  # names only; reading them still goes through the guards
        "None",
        "True",
        "False",
        "Ellipsis",
        "NotImplemented",
    }
)
# Replaced by guarded versions (see safe_builtins.py): print, type, pow,
# getattr, setattr, hasattr, delattr, __import__, __build_class__.
#
# Never handed out, with reasons:
#   eval, exec, compile: run unchecked code.
#   open: the filesystem; only a workspace-confined `open` (files.py) is given,
#     and only when the interpreter has a workspace (the runner's /workspace).
#   input: blocks on the runner's stdin (the frame channel).
#   breakpoint, help: interactive, reach pdb/pydoc and sys.
#   globals, locals, vars: the namespace dicts (rebinding tools, __builtins__).
#   __import__ (the real one): bypasses the import policy.
#   memoryview: raw buffer access.   exit, quit: SystemExit helpers of site.
#   aiter, anext: async is refused.  copyright, credits, license: site noise.

# Exception classes are handed out unchanged (catching them is ordinary code).
EXCEPTION_BUILTINS: frozenset[str] = frozenset(
    {
        "ArithmeticError",
        "AssertionError",
        "AttributeError",
        "BaseException",
        "BlockingIOError",
        "BrokenPipeError",
        "BufferError",
        "BytesWarning",
        "ChildProcessError",
        "ConnectionAbortedError",
        "ConnectionError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "DeprecationWarning",
        "EOFError",
        "EnvironmentError",
        "Exception",
        "ExceptionGroup",  # except* is refused; the class itself is plain data
        "BaseExceptionGroup",
        "FileExistsError",
        "FileNotFoundError",
        "FloatingPointError",
        "FutureWarning",
        "GeneratorExit",
        "IOError",
        "ImportError",
        "ImportWarning",
        "IndentationError",
        "IndexError",
        "InterruptedError",
        "IsADirectoryError",
        "KeyError",
        "KeyboardInterrupt",
        "LookupError",
        "MemoryError",
        "ModuleNotFoundError",
        "NameError",
        "NotADirectoryError",
        "NotImplementedError",
        "OSError",
        "OverflowError",
        "PendingDeprecationWarning",
        "PermissionError",
        "ProcessLookupError",
        "RecursionError",
        "ReferenceError",
        "ResourceWarning",
        "RuntimeError",
        "RuntimeWarning",
        "StopAsyncIteration",
        "StopIteration",
        "SyntaxError",
        "SyntaxWarning",
        "SystemError",
        "SystemExit",
        "TabError",
        "TimeoutError",
        "TypeError",
        "UnboundLocalError",
        "UnicodeDecodeError",
        "UnicodeEncodeError",
        "UnicodeError",
        "UnicodeTranslateError",
        "UnicodeWarning",
        "UserWarning",
        "ValueError",
        "Warning",
        "ZeroDivisionError",
        "EncodingWarning",
    }
)

# ---------------------------------------------------------------- imports
# Modules on the never-list that snippets import as a facade (facades.py).
FACADE_IMPORTS: tuple[str, ...] = ("sys", "io", "pathlib")

# Importable by default: declared in proto/imports.py (the client tells models the
# same list). Every module reaches snippets through a proxy; see MODULE_DENYLIST
# for the attributes withheld from otherwise safe modules.
DEFAULT_IMPORTS = _DEFAULT_IMPORTS

# Never importable, whatever the session authorizes, unless the Interpreter is
# built with unsafe_allow_never_imports=True. A dotted import is refused when
# any of its prefixes is here; names starting with "_" are refused as well
# (private C modules such as _io, _thread, _posixsubprocess).
NEVER_IMPORTS: frozenset[str] = frozenset(
    {
        # the process, the OS and the interpreter itself
        "os",
        "posix",
        "nt",
        "sys",
        "builtins",
        "importlib",
        "imp",
        "zipimport",
        "pkgutil",
        "runpy",
        "site",
        "sysconfig",
        "gc",
        "inspect",
        "ctypes",
        "cffi",
        "signal",
        "resource",
        "faulthandler",
        "tracemalloc",
        "atexit",
        "pwd",
        "grp",
        "fcntl",
        "termios",
        "pty",
        "tty",
        "mmap",
        # code and function object construction / interactive interpreters
        "types",  # FunctionType, CodeType, new_class
        "code",
        "codeop",
        "dis",
        "opcode",
        "ast",  # compile() is refused, but ast objects invite it
        "symtable",
        "pdb",
        "bdb",
        "traceback",  # walk_stack hands out live frames
        "linecache",
        # serialisation that runs code
        "pickle",
        "pickletools",
        "copyreg",
        "marshal",
        "shelve",
        "dbm",
        # processes, threads, concurrency
        "subprocess",
        "threading",
        "multiprocessing",
        "concurrent",
        "asyncio",
        "_thread",
        "sched",
        # files and I/O
        "io",
        "pathlib",
        "shutil",
        "tempfile",
        "glob",
        "fileinput",
        "zipfile",
        "tarfile",
        "sqlite3",
        "logging",
        # network
        "socket",
        "ssl",
        "select",
        "selectors",
        "socketserver",
        "http",
        "urllib",
        "ftplib",
        "smtplib",
        "poplib",
        "imaplib",
        "telnetlib",
        "xmlrpc",
        "webbrowser",
        # weak references: callbacks run at GC time, outside the run window
        "weakref",
    }
)

# Attributes withheld from otherwise importable modules: "eval sinks" and
# class factories that would let a snippet plant code the host later runs.
MODULE_DENYLIST: dict[str, frozenset[str]] = {
    # ForwardRef evaluation calls eval() on strings
    "typing": frozenset({"get_type_hints", "ForwardRef", "evaluate_forward_ref"}),
    # register() reads annotations through typing.get_type_hints (eval)
    "functools": frozenset({"singledispatch", "singledispatchmethod"}),
    # make_dataclass(namespace=...) plants arbitrary dunders (__del__...) on a class
    "dataclasses": frozenset({"make_dataclass"}),
    # metaclasses: calling them builds classes with arbitrary namespaces
    "enum": frozenset({"EnumMeta", "EnumType"}),
}
