"""Host pipeline against a simulated GPU: the engine with CUDA settings and a runner that only sleeps (releasing the
GIL, as onnxruntime's CUDA run does) for a model time proportional to each call's padded tokens.

It shows on any machine, without a GPU, whether tokenizing, bucketing and decoding keep up with a device of a
given speed and how much of that host work the overlap pipeline hides: the wall time against max(host, model),
the least any pipeline could take."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa_engine.core.runner import Logits
from qa_engine.core.windows import WindowTokenizer
from qa_engine.engine import STAGES, EngineSettings, QAEngine

from .workload import Workload

log = logging.getLogger(__name__)

BATCH = 256  # the GPU goals are judged at batch 256
# the fused fp16 mBERT-shape model on one H200: 22.5 ms per [256, 384] call (../shared/notes/performance.md)
H200_SECONDS_PER_TOKEN = 22.5e-3 / (256 * 384)


@dataclass
class SleepRunner:
    """A CUDA-shaped model that takes `seconds_per_token` per padded token and returns fixed random logits."""

    seconds_per_token: float
    input_names: tuple[str, ...] = ("input_ids", "attention_mask")
    device: str = "cuda"
    precision: str = "fp16"
    slept: float = 0.0
    _logits: dict[tuple[int, ...], Logits] = field(default_factory=dict)

    def run(self, feed: dict[str, np.ndarray]) -> Logits:
        shape = feed["input_ids"].shape
        if shape not in self._logits:
            rng = np.random.default_rng(shape[0] * 1000 + shape[1])
            self._logits[shape] = (rng.standard_normal(shape, dtype=np.float32),
                                   rng.standard_normal(shape, dtype=np.float32))
        seconds = shape[0] * shape[1] * self.seconds_per_token
        if seconds:
            time.sleep(seconds)
            self.slept += seconds
        return self._logits[shape]


def host_run(tokenizer: WindowTokenizer, work: Workload, seconds_per_token: float, overlap: bool,
             batch_size: int = BATCH, repeats: int = 3) -> dict:
    """Best of `repeats` answer_batch calls over the workload: wall, model (slept) and per-stage host seconds."""
    runner = SleepRunner(seconds_per_token)
    settings = EngineSettings(batch_size=batch_size, precision="fp16", device="cuda", overlap=overlap)
    engine = QAEngine(runner, tokenizer, settings)
    questions, contexts = list(work.questions), list(work.contexts)
    engine.answer_batch(questions[:batch_size], contexts[:batch_size])  # warm-up: allocations, logits per shape
    best: dict | None = None
    for _ in range(repeats):
        profile: dict[str, float] = {}
        runner.slept = 0.0
        t0 = time.perf_counter()
        engine.answer_batch(questions, contexts, profile=profile)
        wall = time.perf_counter() - t0
        if best is None or wall < best["wall_s"]:
            best = {"wall_s": wall, "model_s": runner.slept, "stages_s": {k: profile.get(k, 0.0) for k in STAGES}}
    assert best is not None
    host = sum(v for k, v in best["stages_s"].items() if k != "run")
    return {**best, "host_s": host, "qps": len(questions) / best["wall_s"],
            "bound_s": max(host, best["model_s"]), "efficiency": max(host, best["model_s"]) / best["wall_s"]}


def host_benchmark(tokenizer_file: Path, work: Workload, batch_size: int = BATCH,
                   seconds_per_token: float = H200_SECONDS_PER_TOKEN, repeats: int = 3) -> dict:
    """The engine's host work alone (an instant model) and beside a simulated GPU, overlap off and on."""
    tokenizer = WindowTokenizer.from_file(tokenizer_file)
    runs = []
    for label, spt in (("instant", 0.0), ("simulated", seconds_per_token)):
        for overlap in (False, True):
            r = host_run(tokenizer, work, spt, overlap, batch_size, repeats)
            runs.append({"model": label, "overlap": overlap, **r})
            log.info("host, %s model, overlap %s: %.0f q/s, wall %.0f ms, model %.0f ms, host %.0f ms (%.0f%% of "
                     "the bound)", label, overlap, r["qps"], r["wall_s"] * 1e3, r["model_s"] * 1e3,
                     r["host_s"] * 1e3, r["efficiency"] * 100)
    return {"questions": len(work), "batch_size": batch_size, "seconds_per_token": seconds_per_token, "runs": runs}
