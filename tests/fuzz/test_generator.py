"""Mutators and the grammar: valid Python out, deterministic by seed, the marker rule kept."""

from __future__ import annotations

import ast
import random

import pytest

from executor.fuzz.corpus import MARKER, load_corpus
from executor.fuzz.generator import corpus_snippets, generated_snippets
from executor.fuzz.grammar import program
from executor.fuzz.mutators import MUTATORS, mutate
from executor.interpreter import Interpreter, Limits, Verdict
from tests.fuzz.conftest import DUMMY_VALUES

ENTRIES = load_corpus()

SAMPLE = """
import math
def area(r):
    return math.pi * r ** 2
class Box:
    def __init__(self, v):
        self.v = v
total = 0
for i in range(3):
    total += area(i)
print("sum", round(total, 3), Box(2).v, "abc".upper())
"""


def _new_names(before: str, after: str) -> set[str]:
    def names(src: str) -> set[str]:
        out = set()
        for n in ast.walk(ast.parse(src)):
            if isinstance(n, ast.Name):
                out.add(n.id)
            elif isinstance(n, ast.arg):
                out.add(n.arg)
            elif isinstance(n, ast.FunctionDef | ast.ClassDef):
                out.add(n.name)
        return out

    return names(after) - names(before)


@pytest.mark.parametrize("name", sorted(MUTATORS))
def test_each_mutator_keeps_the_meaning_of_an_ordinary_snippet(name: str) -> None:
    """A mutation changes the spelling, not the behaviour (checked by running both)."""
    rng = random.Random(7)
    tree = MUTATORS[name](ast.parse(SAMPLE), rng)
    assert tree is not None, f"{name} did not apply to the sample"
    code = ast.unparse(ast.fix_missing_locations(tree))
    assert code != ast.unparse(ast.parse(SAMPLE))
    assert not any(n.startswith("_") for n in _new_names(SAMPLE, code))
    base = Interpreter(authorized_imports=("operator",), limits=Limits(wall_time_s=5)).run(SAMPLE)
    mutated = Interpreter(authorized_imports=("operator",), limits=Limits(wall_time_s=5)).run(code)
    assert base.verdict == Verdict.OK, base.error
    if name == "indirect_attr" and "format" in code:
        # A format path yields the attribute's str(): same text when printed.
        assert mutated.verdict in (Verdict.OK, Verdict.ERROR)
    else:
        assert mutated.verdict == Verdict.OK, (code, mutated.error)
        assert mutated.stdout == base.stdout


def test_mutations_of_the_whole_corpus_are_valid_python() -> None:
    rng = random.Random(1)
    applied = set()
    for entry in ENTRIES:
        for _ in range(3):
            out = mutate(entry.render(DUMMY_VALUES), rng, steps=3)
            if out is None:
                continue
            code, names = out
            applied.update(names)
            compile(code, entry.id, "exec", dont_inherit=True)
    assert applied == set(MUTATORS)


def test_generation_is_deterministic_by_seed() -> None:
    a = [s.code for s in generated_snippets(ENTRIES, DUMMY_VALUES, seed=42, count=60)]
    b = [s.code for s in generated_snippets(ENTRIES, DUMMY_VALUES, seed=42, count=60)]
    c = [s.code for s in generated_snippets(ENTRIES, DUMMY_VALUES, seed=43, count=60)]
    assert a == b
    assert a != c


def test_generated_snippets_parse_and_mix_mutations_and_grammar() -> None:
    snippets = list(generated_snippets(ENTRIES, DUMMY_VALUES, seed=3, count=400))
    assert len(snippets) == 400
    origins = {s.origin.split(" ")[0] for s in snippets}
    assert origins == {"grammar", "mutation"}
    for s in snippets:
        if s.origin == "grammar" or s.cls != "unicode":
            compile(s.code, s.id, "exec", dont_inherit=True)
    assert len({s.id for s in snippets}) == 400


def test_grammar_prints_the_marker_only_after_a_forbidden_step() -> None:
    rng = random.Random(5)
    kinds = set()
    for _ in range(300):
        prog = program(rng)
        compile(prog.code, "prog", "exec")
        kinds.add(prog.forbidden)
        assert (MARKER in prog.code) == prog.forbidden


def test_grammar_programs_are_refused_by_the_interpreter() -> None:
    """Every grammar chain with a forbidden step ends without the marker (the policy holds)."""
    rng = random.Random(11)
    for i in range(150):
        prog = program(rng)
        res = Interpreter(authorized_imports=("operator",), limits=Limits(wall_time_s=2)).run(
            prog.code
        )
        assert MARKER not in res.stdout, (i, prog.code, res.verdict)
        if prog.forbidden:
            assert res.verdict != Verdict.OK, (prog.code, res.stdout)


def test_corpus_snippets_render_the_placeholders() -> None:
    snippets = corpus_snippets(ENTRIES, DUMMY_VALUES)
    assert len(snippets) == len(ENTRIES)
    assert not any("@@" in s.code for s in snippets)
