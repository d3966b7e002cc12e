"""The `qa-engine train` and `qa-engine train-tiny` subcommands (torch is imported only when they run)."""
from __future__ import annotations

import argparse
from pathlib import Path

from qa_engine.cli.numbers import float_range, non_negative_float, non_negative_int, positive_float, positive_int

from .config import DEFAULT_DATASET, DEFAULT_MODEL, TrainConfig

# argparse dest -> TrainConfig field, for the flags whose names differ
_FIELDS = {"eval_data": "eval_dataset", "test_data": "test_dataset"}


def _cmd_train(args: argparse.Namespace) -> int:
    from qa_engine.train import stack

    stack.check("train")
    from .threads import share_cores

    share_cores()
    from .trainer import train

    given = {k: v for k, v in vars(args).items() if k not in ("command", "func", "verbose", "argv") and v is not None}
    cfg = TrainConfig(**{_FIELDS.get(k, k): v for k, v in given.items()})
    print(train(cfg))
    return 0


def _cmd_train_tiny(args: argparse.Namespace) -> int:
    from qa_engine.train import stack

    stack.check("train-tiny")
    from .threads import share_cores

    share_cores()
    from .tiny import build_tiny_model

    print(build_tiny_model(Path(args.output), family=args.family, seed=args.seed, quick=args.quick))
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    d = TrainConfig(output="")
    p = sub.add_parser("train", help="fine-tune a question-answering model (Hugging Face Trainer)",
                       description="Fine-tune a QA model. Multi-GPU: run the same command under "
                                   "`torchrun --nproc_per_node N -m qa_engine.cli train ...` or "
                                   "`accelerate launch -m qa_engine.cli train ...`.")
    p.add_argument("--output", required=True, help="folder to write (model, tokenizer, train_config.json, "
                                                   "metrics.json); checkpoints go to OUTPUT.checkpoints/")
    p.add_argument("--model", help=f"hub id or local folder (default {DEFAULT_MODEL}); with --model-config "
                                   "tiny, the family: distilbert, bert, roberta or xlm-roberta")
    p.add_argument("--model-config", choices=["tiny"], help="train a small model from scratch (needs --tokenizer)")
    p.add_argument("--tokenizer", help="tokenizer folder (default: the model's own)")
    p.add_argument("--dataset", help=f"hub dataset id (train split) or local SQuAD JSON / JSON Lines "
                                     f"(default {DEFAULT_DATASET})")
    p.add_argument("--eval-data", help="evaluated each epoch to pick the best model (default: the hub "
                                       "dataset's validation split; none for a local --dataset)")
    p.add_argument("--test-data", help="scored once with the final model")
    p.add_argument("--epochs", type=positive_float, help=f"default {d.epochs}")
    p.add_argument("--lr", type=positive_float, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--batch-size", type=positive_int, help=f"per device (default {d.batch_size})")
    p.add_argument("--grad-accum", type=positive_int, help=f"gradient accumulation steps (default {d.grad_accum})")
    p.add_argument("--warmup-ratio", type=float_range(0.0, 1.0, high_open=True), help=f"default {d.warmup_ratio}")
    p.add_argument("--weight-decay", type=non_negative_float, help=f"default {d.weight_decay}")
    p.add_argument("--seed", type=non_negative_int, help=f"default {d.seed}")
    p.add_argument("--max-length", type=positive_int, help=f"window length in tokens (default {d.max_length})")
    p.add_argument("--doc-stride", type=non_negative_int, help=f"overlap of consecutive windows (default {d.doc_stride})")
    p.add_argument("--max-answer-length", type=positive_int, help=f"in tokens, for evaluation (default {d.max_answer_length})")
    mp = p.add_mutually_exclusive_group()
    mp.add_argument("--bf16", dest="mixed_precision", action="store_const", const="bf16",
                    help="bf16 mixed precision (default: bf16 on GPUs that have it, else fp16; fp32 on CPU)")
    mp.add_argument("--fp16", dest="mixed_precision", action="store_const", const="fp16",
                    help="fp16 mixed precision (CUDA only)")
    mp.add_argument("--no-mixed-precision", dest="mixed_precision", action="store_const", const="no",
                    help="train in fp32")
    p.add_argument("--strict", action="store_true", default=None,
                   help="fail on a misaligned answer or too long question instead of skipping it")
    p.add_argument("--resume", action="store_true", default=None,
                   help="continue from the last checkpoint in OUTPUT.checkpoints/")
    p.add_argument("--force", action="store_true", default=None,
                   help="overwrite an existing output and discard old checkpoints")
    p.set_defaults(func=_cmd_train)


def _add_train_tiny(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-tiny", help="train the tiny offline model on synthetic Korean QA (minutes on CPU)")
    p.add_argument("--output", required=True, help="model folder to write (reused when already built)")
    p.add_argument("--family", choices=["bert", "distilbert"], default="bert",
                   help="bert (relative-position attention: the one that learns the task in minutes) or distilbert")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--quick", action="store_true", help="train only a few seconds (an untrained-quality model)")
    p.set_defaults(func=_cmd_train_tiny)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the training subcommands to the `qa-engine` parser."""
    _add_train(sub)
    _add_train_tiny(sub)
