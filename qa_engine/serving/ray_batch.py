"""`qa-engine batch --ray`: a question file answered by a pool of Ray actors, one QAEngine each.

Ray is imported only when a function here runs. Output rows are those of the single-process
`qa-engine batch`, in input order, written by the same durable job (qa_engine.cli.batch_job): JSON Lines, or
Parquet when the output name ends in .parquet.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from qa_engine.artifacts.hub import is_repo_id
from qa_engine.cli.batch_job import BatchJob, run
from qa_engine.core.config import MAX_CONTEXT_CHARS
from qa_engine.core.types import AnswerResult
from qa_engine.formats.squad import count_questions

log = logging.getLogger(__name__)


class Answerer:
    """A Ray Data callable class: loads one QAEngine per actor and answers batches of {n, question, context}."""

    def __init__(
        self, model: str, provider: str, precision: str | None, threads: int, options: dict[str, Any],
        revision: str | None = None, max_context_chars: int = MAX_CONTEXT_CHARS,
    ):
        from qa_engine.engine import QAEngine

        self.engine = QAEngine.from_pretrained(
            model, provider=provider, precision=precision, intra_op_threads=threads, revision=revision,
            max_context_chars=max_context_chars,
        )
        self.options = options

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pairs = zip([str(q) for q in batch["question"]], [str(c) for c in batch["context"]])
        results = [json.dumps(r, ensure_ascii=False) for r in self.engine.answer_stream(pairs, **self.options)]
        return {"n": batch["n"], "result": np.array(results, dtype=object)}


def _answers(ray: Any, pairs: Iterable[tuple[str, str]], num_workers: int, batch_size: int,
             actor: dict[str, Any]) -> Iterator[AnswerResult]:
    """Each pair's answer from a pool of `Answerer(**actor)`, `batch_size` pairs a batch, checked to come back in
    input order, each once."""
    items = [{"n": n, "question": q, "context": c} for n, (q, c) in enumerate(pairs)]
    if not items:
        return
    ds = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / batch_size))
    ds.context.execution_options.preserve_order = True  # rows come back in input order
    answered = ds.map_batches(
        Answerer,
        fn_constructor_kwargs=actor,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=num_workers),
        num_cpus=actor["threads"],
        num_gpus=1 if actor["provider"] == "cuda" else 0,
    )
    n = 0
    for row in answered.iter_rows():
        if row["n"] != n or n >= len(items):
            raise RuntimeError(f"Ray returned question {row['n']} where {n if n < len(items) else 'none'} was due")
        n += 1
        yield json.loads(row["result"])
    if n != len(items):
        raise RuntimeError(f"Ray returned {n} answers for {len(items)} questions")


def answer_dataset_ray(
    model: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    num_workers: int = 2,
    batch_size: int = 256,
    provider: str = "cpu",
    precision: str | None = None,
    revision: str | None = None,
    threads_per_worker: int = 1,
    model_batch_size: int | None = None,
    predictions_path: str | Path | None = None,
    max_context_chars: int = MAX_CONTEXT_CHARS,
    job_options: dict[str, Any] | None = None,
    **answer_options: Any,
) -> dict[str, Any]:
    """Answer every question of a SQuAD JSON / JSON Lines file on `num_workers` Ray actors; returns a summary.

    Each actor gets `batch_size` questions at a time (fewer for a small file, so that every actor gets work) and
    runs `model_batch_size` windows per model call; `answer_options` (top_k, max_answer_length,
    handle_impossible_answer) go to `answer_stream`. `model` is an artifact folder or a hub repo id (each actor
    loads it from its node's hub cache). Answers are committed to OUTPUT.partial a Ray batch at a time, as
    `qa-engine batch` does; `job_options` are the other `BatchJob` fields (resume, on_error, errors, ...).
    An actor that dies is restarted and its batch retried (Ray Data's actor-pool defaults). Connects
    to the cluster named by RAY_ADDRESS if set, else starts a local one.
    """
    try:
        import ray
    except ImportError as e:
        raise ImportError("--ray needs Ray Data: pip install 'qa-engine[serve]'") from e
    if num_workers < 1 or batch_size < 1:
        raise ValueError(f"num_workers and batch_size must be >= 1, got {num_workers} and {batch_size}")
    total = count_questions(input_path)
    if not total:
        raise ValueError(f"{input_path}: no questions")
    batch_size = min(batch_size, math.ceil(total / num_workers))  # enough batches to keep every actor busy
    local = Path(model).is_dir() or not is_repo_id(model)  # actors may run elsewhere: absolute paths
    actor = {"model": str(Path(model).resolve()) if local else str(model), "revision": revision,
             "provider": provider, "precision": precision, "threads": threads_per_worker,
             "max_context_chars": max_context_chars, "options": {"batch_size": model_batch_size, **answer_options}}
    settings = {**{k: actor[k] for k in ("model", "revision", "provider", "precision")},
                "options": actor["options"], "ray_batch": batch_size}
    options = {"predictions": Path(predictions_path) if predictions_path else None, **(job_options or {})}
    job = BatchJob(Path(input_path), Path(output_path), settings, batch_size, max_context_chars, **options)
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, logging_level=logging.WARNING)
    try:
        done = run(job, lambda pairs, _: _answers(ray, pairs, num_workers, batch_size, actor))
    finally:
        if started:
            ray.shutdown()
    log.info("answered %d questions on %d Ray workers in %.2f s", done["questions"], num_workers, done["seconds"])
    return {**done, "workers": num_workers}
