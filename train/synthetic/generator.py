"""Deterministic synthetic Korean extractive-QA records (SQuAD layout) for training and checking a tiny model offline.

Contexts are 1-4 template sentences; every sentence carries one fact and gets one question whose answer is the
fact's value, a span that stops before the particle attached to it (서울|에). Context kinds (shares in `Mix`):
one sentence; 2-4 subjects sharing one predicate with different values ("민지는 대전에 삽니다. 준호는 광주에
삽니다.", answerable only by matching the question's subject); one subject with several predicates; and free
mixes of 2-4 people and animals.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Callable

from .lexicon import (
    COLORS, COMPANY_PREFIXES, COMPANY_SUFFIXES, FOODS, FRUITS, JOBS, OBJECTS, READING, RELATIONS, SCHOOL_SUFFIXES,
    SURNAMES, TOWN_SUFFIXES, VEHICLES,
)
from .patterns import LIVE_SEED, PATTERNS, SIT_SEED, Pattern, render, slots
from .pools import Pools, outside_syllables, pools

log = logging.getLogger(__name__)

SENTENCES = (2, 4)  # sentences per multi-sentence context, inclusive range
SEED_PATTERN_RATE = 0.5  # share of single-sentence contexts using the two seed patterns (lives in / sits on)
FULL_NAME_RATE = 0.2  # people named surname + given name instead of the given name alone
TOWN_RATE = 0.3  # places drawn from invented towns rather than real cities
SHARED_ANIMAL_RATE = 0.25  # shared-predicate contexts about animals rather than people
_NOT_DISTINCT = ("P", "A", "Q", "PA", "c", "R")  # slots whose values may repeat within a context


@dataclass(frozen=True)
class Mix:
    """Shares of the context kinds (the rest are free mixes), and of invented names in the train split."""

    single: float = 0.15  # one sentence, the seed questions' shape
    shared: float = 0.4  # 2-4 subjects, one predicate, a different value each
    one_subject: float = 0.1  # one person, 2-4 different predicates
    outside_names: float = 0.3  # train only: people and towns named with syllables the lexicon never uses

    def __post_init__(self) -> None:
        shares = (self.single, self.shared, self.one_subject, self.outside_names)
        if min(shares) < 0 or self.single + self.shared + self.one_subject > 1 or self.outside_names > 1:
            raise ValueError(f"context shares must be >= 0 and sum to at most 1: {self}")


DISTRACTORS = Mix(single=0.0, shared=1.0, one_subject=0.0)  # the held-out check of subject matching


@dataclass
class _Context:
    """What one context has used so far, so that every question has exactly one answer."""

    mix: Mix
    outside: tuple[str, ...]  # syllables for invented names and towns (train only)
    people: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)  # every person mentioned, subjects or not
    species: set[str] = field(default_factory=set)  # every animal mentioned
    groups: set[tuple[str, str]] = field(default_factory=set)
    questions: set[str] = field(default_factory=set)
    values: set[str] = field(default_factory=set)  # answer-like values already stated
    answers: set[str] = field(default_factory=set)  # no two questions of a context share an answer


@dataclass(frozen=True)
class _Fact:
    sentence: str
    question: str
    answer: str
    answer_start: int  # within the sentence


def _outside_word(rng: random.Random, ctx: _Context) -> str:
    return "".join(rng.choice(ctx.outside) for _ in range(rng.choice((1, 2, 2, 2, 3))))


def _fresh_name(rng: random.Random, p: Pools, ctx: _Context) -> str:
    while True:
        if ctx.outside and rng.random() < ctx.mix.outside_names:
            name = _outside_word(rng, ctx)
        else:
            name = rng.choice(p.given)
        if rng.random() < FULL_NAME_RATE:
            name = rng.choice(SURNAMES) + name
        if all(name not in t and t not in name for t in ctx.names):
            return name


def _fresh_species(rng: random.Random, p: Pools, taken: set[str]) -> str:
    return rng.choice([a for a in p.animals if a not in taken])


def _place(rng: random.Random, p: Pools, ctx: _Context) -> str:
    if rng.random() >= TOWN_RATE:
        return rng.choice(p.cities)
    if ctx.outside and rng.random() < ctx.mix.outside_names:
        return _outside_word(rng, ctx) + rng.choice(TOWN_SUFFIXES)
    return rng.choice(p.towns)


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1950, 2024)}년 {rng.randint(1, 12)}월 {rng.randint(1, 28)}일"


_SAMPLERS: dict[str, Callable[[random.Random, Pools, _Context], str]] = {
    "L": _place,
    "W": lambda r, p, c: r.choice(p.venues),
    "F": lambda r, p, c: r.choice(p.furniture),
    "S": lambda r, p, c: _place(r, p, c) + r.choice(SCHOOL_SUFFIXES),
    "C": lambda r, p, c: r.choice(COMPANY_PREFIXES) + r.choice(COMPANY_SUFFIXES),
    "D": lambda r, p, c: _date(r),
    "Y": lambda r, p, c: f"{r.randint(1950, 2024)}년",
    "M": lambda r, p, c: f"{r.randint(1, 12)}월",
    "YM": lambda r, p, c: f"{r.randint(1950, 2024)}년 {r.randint(1, 12)}월",
    "G": lambda r, p, c: f"{r.randint(1, 6)}학년",
    "T": lambda r, p, c: f"{r.randint(5, 90)}살",
    "U": lambda r, p, c: f"{r.randint(20, 90)}세",
    "H": lambda r, p, c: f"{r.randint(5, 11)}시",
    "X": lambda r, p, c: f"{r.randint(15, 40)}명",
    "FM": lambda r, p, c: f"{r.randint(2, 7)}명",
    "Z": lambda r, p, c: f"{r.randint(2, 9)}마리",
    "K": lambda r, p, c: f"{r.randint(2, 15)}권",
    "FN": lambda r, p, c: f"{r.randint(2, 6)}개",
    "B": lambda r, p, c: r.choice(READING),
    "E": lambda r, p, c: r.choice(FOODS),
    "FR": lambda r, p, c: r.choice(FRUITS),
    "CO": lambda r, p, c: r.choice(COLORS),
    "V": lambda r, p, c: r.choice(VEHICLES),
    "J": lambda r, p, c: r.choice(JOBS),
    "R": lambda r, p, c: r.choice(RELATIONS),
}


def _values(pattern: Pattern, subject: str, rng: random.Random, p: Pools, ctx: _Context) -> dict[str, str]:
    """Sample every slot the pattern's sentence and questions use; the subject fills P or A."""
    values = {pattern.subject: subject}
    for slot in slots(pattern.sentence):
        if slot in values:
            continue
        if slot == "Q":
            others = [n for n in ctx.people if n != subject]
            values[slot] = rng.choice(others) if others and rng.random() < 0.5 else _fresh_name(rng, p, ctx)
        elif slot == "PA":
            values[slot] = _fresh_species(rng, p, ctx.species)
        elif slot in ("O", "N", "c"):
            obj, counter = rng.choice(OBJECTS)
            values.update(O=obj, c=counter, N=f"{rng.randint(2, 12)}{counter}")
        else:
            values[slot] = _SAMPLERS[slot](rng, p, ctx)
    return values


def _try_fact(rng: random.Random, p: Pools, ctx: _Context, subject: str, choices: list[Pattern]) -> _Fact | None:
    """One fact about `subject`, or None when the draw would repeat a value or make a question ambiguous."""
    pattern = rng.choices(choices, weights=[c.weight for c in choices])[0]
    values = _values(pattern, subject, rng, p, ctx)
    group = (subject, pattern.group.format(**values))
    slot = rng.choice(sorted(pattern.questions))
    question, _ = render(rng.choice(pattern.questions[slot]), values)
    stated = {v for k, v in values.items() if k not in _NOT_DISTINCT}
    if group in ctx.groups or question in ctx.questions or stated & ctx.values or values[slot] in ctx.answers:
        return None
    sentence, starts = render(pattern.sentence, values)
    ctx.groups.add(group)
    ctx.questions.add(question)
    ctx.values |= stated
    ctx.answers.add(values[slot])
    if "Q" in values:
        ctx.names.add(values["Q"])
    if "PA" in values:
        ctx.species.add(values["PA"])
    return _Fact(sentence, question, values[slot], starts[slot])


def _fact(rng: random.Random, p: Pools, ctx: _Context, subject: str, choices: list[Pattern]) -> _Fact:
    for _ in range(100):
        fact = _try_fact(rng, p, ctx, subject, choices)
        if fact is not None:
            return fact
    raise RuntimeError(f"could not find an unambiguous fact about {subject!r}")


def _new_subject(rng: random.Random, p: Pools, ctx: _Context, kind: str) -> str:
    if kind == "P":
        subject = _fresh_name(rng, p, ctx)
        ctx.names.add(subject)
        ctx.people.append(subject)
    else:
        subject = _fresh_species(rng, p, ctx.species)
        ctx.species.add(subject)
    return subject


def _context_facts(rng: random.Random, p: Pools, mix: Mix, outside: tuple[str, ...]) -> list[_Fact]:
    """The facts of one context, in sentence order."""
    ctx = _Context(mix, outside)
    choices = {k: [q for q in PATTERNS if q.subject == k] for k in ("P", "A")}
    draw = rng.random()
    if draw < mix.single:
        kind = rng.choice(("P", "A"))
        if rng.random() < SEED_PATTERN_RATE:
            choices[kind] = [LIVE_SEED if kind == "P" else SIT_SEED]
        subjects = [(_new_subject(rng, p, ctx, kind), kind)]
    elif draw < mix.single + mix.shared:
        kind = "A" if rng.random() < SHARED_ANIMAL_RATE else "P"
        pattern = rng.choices(choices[kind], weights=[c.weight for c in choices[kind]])[0]
        choices[kind] = [pattern]
        subjects = [(_new_subject(rng, p, ctx, kind), kind) for _ in range(rng.randint(*SENTENCES))]
    elif draw < mix.single + mix.shared + mix.one_subject:
        subjects = [(_new_subject(rng, p, ctx, "P"), "P")] * rng.randint(*SENTENCES)
    else:
        n_sentences = rng.randint(*SENTENCES)
        n_people = rng.randint(2, min(4, n_sentences))
        n_animals = min(rng.choice((0, 0, 0, 1, 2)), n_sentences - n_people)
        subjects = [(_new_subject(rng, p, ctx, "P"), "P") for _ in range(n_people)]
        subjects += [(_new_subject(rng, p, ctx, "A"), "A") for _ in range(n_animals)]
        subjects += [rng.choice(subjects) for _ in range(n_sentences - len(subjects))]
    facts = [_fact(rng, p, ctx, s, choices[k]) for s, k in subjects]
    rng.shuffle(facts)
    return facts


def generate(n_contexts: int, seed: int = 0, split: str = "train", mix: Mix = Mix()) -> list[dict]:
    """`n_contexts` synthetic contexts as flat SQuAD-style records (one per question), identical for equal args."""
    p = pools(split)
    outside = outside_syllables() if split == "train" else ()
    rng = random.Random(f"{split}/{seed}")
    records: list[dict] = []
    for c in range(n_contexts):
        facts = _context_facts(rng, p, mix, outside)
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
