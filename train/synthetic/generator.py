"""Deterministic synthetic Korean extractive-QA records (SQuAD layout) for training and checking a tiny model offline.

Contexts are 1-4 template sentences about 1-4 people and some animals; every sentence carries one fact and gets
one question whose answer is the fact's value, a span that stops before the particle attached to it (서울|에).
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Callable

from .lexicon import (
    COLORS, COMPANY_PREFIXES, COMPANY_SUFFIXES, FOODS, FRUITS, JOBS, OBJECTS, READING, RELATIONS, SCHOOL_SUFFIXES,
    SURNAMES, VEHICLES,
)
from .patterns import LIVE_SEED, PATTERNS, SIT_SEED, Pattern, render, slots
from .pools import Pools, pools

log = logging.getLogger(__name__)

SINGLE_SENTENCE_RATE = 0.15
SEED_PATTERN_RATE = 0.5  # share of single-sentence contexts using the two seed patterns (lives in / sits on)
FULL_NAME_RATE = 0.2  # people named surname + given name instead of the given name alone
TOWN_RATE = 0.3  # places drawn from invented towns rather than real cities
SENTENCES = (2, 4)  # sentences per multi-sentence context, inclusive range


@dataclass
class _Context:
    """What one context has used so far, so that every question has exactly one answer."""

    people: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)  # every person mentioned, subjects or not
    species: set[str] = field(default_factory=set)  # every animal mentioned
    groups: set[tuple[str, str]] = field(default_factory=set)
    questions: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Fact:
    sentence: str
    question: str
    answer: str
    answer_start: int  # within the sentence


def _fresh_name(rng: random.Random, p: Pools, taken: set[str]) -> str:
    while True:
        name = rng.choice(p.given)
        if rng.random() < FULL_NAME_RATE:
            name = rng.choice(SURNAMES) + name
        if all(name not in t and t not in name for t in taken):
            return name


def _fresh_species(rng: random.Random, p: Pools, taken: set[str]) -> str:
    return rng.choice([a for a in p.animals if a not in taken])


def _place(rng: random.Random, p: Pools) -> str:
    return rng.choice(p.towns if rng.random() < TOWN_RATE else p.cities)


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1950, 2024)}년 {rng.randint(1, 12)}월 {rng.randint(1, 28)}일"


_SAMPLERS: dict[str, Callable[[random.Random, Pools], str]] = {
    "L": _place,
    "W": lambda r, p: r.choice(p.venues),
    "F": lambda r, p: r.choice(p.furniture),
    "S": lambda r, p: _place(r, p) + r.choice(SCHOOL_SUFFIXES),
    "C": lambda r, p: r.choice(COMPANY_PREFIXES) + r.choice(COMPANY_SUFFIXES),
    "D": lambda r, p: _date(r),
    "Y": lambda r, p: f"{r.randint(1950, 2024)}년",
    "M": lambda r, p: f"{r.randint(1, 12)}월",
    "G": lambda r, p: f"{r.randint(1, 6)}학년",
    "T": lambda r, p: f"{r.randint(5, 90)}살",
    "U": lambda r, p: f"{r.randint(20, 90)}세",
    "H": lambda r, p: f"{r.randint(5, 11)}시",
    "X": lambda r, p: f"{r.randint(15, 40)}명",
    "FM": lambda r, p: f"{r.randint(2, 7)}명",
    "Z": lambda r, p: f"{r.randint(2, 9)}마리",
    "K": lambda r, p: f"{r.randint(2, 15)}권",
    "FN": lambda r, p: f"{r.randint(2, 6)}개",
    "B": lambda r, p: r.choice(READING),
    "E": lambda r, p: r.choice(FOODS),
    "FR": lambda r, p: r.choice(FRUITS),
    "CO": lambda r, p: r.choice(COLORS),
    "V": lambda r, p: r.choice(VEHICLES),
    "J": lambda r, p: r.choice(JOBS),
    "R": lambda r, p: r.choice(RELATIONS),
}


def _values(pattern: Pattern, subject: str, rng: random.Random, p: Pools, ctx: _Context) -> dict[str, str]:
    """Sample every slot the pattern's sentence and questions use; the subject fills P or A."""
    values = {pattern.subject: subject}
    for slot in slots(pattern.sentence):
        if slot in values:
            continue
        if slot == "Q":
            others = [n for n in ctx.people if n != subject]
            values[slot] = rng.choice(others) if others and rng.random() < 0.5 else _fresh_name(rng, p, ctx.names)
        elif slot == "PA":
            values[slot] = _fresh_species(rng, p, ctx.species)
        elif slot in ("O", "N", "c"):
            obj, counter = rng.choice(OBJECTS)
            values.update(O=obj, c=counter, N=f"{rng.randint(2, 12)}{counter}")
        else:
            values[slot] = _SAMPLERS[slot](rng, p)
    return values


def _try_fact(rng: random.Random, p: Pools, ctx: _Context, subject: str, kind: str,
              choices: list[Pattern]) -> _Fact | None:
    """One fact about `subject`, or None when the draw would make some question of the context ambiguous."""
    pattern = rng.choices(choices, weights=[c.weight for c in choices])[0]
    values = _values(pattern, subject, rng, p, ctx)
    group = (subject, pattern.group.format(**values))
    slot = rng.choice(sorted(pattern.questions))
    question, _ = render(rng.choice(pattern.questions[slot]), values)
    if group in ctx.groups or question in ctx.questions:
        return None
    sentence, starts = render(pattern.sentence, values)
    ctx.groups.add(group)
    ctx.questions.add(question)
    if "Q" in values:
        ctx.names.add(values["Q"])
    if "PA" in values:
        ctx.species.add(values["PA"])
    return _Fact(sentence, question, values[slot], starts[slot])


def _fact(rng: random.Random, p: Pools, ctx: _Context, subject: str, kind: str, choices: list[Pattern]) -> _Fact:
    for _ in range(100):
        fact = _try_fact(rng, p, ctx, subject, kind, choices)
        if fact is not None:
            return fact
    raise RuntimeError(f"could not find an unambiguous fact about {subject!r}")


def _context_facts(rng: random.Random, p: Pools) -> list[_Fact]:
    """The facts of one context, in sentence order."""
    ctx = _Context()
    choices = {k: [q for q in PATTERNS if q.subject == k] for k in ("P", "A")}
    if rng.random() < SINGLE_SENTENCE_RATE:
        kind = rng.choice(("P", "A"))
        if rng.random() < SEED_PATTERN_RATE:
            choices[kind] = [LIVE_SEED if kind == "P" else SIT_SEED]
        subjects = [(_fresh_name(rng, p, ctx.names) if kind == "P" else _fresh_species(rng, p, ctx.species), kind)]
    else:
        n_sentences = rng.randint(*SENTENCES)
        n_people = rng.randint(2, min(4, n_sentences))
        n_animals = min(rng.choice((0, 0, 0, 1, 2)), n_sentences - n_people)
        subjects = []
        for _ in range(n_people):
            subjects.append((_fresh_name(rng, p, ctx.names), "P"))
            ctx.names.add(subjects[-1][0])
        for _ in range(n_animals):
            subjects.append((_fresh_species(rng, p, ctx.species), "A"))
            ctx.species.add(subjects[-1][0])
        subjects += [rng.choice(subjects) for _ in range(n_sentences - len(subjects))]
    ctx.people = [s for s, k in subjects if k == "P"]
    ctx.names.update(ctx.people)
    ctx.species.update(s for s, k in subjects if k == "A")
    facts = [_fact(rng, p, ctx, s, k, choices[k]) for s, k in subjects]
    rng.shuffle(facts)
    return facts


def generate(n_contexts: int, seed: int = 0, split: str = "train") -> list[dict]:
    """`n_contexts` synthetic contexts as flat SQuAD-style records (one per question), identical for equal args."""
    p = pools(split)
    rng = random.Random(f"{split}/{seed}")
    records: list[dict] = []
    for c in range(n_contexts):
        facts = _context_facts(rng, p)
        title = f"{split}-{seed}-{c:06d}"
        context = " ".join(f.sentence for f in facts)
        offset = 0
        for q, fact in enumerate(facts):
            start = offset + fact.answer_start
            assert context[start : start + len(fact.answer)] == fact.answer, (context, fact)
            records.append({
                "id": f"{title}-q{q}",
                "title": title,
                "question": fact.question,
                "context": context,
                "answers": {"text": [fact.answer], "answer_start": [start]},
            })
            offset += len(fact.sentence) + 1
    log.info("generated %d %s questions over %d contexts (seed %d)", len(records), split, n_contexts, seed)
    return records
