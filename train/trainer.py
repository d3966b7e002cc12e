"""Fine-tuning a question-answering model with the Hugging Face Trainer; the result is a save_pretrained folder.

Multi-GPU needs no code change: the Trainer picks up a torchrun or accelerate launch environment, so run the
same command under either launcher:

    torchrun --nproc_per_node 4 -m qa_engine.cli train --model ... --output ...
    accelerate launch -m qa_engine.cli train --model ... --output ...

--batch-size is per device, so the effective batch is batch_size x devices x grad_accum.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

import torch
import transformers
from tokenizers import Tokenizer
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint, speed_metrics

from qa_engine.artifacts.atomic import atomic_dir
from qa_engine.core.config import WindowConfig, max_window_length
from qa_engine.core.constants import TRAIN_CONFIG
from qa_engine.core.windows import WindowTokenizer
from qa_engine.formats.squad import Example

from .config import EVAL_SPLIT, TrainConfig
from .data import LABEL_COLUMNS, collate, training_dataset
from .evaluation import EvalSet
from .labels import load_labelled
from .model import load_model, model_input_names
from .tokenizer import portable_files

log = logging.getLogger(__name__)


def checkpoint_dir(output: Path) -> Path:
    """Where a run keeps its resumable checkpoints: a sibling of the output folder, removed on success."""
    return output.with_name(f"{output.name}.checkpoints")


class QATrainer(Trainer):
    """A Trainer whose evaluation decodes answer spans with qa_engine.core.spans and reports exact_match and f1."""

    def __init__(self, *args, eval_set: EvalSet | None, max_answer_length: int, metric: str, **kwargs):
        super().__init__(*args, eval_dataset=eval_set.dataset if eval_set else None, **kwargs)
        self.eval_set = eval_set
        self.max_answer_length = max_answer_length
        self.metric = metric

    def evaluate(self, eval_dataset=None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        """Score the evaluation set (the Trainer calls this each epoch)."""
        if eval_dataset is not None or self.eval_set is None:
            raise ValueError("QATrainer evaluates only the EvalSet it was built with")
        metrics = self.score(self.eval_set, metric_key_prefix, ignore_keys)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def score(self, eval_set: EvalSet, prefix: str, ignore_keys: list[str] | None = None) -> dict[str, float]:
        """Predict every window of `eval_set`, decode answers, log and return {prefix}_exact_match / _f1."""
        start = time.time()
        output = self.evaluation_loop(
            self.get_eval_dataloader(eval_set.dataset), description=f"Scoring {prefix}",
            prediction_loss_only=False, ignore_keys=ignore_keys, metric_key_prefix=prefix,
        )
        start_logits, end_logits = output.predictions
        result = eval_set.score(start_logits, end_logits, self.max_answer_length, self.metric)
        metrics = {f"{prefix}_exact_match": result.exact_match, f"{prefix}_f1": result.f1}
        metrics.update(speed_metrics(prefix, start, num_samples=len(eval_set.examples)))
        self.log(metrics)
        return metrics


def _precision_flags(mode: str) -> dict[str, bool]:
    cuda = torch.cuda.is_available()
    if mode == "auto":
        if not cuda:
            return {}
        return {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}
    if mode == "fp16" and not cuda:
        raise ValueError("fp16 mixed precision needs a CUDA GPU; on CPU use --bf16 or --no-mixed-precision")
    return {} if mode == "no" else {mode: True}


def _resume_point(cfg: TrainConfig, output: Path, checkpoints: Path) -> str | None:
    """Check the output and checkpoint folders before any work; the checkpoint to resume from, if any."""
    if output.exists() and not cfg.force:
        raise FileExistsError(f"{output} already exists; pass --force to overwrite it")
    last = get_last_checkpoint(checkpoints) if checkpoints.is_dir() else None
    if cfg.resume:
        if last is None:
            raise ValueError(f"--resume: no checkpoint to resume from in {checkpoints}")
        return last
    if last is not None:
        if not cfg.force:
            raise FileExistsError(f"{checkpoints} holds checkpoints of an unfinished run; pass --resume to "
                                  "continue it or --force to start over")
        shutil.rmtree(checkpoints)
    return None


def _load(source: str | None, split: str, strict: bool) -> list[Example] | None:
    return None if source is None else load_labelled(source, split, strict)


def _warmup(ratio: float) -> dict[str, float]:
    """The warmup argument as this transformers takes it: transformers 5 dropped warmup_ratio, and its
    warmup_steps reads a float below 1 as the ratio of all steps (4.x reads warmup_steps as a step count)."""
    if "warmup_ratio" in {f.name for f in fields(TrainingArguments)}:
        return {"warmup_ratio": ratio}
    return {"warmup_steps": ratio}


def _training_arguments(cfg: TrainConfig, checkpoints: Path, has_eval: bool) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=2 * cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay,
        **_warmup(cfg.warmup_ratio),
        num_train_epochs=cfg.epochs,
        seed=cfg.seed,
        eval_strategy="epoch" if has_eval else "no",
        save_strategy="epoch",
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=has_eval,
        metric_for_best_model="f1" if has_eval else None,
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        label_names=list(LABEL_COLUMNS),
        remove_unused_columns=False,
        report_to="none",
        dataloader_pin_memory=torch.cuda.is_available(),
        **_precision_flags(cfg.mixed_precision),
    )


def _best_eval(log_history: list[dict]) -> dict[str, float]:
    """The epoch evaluation with the best f1 (the one load_best_model_at_end restored)."""
    evals = [e for e in log_history if "eval_f1" in e]
    best = max(evals, key=lambda e: e["eval_f1"])
    return {"exact_match": best["eval_exact_match"], "f1": best["eval_f1"], "epoch": best.get("epoch"),
            "step": best.get("step")}


@dataclass
class _Splits:
    """The examples of a run: training, evaluation during training (and where it came from), tests by name."""

    train: list[Example]
    eval_source: str | None
    eval: list[Example] | None
    tests: dict[str, list[Example] | None]
    sources: dict[str, str | None]  # a test's name -> its dataset

    @classmethod
    def load(cls, cfg: TrainConfig) -> "_Splits":
        """Training examples (labels checked), then the eval set (the hub dataset's own when none is named) and the
        test sets, each read once before any model is loaded."""
        train_examples = load_labelled(cfg.dataset, "train", cfg.strict)
        eval_source = cfg.eval_dataset or (None if Path(cfg.dataset).exists() else cfg.dataset)
        sources = {"test": cfg.test_dataset, **cfg.more_tests}
        return cls(train_examples, eval_source, _load(eval_source, EVAL_SPLIT, cfg.strict),
                   {name: _load(source, EVAL_SPLIT, cfg.strict) for name, source in sources.items()}, sources)


def _trainer(cfg: TrainConfig, splits: _Splits, checkpoints: Path,
             callbacks: Sequence[TrainerCallback]) -> tuple[QATrainer, dict[str, EvalSet]]:
    """The model and its windowed datasets inside a QATrainer, and the test sets it scores after training."""
    model, tokenizer = load_model(cfg.model, cfg.model_config, cfg.tokenizer)
    positions = max_window_length(model.config)
    if positions is not None and cfg.max_length > positions:
        raise ValueError(f"max_length {cfg.max_length} exceeds the {positions} tokens the model's positions hold")
    windower = WindowTokenizer(Tokenizer.from_str(tokenizer.backend_tokenizer.to_str()),
                               WindowConfig(cfg.max_length, cfg.doc_stride))
    names = model_input_names(model)
    train_set = training_dataset(splits.train, windower, names, cfg.strict)
    eval_set = EvalSet.build(splits.eval, windower, names) if splits.eval else None
    test_sets = {name: EvalSet.build(examples, windower, names) for name, examples in splits.tests.items() if examples}
    trainer = QATrainer(
        model=model,
        args=_training_arguments(cfg, checkpoints, eval_set is not None),
        train_dataset=train_set,
        data_collator=collate,
        processing_class=tokenizer,
        callbacks=list(callbacks),
        eval_set=eval_set,
        max_answer_length=cfg.max_answer_length,
        metric=cfg.metric,
    )
    return trainer, test_sets


def _fit(trainer: QATrainer, resume_from: str | None, checkpoints: Path) -> transformers.trainer_utils.TrainOutput:
    """Train (from `resume_from` when set); a run stopped before its first checkpoint leaves no checkpoints folder."""
    if resume_from:
        log.info("resuming from %s", resume_from)
    try:
        return trainer.train(resume_from_checkpoint=resume_from)
    except BaseException:
        if checkpoints.is_dir() and get_last_checkpoint(checkpoints) is None:
            shutil.rmtree(checkpoints, ignore_errors=True)
        raise


def _metrics(cfg: TrainConfig, trainer: QATrainer, result: transformers.trainer_utils.TrainOutput, splits: _Splits,
             test_sets: dict[str, EvalSet]) -> dict:
    """metrics.json: the training run, the best evaluation during training and each test set's scores."""
    metrics: dict = {
        "recipe": cfg.recipe,
        "train": {"global_step": result.global_step, **result.metrics, "examples": len(splits.train),
                  "windows": len(trainer.train_dataset)},
    }
    if trainer.eval_set is not None:
        metrics["eval"] = {**_best_eval(trainer.state.log_history), "source": splits.eval_source,
                           "examples": len(trainer.eval_set.examples)}
    for name, test_set in test_sets.items():
        scores = trainer.score(test_set, name)
        metrics[name] = {"exact_match": scores[f"{name}_exact_match"], "f1": scores[f"{name}_f1"],
                         "source": splits.sources[name], "examples": len(test_set.examples)}
    return metrics


def train(cfg: TrainConfig, callbacks: Sequence[TrainerCallback] = ()) -> Path:
    """Fine-tune per `cfg`; returns the output folder (model, tokenizer, train_config.json, metrics.json)."""
    output = Path(cfg.output)
    checkpoints = checkpoint_dir(output)
    resume_from = _resume_point(cfg, output, checkpoints)
    splits = _Splits.load(cfg)
    set_seed(cfg.seed)
    trainer, test_sets = _trainer(cfg, splits, checkpoints, callbacks)
    result = _fit(trainer, resume_from, checkpoints)
    metrics = _metrics(cfg, trainer, result, splits, test_sets)
    if trainer.is_world_process_zero():
        _write_output(trainer, cfg, metrics)
    return output


def _write_output(trainer: Trainer, cfg: TrainConfig, metrics: dict) -> None:
    """Build the final folder beside OUTPUT and rename it into place; then drop the run's checkpoints."""
    output = Path(cfg.output)
    with atomic_dir(output, force=cfg.force) as tmp:
        trainer.save_model(str(tmp))
        portable_files(trainer.processing_class, tmp)
        config = {**asdict(cfg), "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}
        (tmp / TRAIN_CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    shutil.rmtree(checkpoint_dir(output), ignore_errors=True)
    log.info("saved %s: %s", output, json.dumps({k: v for k, v in metrics.items() if k != "train"}))
