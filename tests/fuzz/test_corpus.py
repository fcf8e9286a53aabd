"""The curated corpus: size, coverage of every class, well-formed entries, loader errors."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from executor.fuzz.corpus import CLASSES, CorpusEntry, CorpusError, load_corpus, render
from proto.results import Verdict
from tests.fuzz.conftest import DUMMY_VALUES

ENTRIES = load_corpus()


def test_corpus_is_large_and_covers_every_class() -> None:
    assert len(ENTRIES) >= 150
    per_class = collections.Counter(e.cls for e in ENTRIES)
    assert set(per_class) == set(CLASSES)
    assert min(per_class.values()) >= 8, per_class


def test_ids_are_unique_and_sources_are_cited() -> None:
    ids = [e.id for e in ENTRIES]
    assert len(ids) == len(set(ids))
    for e in ENTRIES:
        cites = (
            *("CVE-", "GHSA-", "PEP ", "http", ".com", ".org", ".net", ".xyz", "issue", "docs"),
            *("CWE-", "OWASP", "RFC", "(2)", "(5)", "(7)", "PR #", "changelog", "arXiv"),
            *("MITRE", "Unicode", "gh-", "bpo-", "DESIGN.md", "proto/"),
        )
        assert any(c in e.source for c in cites), f"{e.id}: source cites nothing checkable"


def test_no_two_entries_share_the_same_code() -> None:
    codes = collections.Counter(e.code.strip() for e in ENTRIES)
    assert [c for c, n in codes.items() if n > 1] == []


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_entry_parses_unless_it_expects_a_syntax_error(entry: CorpusEntry) -> None:
    code = render(entry.code, DUMMY_VALUES)
    try:
        compile(code, entry.id, "exec", dont_inherit=True)
    except SyntaxError:
        assert Verdict.SYNTAX_ERROR in entry.expect, f"{entry.id} does not parse"


def test_tool_entries_name_known_tools() -> None:
    from executor.fuzz.tools import TOOLBOX

    for e in ENTRIES:
        assert set(e.tools) <= set(TOOLBOX), e.id


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "x.toml").write_text(text, encoding="utf-8")
    return tmp_path


GOOD = """class = "dos"
[[entry]]
id = "a"
expect = ["TIMEOUT"]
layers = ["interpreter"]
source = "CWE-835 infinite loop"
code = "while True: pass"
"""


def test_loader_reads_a_minimal_file(tmp_path: Path) -> None:
    (entry,) = load_corpus(_write(tmp_path, GOOD))
    assert (entry.id, entry.cls, entry.expect, entry.layers) == (
        "a",
        "dos",
        (Verdict.TIMEOUT,),
        ("interpreter",),
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('expect = ["TIMEOUT"]', 'expect = ["NOPE"]'), "unknown verdict"),
        (('layers = ["interpreter"]', 'layers = ["kernel"]'), "unknown layer"),
        (('source = "CWE-835 infinite loop"', 'source = ""'), "must cite"),
        (('class = "dos"', 'class = "misc"'), "top-level `class`"),
        (('code = "while True: pass"', 'code = "x"\ncolour = 1'), "unknown keys"),
        (('id = "a"\n', ""), "missing `id`"),
    ],
)
def test_loader_refuses_malformed_entries(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    with pytest.raises(CorpusError, match=message):
        load_corpus(_write(tmp_path, GOOD.replace(*change)))


def test_loader_refuses_duplicate_ids(tmp_path: Path) -> None:
    _write(tmp_path, GOOD)
    (tmp_path / "y.toml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(CorpusError, match="duplicate id"):
        load_corpus(tmp_path)


def test_render_requires_every_placeholder_value() -> None:
    with pytest.raises(CorpusError, match="@@CANARY_FILE@@"):
        render("open('@@CANARY_FILE@@')", {})
    assert (
        render("open('@@CANARY_FILE@@')", DUMMY_VALUES) == "open('/nonexistent/corral-secret.txt')"
    )
