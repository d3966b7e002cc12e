"""The offline model: a tiny QA model trained from scratch on synthetic Korean data, with the same `train()`.

Train, dev and heldout data come from train/synthetic; dev and heldout use names and places the train split
never has (dev picks the best epoch). Two held-out sets are scored once and recorded in metrics.json: "test"
(every context kind) and "test_distractors" (2-4 subjects sharing one predicate, answerable only by matching
the question's subject).
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import TrainConfig
from .synthetic import DISTRACTORS, Mix, generate, write_jsonl
from .threads import share_cores
from .tokenizer import char_wordpiece, save_tokenizer_dir
from .trainer import train

log = logging.getLogger(__name__)

RECIPE_VERSION = 6


@dataclass(frozen=True)
class TinyRecipe:
    """Data and optimisation settings: tiny from-scratch models want a far larger learning rate than fine-tuning."""

    train_contexts: int = 8000
    dev_contexts: int = 100
    heldout_contexts: int = 300
    distractor_contexts: int = 150
    epochs: float = 4.0  # 3 epochs of the relbert model on 2 threads: 95.8 / 93.9 EM and 15 of 16 bundled questions
    lr: float = 1e-3
    batch_size: int = 32
    warmup_ratio: float = 0.06
    mix: Mix = field(default_factory=Mix)


QUICK = TinyRecipe(train_contexts=60, dev_contexts=0, heldout_contexts=20, distractor_contexts=10, epochs=1.0,
                   warmup_ratio=0.1)


def recipe_name(family: str, seed: int, quick: bool) -> str:
    """The label a finished folder carries in metrics.json; a different label means rebuild."""
    return f"tiny-{family}-v{RECIPE_VERSION}-seed{seed}{'-quick' if quick else ''}"


def _finished(out_dir: Path, recipe: str) -> bool:
    try:
        return json.loads((out_dir / "metrics.json").read_text(encoding="utf-8")).get("recipe") == recipe
    except (OSError, ValueError):
        return False


def build_tiny_model(out_dir: Path, family: str = "bert", seed: int = 0, quick: bool = False) -> Path:
    """Train (or reuse, when `out_dir` already holds this recipe's model) the tiny model; returns `out_dir`."""
    out_dir = Path(out_dir)
    name = recipe_name(family, seed, quick)
    r = QUICK if quick else TinyRecipe()
    if _finished(out_dir, name):
        log.info("reusing %s (%s)", out_dir, name)
        return out_dir
    share_cores()
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="qa-engine-tiny-") as tmp:
        work = Path(tmp)
        write_jsonl(generate(r.train_contexts, seed=seed, split="train", mix=r.mix), work / "train.jsonl")
        write_jsonl(generate(r.heldout_contexts, seed=seed, split="heldout"), work / "heldout.jsonl")
        write_jsonl(generate(r.distractor_contexts, seed=seed + 2, split="heldout", mix=DISTRACTORS),
                    work / "distractors.jsonl")
        if r.dev_contexts:
            write_jsonl(generate(r.dev_contexts, seed=seed + 1, split="heldout"), work / "dev.jsonl")
        inputs = ("input_ids", "attention_mask") if family == "distilbert" else ("input_ids", "token_type_ids", "attention_mask")
        save_tokenizer_dir(char_wordpiece(), work / "tokenizer", model_max_length=512, model_input_names=inputs)
        cfg = TrainConfig(
            output=str(out_dir),
            model=family,
            model_config="tiny",
            tokenizer=str(work / "tokenizer"),
            dataset=str(work / "train.jsonl"),
            eval_dataset=str(work / "dev.jsonl") if r.dev_contexts else None,
            test_dataset=str(work / "heldout.jsonl"),
            more_tests={"test_distractors": str(work / "distractors.jsonl")},
            lr=r.lr,
            batch_size=r.batch_size,
            epochs=r.epochs,
            warmup_ratio=r.warmup_ratio,
            weight_decay=0.01,
            seed=seed,
            mixed_precision="no",
            logging_steps=100,
            save_total_limit=1,
            force=True,
            recipe=name,
        )
        train(cfg)
    log.info("built %s in %.0f s", name, time.time() - start)
    return out_dir
