"""`qa-engine bench`: argument parsing only; the harness is imported when the command runs."""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from qa_engine.cli.numbers import non_negative_int, positive_int

log = logging.getLogger(__name__)

QUICK = {"questions": 32, "latency_questions": 8, "batch_sizes": "1,8,32", "repeats": 1, "gemm_size": 2048}
FULL = {"questions": 256, "latency_questions": 64, "batch_sizes": "1,8,32,64", "repeats": 2, "gemm_size": 4096}
# 2,048 questions, one repetition: a first run, models built included, fits a 10-minute call on an H200 host;
# answer agreement on 300 questions (the fp32 goal)
CUDA_QUICK = {"questions": 256, "latency_questions": 32, "batch_sizes": "1,32,256", "repeats": 1, "gemm_size": 4096,
              "target_batch": 256, "accuracy_questions": 64}
CUDA_FULL = {"questions": 2048, "latency_questions": 200, "batch_sizes": "1,32,64,256", "repeats": 1,
             "gemm_size": 8192, "target_batch": 256, "accuracy_questions": 300}
PRESETS = {("cpu", False): {**FULL, "target_batch": 32, "accuracy_questions": None},
           ("cpu", True): {**QUICK, "target_batch": 32, "accuracy_questions": None},
           ("cuda", False): CUDA_FULL, ("cuda", True): CUDA_QUICK}


def _sizes(value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes must be integers separated by commas, got {value!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {value!r}")
    return sizes


def require_cuda() -> None:
    """Stop `--device cuda` with every reason it cannot run here, before any model is built."""
    from .hardware import cuda_problems

    problems = cuda_problems()
    if problems:
        raise ValueError("--device cuda needs a CUDA GPU that PyTorch and onnxruntime can both use: "
                         + "; ".join(problems) + " (`qa-engine doctor` shows onnxruntime's side)")


def bench_config(args: argparse.Namespace):
    """The run's settings from the parsed arguments: the device's preset where an option is not given."""
    from .run import BenchConfig

    preset = PRESETS[(args.device, bool(args.quick))]
    pick = lambda name: preset[name] if getattr(args, name) is None else getattr(args, name)  # noqa: E731
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip()) if args.systems else ()
    sizes = _sizes(pick("batch_sizes")) if isinstance(pick("batch_sizes"), str) else pick("batch_sizes")
    if pick("target_batch") not in sizes:
        raise ValueError(f"--target-batch {pick('target_batch')} is not among the batch sizes {sizes}")
    return BenchConfig(
        data=args.data, out=Path(args.out), model=Path(args.model) if args.model else None,
        accuracy_model=Path(args.accuracy_model) if args.accuracy_model else None,
        questions=pick("questions"), latency_questions=pick("latency_questions"), batch_sizes=sizes,
        target_batch=pick("target_batch"), repeats=pick("repeats"), full_repeats=args.full_repeats,
        quick=args.quick, resume=args.resume,
        seed=args.seed, workdir=Path(args.workdir),
        systems=systems, optimum_per_channel=not args.optimum_per_tensor, gemm_size=pick("gemm_size"),
        command="qa-engine " + shlex.join(sys.argv[1:]), device=args.device,
        accuracy_questions=pick("accuracy_questions"), clients=args.clients,
    )


def require_packages(cfg) -> None:
    """Stop with the missing distributions named before any model is built, not after minutes of work."""
    from .run import missing_packages

    missing = missing_packages(cfg)
    if missing:
        hint = (" (accelerate trains the tiny accuracy model: or pass --accuracy-model with a trained checkpoint)"
                if "accelerate" in missing else "")
        raise ValueError(f"the benchmark needs {', '.join(missing)}: pip install {' '.join(missing)}{hint}")


def _cmd_bench(args: argparse.Namespace) -> int:
    from .report import console_table, write_report
    from .run import run

    cfg = bench_config(args)
    require_packages(cfg)
    if cfg.device == "cuda":
        require_cuda()
    result = run(cfg)
    write_report(result, cfg.out)
    print(console_table(result))
    log.info("report written to %s", cfg.out / "report.md")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `bench` to the qa-engine command."""
    p = sub.add_parser("bench", help="benchmark qa-engine against HF pipelines and Optimum on a SQuAD-format set")
    p.add_argument("--data", required=True, help="SQuAD-format JSON / JSON Lines file or hub dataset id")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu (default): the CPU systems and GEMM peaks; cuda: HF PyTorch fp16/fp32, Optimum and "
                        "qa-engine fp16/fp32 on the GPU, its matrix peaks, batch 1 from a fresh load, concurrency")
    p.add_argument("--model", help="trained QA checkpoint (save_pretrained folder) for speed and accuracy; default: "
                                   "the mBERT-shape model with random weights for speed, the tiny model for accuracy")
    p.add_argument("--accuracy-model", help="trained checkpoint for the agreement and EM/F1 figures when --model is "
                                            "not given (default: the tiny offline model, trained once into --workdir)")
    p.add_argument("--out", required=True, help="folder for report.md, report.json and plots")
    p.add_argument("--questions", type=positive_int,
                   help=f"questions per batch size (default {FULL['questions']}; cuda {CUDA_FULL['questions']})")
    p.add_argument("--latency-questions", type=positive_int,
                   help=f"questions timed one by one at batch 1 (default {FULL['latency_questions']}; "
                        f"cuda {CUDA_FULL['latency_questions']})")
    p.add_argument("--batch-sizes", type=_sizes,
                   help=f"comma-separated (default {FULL['batch_sizes']}; cuda {CUDA_FULL['batch_sizes']})")
    p.add_argument("--target-batch", type=positive_int,
                   help=f"batch size the targets are judged at (default 32; cuda {CUDA_FULL['target_batch']})")
    p.add_argument("--accuracy-questions", type=positive_int,
                   help=f"answer agreement and EM/F1 on the first N questions (default: all; "
                        f"cuda {CUDA_FULL['accuracy_questions']})")
    p.add_argument("--clients", type=positive_int, default=64, help="concurrent clients of the cuda micro-batcher run")
    p.add_argument("--repeats", type=positive_int,
                   help=f"repetitions, order alternating (default {FULL['repeats']}; cuda {CUDA_FULL['repeats']})")
    p.add_argument("--full-repeats", action="store_true",
                   help="repeat every batch size (default: repetitions after the first re-measure the target batch)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the question subset and the random weights")
    p.add_argument("--systems", help="comma-separated subset of: hf-fp32, hf-bf16, optimum-fp32, optimum-int8, "
                                     "engine-fp32, engine-int8; with --device cuda: hf-cuda-fp16, hf-cuda-fp32, "
                                     "optimum-cuda-fp32, engine-cuda-fp16, engine-cuda-fp32")
    p.add_argument("--workdir", default="benchmarks/.work", help="cache for built and exported models")
    p.add_argument("--optimum-per-tensor", action="store_true",
                   help="Optimum int8 with per-tensor weights (default: per-channel, the avx512_vnni default)")
    p.add_argument("--gemm-size", type=positive_int, help="matrix size of the peak measurement (default 4096; cuda 8192)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the finished jobs of an interrupted run with the same settings")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 32 questions, batch 1/8/32, one repetition, the tiny model's quick recipe "
                        "(cuda: 256 questions, batch 1/32/256)")
    p.set_defaults(func=_cmd_bench)
