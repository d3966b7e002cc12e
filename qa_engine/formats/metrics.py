"""Exact match and F1: the official KorQuAD 1.0 metric (character F1) and SQuAD v1.1 (token F1)."""
from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

_KORQUAD_SPACED = re.compile("['\"《》<>〈〉()‘’]")
_ASCII_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _remove_punct(text: str) -> str:
    return "".join(ch for ch in text if ch not in _ASCII_PUNCT)


def normalize_korquad(text: str) -> str:
    """KorQuAD 1.0 normalization: quote/bracket marks to spaces, lowercase, drop ASCII punctuation."""
    text = _KORQUAD_SPACED.sub(" ", text)
    return " ".join(_remove_punct(text.lower()).split())


def normalize_squad(text: str) -> str:
    """SQuAD v1.1 normalization: lowercase, drop punctuation and English articles."""
    text = _remove_punct(text.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def _overlap_f1(pred: Sequence[str], gold: Sequence[str]) -> float:
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred)
    recall = same / len(gold)
    return 2 * precision * recall / (precision + recall)


def korquad_f1(prediction: str, truth: str) -> float:
    """F1 over the multiset of characters, whitespace excluded."""
    return _overlap_f1(
        list(normalize_korquad(prediction).replace(" ", "")),
        list(normalize_korquad(truth).replace(" ", "")),
    )


def squad_f1(prediction: str, truth: str) -> float:
    """F1 over whitespace tokens."""
    return _overlap_f1(normalize_squad(prediction).split(), normalize_squad(truth).split())


@dataclass(frozen=True)
class Metric:
    name: str
    normalize: Callable[[str], str]
    f1: Callable[[str, str], float]

    def exact(self, prediction: str, truth: str) -> float:
        return float(self.normalize(prediction) == self.normalize(truth))


METRICS: dict[str, Metric] = {
    "korquad": Metric("korquad", normalize_korquad, korquad_f1),
    "squad": Metric("squad", normalize_squad, squad_f1),
}


@dataclass
class Score:
    """Corpus scores in percent, with the ids that had no prediction."""

    exact_match: float
    f1: float
    total: int
    missing: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"exact_match": self.exact_match, "f1": self.f1}


def evaluate(
    references: Mapping[str, Iterable[str]],
    predictions: Mapping[str, str],
    metric: str = "korquad",
) -> Score:
    """Score id -> answer predictions against id -> reference answers; max over references per question."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(METRICS)}")
    m = METRICS[metric]
    em = f1 = 0.0
    missing: list[str] = []
    for qid, truths in references.items():
        truths = list(truths)
        if qid not in predictions:
            missing.append(qid)
            continue
        pred = predictions[qid]
        if not isinstance(pred, str):
            raise ValueError(f"prediction for id {qid!r} must be a string, got {type(pred).__name__}")
        em += max(m.exact(pred, t) for t in truths)
        f1 += max(m.f1(pred, t) for t in truths)
    total = len(references)
    if total == 0:
        raise ValueError("no reference questions to score")
    return Score(100.0 * em / total, 100.0 * f1 / total, total, missing)
