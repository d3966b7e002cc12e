"""The benchmark run: prepare models, measure peaks, run every system in its own process, analyse, report."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from qa_engine.atomic import atomic_write_text

from . import analysis
from .decoder import decoder_benchmark
from .windows import QUESTIONS as WINDOW_QUESTIONS, windows_benchmark
from .hardware import cpu_info, gemm_peaks
from .models import PreparedModel, checkpoint_model, digest, speed_model, tiny_checkpoint
from .ort_profile import profile_engine
from .systems import SYSTEMS
from .workload import Workload, load_workload, sample

log = logging.getLogger(__name__)

JOB_TIMEOUT_S = 3600
PROFILE_QUESTIONS = 64
DECODER_QUESTIONS = 256  # drawn independently of --questions so that 64 whole-question windows always exist
VERSIONED = ("torch", "transformers", "optimum", "optimum-onnx", "onnxruntime-gpu", "onnxruntime", "tokenizers",
             "numpy")


@dataclass(frozen=True)
class BenchConfig:
    data: str
    out: Path
    model: Path | None = None
    accuracy_model: Path | None = None
    questions: int = 256
    latency_questions: int = 64
    batch_sizes: tuple[int, ...] = (1, 8, 32, 64)
    target_batch: int = analysis.TARGET_BATCH
    repeats: int = 2
    full_repeats: bool = False
    quick: bool = False
    resume: bool = False
    seed: int = 0
    workdir: Path = Path("benchmarks/.work")
    systems: tuple[str, ...] = tuple(SYSTEMS)
    optimum_per_channel: bool = True
    gemm_size: int = 4096
    command: str = ""


@dataclass(frozen=True)
class Job:
    system: str
    role: str
    repetition: int
    batch_sizes: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.role}-{self.repetition}-{self.system}"


def plan_jobs(cfg: BenchConfig, separate_accuracy: bool) -> list[Job]:
    """Speed jobs with the system and batch-size order reversed every other repetition, then accuracy jobs.

    Repetitions after the first re-measure only the target batch size unless `full_repeats` is set.
    """
    jobs = []
    for rep in range(cfg.repeats):
        flip = rep % 2 == 1
        systems = cfg.systems[::-1] if flip else cfg.systems
        sizes = cfg.batch_sizes if rep == 0 or cfg.full_repeats else (cfg.target_batch,)
        jobs += [Job(s, "speed", rep, sizes[::-1] if flip else sizes) for s in systems]
    if separate_accuracy:
        jobs += [Job(s, "accuracy", 0, (cfg.target_batch,)) for s in cfg.systems]
    return jobs


def run_job(job: Job, model: PreparedModel, workload_file: Path, latency_questions: int, logs: Path) -> dict:
    """Run one job in a fresh interpreter; raise with the log's tail when it fails."""
    spec = {
        "system": job.system, "role": job.role, "repetition": job.repetition, "batch_sizes": list(job.batch_sizes),
        "latency_questions": latency_questions, "workload": str(workload_file),
        "model": {"checkpoint": str(model.checkpoint), "artifact": str(model.artifact), "optimum": str(model.optimum)},
        "result": str(logs / f"{job.name}.json"),
    }
    job_file = logs / f"{job.name}.job.json"
    job_file.write_text(json.dumps(spec), encoding="utf-8")
    log_file = logs / f"{job.name}.log"
    with open(log_file, "w", encoding="utf-8") as out:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.worker", str(job_file)], stdout=out,
                              stderr=subprocess.STDOUT, timeout=JOB_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"exit {proc.returncode}: {' / '.join(tail)}")
    return json.loads(Path(spec["result"]).read_text(encoding="utf-8"))


def _versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _token_stats(model: PreparedModel, work: Workload) -> dict:
    from qa_engine.features import WindowTokenizer

    w = WindowTokenizer.from_file(model.checkpoint / "tokenizer.json").windows(work.questions, work.contexts)
    return {"windows": len(w), "real_tokens_per_window": float(w.lengths.mean())}


def _notes(cpu: dict, cfg: BenchConfig, runs: dict) -> list[str]:
    notes = []
    loads = [r["load_1m_after"] for rs in runs["speed"].values() for r in rs]
    if loads and max(loads) > cpu["physical_cores"] + 0.5:
        notes.append(f"The 1-minute load average after the speed jobs ranged {min(loads):.1f}-{max(loads):.1f} on "
                     f"{cpu['logical_cpus']} CPUs (the benchmark itself accounts for about {cpu['physical_cores']}): "
                     "other processes competed for the cores during part of the run.")
    if not any(f.startswith("amx") for f in cpu["isa"]):
        notes.append("This CPU has no AMX: PyTorch bf16 runs on AVX512-BF16 (or emulation), not AMX tiles, "
                     "and onnxruntime int8 on AVX512-VNNI.")
    if cpu["load_average_1m"] and cpu["load_average_1m"] > 0.5:
        notes.append(f"Other work was running at the start (1-minute load {cpu['load_average_1m']:.2f} on "
                     f"{cpu['logical_cpus']} CPUs); best-of-repetition figures limit but may not remove its effect.")
    return notes


def run_dir(cfg: BenchConfig, work: Workload, speed: PreparedModel, accuracy: PreparedModel) -> Path:
    """Per-settings folder of job files and results; emptied first unless resuming an interrupted run."""
    key = digest(work.ids, speed.artifact, accuracy.artifact, cfg.systems, cfg.batch_sizes, cfg.target_batch,
                 cfg.latency_questions, cfg.repeats, cfg.full_repeats)
    folder = cfg.workdir.resolve() / "runs" / key
    if not cfg.resume:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run(cfg: BenchConfig, progress: bool = True) -> dict:
    """Everything `qa-engine bench` does; returns the result dict that report.py renders."""
    from tqdm import tqdm

    cfg.workdir.mkdir(parents=True, exist_ok=True)
    work, examples = load_workload(cfg.data, cfg.questions, cfg.seed)
    if cfg.model is not None:
        speed = accuracy = checkpoint_model(cfg.workdir, "speed", cfg.model, cfg.optimum_per_channel)
    else:
        speed = speed_model(cfg.workdir, cfg.data, examples, cfg.seed, cfg.optimum_per_channel)
        trained = cfg.accuracy_model or tiny_checkpoint(cfg.workdir, quick=cfg.quick)
        accuracy = checkpoint_model(cfg.workdir, "accuracy", trained, cfg.optimum_per_channel)
    cpu = cpu_info()
    peaks_start = gemm_peaks(cfg.gemm_size)

    runs: dict[str, dict[str, list[dict]]] = {"speed": {}, "accuracy": {}}
    errors: dict[str, str] = {}
    jobs = plan_jobs(cfg, accuracy is not speed)
    logs = run_dir(cfg, work, speed, accuracy)
    workload_file = logs / "workload.json"
    work.to_json(workload_file)
    bar = tqdm(jobs, desc="bench", unit="job", disable=not progress)
    for job in bar:
        bar.set_postfix_str(job.name)
        if job.system in errors:
            continue
        done = logs / f"{job.name}.json"
        if done.is_file():
            log.info("%s: reusing the result of the interrupted run", job.name)
            runs[job.role].setdefault(job.system, []).append(json.loads(done.read_text(encoding="utf-8")))
            continue
        model = speed if job.role == "speed" else accuracy
        t0 = time.perf_counter()
        try:
            result = run_job(job, model, workload_file, cfg.latency_questions, logs)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            log.error("%s failed: %s", job.name, e)
            errors[job.system] = str(e)
            continue
        log.info("%s done in %.0f s", job.name, time.perf_counter() - t0)
        result["load_1m_after"] = os.getloadavg()[0]
        atomic_write_text(done, json.dumps(result, ensure_ascii=False))
        runs[job.role].setdefault(job.system, []).append(result)
    peaks_end = gemm_peaks(cfg.gemm_size)
    peaks = {k: max(peaks_start[k], peaks_end[k]) for k in peaks_start}
    decoder = decoder_benchmark(speed.checkpoint, sample(examples, DECODER_QUESTIONS, cfg.seed, cfg.data))
    windows = windows_benchmark(speed.checkpoint / "tokenizer.json",
                                sample(examples, WINDOW_QUESTIONS, cfg.seed, cfg.data))
    profiles = {p: profile_engine(speed.artifact, p, work.head(PROFILE_QUESTIONS), speed.shape, cfg.target_batch)
                for p in ("int8", "fp32") if f"engine-{p}" in cfg.systems}

    systems = {n: analysis.summarize_system(n, r, speed.shape, peaks) for n, r in runs["speed"].items()}
    ratios = analysis.ratios(systems)
    tb = str(cfg.target_batch)
    acc_runs = runs["accuracy"] if accuracy is not speed else runs["speed"]
    answers = {n: r[0]["batches"][tb]["answers"] for n, r in acc_runs.items() if tb in r[0]["batches"]}
    speed_answers = {n: r[0]["batches"][tb]["answers"] for n, r in runs["speed"].items() if tb in r[0]["batches"]}
    speed_agreement = {n: a["agreement_with_hf_fp32"]
                       for n, a in analysis.agreement(speed_answers, work.ids, work.references).items()}
    return {
        "meta": {
            "command": cfg.command, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "data": cfg.data, "questions": len(work), "seed": cfg.seed,
            "latency_questions": min(cfg.latency_questions, len(work)), "batch_sizes": list(cfg.batch_sizes),
            "target_batch": cfg.target_batch, "repetitions": cfg.repeats, "full_repeats": cfg.full_repeats,
            "versions": _versions(),
            "optimum_per_channel": cfg.optimum_per_channel, **_token_stats(speed, work),
        },
        "hardware": {"cpu": cpu, "peaks": peaks, "peaks_start": peaks_start, "peaks_end": peaks_end,
                     "gemm_size": cfg.gemm_size},
        "models": {"speed": speed.as_dict(), "accuracy": accuracy.as_dict()},
        "systems": systems,
        "ratios": ratios,
        "accuracy": analysis.agreement(answers, work.ids, work.references),
        "speed_model_agreement": speed_agreement,
        "decoder": decoder,
        "windows": windows,
        "ort_profile": profiles,
        "targets": analysis.targets(systems, ratios, decoder, cfg.target_batch),
        "errors": errors,
        "notes": _notes(cpu, cfg, runs),
        "raw": _without_answers(runs),
    }


def _without_answers(runs: dict) -> dict:
    """Raw per-repetition results minus the answer lists (summarised above), to keep report.json small."""
    return {role: {name: [{**r, "batches": {bs: {k: v for k, v in b.items() if k != "answers"}
                                            for bs, b in r["batches"].items()}} for r in rs]
                   for name, rs in by_system.items()} for role, by_system in runs.items()}
