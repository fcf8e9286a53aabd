"""The modules every session may import, unless the session authorizes more.

The restricted interpreter enforces this list (executor/interpreter/rules.py
reads it from here) and the client shows it to models in their prompts, so a
prompt never promises a module the sandbox refuses. Every module reaches
snippets through a proxy; the interpreter withholds some attributes of these
modules (its MODULE_DENYLIST). Standard library only: the client imports it
and the image carries it.
"""

from __future__ import annotations

DEFAULT_IMPORTS: tuple[str, ...] = (
    "bisect",
    "collections",
    "collections.abc",
    "copy",
    "csv",  # readers and writers of iterables and file-like objects; opens no files itself
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "fractions",
    "functools",
    "heapq",
    "itertools",
    "json",
    "math",
    "operator",  # proxied: attrgetter/methodcaller check names, pow/lshift guarded
    "queue",  # its `threading` attribute is a module, refused by the proxy
    "random",
    "re",
    "stat",
    "statistics",
    "string",  # proxied: Formatter replaced by a field-path-checking subclass
    "textwrap",
    "time",  # proxied: sleep is sliced so the soft timeout interrupts it
    "typing",
    "unicodedata",
    # Served as reviewed facades although their real modules are on the
    # never-list (facades.py): sys (facts and the snippet's own streams), io
    # (StringIO, BytesIO), pathlib (the pure path classes).
    # Considered and left out: pprint, logging (write to real sys.stdout/stderr
    # and files), weakref (callbacks run at GC time, outside the run window),
    # abc (ABCMeta is a metaclass: class creation with arbitrary dunders).
)
