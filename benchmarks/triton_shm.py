"""Which requests a live Triton server answers with the /dev/shm it has: the python backend's shared memory.

    unshare -m sh -c 'mount -t tmpfs -o size=64m tmpfs /dev/shm && python -m qa_engine.benchmarks.triton_shm --model ART'

Triton's python backend hands every batch's input and output tensors to the model's stub process through a
shared-memory region in /dev/shm, one per model instance, that starts at 1 MiB and grows to the largest batch it
has carried (it never shrinks). This sends ever larger requests to the engine model (one context of N MiB, with an
empty question, so the model refuses it at once: the size tested is the transfer alone, whatever the model), then
many requests of N MiB at once (Triton batches them: the batch, not the request, must fit), and after each failure
one small request, to see whether the instance recovered. Prints one line per request.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from qa_engine.serving.triton.server import (
    ENGINE_MODEL,
    Address,
    ServeOptions,
    TritonServer,
)

from .bench_triton import free_ports


def _engine_request(url: str, context_mib: float) -> str:
    """One request with an empty question and a context of `context_mib` MiB: '400' if it reached the model."""
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(url, network_timeout=600)
    inputs = []
    for name, text in (("question", b""), ("context", "가".encode() * int(context_mib * 2**20 / 3))):
        tensor = httpclient.InferInput(name, [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[text]], dtype=np.object_))
        inputs.append(tensor)
    try:
        client.infer(ENGINE_MODEL, inputs)
        return "answered"
    except InferenceServerException as e:
        return "reached the model (400: question 0 is empty)" if e.status() == "400" else str(e)[:150]
    finally:
        client.close()


def _report(what: str, got: str, t0: float, small: Callable[[], str]) -> None:
    """One line per request; after a failure, what a small request to the same model gets (did it recover?)."""
    print(f"{what}: {got} ({time.perf_counter() - t0:.1f} s)", flush=True)
    if "400" not in got and "answered" not in got:
        print(f"  then a small request: {small()}", flush=True)


def _executions(url: str) -> int:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url)
    try:
        return int(client.get_inference_statistics(ENGINE_MODEL)["model_stats"][0]["execution_count"])
    finally:
        client.close()


@contextmanager
def _server(artifact: str) -> Iterator[str]:
    """A fresh server of the engine model (its region starts at 1 MiB); yields its HTTP address."""
    options = ServeOptions(precision="fp32", max_queue_delay_us=200_000)
    with tempfile.TemporaryDirectory(prefix="triton-shm-") as folder:
        address = Address("127.0.0.1", *free_ports(2), 0)
        with TritonServer(artifact, options, address, workspace=Path(folder), log_file=Path(folder) / "log",
                          exit_timeout_s=5) as server:
            yield server.address.http_url


def probe(artifact: str, contexts_mib: Sequence[float], batched: Sequence[tuple[int, float]]) -> None:
    """Print what each request got: a fresh server for each family of requests."""
    total, _, free = shutil.disk_usage("/dev/shm")
    print(f"/dev/shm: {total / 2**20:.0f} MiB, {free / 2**20:.0f} MiB free")
    with _server(artifact) as url:
        for mib in contexts_mib:
            t0 = time.perf_counter()
            _report(f"one request, a {mib:g} MiB context", _engine_request(url, mib), t0,
                    lambda: _engine_request(url, 0.01))
    with _server(artifact) as url:
        for n, mib in batched:
            t0, before = time.perf_counter(), _executions(url)
            with ThreadPoolExecutor(n) as pool:
                results = sorted(set(pool.map(lambda _: _engine_request(url, mib), range(n))))
            batches = _executions(url) - before
            _report(f"{n} requests of {mib:g} MiB at once, in {batches} Triton batches", "; ".join(results), t0,
                    lambda: _engine_request(url, 0.01))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m qa_engine.benchmarks.triton_shm", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="artifact folder")
    p.add_argument("--contexts-mib", default="8,16,32,48,56,62", help="one-request context sizes, MiB")
    p.add_argument("--batched", default="8x4,16x4,16x8", help="N x MiB: N requests of that size at once")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    batched = [(int(n), float(m)) for n, m in (item.split("x") for item in args.batched.split(","))]
    probe(args.model, [float(x) for x in args.contexts_mib.split(",")], batched)
    return 0


if __name__ == "__main__":
    sys.exit(main())
