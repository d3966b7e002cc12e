"""Synthetic Korean extractive-QA data for the offline tiny model, split by concern: lexicon and sentence patterns
(data), the train/heldout pools, the generator, and the writers. `generate(n, seed, split)` gives flat
SQuAD-style records."""
from .generator import SENTENCES, generate
from .patterns import PATTERNS, josa
from .pools import SPLITS, Pools, alphabet, pools
from .writers import write_jsonl, write_squad_json

__all__ = ["PATTERNS", "SENTENCES", "SPLITS", "Pools", "alphabet", "generate", "josa", "pools", "write_jsonl",
           "write_squad_json"]
