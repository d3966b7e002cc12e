"""Concurrent single-question clients, in process: per-request engine calls against the MicroBatcher.

    python -m qa_engine.benchmarks.bench_concurrency --model ART --data KorQuAD_v1.0_dev.json --clients 32

N closed-loop clients (threads, then asyncio tasks) each answer one question at a time from a shared
pool of questions; the table gives questions/s and p50/p99 latency per mode, next to a single
client's batch-1 latency.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Awaitable, Callable, Sequence

import numpy as np

from qa_engine import QAEngine
from qa_engine.formats.squad import iter_examples

log = logging.getLogger(__name__)

Pair = tuple[str, str]


@dataclass
class Row:
    mode: str
    clients: int
    questions: int
    seconds: float
    questions_per_s: float
    questions_per_cpu_s: float  # per second of this process's CPU time: fair on a machine shared with other work
    p50_ms: float
    p99_ms: float
    mean_batch: float | None = None


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    latencies: list[float]

    def row(self, mode: str, clients: int, mean_batch: float | None = None) -> Row:
        n, ms = len(self.latencies), np.asarray(self.latencies) * 1000.0
        return Row(mode, clients, n, round(self.seconds, 3), round(n / self.seconds, 2),
                   round(n / max(self.cpu_seconds, 1e-9), 2), round(float(np.percentile(ms, 50)), 2),
                   round(float(np.percentile(ms, 99)), 2), None if mean_batch is None else round(mean_batch, 2))


def run_threads(call: Callable[[str, str], object], pairs: Sequence[Pair], clients: int) -> Run:
    """`clients` threads draining `pairs`, one blocking call at a time each."""
    work = iter(pairs)
    lock = threading.Lock()
    latencies: list[float] = []

    def client() -> None:
        while True:
            with lock:
                pair = next(work, None)
            if pair is None:
                return
            t0 = time.perf_counter()
            call(*pair)
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)

    t0, c0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    return Run(time.perf_counter() - t0, time.process_time() - c0, latencies)


def run_tasks(call: Callable[[str, str], Awaitable], pairs: Sequence[Pair], clients: int) -> Run:
    """`clients` asyncio tasks draining `pairs`, one await at a time each."""
    latencies: list[float] = []

    async def client(work) -> None:
        for pair in work:
            t0 = time.perf_counter()
            await call(*pair)
            latencies.append(time.perf_counter() - t0)

    async def main() -> None:
        work = iter(pairs)
        await asyncio.gather(*(client(work) for _ in range(clients)))

    t0, c0 = time.perf_counter(), time.process_time()
    asyncio.run(main())
    return Run(time.perf_counter() - t0, time.process_time() - c0, latencies)


def bench(
    engine: QAEngine, pairs: Sequence[Pair], clients: int, max_batch_size: int = 32, max_wait_ms: float = 2.0,
    workers: int = 1, model_batch_size: int | None = None,
) -> list[Row]:
    """All modes over the same questions: batch-1 sequential, per-request and batcher with threads and tasks."""
    engine.answer_batch([q for q, _ in pairs[:clients]], [c for _, c in pairs[:clients]])  # warm-up
    rows = [run_threads(engine.answer, pairs[: max(64, len(pairs) // 4)], 1).row("batch-1, one client", 1)]
    rows.append(run_threads(engine.answer, pairs, clients).row("per-request, threads", clients))
    with ThreadPoolExecutor(clients) as pool:

        async def offload(question: str, context: str) -> dict:
            return await asyncio.get_running_loop().run_in_executor(pool, engine.answer, question, context)

        rows.append(run_tasks(offload, pairs, clients).row("per-request, asyncio", clients))
    for mode in ("threads", "asyncio"):
        with engine.batcher(max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, workers=workers,
                            batch_size=model_batch_size) as batcher:
            if mode == "threads":
                run = run_threads(batcher.answer, pairs, clients)
            else:
                run = run_tasks(batcher.answer_async, pairs, clients)
            rows.append(run.row(f"batcher, {mode}", clients, batcher.answered / max(1, batcher.batches)))
    return rows


def summary(rows: list[Row]) -> dict:
    """The target figures: batcher over per-request throughput (wall and CPU time), batcher p99 over batch-1 p99."""
    by = {r.mode: r for r in rows}
    single = by["batch-1, one client"]
    out = {}
    for kind in ("threads", "asyncio"):
        b, p = by[f"batcher, {kind}"], by[f"per-request, {kind}"]
        out[kind] = {
            "throughput_x": round(b.questions_per_s / p.questions_per_s, 2),
            "cpu_efficiency_x": round(b.questions_per_cpu_s / p.questions_per_cpu_s, 2),
            "p99_over_per_request_p99": round(b.p99_ms / p.p99_ms, 2),
            "p99_over_batch1_p99": round(b.p99_ms / single.p99_ms, 2),
        }
    return out


def format_table(rows: list[Row]) -> str:
    head = (f"{'mode':<22} {'clients':>7} {'questions':>9} {'q/s':>8} {'q/cpu-s':>8} "
            f"{'p50 ms':>8} {'p99 ms':>8} {'batch':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        batch = "" if r.mean_batch is None else f"{r.mean_batch:.1f}"
        lines.append(f"{r.mode:<22} {r.clients:>7} {r.questions:>9} {r.questions_per_s:>8.1f} "
                     f"{r.questions_per_cpu_s:>8.1f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {batch:>6}")
    return "\n".join(lines)


def load_pairs(path: str, n: int, seed: int = 0, context_chars: int | None = None) -> list[Pair]:
    """`n` (question, context) pairs drawn from a SQuAD/JSONL file in a fixed shuffled order, contexts cut if asked."""
    pairs = [(e.question, e.context[:context_chars] if context_chars else e.context) for e in iter_examples(path)]
    random.Random(seed).shuffle(pairs)
    if len(pairs) < n:
        pairs = list(itertools.islice(itertools.cycle(pairs), n))
    return pairs[:n]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m qa_engine.benchmarks.bench_concurrency", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="artifact folder")
    p.add_argument("--data", required=True, help="SQuAD JSON or JSON Lines with questions and contexts")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--questions", type=int, default=512, help="questions answered per mode")
    p.add_argument("--context-chars", type=int, default=None,
                   help="cut each context to its first N characters (short-input serving)")
    p.add_argument("--provider", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default=None, choices=["fp32", "int8", "fp16"])
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=2.0)
    p.add_argument("--workers", type=int, default=1, help="batcher worker threads")
    p.add_argument("--model-batch-size", type=int, default=None,
                   help="windows per model call inside a batcher batch (default: the engine's, 32)")
    p.add_argument("--intra-op-threads", type=int, default=None, help="onnxruntime threads per call (default: cores)")
    p.add_argument("--json", help="also write the rows and summary to this JSON file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    engine = QAEngine.from_pretrained(args.model, provider=args.provider, precision=args.precision,
                                      intra_op_threads=args.intra_op_threads)
    pairs = load_pairs(args.data, args.questions, context_chars=args.context_chars)
    log.info("%d questions, %d clients, %s on %s", len(pairs), args.clients, engine.settings.precision,
             engine.settings.device)
    rows = bench(engine, pairs, args.clients, args.max_batch_size, args.max_wait_ms, args.workers,
                 args.model_batch_size)
    result = {"model": args.model, "precision": engine.settings.precision, "device": engine.settings.device,
              "settings": {k: v for k, v in vars(args).items() if k not in ("model", "json")},
              "rows": [asdict(r) for r in rows], "summary": summary(rows)}
    print(format_table(rows))
    print(json.dumps(result["summary"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
