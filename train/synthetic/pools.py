"""Which names and place-like words each split may use: train and heldout draw from disjoint, fixed pools.

The partition is fixed independently of any generate() seed, and no heldout word occurs inside any train
context, so heldout questions test generalisation to names and places never seen in training. Train also
gets "outside" syllables: common Hangul syllables the lexicon never uses, from which it invents extra names
and towns, so that the model learns to read names whatever their syllables.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from .lexicon import (
    ANIMALS, CITIES, COLORS, COMPANY_PREFIXES, COMPANY_SUFFIXES, FOODS, FRUITS, FURNITURE, GIVEN_SYLLABLES, JOBS,
    OBJECTS, READING, RELATIONS, SCHOOL_SUFFIXES, SEED_ANIMALS, SEED_FURNITURE, SEED_NAMES, SEED_PLACES, SURNAMES,
    TOWN_SUFFIXES, TOWN_SYLLABLES, UNITS, VEHICLES, VENUES,
)
from .patterns import template_texts

log = logging.getLogger(__name__)

SPLITS = ("train", "heldout")
HELDOUT_FRACTION = 0.25  # share of each name/place candidate list reserved for the heldout split
_POOL_SEED = "qa-engine/synthetic-pools/v1"  # fixes the train/heldout partition, whatever the generate() seed


@dataclass(frozen=True)
class Pools:
    """The names and place-like answers one split may use."""

    given: tuple[str, ...]
    cities: tuple[str, ...]
    towns: tuple[str, ...]
    venues: tuple[str, ...]
    furniture: tuple[str, ...]
    animals: tuple[str, ...]


def _partition(candidates: Iterable[str], forced_train: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split candidates into (train, heldout) by a fixed shuffle; `forced_train` never lands in heldout."""
    items = sorted(set(candidates))
    random.Random(f"{_POOL_SEED}/{items[0]}").shuffle(items)
    forced = set(forced_train)
    n_heldout = round(len(items) * HELDOUT_FRACTION)
    heldout = [w for w in items if w not in forced][:n_heldout]
    chosen = set(heldout)
    return sorted(w for w in items if w not in chosen), sorted(heldout)


class _Corpus:
    """Every string a set of words can put into a context, with any particle or template text after them."""

    def __init__(self, words: Iterable[str], followers: Iterable[str]) -> None:
        self.inner: set[str] = set()
        self.tails: set[str] = set()
        for w in words:
            for i in range(len(w)):
                self.tails.add(w[i:])
                self.inner.update(w[i:j] for j in range(i + 1, len(w) + 1))
        self.heads = {f[:j] for f in followers for j in range(1, len(f) + 1)}

    def contains(self, s: str) -> bool:
        """Whether `s` can occur inside a word or straddle a word and what follows it."""
        return s in self.inner or any(s[:k] in self.tails and s[k:] in self.heads for k in range(1, len(s)))


def _shared_words() -> list[str]:
    """Words both splits use: objects, foods, jobs, companies, ... and the units of numbers."""
    companies = [p + s for p in COMPANY_PREFIXES for s in COMPANY_SUFFIXES]
    return [
        *ANIMALS, *(o for o, _ in OBJECTS), *(c for _, c in OBJECTS), *READING, *FOODS, *FRUITS, *COLORS,
        *VEHICLES, *JOBS, *RELATIONS, *companies, *SCHOOL_SUFFIXES, *UNITS,
    ]


def _split_words(given: Iterable[str], places: Iterable[str], other: Iterable[str]) -> list[str]:
    """All words a split's pools put in contexts, full names and school names included."""
    given, places = list(given), list(places)
    full = [s + g for s in SURNAMES for g in given]
    schools = [p + s for p in places for s in SCHOOL_SUFFIXES]
    return [*given, *full, *places, *schools, *other]


def _towns(stems: Iterable[str]) -> list[str]:
    """Invented place names: a two-syllable stem and an administrative suffix (가람시, 솔빛마을)."""
    return [stem + suffix for stem in stems for suffix in TOWN_SUFFIXES]


def _hangul(words: Iterable[str]) -> set[str]:
    return {ch for w in words for ch in w if "\uac00" <= ch <= "\ud7a3"}


@lru_cache(maxsize=None)
def outside_syllables() -> tuple[str, ...]:
    """The common Hangul syllables (KS X 1001's 2,350) that no lexicon word or template has."""
    literal, followers = template_texts()
    words = _split_words(GIVEN_SYLLABLES, [*CITIES, *_towns(TOWN_SYLLABLES)],
                         [*VENUES, *FURNITURE, *_shared_words(), *literal, *followers])
    used = _hangul(words)
    common = (chr(c) for c in range(0xAC00, 0xD7A4) if len(chr(c).encode("euc_kr")) == 2)
    return tuple(ch for ch in common if ch not in used)


@lru_cache(maxsize=None)
def pools(split: str) -> Pools:
    """The fixed pools of `split`; heldout names and place-like words never occur in any train context."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    literal, followers = template_texts()
    shared = _shared_words()
    stems = [a + b for a in TOWN_SYLLABLES for b in TOWN_SYLLABLES if a != b]
    towns = _towns(stems)
    # A name must not hide inside, or be, any other word of any split.
    clash = _Corpus(_split_words((), [*CITIES, *towns], [*VENUES, *FURNITURE, *shared, *literal]), followers)
    names = [a + b for a in GIVEN_SYLLABLES for b in GIVEN_SYLLABLES if a != b]
    names = [n for n in names if n in SEED_NAMES or not clash.contains(n)]
    parts = {
        "given": _partition(names, SEED_NAMES),
        "cities": _partition(CITIES, SEED_PLACES),
        "towns": tuple(map(_towns, _partition(stems, ()))),
        "venues": _partition(VENUES, ()),
        "furniture": _partition(FURNITURE, SEED_FURNITURE),
    }
    if split == "train":
        train = {k: tuple(v[0]) for k, v in parts.items()}
        return Pools(**train, animals=ANIMALS)
    train_words = _split_words(parts["given"][0], parts["cities"][0] + parts["towns"][0],
                               [*parts["venues"][0], *parts["furniture"][0], *shared, *literal])
    train_corpus = _Corpus(train_words, followers)
    syllables = {ch for w in train_words for ch in w}
    heldout = {}
    for key, (_, candidates) in parts.items():
        kept = [w for w in candidates if set(w) <= syllables and not train_corpus.contains(w)]
        log.debug("heldout %s: kept %d of %d candidates", key, len(kept), len(candidates))
        if len(kept) < 4:
            raise RuntimeError(f"heldout pool {key!r} has only {len(kept)} usable words")
        heldout[key] = tuple(kept)
    return Pools(**heldout, animals=tuple(a for a in ANIMALS if a not in SEED_ANIMALS))


@lru_cache(maxsize=None)
def alphabet() -> str:
    """Every Hangul syllable either split's lexicon words and templates can emit (heldout words use only train
    syllables), e.g. for a tokenizer's alphabet."""
    literal, followers = template_texts()
    p = pools("train")
    words = _split_words(p.given, p.cities + p.towns, [*p.venues, *p.furniture, *_shared_words(), *literal, *followers])
    return "".join(sorted(_hangul(words)))
