"""The machine's matrix-product limits, measured in the same run as the systems: fp32, bf16 and int8 GEMM peaks."""
from __future__ import annotations

import logging
import os
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)

ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_info() -> dict:
    """CPU model, logical/physical cores and the matrix-relevant instruction-set flags."""
    from qa_engine.runtime import physical_cores

    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return {
        "model": model,
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` timed calls of `fn`, after one untimed warm-up call."""
    fn()  # warm-up: allocation, packing, kernel selection
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def numpy_fp32_peak(n: int = 4096, repeats: int = 3) -> float:
    """FLOP/s of an n x n x n float32 numpy matmul (best of `repeats`)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    return 2 * n**3 / best_seconds(lambda: a @ b, repeats)


def torch_peak(dtype: str, n: int = 4096, repeats: int = 3) -> float:
    """FLOP/s of an n x n x n torch matmul in `dtype` ("float32" or "bfloat16"; bf16 runs on AMX where present)."""
    import torch

    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(getattr(torch, dtype))
    b = torch.randn(n, n, generator=g).to(getattr(torch, dtype))
    with torch.inference_mode():
        return 2 * n**3 / best_seconds(lambda: torch.mm(a, b), repeats)


def matmul_integer_model(n: int, seed: int = 0) -> bytes:
    """One-node ONNX graph: MatMulInteger(uint8 A [n, n], int8 constant B [n, n]) -> int32, as dynamic int8 runs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(seed).integers(-127, 128, size=(n, n), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B", "a_zero", "b_zero"], ["Y"])],
        "matmul_integer_peak",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])],
        [
            numpy_helper.from_array(weight, "B"),
            numpy_helper.from_array(np.array(128, dtype=np.uint8), "a_zero"),
            numpy_helper.from_array(np.array(0, dtype=np.int8), "b_zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def ort_int8_peak(n: int = 4096, repeats: int = 3) -> float:
    """Integer op/s of onnxruntime MatMulInteger (uint8 x int8 -> int32) on n x n x n, CPU provider."""
    import onnxruntime as ort

    from qa_engine.runtime import session_options

    session = ort.InferenceSession(matmul_integer_model(n), sess_options=session_options(),
                                   providers=["CPUExecutionProvider"])
    a = np.random.default_rng(1).integers(0, 256, size=(n, n), dtype=np.uint8)
    return 2 * n**3 / best_seconds(lambda: session.run(None, {"A": a}), repeats)


def gemm_peaks(n: int = 4096, repeats: int = 3) -> dict[str, float]:
    """Peak op/s per precision; fp32 is the better of numpy and torch."""
    peaks = {
        "fp32_numpy": numpy_fp32_peak(n, repeats),
        "fp32_torch": torch_peak("float32", n, repeats),
        "bf16_torch": torch_peak("bfloat16", n, repeats),
        "int8_ort": ort_int8_peak(n, repeats),
    }
    peaks["fp32"] = max(peaks["fp32_numpy"], peaks["fp32_torch"])
    peaks["bf16"] = peaks["bf16_torch"]
    peaks["int8"] = peaks["int8_ort"]
    log.info("GEMM peaks (n=%d): %s", n, ", ".join(f"{k} {v / 1e12:.3f} T" for k, v in peaks.items()))
    return peaks
