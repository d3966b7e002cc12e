"""The benchmark run: prepare models, measure peaks, run every system in its own process, analyse, report.

`device` "cpu" runs the CPU systems against the CPU's GEMM peaks; "cuda" the GPU systems against the GPU's
matrix peaks, with batch 1 from a fresh load and a concurrency job (the micro-batcher under many clients)."""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from qa_engine.artifacts.atomic import atomic_write_text
from qa_engine.artifacts.manifest import installed_versions
from qa_engine.formats.squad import Example

from . import analysis, environments
from .decoder import decoder_benchmark
from .hardware import cpu_info, cuda_peaks, gemm_peaks, gpu_info
from .host import host_benchmark
from .models import (
    EXPORT_VALIDATION_QUESTIONS,
    PreparedModel,
    checkpoint_model,
    digest,
    speed_model,
    tiny_bert_checkpoint,
    tiny_dir,
)
from .openvino_peer import build_ir, ir_info
from .ort_profile import profile_engine
from .systems import SYSTEMS, default_systems, systems_for
from .windows import QUESTIONS as WINDOW_QUESTIONS
from .windows import windows_benchmark
from .workload import Workload, load_workload, sample

log = logging.getLogger(__name__)

JOB_TIMEOUT_S = 3600
PROFILE_QUESTIONS = 64
DECODER_QUESTIONS = 256  # drawn independently of --questions so that 64 whole-question windows always exist
BENCH_PACKAGES = ("torch", "transformers", "onnxruntime-gpu", "onnxruntime", "tokenizers", "numpy", "openvino", "nncf")
CONCURRENCY_SYSTEM = "engine-cuda-fp16"  # the system the CUDA run serves concurrent clients with


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
    systems: tuple[str, ...] = ()  # empty: every system of the device
    optimum_per_channel: bool = True
    gemm_size: int = 4096
    command: str = ""
    device: str = "cpu"
    accuracy_questions: int | None = None  # answer-agreement jobs on the first N questions (None: all)
    clients: int = 64  # concurrent clients of the CUDA concurrency job

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        if not self.systems:
            object.__setattr__(self, "systems", default_systems(self.device, cpu_info()["isa"], openvino_installed()))
        unknown = [s for s in self.systems if s not in SYSTEMS]
        if unknown:
            raise ValueError(f"unknown system {', '.join(unknown)}; choose from {', '.join(systems_for(self.device))}")
        other = [s for s in self.systems if SYSTEMS[s].device != self.device]
        if other:
            raise ValueError(f"{', '.join(other)} do not run on --device {self.device}; "
                             f"choose from {', '.join(systems_for(self.device))}")


# what the run imports beyond qa-engine's own dependencies (the `bench`, `export` and `train` extras); the HF
# pipeline and Optimum peers run in an environment of their own where this one lacks them (benchmarks/environments.py)
RUN_PACKAGES = {"torch": "torch", "transformers": "transformers", "onnx": "onnx", "matplotlib": "matplotlib",
                "psutil": "psutil", "tqdm": "tqdm"}
TRAIN_PACKAGES = {"accelerate": "accelerate"}  # HF Trainer, for the tiny accuracy model
OPENVINO_PACKAGES = {"openvino": "openvino", "nncf": "nncf"}  # the OpenVINO peers (benchmarks/openvino_peer.py)


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


def openvino_installed() -> bool:
    """Whether this interpreter can build and run the OpenVINO peers."""
    return all(_found(m) for m in OPENVINO_PACKAGES)


def missing_packages(cfg: BenchConfig) -> list[str]:
    """Distributions the run would fail without, found before any model is built (an offline GPU machine may
    lack some); the training stack only when the tiny accuracy model is still to be trained."""
    needed = dict(RUN_PACKAGES)
    if cfg.model is None and cfg.accuracy_model is None and not (tiny_dir(cfg.workdir, cfg.quick) /
                                                                 "metrics.json").is_file():
        needed.update(TRAIN_PACKAGES)
    if any(SYSTEMS[s].family == "openvino" for s in cfg.systems):
        needed.update(OPENVINO_PACKAGES)
    return [dist for module, dist in needed.items() if not _found(module)]


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
    """Speed jobs with the system and batch-size order reversed every other repetition, on CUDA the concurrency
    job, then accuracy jobs.

    Repetitions after the first re-measure only the target batch size unless `full_repeats` is set.
    (On CUDA a worker times batch 1 first whatever the order: from a fresh load.)
    """
    jobs = []
    for rep in range(cfg.repeats):
        flip = rep % 2 == 1
        systems = cfg.systems[::-1] if flip else cfg.systems
        sizes = cfg.batch_sizes if rep == 0 or cfg.full_repeats else (cfg.target_batch,)
        jobs += [Job(s, "speed", rep, sizes[::-1] if flip else sizes) for s in systems]
    if cfg.device == "cuda" and CONCURRENCY_SYSTEM in cfg.systems:
        jobs.append(Job(CONCURRENCY_SYSTEM, "concurrency", 0, ()))
    if separate_accuracy:
        jobs += [Job(s, "accuracy", 0, (cfg.target_batch,)) for s in cfg.systems]
    return jobs


def job_spec(job: Job, model: PreparedModel, workload_file: Path, cfg: BenchConfig, logs: Path) -> dict:
    """What the worker process reads: the system, its model files, the workload and the measurement settings."""
    return {
        "system": job.system, "role": job.role, "repetition": job.repetition, "batch_sizes": list(job.batch_sizes),
        "latency_questions": cfg.latency_questions, "workload": str(workload_file),
        "questions": cfg.accuracy_questions if job.role == "accuracy" else None, "clients": cfg.clients,
        "model": {"checkpoint": str(model.checkpoint), "artifact": str(model.artifact), "optimum": str(model.optimum),
                  "openvino": str(openvino_dir(model))},
        "result": str(logs / f"{job.name}.json"),
    }


def run_job(job: Job, model: PreparedModel, workload_file: Path, cfg: BenchConfig, logs: Path) -> dict:
    """Run one job in a fresh interpreter; raise with the log's tail when it fails."""
    spec = job_spec(job, model, workload_file, cfg, logs)
    job_file = logs / f"{job.name}.job.json"
    job_file.write_text(json.dumps(spec), encoding="utf-8")
    log_file = logs / f"{job.name}.log"
    with open(log_file, "w", encoding="utf-8") as out:
        python = environments.interpreter(SYSTEMS[job.system].family, cfg.workdir)
        proc = subprocess.run([python, "-m", "qa_engine.benchmarks.worker", str(job_file)], stdout=out,
                              stderr=subprocess.STDOUT, timeout=JOB_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"exit {proc.returncode}: {' / '.join(tail)}")
    return json.loads(Path(spec["result"]).read_text(encoding="utf-8"))


def openvino_dir(model: PreparedModel) -> Path:
    """Where a prepared model's OpenVINO IR is built (beside its artifact)."""
    return model.artifact.parent / "openvino"


def prepare_openvino(cfg: BenchConfig, models: list[PreparedModel]) -> dict:
    """The OpenVINO IR of each model (built once, cached beside the artifact), int8 calibrated as the artifact's
    int8 was; returns the speed model's build record for the report ({} without OpenVINO systems)."""
    if not any(SYSTEMS[s].family == "openvino" for s in cfg.systems):
        return {}
    folders = [build_ir(m.checkpoint, m.artifact, m.artifact.parent, skip=EXPORT_VALIDATION_QUESTIONS) for m in models]
    return ir_info(folders[0])


def _token_stats(model: PreparedModel, work: Workload) -> dict:
    from qa_engine.core.windows import WindowTokenizer

    w = WindowTokenizer.from_file(model.checkpoint / "tokenizer.json").windows(work.questions, work.contexts)
    return {"windows": len(w), "real_tokens_per_window": float(w.lengths.mean())}


def _notes(cpu: dict, cfg: BenchConfig, runs: dict) -> list[str]:
    notes = []
    loads = [r["load_1m_after"] for rs in runs["speed"].values() for r in rs]
    if loads and max(loads) > cpu["physical_cores"] + 0.5:
        notes.append(f"The 1-minute load average after the speed jobs ranged {min(loads):.1f}-{max(loads):.1f} on "
                     f"{cpu['logical_cpus']} CPUs (the benchmark itself accounts for about {cpu['physical_cores']}): "
                     "other processes competed for the cores during part of the run.")
    if cfg.device == "cuda":
        return notes + cuda_notes()
    if not any(f.startswith("amx") for f in cpu["isa"]):
        notes.append("This CPU has no AMX: PyTorch bf16 runs on AVX512-BF16 (or emulation), not AMX tiles, "
                     "and onnxruntime int8 on AVX512-VNNI.")
    if cpu["load_average_1m"] and cpu["load_average_1m"] > 0.5:
        notes.append(f"Other work was running at the start (1-minute load {cpu['load_average_1m']:.2f} on "
                     f"{cpu['logical_cpus']} CPUs); best-of-repetition figures limit but may not remove its effect.")
    return notes


def run_dir(cfg: BenchConfig, work: Workload, speed: PreparedModel, accuracy: PreparedModel) -> Path:
    """Per-settings folder of job files and results; emptied first unless resuming an interrupted run."""
    cuda = (cfg.device, cfg.accuracy_questions, cfg.clients) if cfg.device != "cpu" else ()
    key = digest(work.ids, speed.artifact, accuracy.artifact, cfg.systems, cfg.batch_sizes, cfg.target_batch,
                 cfg.latency_questions, cfg.repeats, cfg.full_repeats, *cuda)
    folder = cfg.workdir.resolve() / "runs" / key
    if not cfg.resume:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _decoder(cfg: BenchConfig, checkpoint: Path, work: Workload, logs: Path) -> dict:
    """The decoder micro-benchmark, in the interpreter that has the HF pipeline it compares with."""
    python = environments.interpreter("hf", cfg.workdir)
    if python == sys.executable:
        return decoder_benchmark(checkpoint, work)
    work_file, result = logs / "decoder-workload.json", logs / "decoder.json"
    work.to_json(work_file)
    environments.run_module(python, "qa_engine.benchmarks.decoder", [str(checkpoint), str(work_file), str(result)],
                            "decoder benchmark", JOB_TIMEOUT_S)
    return json.loads(result.read_text(encoding="utf-8"))


def _peaks(cfg: BenchConfig) -> dict[str, float]:
    return cuda_peaks(cfg.gemm_size) if cfg.device == "cuda" else gemm_peaks(cfg.gemm_size)


def cuda_notes() -> list[str]:
    """What a reader of a CUDA report must know to read its figures right."""
    return [
        "Optimum runs with the onnxruntime CUDA provider's defaults, which allow TF32 math for fp32 MatMuls: "
        "its share is of the TF32 peak; qa-engine fp32 turns TF32 off (use_tf32=0) and PyTorch does not use it "
        "for matmuls by default, so theirs are of the fp32 peak.",
        "Batch 1 is timed straight after the load, before any warm-up of the harness's: qa-engine warms its CUDA "
        "shapes up at load (its load time includes that), the peers have no such step. The second pass repeats the "
        "same questions in the same process.",
        "Throughput: after the batch-1 passes the harness runs qa-engine's every call shape once "
        "(QAEngine.warmup at each power-of-two row count up to the batch size) and every system on 16 questions.",
    ]


def _models(cfg: BenchConfig, examples: Sequence[Example]) -> tuple[PreparedModel, PreparedModel]:
    """The speed model and the accuracy model (the same one when the user gave a checkpoint), built or cached."""
    if cfg.model is not None:
        speed = checkpoint_model(cfg.workdir, "speed", cfg.model, cfg.optimum_per_channel, cfg.device)
        return speed, speed
    speed = speed_model(cfg.workdir, cfg.data, examples, cfg.seed, cfg.optimum_per_channel, cfg.device)
    trained = cfg.accuracy_model or tiny_bert_checkpoint(cfg.workdir, quick=cfg.quick)
    return speed, checkpoint_model(cfg.workdir, "accuracy", trained, cfg.optimum_per_channel, cfg.device)


def _run_jobs(cfg: BenchConfig, jobs: list[Job], speed: PreparedModel, accuracy: PreparedModel, logs: Path,
              progress: bool) -> tuple[dict[str, dict[str, list[dict]]], dict[str, str]]:
    """Each job in a fresh process, its result kept in `logs` (a resumed run reuses it); a failed job's system is
    skipped from then on and its error kept for the report."""
    from tqdm import tqdm

    roles = ("speed", "accuracy", "concurrency") if cfg.device == "cuda" else ("speed", "accuracy")
    runs: dict[str, dict[str, list[dict]]] = {role: {} for role in roles}
    errors: dict[str, str] = {}
    workload_file = logs / "workload.json"
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
        model = speed if job.role in ("speed", "concurrency") else accuracy
        t0 = time.perf_counter()
        try:
            result = run_job(job, model, workload_file, cfg, logs)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            log.error("%s failed: %s", job.name, e)
            errors[job.system if job.role != "concurrency" else f"{job.system} ({job.role})"] = str(e)
            continue
        log.info("%s done in %.0f s", job.name, time.perf_counter() - t0)
        result["load_1m_after"] = os.getloadavg()[0]
        atomic_write_text(done, json.dumps(result, ensure_ascii=False))
        runs[job.role].setdefault(job.system, []).append(result)
    return runs, errors


def _host_figures(cfg: BenchConfig, speed: PreparedModel, work: Workload, examples: Sequence[Example],
                  logs: Path) -> dict:
    """The host-side benchmarks: span decoder, window building, the pipeline beside a simulated GPU, and the
    onnxruntime profile of qa-engine's sessions."""
    host_work = sample(examples, WINDOW_QUESTIONS, cfg.seed, cfg.data)
    return {
        "decoder": _decoder(cfg, speed.checkpoint, sample(examples, DECODER_QUESTIONS, cfg.seed, cfg.data), logs),
        "windows": windows_benchmark(speed.checkpoint / "tokenizer.json", host_work),
        "host": host_benchmark(speed.checkpoint / "tokenizer.json", host_work),
        "ort_profile": {p: profile_engine(speed.artifact, p, work.head(PROFILE_QUESTIONS), speed.shape,
                                          cfg.target_batch)
                        for p in ("int8", "fp32") if f"engine-{p}" in cfg.systems},
    }


def _answer_figures(cfg: BenchConfig, runs: dict, work: Workload, separate: bool) -> tuple[dict, dict, int]:
    """Agreement with HF fp32 and EM/F1 at the target batch on the accuracy model, agreement on the speed model,
    and how many questions the accuracy figures cover."""
    tb = str(cfg.target_batch)
    acc_runs = runs["accuracy"] if separate else runs["speed"]
    acc_ids = work.ids[: cfg.accuracy_questions] if separate and cfg.accuracy_questions else work.ids
    answers = {n: r[0]["batches"][tb]["answers"] for n, r in acc_runs.items() if tb in r[0]["batches"]}
    speed_answers = {n: r[0]["batches"][tb]["answers"] for n, r in runs["speed"].items() if tb in r[0]["batches"]}
    speed_agreement = {n: a["agreement_with_hf_fp32"]
                       for n, a in analysis.agreement(speed_answers, work.ids, work.references).items()}
    return analysis.agreement(answers, acc_ids, work.references), speed_agreement, len(acc_ids)


def run(cfg: BenchConfig, progress: bool = True) -> dict:
    """Everything `qa-engine bench` does; returns the result dict that report.py renders."""
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    for family in sorted({SYSTEMS[s].family for s in cfg.systems} - {"engine"}):  # made now, not mid-run
        log.info("%s systems run in %s", family, environments.interpreter(family, cfg.workdir))
    work, examples = load_workload(cfg.data, cfg.questions, cfg.seed)
    speed, accuracy = _models(cfg, examples)
    openvino = prepare_openvino(cfg, [speed, accuracy])
    cpu = cpu_info()
    gpu = gpu_info() if cfg.device == "cuda" else None
    peaks_start = _peaks(cfg)
    logs = run_dir(cfg, work, speed, accuracy)
    work.to_json(logs / "workload.json")
    runs, errors = _run_jobs(cfg, plan_jobs(cfg, accuracy is not speed), speed, accuracy, logs, progress)
    peaks_end = _peaks(cfg)
    peaks = {k: max(peaks_start[k], peaks_end[k]) for k in peaks_start}
    host = _host_figures(cfg, speed, work, examples, logs)

    systems = {n: analysis.summarize_system(n, r, speed.shape, peaks) for n, r in runs["speed"].items()}
    ratios = analysis.ratios(systems)
    accuracy_figures, speed_agreement, accuracy_questions = _answer_figures(cfg, runs, work, accuracy is not speed)
    if cfg.device == "cuda":
        targets = analysis.cuda_targets(systems, ratios, accuracy_figures, cfg.target_batch)
    else:
        targets = analysis.targets(systems, ratios, host["decoder"], cfg.target_batch)
    hardware = {"cpu": cpu, "peaks": peaks, "peaks_start": peaks_start, "peaks_end": peaks_end,
                "gemm_size": cfg.gemm_size}
    device_meta = {}
    if cfg.device == "cuda":
        hardware["gpu"] = gpu
        device_meta = {"device": "cuda", "accuracy_questions": accuracy_questions, "clients": cfg.clients}
    return {
        "meta": {
            "command": cfg.command, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "data": cfg.data, "questions": len(work), "seed": cfg.seed,
            "latency_questions": min(cfg.latency_questions, len(work)), "batch_sizes": list(cfg.batch_sizes),
            "target_batch": cfg.target_batch, "repetitions": cfg.repeats, "full_repeats": cfg.full_repeats,
            "versions": installed_versions(BENCH_PACKAGES),
            "optimum_per_channel": cfg.optimum_per_channel, **_token_stats(speed, work), **device_meta,
        },
        "hardware": hardware,
        "models": {"speed": speed.as_dict(), "accuracy": accuracy.as_dict()},
        **({"openvino": openvino} if openvino else {}),
        "systems": systems,
        "ratios": ratios,
        "accuracy": accuracy_figures,
        "speed_model_agreement": speed_agreement,
        **host,
        **({"concurrency": {n: r[0]["concurrency"] for n, r in runs.get("concurrency", {}).items()}}
           if cfg.device == "cuda" else {}),
        "targets": targets,
        "software": {n: rs[0]["software"] for n, rs in runs["speed"].items() if "software" in rs[0]},
        "errors": errors,
        "notes": _notes(cpu, cfg, runs),
        "raw": _without_answers(runs),
    }


def _without_answers(runs: dict) -> dict:
    """Raw per-repetition results minus the answer lists (summarised above), to keep report.json small."""
    return {role: {name: [{**r, "batches": {bs: {k: v for k, v in b.items() if k != "answers"}
                                            for bs, b in r["batches"].items()}} for r in rs]
                   for name, rs in by_system.items()} for role, by_system in runs.items()}
