"""Model runners side by side in one process: the same engine, windows and decoder around onnxruntime (the artifact's
fp32 and int8) and OpenVINO (fp32, NNCF int8, bf16 where the CPU has it), alternating rounds so that load from other
work falls on all of them; answers compared with onnxruntime fp32. Decides whether an OpenVINO runner beats
qa-engine's onnxruntime path here (benchmarks/README.md, "OpenVINO").

    python -m qa_engine.benchmarks.runner_compare --checkpoint CKPT --artifact ART \
        --data ../shared/data/korquad/KorQuAD_v1.0_dev.json --questions 200 --out report-folder/

Writes runners.json and runners.md into --out (the figures are each runner's best round).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from qa_engine import QAEngine
from qa_engine.artifacts.atomic import atomic_write_text
from qa_engine.artifacts.manifest import Manifest, installed_versions
from qa_engine.runners.onnx import OnnxRunner
from qa_engine.runners.sessions import cpu_session, physical_cores

from .hardware import cpu_info
from qa_engine.runners.openvino import bf16_native

from .openvino_peer import build_ir, load_peer
from .workload import Workload, load_workload

log = logging.getLogger(__name__)

REFERENCE = "onnxruntime-fp32"


RUNNERS = ("onnxruntime-fp32", "onnxruntime-int8", "onnxruntime-int8-no-vnni", "openvino-fp32", "openvino-int8",
           "openvino-bf16")


def engines(checkpoint: Path, artifact: Path, isa: list[str], skip: int,
            names: tuple[str, ...] = RUNNERS) -> dict[str, QAEngine]:
    """The named runners that exist here, each in the same engine: onnxruntime fp32 and int8 from the artifact (and
    its 7-bit-weight int8 file where it has one); OpenVINO fp32, int8 and (where native) bf16 from its IR."""
    built = {f"onnxruntime-{p}": QAEngine.from_pretrained(artifact, provider="cpu", precision=p)
             for p in ("fp32", "int8")}
    base = built[REFERENCE]
    no_vnni = Manifest.read(artifact).variants["int8"].no_vnni
    if no_vnni and "onnxruntime-int8-no-vnni" in names:
        runner = OnnxRunner(cpu_session(artifact / no_vnni["file"]), "cpu", "int8", base.runner.input_names)
        built["onnxruntime-int8-no-vnni"] = QAEngine(runner, base.tokenizer, replace(base.settings, precision="int8"))
    openvino = [n for n in names if n.startswith("openvino-") and (n != "openvino-bf16" or bf16_native(isa))]
    ir = build_ir(checkpoint, artifact, artifact.parent, skip=skip) if openvino else artifact
    for name in openvino:
        precision = name.split("-", 1)[1]
        runner = load_peer(ir, precision, base.runner.input_names, physical_cores())
        built[name] = QAEngine(runner, base.tokenizer, replace(base.settings, precision=precision))
    return {n: e for n, e in built.items() if n in names or n == REFERENCE}


@dataclass
class Pass:
    """One pass over the workload: wall and process CPU seconds, each question's answer, and at batch 1 each
    question's milliseconds."""

    wall: float
    cpu: float
    answers: list[str]
    ms: list[float]


def one_pass(engine: QAEngine, work: Workload, batch_size: int) -> Pass:
    """The workload answered at `batch_size` (1: each question in its own call, timed alone)."""
    wall, cpu, ms = time.perf_counter(), time.process_time(), []
    if batch_size == 1:
        answers = []
        for q, c in zip(work.questions, work.contexts):
            t0 = time.perf_counter()
            answers.append(engine.answer(q, c)["answer"])  # type: ignore[index]
            ms.append(1000 * (time.perf_counter() - t0))
    else:
        answers = [a["answer"] for a in engine.answer_batch(work.questions, work.contexts, batch_size=batch_size)]  # type: ignore[index]
    return Pass(time.perf_counter() - wall, time.process_time() - cpu, answers, ms)


def compare(built: dict[str, QAEngine], work: Workload, batch_sizes: list[int], rounds: int,
            latency_questions: int) -> dict:
    """Per batch size and runner: best-round q/s and CPU ms per question, answers identical to onnxruntime fp32;
    at batch 1 the p50/p99 ms over every round."""
    out: dict = {}
    names = list(built)
    for bs in batch_sizes:
        part = work.head(min(len(work), latency_questions)) if bs == 1 else work
        for engine in built.values():  # warm-up: the call shapes of this batch size
            one_pass(engine, part.head(min(len(part), 16)), bs)
        passes: dict[str, list[Pass]] = {n: [] for n in names}
        for i in range(rounds):
            for name in names if i % 2 == 0 else names[::-1]:
                passes[name].append(one_pass(built[name], part, bs))
                log.info("batch %d round %d %s: %.2f s wall, %.2f s CPU", bs, i, name, passes[name][-1].wall,
                         passes[name][-1].cpu)
        ref = passes[REFERENCE][0].answers
        rows = {}
        for n, done in passes.items():
            ms = [t for p in done for t in p.ms]
            rows[n] = {"questions": len(part), "questions_per_s": len(part) / min(p.wall for p in done),
                       "all_questions_per_s": [len(part) / p.wall for p in done],
                       "cpu_ms_per_question": 1000 * min(p.cpu for p in done) / len(part),
                       "answers_identical_to_ort_fp32": float(np.mean([a == b for a, b in zip(done[0].answers, ref)])),
                       **({"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))} if ms else {})}
        out[str(bs)] = rows
    return out


def markdown(result: dict) -> str:
    """The comparison as a Markdown page: conditions, then one table per batch size."""
    cpu, m = result["cpu"], result["meta"]
    lines = [f"# Model runners on one engine: {cpu['model']}, {cpu['physical_cores']} cores", "",
             f"Run {m['date']}; `{m['command']}`", "",
             f"- CPU: {cpu['model']}, ISA {', '.join(cpu['isa'])}. 1-minute load average {m['load_before']:.2f} "
             f"before, {m['load_after']:.2f} after (others' work shares this machine).",
             f"- Model: {m['model']}; {m['questions']} questions from `{m['data']}` (seed {m['seed']}); "
             f"{m['rounds']} alternating rounds per batch size, best round; batch 1 on the first "
             f"{m['latency_questions']} questions.",
             f"- Versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items())}.",
             "- Same engine (tokenizer, call planning, span decoder); only the runner differs. Answers are compared "
             "with onnxruntime fp32 on the same questions.", ""]
    for bs, rows in result["batches"].items():
        ref = rows[REFERENCE]["questions_per_s"]
        header = ["runner", "q/s (best round)", "vs onnxruntime fp32", "q/s of each round", "CPU ms / question",
                  "answers = ort fp32"]
        if bs == "1":
            header += ["p50 ms", "p99 ms"]
        lines += [f"## Batch {bs}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for name, r in rows.items():
            cells = [name, f"{r['questions_per_s']:.2f}", f"{r['questions_per_s'] / ref:.2f}×",
                     ", ".join(f"{v:.2f}" for v in r["all_questions_per_s"]), f"{r['cpu_ms_per_question']:.0f}",
                     f"{100 * r['answers_identical_to_ort_fp32']:.1f}%"]
            if bs == "1":
                cells += [f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="the PyTorch checkpoint the artifact came from")
    parser.add_argument("--artifact", type=Path, required=True, help="its qa-engine artifact (fp32 and int8)")
    parser.add_argument("--data", required=True, help="SQuAD-format file or hub id (its validation split)")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--latency-questions", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calibration-skip", type=int, default=32,
                        help="the export's --max-validation, to calibrate NNCF on its calibration questions")
    parser.add_argument("--runners", default=",".join(RUNNERS), help=f"comma-separated subset of {', '.join(RUNNERS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work, _ = load_workload(args.data, args.questions, args.seed)
    cpu = cpu_info()
    load_before = os.getloadavg()[0]
    built = engines(args.checkpoint, args.artifact, cpu["isa"], args.calibration_skip, tuple(args.runners.split(",")))
    batches = compare(built, work, [int(b) for b in args.batch_sizes.split(",")], args.rounds, args.latency_questions)
    meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python -m qa_engine.benchmarks.runner_compare " + " ".join(argv),
            "data": args.data, "questions": len(work), "seed": args.seed, "rounds": args.rounds,
            "latency_questions": min(args.latency_questions, len(work)), "model": str(args.checkpoint),
            "load_before": load_before, "load_after": os.getloadavg()[0],
            "versions": installed_versions(("onnxruntime-gpu", "onnxruntime", "openvino", "nncf", "torch"))}
    result = {"meta": meta, "cpu": cpu, "batches": batches}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "runners.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(args.out / "runners.md", markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
