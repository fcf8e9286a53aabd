"""The curated attack corpus: one TOML file per class under tests/corpus/.

File format (TOML, parsed with tomllib):

    class = "introspection"              # the file's class (every entry inherits it)
    description = "..."                  # one line for the report

    [[entry]]
    id = "introspection-subclasses-walk"  # unique across the corpus
    expect = ["POLICY_DENIED"]           # acceptable verdicts (one or more)
    layers = ["interpreter"]             # single layers that must stop it ALONE
    source = "CVE-2025-9959 (smolagents) ..."  # the public advisory/paper/write-up
    tools = ["echo"]                     # optional: hostile client tools to expose
    imports = ["numpy"]                  # optional: extra authorized imports
    limits = { wall_time_ms = 2000 }     # optional: session limits for this entry
    code = '''
    ...
    '''

Conventions every snippet follows (the campaign relies on them):
- A snippet prints the marker `ESCAPED` only AFTER its dangerous step worked,
  so a printed marker is proof of an escape whatever the verdict.
- Host canaries appear as placeholders replaced at run time (`render`):
  @@CANARY_ENV@@ (name of the secret env var), @@CANARY_FILE@@ (path of the
  secret file), @@LISTEN_PORT@@ (tripwire port on 127.0.0.1), @@BRIDGE_HOST@@
  and @@BRIDGE_PORT@@ (tripwire on the Docker bridge gateway), @@HOST_DIR@@
  (directory that must stay unchanged).
- Snippets never destroy anything beyond the canary directory: the interpreter
  layer runs them in-process on the test host.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proto.limits import LIMIT_FIELDS
from proto.results import Verdict

MARKER = "ESCAPED"  # printed by a snippet only once its dangerous step succeeded

LAYERS = frozenset({"interpreter", "container"})
PLACEHOLDERS = (
    "@@CANARY_ENV@@",
    "@@CANARY_FILE@@",
    "@@LISTEN_PORT@@",
    "@@BRIDGE_HOST@@",
    "@@BRIDGE_PORT@@",
    "@@HOST_DIR@@",
)
# The classes the issue asks for; a corpus file naming another class is refused
# so a typo cannot silently create a class with no coverage.
CLASSES: tuple[str, ...] = (
    "introspection",
    "format_string",
    "imports",
    "builtins_recovery",
    "class_tricks",
    "unicode",
    "exception_groups",
    "tool_abuse",
    "dos",
    "host_harm",
    "artifacts",
)
_ENTRY_KEYS = frozenset(
    {"id", "expect", "layers", "source", "code", "tools", "imports", "limits", "class"}
)

DEFAULT_CORPUS_DIR = Path(__file__).resolve().parents[2] / "tests" / "corpus"


class CorpusError(Exception):
    """A corpus file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class CorpusEntry:
    id: str
    cls: str  # "class" in the file
    code: str  # with placeholders; see `render`
    expect: tuple[Verdict, ...]
    layers: tuple[str, ...]
    source: str
    tools: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    limits: Mapping[str, int] = field(default_factory=dict)
    path: str = ""

    def render(self, values: Mapping[str, str]) -> str:
        """The runnable code with every placeholder replaced (`values` keyed by placeholder)."""
        return render(self.code, values)


def render(code: str, values: Mapping[str, str]) -> str:
    for key in PLACEHOLDERS:
        if key in code:
            if key not in values:
                raise CorpusError(f"no value for placeholder {key}: pass it to render()")
            code = code.replace(key, values[key])
    return code


def _str_list(raw: Any, what: str, where: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise CorpusError(f"{where}: `{what}` must be a string or a list of strings")
    return tuple(raw)


def _entry(raw: Mapping[str, Any], cls: str, where: str) -> CorpusEntry:
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise CorpusError(
            f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_ENTRY_KEYS)}"
        )
    for key in ("id", "expect", "layers", "source", "code"):
        if key not in raw:
            raise CorpusError(f"{where}: missing `{key}`")
    if not isinstance(raw["id"], str) or not raw["id"]:
        raise CorpusError(f"{where}: `id` must be a non-empty string")
    where = f"{where} ({raw['id']})"
    try:
        expect = tuple(Verdict(v) for v in _str_list(raw["expect"], "expect", where))
    except ValueError as exc:
        names = ", ".join(v.value for v in Verdict)
        raise CorpusError(
            f"{where}: unknown verdict in `expect` ({exc}); use one of {names}"
        ) from exc
    if not expect:
        raise CorpusError(f"{where}: `expect` must name at least one verdict")
    layers = _str_list(raw["layers"], "layers", where)
    if set(layers) - LAYERS:
        raise CorpusError(f"{where}: unknown layer in {layers}; use {sorted(LAYERS)}")
    source = raw["source"]
    if not isinstance(source, str) or len(source.strip()) < 8:
        raise CorpusError(f"{where}: `source` must cite the advisory, paper or write-up")
    code = raw["code"]
    if not isinstance(code, str) or not code.strip():
        raise CorpusError(f"{where}: `code` must be non-empty text")
    limits = raw.get("limits", {})
    if not isinstance(limits, dict) or any(
        k not in LIMIT_FIELDS or not isinstance(v, int) or v <= 0 for k, v in limits.items()
    ):
        raise CorpusError(f"{where}: `limits` keys must be among {LIMIT_FIELDS}, values > 0")
    return CorpusEntry(
        id=raw["id"],
        cls=raw.get("class", cls),
        code=code,
        expect=expect,
        layers=layers,
        source=source.strip(),
        tools=_str_list(raw.get("tools", []), "tools", where),
        imports=_str_list(raw.get("imports", []), "imports", where),
        limits=dict(limits),
        path=where,
    )


def load_file(path: Path) -> list[CorpusEntry]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CorpusError(f"{path}: cannot read corpus file: {exc}") from exc
    cls = data.get("class")
    if cls not in CLASSES:
        raise CorpusError(f"{path}: top-level `class` must be one of {CLASSES}, got {cls!r}")
    raw_entries = data.get("entry", [])
    if not isinstance(raw_entries, list) or not raw_entries:
        raise CorpusError(f"{path}: no [[entry]] tables")
    return [_entry(raw, cls, f"{path.name}[{i}]") for i, raw in enumerate(raw_entries)]


def load_corpus(
    directory: Path | str = DEFAULT_CORPUS_DIR, *, classes: Iterable[str] | None = None
) -> list[CorpusEntry]:
    """Every entry of every `*.toml` file in `directory`, in a stable order.

    Raises CorpusError on duplicate ids or a malformed file.
    """
    directory = Path(directory)
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise CorpusError(f"no corpus files (*.toml) in {directory}")
    entries: list[CorpusEntry] = []
    seen: dict[str, str] = {}
    for path in files:
        for entry in load_file(path):
            if entry.id in seen:
                raise CorpusError(f"duplicate id {entry.id!r} in {path.name} and {seen[entry.id]}")
            seen[entry.id] = path.name
            entries.append(entry)
    if classes is not None:
        wanted = set(classes)
        entries = [e for e in entries if e.cls in wanted]
    return entries
