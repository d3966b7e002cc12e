"""The offline model: a tiny QA model trained from scratch on synthetic Korean data, with the same `train()`.

Train, dev and heldout data come from train/synthetic.py; dev and heldout use names and places the train split
never has (dev picks the best epoch, heldout is scored once and recorded as metrics.json "test").
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

from .config import TrainConfig
from .synthetic import alphabet, generate, write_jsonl
from .tokenizer import char_wordpiece, save_tokenizer_dir
from .trainer import train

log = logging.getLogger(__name__)

RECIPE_VERSION = 3
TRAIN_CONTEXTS = 8000
DEV_CONTEXTS = 100
HELDOUT_CONTEXTS = 300
QUICK_TRAIN_CONTEXTS = 60
QUICK_HELDOUT_CONTEXTS = 20


def recipe_name(family: str, seed: int, quick: bool) -> str:
    """The label a finished folder carries in metrics.json; a different label means rebuild."""
    return f"tiny-{family}-v{RECIPE_VERSION}-seed{seed}{'-quick' if quick else ''}"


def _finished(out_dir: Path, recipe: str) -> bool:
    try:
        return json.loads((out_dir / "metrics.json").read_text(encoding="utf-8")).get("recipe") == recipe
    except (OSError, ValueError):
        return False


def _recipe(quick: bool) -> dict:
    """Training settings: tiny from-scratch models want a far larger learning rate than fine-tuning."""
    if quick:
        return {"epochs": 1.0, "lr": 1e-3, "batch_size": 32, "warmup_ratio": 0.1}
    return {"epochs": 4.0, "lr": 1e-3, "batch_size": 32, "warmup_ratio": 0.06}


def build_tiny_model(out_dir: Path, family: str = "bert", seed: int = 0, quick: bool = False) -> Path:
    """Train (or reuse, when `out_dir` already holds this recipe's model) the tiny model; returns `out_dir`."""
    out_dir = Path(out_dir)
    recipe = recipe_name(family, seed, quick)
    if _finished(out_dir, recipe):
        log.info("reusing %s (%s)", out_dir, recipe)
        return out_dir
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    n_train = QUICK_TRAIN_CONTEXTS if quick else TRAIN_CONTEXTS
    n_heldout = QUICK_HELDOUT_CONTEXTS if quick else HELDOUT_CONTEXTS
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="qa-engine-tiny-") as tmp:
        work = Path(tmp)
        train_records = generate(n_train, seed=seed, split="train")
        write_jsonl(train_records, work / "train.jsonl")
        write_jsonl(generate(n_heldout, seed=seed, split="heldout"), work / "heldout.jsonl")
        if not quick:
            write_jsonl(generate(DEV_CONTEXTS, seed=seed + 1, split="heldout"), work / "dev.jsonl")
        texts = [*dict.fromkeys(r["context"] for r in train_records), *(r["question"] for r in train_records)]
        inputs = ("input_ids", "attention_mask") if family == "distilbert" else ("input_ids", "token_type_ids", "attention_mask")
        save_tokenizer_dir(char_wordpiece(texts, extra_alphabet=alphabet()), work / "tokenizer",
                           model_max_length=512, model_input_names=inputs)
        cfg = TrainConfig(
            output=str(out_dir),
            model=family,
            model_config="tiny",
            tokenizer=str(work / "tokenizer"),
            dataset=str(work / "train.jsonl"),
            eval_dataset=None if quick else str(work / "dev.jsonl"),
            test_dataset=str(work / "heldout.jsonl"),
            weight_decay=0.01,
            seed=seed,
            mixed_precision="no",
            logging_steps=100,
            save_total_limit=1,
            force=True,
            recipe=recipe,
            **_recipe(quick),
        )
        train(cfg)
    log.info("built %s in %.0f s", recipe, time.time() - start)
    return out_dir
