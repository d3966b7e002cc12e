"""The benchmark workload: a fixed, seeded subset of a SQuAD-format dev set's questions."""
from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from qa_engine.formats.squad import Example, load_examples

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workload:
    """Questions in benchmark order (seeded shuffle), with their contexts and reference answers."""

    source: str
    seed: int
    ids: tuple[str, ...]
    questions: tuple[str, ...]
    contexts: tuple[str, ...]
    references: dict[str, list[str]]

    def __len__(self) -> int:
        return len(self.ids)

    def head(self, n: int) -> "Workload":
        """The first n questions (the latency subset)."""
        keep = self.ids[:n]
        return Workload(self.source, self.seed, keep, self.questions[:n], self.contexts[:n],
                        {k: self.references[k] for k in keep})

    def to_json(self, path: Path) -> None:
        path.write_text(json.dumps(vars(self), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def from_json(cls, path: Path) -> "Workload":
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(raw["source"], raw["seed"], *(tuple(raw[k]) for k in ("ids", "questions", "contexts")),
                   raw["references"])


def sample(examples: list[Example], n: int, seed: int, source: str) -> Workload:
    """n examples drawn without replacement by a seeded RNG, in the drawn order (all of them if n exceeds the set)."""
    n = min(n, len(examples))
    picked = [examples[i] for i in random.Random(seed).sample(range(len(examples)), n)]
    return Workload(
        source, seed,
        tuple(e.id for e in picked), tuple(e.question for e in picked), tuple(e.context for e in picked),
        {e.id: list(e.answer_texts) for e in picked},
    )


def load_workload(source: str, n: int, seed: int) -> tuple[Workload, list[Example]]:
    """The seeded n-question subset of `source` (file or hub id, validation split) and all its examples."""
    examples = load_examples(source, split="validation")
    log.info("%s: %d questions, %d distinct contexts; benchmarking %d (seed %d)",
             source, len(examples), len({e.context for e in examples}), min(n, len(examples)), seed)
    return sample(examples, n, seed, str(source)), examples
