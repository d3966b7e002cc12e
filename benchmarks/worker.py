"""One system in a fresh process: load, warm up, time every batch size, record answers and peak memory.

Run as `python -m qa_engine.benchmarks.worker JOB.json`; the job names the system, its model files and the workload,
and where to write the result JSON. A fresh process per system keeps peak RSS and caches separate.
On CUDA, batch 1 is timed first, straight after the load (twice: a fresh process's first requests, then warm
ones), and a "concurrency" job serves single questions from many clients with and without the micro-batcher.
"""
from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from .environments import software
from .hardware import gpu_memory_mb
from .optimum_export import OPTIMUM_FILES
from .systems import SYSTEMS, Runner, load_engine, load_hf, load_openvino, load_optimum
from .workload import Workload

log = logging.getLogger(__name__)

WARMUP_QUESTIONS = 16


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _peak_rss_mb() -> float:
    """This process's own peak resident memory. Linux's ru_maxrss is no use here: a spawned child starts with its
    parent's high-water mark (it survives fork and exec), so a harness that had built a model in memory would show
    as every worker's peak. VmHWM belongs to this process's own address space; ru_maxrss only where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux and the BSDs


def load(system: str, model: dict) -> Runner:
    """The named system on the job's model files."""
    spec = SYSTEMS[system]
    if spec.family == "hf":
        return load_hf(spec, Path(model["checkpoint"]))
    if spec.family == "optimum":
        return load_optimum(spec, Path(model["optimum"]), OPTIMUM_FILES[spec.precision])
    if spec.family == "openvino":
        return load_openvino(spec, Path(model["artifact"]), Path(model["openvino"]))
    return load_engine(spec, Path(model["artifact"]))


def _measure_batch(runner: Runner, work: Workload, batch_size: int) -> dict:
    """All questions at one batch size: throughput, token counts, stage split, answers."""
    runner.counts.reset()
    if runner.profile is not None:
        runner.profile.clear()
    t0 = time.perf_counter()
    answers = runner.answer(work.questions, work.contexts, batch_size)
    seconds = time.perf_counter() - t0
    if runner.counts.calls == 0:
        raise RuntimeError(f"{runner.spec.name}: no model call was counted (the FLOP figures would be zero)")
    return {
        "questions": len(work), "seconds": seconds, "questions_per_s": len(work) / seconds,
        "tokens": runner.counts.as_dict(), "stages": dict(runner.profile or {}),
        "answers": [a["answer"] for a in answers],
    }


def _measure_latency(runner: Runner, work: Workload) -> dict:
    """One question per call: per-question latency percentiles (ms) and batch-1 throughput."""
    runner.counts.reset()
    if runner.profile is not None:
        runner.profile.clear()
    times, answers = [], []
    for q, c in zip(work.questions, work.contexts):
        t0 = time.perf_counter()
        answers.append(runner.answer([q], [c], 1)[0]["answer"])
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return {
        "questions": len(work), "seconds": float(sum(times)), "questions_per_s": len(work) / sum(times),
        "latency_ms": {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
                       "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()), "all": ms.round(3).tolist()},
        "tokens": runner.counts.as_dict(), "stages": dict(runner.profile or {}), "answers": answers,
    }


def _fresh_latency(runner: Runner, work: Workload) -> dict:
    """Batch 1 straight after the load, with no warm-up of the harness's: the first pass is what a fresh server's
    first requests see; the second pass, over the same questions, what warm ones see."""
    first = _measure_latency(runner, work)
    second = _measure_latency(runner, work)
    return {**first, "second_pass": {k: second[k] for k in ("seconds", "questions_per_s", "latency_ms")}}


def harness_shapes(batch_sizes: list[int]) -> list[int]:
    """Row counts for the harness's warm-up on CUDA: every power of two up to each batch size (a call's rows are
    padded to one), and the batch sizes themselves."""
    return sorted({1 << i for b in batch_sizes for i in range(b.bit_length())} | set(batch_sizes))


def _concurrency(runner: Runner, work: Workload, clients: int) -> dict:
    """`clients` concurrent single-question clients: per-request engine calls against the micro-batcher."""
    from dataclasses import asdict

    from .bench_concurrency import bench, summary

    rows = bench(runner.engine, list(zip(work.questions, work.contexts)), clients, max_batch_size=clients)
    return {"clients": clients, "max_batch_size": clients, "rows": [asdict(r) for r in rows],
            "summary": summary(rows)}


def run_job(job: dict) -> dict:
    """Execute one job dict and return its result dict."""
    work = Workload.from_json(Path(job["workload"]))
    if job.get("questions"):
        work = work.head(min(len(work), int(job["questions"])))
    t0 = time.perf_counter()
    runner = load(job["system"], job["model"])
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    sizes = [int(b) for b in job["batch_sizes"]]
    cuda = runner.spec.device == "cuda"
    out = {"system": job["system"], "role": job["role"], "repetition": job["repetition"], "load_s": load_s,
           "load_warmup_s": runner.load_warmup_s, "software": software()}
    batches = {}
    if job["role"] == "concurrency":
        if runner.engine is None:
            raise ValueError(f"{runner.spec.name}: the concurrency benchmark needs a qa-engine system")
        runner.warm_shapes(harness_shapes([runner.engine.settings.batch_size]))
        out["concurrency"] = _concurrency(runner, work, int(job["clients"]))
    elif cuda and 1 in sizes:
        log.info("%s: batch size 1 from a fresh load", job["system"])
        batches[1] = _fresh_latency(runner, work.head(min(len(work), job["latency_questions"])))
    t0 = time.perf_counter()
    if sizes:
        if cuda:
            runner.warm_shapes(harness_shapes(sizes))
        warm = work.head(min(len(work), WARMUP_QUESTIONS))
        runner.answer(warm.questions, warm.contexts, max(sizes))
        if 1 in sizes:
            runner.answer(warm.questions[:2], warm.contexts[:2], 1)
    warmup_s = time.perf_counter() - t0
    for bs in sizes:
        if bs in batches:
            continue
        log.info("%s: batch size %d", job["system"], bs)
        if bs == 1:
            batches[bs] = _measure_latency(runner, work.head(min(len(work), job["latency_questions"])))
        else:
            batches[bs] = _measure_batch(runner, work, bs)
    out.update(warmup_s=warmup_s, batches={bs: batches[bs] for bs in sizes},
               rss_after_load_mb=rss_loaded, rss_peak_mb=_peak_rss_mb())
    if cuda:
        out["gpu_memory_mb"] = gpu_memory_mb(os.getpid())
    return out


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    result = run_job(job)
    Path(job["result"]).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
