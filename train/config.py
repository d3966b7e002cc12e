"""Training settings (importable without torch, so the CLI can show its defaults)."""
from __future__ import annotations

from dataclasses import dataclass, field

from qa_engine.core.config import WindowConfig
from qa_engine.core.constants import DOC_STRIDE, MAX_ANSWER_LENGTH, MAX_LENGTH
from qa_engine.formats.metrics import METRICS

DEFAULT_MODEL = "distilbert/distilbert-base-multilingual-cased"
DEFAULT_DATASET = "KorQuAD/squad_kor_v1"
EVAL_SPLIT = "validation"
MIXED_PRECISIONS = ("auto", "bf16", "fp16", "no")  # the Trainer's mixed_precision choices


@dataclass
class TrainConfig:
    """Everything a training run depends on; written to train_config.json beside the model."""

    output: str
    model: str = DEFAULT_MODEL
    dataset: str = DEFAULT_DATASET
    eval_dataset: str | None = None  # default: the hub dataset's validation split; none for a local file
    test_dataset: str | None = None  # scored once with the final model, reported as metrics.json "test"
    more_tests: dict[str, str] = field(default_factory=dict)  # name -> file, scored and reported like "test"
    tokenizer: str | None = None  # default: the model's own
    model_config: str | None = None  # "tiny": train a small model from scratch (`model` names its family)
    lr: float = 2e-5
    batch_size: int = 16
    epochs: float = 3.0
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    seed: int = 42
    grad_accum: int = 1
    max_length: int = MAX_LENGTH
    doc_stride: int = DOC_STRIDE
    max_answer_length: int = MAX_ANSWER_LENGTH
    # "auto": bf16 on a CUDA GPU that has it, else fp16 on CUDA; fp32 on CPU, where bf16 autocast only pays
    # off with AMX and costs small from-scratch models accuracy (pass bf16 explicitly to use it there).
    mixed_precision: str = "auto"
    metric: str = "korquad"
    logging_steps: int = 50
    save_total_limit: int = 2
    strict: bool = False
    resume: bool = False
    force: bool = False
    recipe: str = ""  # free-form label of what produced this run, recorded in metrics.json

    def __post_init__(self) -> None:
        WindowConfig(self.max_length, self.doc_stride)  # validates the window settings
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISIONS}, got {self.mixed_precision!r}")
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; choose one of {sorted(METRICS)}")
        for name in ("batch_size", "grad_accum", "max_answer_length", "logging_steps", "save_total_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.epochs > 0 or not self.lr > 0:
            raise ValueError(f"epochs and lr must be positive, got {self.epochs} and {self.lr}")
        if not 0 <= self.warmup_ratio < 1:  # transformers 5 reads a warmup of 1 or more as a step count
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
