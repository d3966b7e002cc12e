"""Synthetic Korean extractive-QA data for the offline tiny model: lexicon and patterns (data), pools, generator,
writers. `generate(n, seed, split)` gives flat SQuAD-style records; see generator.py for the context kinds."""
from .generator import DISTRACTORS, SENTENCES, Mix, generate
from .patterns import PATTERNS, josa
from .pools import SPLITS, Pools, alphabet, outside_syllables, pools
from .writers import write_jsonl, write_squad_json

__all__ = [
    "DISTRACTORS", "PATTERNS", "SENTENCES", "SPLITS", "Mix", "Pools", "alphabet", "generate", "josa",
    "outside_syllables", "pools", "write_jsonl", "write_squad_json",
]
