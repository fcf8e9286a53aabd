"""Snippets to run: the corpus itself, mutations of it, and grammar programs.

Everything is deterministic for a given seed: snippet i of a run depends only
on (seed, i), so a failure is reproduced with `--seed S --only ID`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from executor.fuzz.corpus import CorpusEntry
from executor.fuzz.grammar import generate_program
from executor.fuzz.mutators import mutate
from proto.results import Verdict


@dataclass(frozen=True)
class Snippet:
    """One unit of work for the campaign."""

    id: str
    cls: str  # corpus class, or "generated"
    code: str  # runnable (placeholders already replaced)
    origin: str  # "corpus", "mutation of <id>", "grammar"
    expect: tuple[Verdict, ...] = ()  # empty: any safe verdict (generated snippets)
    tools: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    limits: Mapping[str, int] = field(default_factory=dict)
    mutations: tuple[str, ...] = ()
    source: str = ""


def corpus_snippets(entries: Sequence[CorpusEntry], values: Mapping[str, str]) -> list[Snippet]:
    return [
        Snippet(
            id=e.id,
            cls=e.cls,
            code=e.render(values),
            origin="corpus",
            expect=e.expect,
            tools=e.tools,
            imports=e.imports,
            limits=e.limits,
            source=e.source,
        )
        for e in entries
    ]


def generated_snippets(
    entries: Sequence[CorpusEntry],
    values: Mapping[str, str],
    *,
    seed: int,
    count: int,
    grammar_share: float = 0.4,
) -> Iterator[Snippet]:
    """`count` generated snippets: mutations of corpus entries and grammar programs.

    Mutations keep the entry's class, tools, imports and limits but not its
    expected verdict (a mutation may legitimately change it); they are judged
    on safety only. DoS entries are not mutated: their outcome is already a
    limit, and wrapping them only multiplies slow runs.
    """
    pool = [e for e in entries if e.cls != "dos"]
    for i in range(count):
        rng = random.Random(f"{seed}:{i}")
        if not pool or rng.random() < grammar_share:
            code, prog, muts = generate_program(rng)
            yield Snippet(
                id=f"gen-{seed}-{i}",
                cls="generated",
                code=code,
                origin="grammar",
                mutations=tuple(muts),
                source=f"grammar chain {prog.shape}",
            )
            continue
        entry = rng.choice(pool)
        out = mutate(entry.render(values), rng, steps=rng.randint(1, 3))
        if out is None:
            code, muts = entry.render(values), []
        else:
            code, muts = out
        yield Snippet(
            id=f"mut-{seed}-{i}-{entry.id}",
            cls=entry.cls,
            code=code,
            origin=f"mutation of {entry.id}",
            tools=entry.tools,
            imports=entry.imports,
            limits=entry.limits,
            mutations=tuple(muts),
            source=entry.source,
        )
