"""`qa-engine bench`: argument parsing only; the harness is imported when the command runs."""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

log = logging.getLogger(__name__)

QUICK = {"questions": 32, "latency_questions": 8, "batch_sizes": "1,8,32", "repeats": 1, "gemm_size": 2048}
FULL = {"questions": 256, "latency_questions": 64, "batch_sizes": "1,8,32,64", "repeats": 2, "gemm_size": 4096}


def _sizes(value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes must be integers separated by commas, got {value!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {value!r}")
    return sizes


def _cmd_bench(args: argparse.Namespace) -> int:
    from .report import console_table, write_report
    from .run import BenchConfig, run
    from .systems import SYSTEMS

    preset = QUICK if args.quick else FULL
    pick = lambda name: preset[name] if getattr(args, name) is None else getattr(args, name)  # noqa: E731
    systems = tuple(args.systems.split(",")) if args.systems else tuple(SYSTEMS)
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        raise ValueError(f"unknown system {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    sizes = _sizes(pick("batch_sizes")) if isinstance(pick("batch_sizes"), str) else pick("batch_sizes")
    if args.target_batch not in sizes:
        raise ValueError(f"--target-batch {args.target_batch} is not among the batch sizes {sizes}")
    cfg = BenchConfig(
        data=args.data, out=Path(args.out), model=Path(args.model) if args.model else None,
        accuracy_model=Path(args.accuracy_model) if args.accuracy_model else None,
        questions=pick("questions"), latency_questions=pick("latency_questions"), batch_sizes=sizes,
        target_batch=args.target_batch, repeats=pick("repeats"), full_repeats=args.full_repeats, quick=args.quick,
        resume=args.resume,
        seed=args.seed, workdir=Path(args.workdir),
        systems=systems, optimum_per_channel=not args.optimum_per_tensor, gemm_size=pick("gemm_size"),
        command="qa-engine " + shlex.join(sys.argv[1:]),
    )
    result = run(cfg)
    write_report(result, cfg.out)
    print(console_table(result))
    log.info("report written to %s", cfg.out / "report.md")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `bench` to the qa-engine command."""
    p = sub.add_parser("bench", help="benchmark qa-engine against HF pipelines and Optimum on a SQuAD-format set")
    p.add_argument("--data", required=True, help="SQuAD-format JSON / JSON Lines file or hub dataset id")
    p.add_argument("--model", help="trained QA checkpoint (save_pretrained folder) for speed and accuracy; default: "
                                   "the mBERT-shape model with random weights for speed, the tiny model for accuracy")
    p.add_argument("--accuracy-model", help="trained checkpoint for the agreement and EM/F1 figures when --model is "
                                            "not given (default: the tiny offline model, trained once into --workdir)")
    p.add_argument("--out", required=True, help="folder for report.md, report.json and plots")
    p.add_argument("--questions", type=int, help=f"questions per batch size (default {FULL['questions']})")
    p.add_argument("--latency-questions", type=int,
                   help=f"questions timed one by one at batch 1 (default {FULL['latency_questions']})")
    p.add_argument("--batch-sizes", type=_sizes, help=f"comma-separated (default {FULL['batch_sizes']})")
    p.add_argument("--target-batch", type=int, default=32, help="batch size the targets are judged at")
    p.add_argument("--repeats", type=int, help=f"repetitions, order alternating (default {FULL['repeats']})")
    p.add_argument("--full-repeats", action="store_true",
                   help="repeat every batch size (default: repetitions after the first re-measure the target batch)")
    p.add_argument("--seed", type=int, default=0, help="seed of the question subset and the random weights")
    p.add_argument("--systems", help="comma-separated subset of: hf-fp32, hf-bf16, optimum-fp32, optimum-int8, "
                                     "engine-fp32, engine-int8")
    p.add_argument("--workdir", default="benchmarks/.work", help="cache for built and exported models")
    p.add_argument("--optimum-per-tensor", action="store_true",
                   help="Optimum int8 with per-tensor weights (default: per-channel, the avx512_vnni default)")
    p.add_argument("--gemm-size", type=int, help="matrix size of the peak measurement (default 4096)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the finished jobs of an interrupted run with the same settings")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 32 questions, batch 1/8/32, one repetition, the tiny model's quick recipe")
    p.set_defaults(func=_cmd_bench)
