"""The machine's matrix-product limits, measured in the same run as the systems: fp32, bf16 and int8 GEMM peaks
on CPU; fp16, fp32 and TF32 matrix products on a CUDA GPU."""
from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_info() -> dict:
    """CPU model, logical/physical cores and the matrix-relevant instruction-set flags."""
    from qa_engine.runners.int8_kernels import cpu_flags
    from qa_engine.runners.sessions import physical_cores

    model, flags = platform.processor() or "unknown", cpu_flags()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
                break
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


def _one_node_model(node: "onnx.NodeProto", inputs: list, output: "onnx.ValueInfoProto", constants: dict) -> bytes:
    """A checked ONNX graph of one node with `constants` as initializers (com.microsoft imported too)."""
    import onnx
    from onnx import helper, numpy_helper

    graph = helper.make_graph([node], f"{node.op_type}_peak", inputs, [output],
                              [numpy_helper.from_array(v, k) for k, v in constants.items()])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17),
                                                                  helper.make_opsetid("com.microsoft", 1)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _int8_weight(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-127, 128, size=(n, n), dtype=np.int8)


def matmul_integer_model(n: int, seed: int = 0) -> bytes:
    """MatMulInteger(uint8 A [n, n], int8 constant B [n, n]) -> int32, the product under every int8 kernel."""
    from onnx import TensorProto, helper

    return _one_node_model(
        helper.make_node("MatMulInteger", ["A", "B", "a_zero", "b_zero"], ["Y"]),
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
        helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n]),
        {"B": _int8_weight(n, seed), "a_zero": np.array(128, dtype=np.uint8), "b_zero": np.array(0, dtype=np.int8)})


def matmul_integer_to_float_model(n: int, seed: int = 0) -> bytes:
    """com.microsoft MatMulIntegerToFloat(uint8 A, int8 B, per-channel scales) -> float: the static int8 graph's
    kernel (export/quantize.py)."""
    from onnx import TensorProto, helper

    return _one_node_model(
        helper.make_node("MatMulIntegerToFloat", ["A", "B", "a_scale", "b_scale", "a_zero"], ["Y"],
                         domain="com.microsoft"),
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
        helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n]),
        {"B": _int8_weight(n, seed), "a_scale": np.array(0.01, dtype=np.float32),
         "b_scale": np.full(n, 0.01, dtype=np.float32), "a_zero": np.array(128, dtype=np.uint8)})


def dynamic_quantize_matmul_model(n: int, seed: int = 0) -> bytes:
    """com.microsoft DynamicQuantizeMatMul(float A, int8 B, per-channel scales) -> float: what onnxruntime fuses a
    dynamic int8 graph into (Optimum's int8)."""
    from onnx import TensorProto, helper

    return _one_node_model(
        helper.make_node("DynamicQuantizeMatMul", ["A", "B", "b_scale"], ["Y"], domain="com.microsoft"),
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
        helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n]),
        {"B": _int8_weight(n, seed), "b_scale": np.full(n, 0.01, dtype=np.float32)})


def matmul_model(n: int, seed: int = 0) -> bytes:
    """MatMul(float A [n, n], float constant B [n, n]): onnxruntime's own fp32 GEMM (MLAS)."""
    from onnx import TensorProto, helper

    weight = np.random.default_rng(seed).random((n, n), dtype=np.float32)
    return _one_node_model(helper.make_node("MatMul", ["A", "B"], ["Y"]),
                           [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
                           helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n]), {"B": weight})


def ort_peak(model: bytes, a: np.ndarray, repeats: int = 3) -> float:
    """(Integer) op/s of a one-node [n, n] x [n, n] onnxruntime graph on input `a`, CPU provider."""
    import onnxruntime as ort

    from qa_engine.runners.sessions import session_options

    session = ort.InferenceSession(model, sess_options=session_options(), providers=["CPUExecutionProvider"])
    return 2 * len(a) ** 3 / best_seconds(lambda: session.run(None, {"A": a}), repeats)


def _uint8_input(n: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(n, n), dtype=np.uint8)


def _float_input(n: int) -> np.ndarray:
    return np.random.default_rng(1).random((n, n), dtype=np.float32)


def ort_int8_peak(n: int = 4096, repeats: int = 3) -> float:
    """Integer op/s of onnxruntime MatMulInteger (uint8 x int8 -> int32) on n x n x n, CPU provider."""
    return ort_peak(matmul_integer_model(n), _uint8_input(n), repeats)


def openvino_int8_peak(n: int = 4096, repeats: int = 3) -> float | None:
    """Integer op/s of OpenVINO's int8 matmul (a FakeQuantize'd uint8 input times int8 weights, the pattern NNCF
    writes, which the CPU plugin runs on its VNNI / AMX kernels); None where OpenVINO is not installed."""
    try:
        import openvino as ov
        import openvino.opset13 as ops
    except ImportError:
        return None
    from qa_engine.runners.sessions import physical_cores

    a = ops.parameter([n, n], ov.Type.f32, name="A")
    low, high = ops.constant(np.float32(0)), ops.constant(np.float32(1))
    quantized = ops.fake_quantize(a, low, high, low, high, 256)
    weight = ops.multiply(ops.convert(ops.constant(_int8_weight(n, 0)), ov.Type.f32),
                          ops.constant(np.full((n, 1), 0.01, dtype=np.float32)))
    model = ov.Model([ops.matmul(quantized, weight, False, True)], [a], "int8_peak")
    compiled = ov.Core().compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                                                      "INFERENCE_NUM_THREADS": str(physical_cores())})
    request, x = compiled.create_infer_request(), _float_input(n)
    return 2 * n**3 / best_seconds(lambda: request.infer({0: x}, share_inputs=True), repeats)


def gemm_peaks(n: int = 4096, repeats: int = 3) -> dict[str, float]:
    """Peak op/s per precision, each the best kernel measured: fp32 of numpy, torch and onnxruntime's MatMul; int8
    of onnxruntime's MatMulInteger, MatMulIntegerToFloat and DynamicQuantizeMatMul and, where installed, OpenVINO's
    int8 matmul. Keys: each kernel's figure (`fp32_numpy`, ...) and the precisions' bests (`fp32`, `bf16`, `int8`)."""
    peaks = {
        "fp32_numpy": numpy_fp32_peak(n, repeats),
        "fp32_torch": torch_peak("float32", n, repeats),
        "fp32_ort": ort_peak(matmul_model(n), _float_input(n), repeats),
        "bf16_torch": torch_peak("bfloat16", n, repeats),
        "int8_ort": ort_int8_peak(n, repeats),
        "int8_ort_to_float": ort_peak(matmul_integer_to_float_model(n), _uint8_input(n), repeats),
        "int8_ort_dynamic": ort_peak(dynamic_quantize_matmul_model(n), _float_input(n), repeats),
    }
    openvino = openvino_int8_peak(n, repeats)
    if openvino is not None:
        peaks["int8_openvino"] = openvino
    for precision in ("fp32", "bf16", "int8"):
        peaks[precision] = max(v for k, v in peaks.items() if k.startswith(f"{precision}_"))
    log.info("GEMM peaks (n=%d): %s", n, ", ".join(f"{k} {v / 1e12:.3f} T" for k, v in peaks.items()))
    return peaks


def peak_kernel(peaks: dict[str, float], precision: str) -> str:
    """The key of the kernel whose figure is `precision`'s peak (e.g. "fp32_ort")."""
    kernels = {k: v for k, v in peaks.items() if k.startswith(f"{precision}_")}
    return max(kernels, key=kernels.__getitem__) if kernels else precision


def cuda_problems() -> list[str]:
    """Why `qa-engine bench --device cuda` cannot run here (empty when it can): PyTorch must see a CUDA GPU
    (the HF pipeline systems, the matrix peaks) and onnxruntime must create a CUDA session (Optimum, qa-engine)."""
    from qa_engine.runners.doctor import diagnose
    from qa_engine.runners.sessions import CUDA

    problems = []
    try:
        import torch
    except ImportError as e:
        problems.append(f"PyTorch is not installed ({e})")
    else:
        if not torch.cuda.is_available():
            problems.append(f"PyTorch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False; "
                            f"built for CUDA {torch.version.cuda or 'none: a CPU-only build'})")
    for check in diagnose():
        if check.provider == CUDA and not check.works:
            problems.append(f"onnxruntime cannot create a CUDA session ({check.error})"
                            + (f"; fix: {check.fix}" if check.fix else ""))
    return problems


def gpu_info() -> dict:
    """The GPU the CUDA systems run on (device 0): name, memory, compute capability, CUDA and driver versions."""
    import torch

    props = torch.cuda.get_device_properties(0)
    return {
        "name": props.name,
        "memory_gib": props.total_memory / 2**30,
        "compute_capability": f"{props.major}.{props.minor}",
        "multiprocessors": props.multi_processor_count,
        "cuda": torch.version.cuda,
        "driver": _nvidia_smi(["--query-gpu=driver_version", "--format=csv,noheader"], "").split("\n")[0].strip(),
    }


def cuda_matmul_peak(dtype: str, n: int = 8192, repeats: int = 5, inner: int = 10, tf32: bool = False) -> float:
    """FLOP/s of an n x n x n torch matmul on the GPU in `dtype`, `inner` products per timed call, synchronized;
    fp32 with or without TF32 tensor-core math as asked (PyTorch's default for matmul is without)."""
    import torch

    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(n, n, generator=g, device="cuda").to(getattr(torch, dtype))
    b = torch.randn(n, n, generator=g, device="cuda").to(getattr(torch, dtype))
    c = torch.empty_like(a)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32

    def products() -> None:
        for _ in range(inner):
            torch.mm(a, b, out=c)
        torch.cuda.synchronize()

    try:
        with torch.inference_mode():
            return 2 * n**3 * inner / best_seconds(products, repeats)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
        del a, b, c
        torch.cuda.empty_cache()


def cuda_peaks(n: int = 8192, repeats: int = 5) -> dict[str, float]:
    """Peak FLOP/s on the GPU per precision: fp16 (qa-engine's fast path), fp32 without TF32 (PyTorch's and
    qa-engine's fp32) and fp32 with TF32 (what onnxruntime's CUDA provider does by default)."""
    peaks = {
        "fp16": cuda_matmul_peak("float16", n, repeats),
        "fp32": cuda_matmul_peak("float32", n, repeats, inner=2),
        "tf32": cuda_matmul_peak("float32", n, repeats, inner=4, tf32=True),
    }
    log.info("CUDA matmul peaks (n=%d): %s", n, ", ".join(f"{k} {v / 1e12:.1f} T" for k, v in peaks.items()))
    return peaks


def _nvidia_smi(args: list[str], default: str) -> str:
    if shutil.which("nvidia-smi") is None:
        return default
    try:
        return subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return default


def parse_process_memory(csv: str, pid: int) -> float | None:
    """MiB of GPU memory that process `pid` holds, from `nvidia-smi --query-compute-apps=pid,used_memory
    --format=csv,noheader,nounits` output; None when it is not listed."""
    total = None
    for line in csv.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 2 and fields[0] == str(pid) and fields[1].replace(".", "", 1).isdigit():
            total = (total or 0.0) + float(fields[1])
    return total


def gpu_memory_mb(pid: int) -> float | None:
    """GPU memory (MiB) the process holds now, as nvidia-smi reports it; None without nvidia-smi."""
    return parse_process_memory(
        _nvidia_smi(["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"], ""), pid)
