"""Concurrent single-question clients through a live Triton server, beside the in-process ways, in one run.

    python -m qa_engine.benchmarks.bench_triton --model ART --data KorQuAD_v1.0_dev.json --clients 32

Every mode answers the same questions with N closed-loop client threads, one question at a time each:
per-request `engine.answer` calls and the MicroBatcher in this process; Triton's engine model "qa" (one HTTP
request per question, batched by Triton, the engine in Triton's python-backend processes); and TritonQAClient
on the raw ONNX model (windows and decoding in the client, model calls batched by Triton). The table gives
questions/s, questions per CPU-second (this process plus the server's processes), p50/p99 latency and the mean
batch (questions per engine call; windows per model call for the raw model). Needs qa-engine[triton].
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from qa_engine import QAEngine
from qa_engine.serving.triton.client import TritonQAClient
from qa_engine.serving.triton.server import (
    ENGINE_MODEL,
    RAW_MODEL,
    Address,
    ServeOptions,
    TritonServer,
)

from .bench_concurrency import Pair, Row, Run, format_table, load_pairs, run_threads

log = logging.getLogger(__name__)


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` TCP ports free on `host` just now (for the servers a benchmark starts)."""
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for sock in sockets:
        sock.bind((host, 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@dataclass(frozen=True)
class Settings:
    """One setting for every mode: worker threads = Triton instances, onnxruntime threads, batch limits."""

    clients: int = 32
    workers: int = 2
    intra_op_threads: int = 1
    model_batch_size: int = 4
    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    precision: str | None = None


def _tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (tritonserver and its python-backend stubs)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _stats(url: str, model: str) -> tuple[int, int]:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url)
    try:
        stats = client.get_inference_statistics(model)["model_stats"][0]
    finally:
        client.close()
    return stats["inference_count"], stats["execution_count"]


def _per_thread(make: Callable[[], Callable[[str, str], object]]) -> Callable[[str, str], object]:
    """A call that uses one client per thread (tritonclient's HTTP client is not to be shared between threads)."""
    local = threading.local()

    def call(question: str, context: str) -> object:
        if not hasattr(local, "call"):
            local.call = make()
        return local.call(question, context)

    return call


def _engine_model_call(url: str) -> Callable[[str, str], object]:
    import numpy as np
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url, network_timeout=600)

    def call(question: str, context: str) -> object:
        inputs = []
        for name, text in (("question", question), ("context", context)):
            tensor = httpclient.InferInput(name, [1, 1], "BYTES")
            tensor.set_data_from_numpy(np.array([[text.encode()]], dtype=np.object_))
            inputs.append(tensor)
        return client.infer(ENGINE_MODEL, inputs).as_numpy("answer")

    return call


def _served(server: TritonServer, mode: str, model: str, call: Callable[[str, str], object], pairs: Sequence[Pair],
            clients: int) -> Row:
    """One Triton mode: the run's CPU time includes the server's; mean batch from the server's statistics."""
    assert server.process is not None
    before, cpu0 = _stats(server.address.http_url, model), _tree_cpu_seconds(server.process.pid)
    run = run_threads(call, pairs, clients)
    after, cpu1 = _stats(server.address.http_url, model), _tree_cpu_seconds(server.process.pid)
    inferences, executions = after[0] - before[0], after[1] - before[1]
    run = Run(run.seconds, run.cpu_seconds + cpu1 - cpu0, run.latencies)
    return run.row(mode, clients, inferences / max(1, executions))


def bench(artifact: str, pairs: Sequence[Pair], settings: Settings, workspace: Path) -> list[Row]:
    """Every mode over the same questions, each after a warm-up of one round of `clients` questions."""
    s = settings
    engine = QAEngine.from_pretrained(artifact, provider="cpu", precision=s.precision,
                                      intra_op_threads=s.intra_op_threads)
    warm = pairs[: s.clients]
    rows = []
    run_threads(engine.answer, warm, s.clients)
    rows.append(run_threads(engine.answer, pairs, s.clients).row("per-request calls", s.clients))
    with engine.batcher(max_batch_size=s.max_batch_size, max_wait_ms=s.max_wait_ms, workers=s.workers,
                        batch_size=s.model_batch_size) as batcher:
        run_threads(batcher.answer, warm, s.clients)
        answered, batches = batcher.answered, batcher.batches
        run = run_threads(batcher.answer, pairs, s.clients)
        rows.append(run.row("batcher (in process)", s.clients,
                            (batcher.answered - answered) / max(1, batcher.batches - batches)))
    options = ServeOptions(precision=engine.settings.precision, raw_onnx=True, max_batch_size=s.max_batch_size,
                           max_queue_delay_us=int(s.max_wait_ms * 1000), instances=s.workers,
                           intra_op_threads=s.intra_op_threads, model_batch_size=s.model_batch_size)
    address = Address("127.0.0.1", *free_ports(2), 0)
    with TritonServer(artifact, options, address, workspace=workspace, log_file=workspace / "server.log",
                      exit_timeout_s=5) as server:
        url = server.address.http_url
        call = _per_thread(lambda: _engine_model_call(url))
        run_threads(call, warm, s.clients)
        rows.append(_served(server, "Triton engine model", ENGINE_MODEL, call, pairs, s.clients))
        raw = _per_thread(lambda: TritonQAClient.connect(artifact, url=url, model_name=RAW_MODEL,
                                                         max_batch_size=s.max_batch_size).answer)
        run_threads(raw, warm, s.clients)
        rows.append(_served(server, "TritonQAClient, raw", RAW_MODEL, raw, pairs, s.clients))
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m qa_engine.benchmarks.bench_triton", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="artifact folder")
    p.add_argument("--data", required=True, help="SQuAD JSON or JSON Lines with questions and contexts")
    p.add_argument("--questions", type=int, default=640, help="questions answered per mode")
    p.add_argument("--context-chars", type=int, default=None, help="cut each context to its first N characters")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="batcher worker threads = Triton model instances")
    p.add_argument("--intra-op-threads", type=int, default=1, help="onnxruntime threads per engine")
    p.add_argument("--model-batch-size", type=int, default=4, help="windows per engine model call")
    p.add_argument("--max-batch-size", type=int, default=32, help="questions per batch (batcher and Triton)")
    p.add_argument("--max-wait-ms", type=float, default=2.0, help="batcher wait = Triton max queue delay")
    p.add_argument("--precision", default=None, choices=["fp32", "int8", "fp16"])
    p.add_argument("--json", help="also write the rows and settings to this JSON file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("qa_engine.serving.triton.client").setLevel(logging.WARNING)  # one line per client thread otherwise
    settings = Settings(args.clients, args.workers, args.intra_op_threads, args.model_batch_size,
                        args.max_batch_size, args.max_wait_ms, args.precision)
    pairs = load_pairs(args.data, args.questions, context_chars=args.context_chars)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-triton-") as folder:
        rows = bench(args.model, pairs, settings, Path(folder))
    log.info("all modes in %.1f s", time.perf_counter() - t0)
    print(format_table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"model": args.model, "settings": asdict(settings), "questions": len(pairs),
                       "context_chars": args.context_chars, "rows": [asdict(r) for r in rows]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
