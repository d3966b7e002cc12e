"""`qa-engine batch --ray`: a question file answered by a pool of Ray actors, one QAEngine each.

Ray is imported only when a function here runs. Output rows are those of the single-process
`qa-engine batch`, in input order: JSON Lines, or Parquet when the output name ends in .parquet.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from qa_engine.artifacts.atomic import atomic_open
from qa_engine.artifacts.hub import is_repo_id
from qa_engine.formats.records import output_record, summary, write_predictions
from qa_engine.formats.squad import iter_examples

log = logging.getLogger(__name__)


class Answerer:
    """A Ray Data callable class: loads one QAEngine per actor and answers batches of {id, question, context}."""

    def __init__(
        self, model: str, provider: str, precision: str | None, threads: int, options: dict[str, Any],
        revision: str | None = None,
    ):
        from qa_engine.engine import QAEngine

        self.engine = QAEngine.from_pretrained(
            model, provider=provider, precision=precision, intra_op_threads=threads, revision=revision
        )
        self.options = options

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids, questions = [str(i) for i in batch["id"]], [str(q) for q in batch["question"]]
        results = self.engine.answer_stream(zip(questions, [str(c) for c in batch["context"]]), **self.options)
        records = [json.dumps(output_record(*row), ensure_ascii=False) for row in zip(ids, questions, results)]
        return {"record": np.array(records, dtype=object)}


def _write_parquet(path: Path, records: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_open(path, "wb", encoding=None) as f:
        pq.write_table(pa.Table.from_pylist(records), f)


def _checked(rows: Iterator[dict], ids: list[str]) -> Iterator[tuple[str, dict]]:
    """(JSON line, record) per answered row, checking that the rows are the input's questions, each once, in order."""
    n = 0
    for row in rows:
        record = json.loads(row["record"])
        if n >= len(ids) or record["id"] != ids[n]:
            due = repr(ids[n]) if n < len(ids) else "none"
            raise RuntimeError(f"Ray returned question {record['id']!r} where {due} was due")
        n += 1
        yield row["record"], record
    if n != len(ids):
        raise RuntimeError(f"Ray returned {n} answers for {len(ids)} questions")


def _run(
    ray: Any, items: list[dict], output_path: Path, num_workers: int, batch_size: int, actor: dict[str, Any]
) -> tuple[float, dict[str, str]]:
    """Run a pool of `Answerer(**actor)` over `items` and write the output; (seconds, {id: best answer})."""
    t0 = time.perf_counter()
    batch_size = min(batch_size, math.ceil(len(items) / num_workers))  # enough batches to keep every actor busy
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
    rows = _checked(answered.iter_rows(), [item["id"] for item in items])
    predictions: dict[str, str] = {}
    if output_path.suffix == ".parquet":
        records = [record for _, record in rows]
        predictions = {r["id"]: r["answer"] for r in records}
        _write_parquet(output_path, records)
    else:
        with atomic_open(output_path) as out:
            for line, record in rows:
                out.write(line + "\n")
                predictions[record["id"]] = record["answer"]
    return time.perf_counter() - t0, predictions


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
    **answer_options: Any,
) -> dict[str, Any]:
    """Answer every question of a SQuAD JSON / JSON Lines file on `num_workers` Ray actors; returns a summary.

    Each actor gets `batch_size` questions at a time and runs `model_batch_size` windows per model
    call; `answer_options` (top_k, max_answer_length, handle_impossible_answer) go to `answer_stream`.
    `model` is an artifact folder or a hub repo id (each actor loads it from its node's hub cache).
    An actor that dies is restarted and its batch retried (Ray Data's actor-pool defaults). Connects
    to the cluster named by RAY_ADDRESS if set, else starts a local one.
    """
    try:
        import ray
    except ImportError as e:
        raise ImportError("--ray needs Ray Data: pip install 'qa-engine[serve]'") from e
    if num_workers < 1 or batch_size < 1:
        raise ValueError(f"num_workers and batch_size must be >= 1, got {num_workers} and {batch_size}")
    items = [{"id": e.id, "question": e.question, "context": e.context} for e in iter_examples(input_path)]
    if not items:
        raise ValueError(f"{input_path}: no questions")
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, logging_level=logging.WARNING)
    try:
        local = Path(model).is_dir() or not is_repo_id(model)  # actors may run elsewhere: absolute paths
        actor = {"model": str(Path(model).resolve()) if local else str(model), "revision": revision,
                 "provider": provider, "precision": precision, "threads": threads_per_worker,
                 "options": {"batch_size": model_batch_size, **answer_options}}
        seconds, predictions = _run(ray, items, Path(output_path), num_workers, batch_size, actor)
    finally:
        if started:
            ray.shutdown()
    if predictions_path:
        write_predictions(predictions_path, predictions)
    log.info("answered %d questions on %d Ray workers in %.2f s", len(items), num_workers, seconds)
    return {**summary(len(items), seconds), "workers": num_workers}
