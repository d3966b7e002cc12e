"""onnxruntime sessions: provider choice (with a real CUDA check) and tuned session options."""
from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path
from typing import Sequence

import onnxruntime as ort

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
PROVIDER_NAMES = {"cpu": CPU, "cuda": CUDA}


def physical_cores() -> int:
    """Physical cores this process may use (hyper-threads share one core's matrix units)."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:
        allowed = set(range(os.cpu_count() or 1))
    cores = set()
    try:
        cpu = phys = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "processor":
                cpu = int(value)
            elif key == "physical id":
                phys = value.strip()
            elif key == "core id" and cpu in allowed:
                cores.add((phys, value.strip()))
    except (OSError, ValueError):
        pass
    return max(1, len(cores) or len(allowed))


def session_options(intra_op_threads: int | None = None) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = intra_op_threads or physical_cores()
    so.inter_op_num_threads = 1
    so.enable_cpu_mem_arena = True
    so.log_severity_level = 3
    return so


def _load(path: Path, providers: list, options: ort.SessionOptions) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as e:  # onnxruntime raises its own pybind exception types
        raise ValueError(f"{path}: cannot load the ONNX model ({e})") from e


def cuda_options(precision: str) -> dict[str, int]:
    """CUDA provider options for a variant: fp32 without TF32 matrix math, which the provider allows by default
    and which changes fp32 answers (measured: 99.7% identical to CPU fp32 with it, 100% without); fp16 as is."""
    return {"use_tf32": 0} if precision == "fp32" else {}


_preloaded = False


def preload_cuda_libraries() -> None:
    """Load CUDA and cuDNN from NVIDIA's pip packages (the `qa-engine[cuda]` extra) the way onnxruntime documents,
    so a CUDA session finds them without LD_LIBRARY_PATH; what it prints about missing libraries goes to the debug log."""
    global _preloaded
    if _preloaded or CUDA not in ort.get_available_providers() or not hasattr(ort, "preload_dlls"):
        return
    _preloaded = True
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            ort.preload_dlls()
    except Exception as e:  # a missing package folder or an unexpected layout: the session load reports the rest
        log.debug("onnxruntime.preload_dlls failed: %s", e)
    if out.getvalue().strip():
        log.debug("onnxruntime.preload_dlls: %s", " / ".join(out.getvalue().split("\n")))


def cuda_session(path: Path, precision: str, intra_op_threads: int | None = None) -> ort.InferenceSession | None:
    """A session really running on CUDA, or None: onnxruntime-gpu lists CUDA even where its libraries are missing."""
    if CUDA not in ort.get_available_providers():
        return None
    preload_cuda_libraries()
    ort.set_default_logger_severity(4)  # a failed CUDA load is reported by the caller, in one line
    try:
        session = _load(path, [(CUDA, cuda_options(precision)), CPU], session_options(intra_op_threads))
    finally:
        ort.set_default_logger_severity(2)
    return session if session.get_providers()[0] == CUDA else None


def cpu_session(path: Path, intra_op_threads: int | None = None) -> ort.InferenceSession:
    return _load(path, [CPU], session_options(intra_op_threads))


def explicit_session(
    path: Path, providers: Sequence, intra_op_threads: int | None = None, precision: str = "fp32"
) -> ort.InferenceSession:
    """A session on exactly the providers named (onnxruntime names or 'cpu'/'cuda'); a CUDA entry without
    options of its own gets the variant's defaults (`cuda_options`)."""
    names = [PROVIDER_NAMES.get(p, p) if isinstance(p, str) else p for p in providers]
    names = [(CUDA, cuda_options(precision)) if n == CUDA else n for n in names]
    if any((n if isinstance(n, str) else n[0]) == CUDA for n in names):
        preload_cuda_libraries()
    session = _load(path, list(names), session_options(intra_op_threads))
    first = names[0] if isinstance(names[0], str) else names[0][0]
    if session.get_providers()[0] != first:
        raise RuntimeError(f"{first} was requested but onnxruntime could not create it on this machine")
    return session


def run(session: ort.InferenceSession, feed: dict, device: str) -> list:
    """Run one batch. On CUDA through IO binding: inputs are copied to the device once and the logits
    are written straight into host memory, without onnxruntime's extra output staging."""
    if device != "cuda":
        return session.run(None, feed)
    binding = session.io_binding()
    for name, array in feed.items():
        binding.bind_cpu_input(name, array)
    for output in session.get_outputs():
        binding.bind_output(output.name, "cpu")
    session.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu()
