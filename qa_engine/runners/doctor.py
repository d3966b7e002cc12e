"""`qa-engine doctor`: which onnxruntime providers are installed, which really create a session here, why not, and the fix."""
from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import onnxruntime as ort

from qa_engine.core.constants import PROBE_MODEL
from qa_engine.runners import sessions

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOG_PREFIX = re.compile(r"^.*?\[[EWI]:onnxruntime:[^\]]*\]\s*(?:\S+\s+)?(?:.*?\[ONNXRuntimeError\] : \d+ : \w+ : )?")
FIX_CUDA_LIBS = "pip install 'qa-engine[cuda]'  (NVIDIA's CUDA 13, cuBLAS and cuDNN 9 as pip packages)"
FIX_GPU_BUILD = "pip uninstall -y onnxruntime && pip install 'qa-engine[cuda]'  (onnxruntime-gpu carries the CPU provider too)"
FIX_DRIVER = "install the NVIDIA driver and check that `nvidia-smi` lists a GPU"
NO_DEVICE = "no NVIDIA device on this machine: qa-engine runs on the CPU here"
# onnxruntime input types -> numpy: a probe feeds each input its own dtype (int64 token ids to a QA model)
ONNX_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class ProviderCheck:
    """One provider's outcome: whether a session ran on it, onnxruntime's own words when not, and the fix."""

    provider: str
    installed: bool
    works: bool
    error: str = ""
    fix: str = ""


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collect what native code writes to file descriptor 2 (onnxruntime logs load errors there, not via Python)."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(ANSI.sub("", ln).strip() for ln in tmp.read().decode("utf-8", "replace").splitlines())


def nvidia_device_present() -> bool:
    """Whether this machine has an NVIDIA GPU and driver: the kernel module's /proc entry, a device node, or
    nvidia-smi on the PATH."""
    return (Path("/proc/driver/nvidia").exists() or any(Path("/dev").glob("nvidia[0-9]*"))
            or shutil.which("nvidia-smi") is not None)


def probe_feeds(session: ort.InferenceSession) -> dict[str, np.ndarray]:
    """Ones of each input's own dtype and shape (1 for every symbolic dimension): valid token ids, masks and
    type ids for a QA model, plain numbers for the bundled MatMul probe."""
    feeds: dict[str, np.ndarray] = {}
    for i in session.get_inputs():
        if i.type not in ONNX_DTYPES:
            raise ValueError(f"input {i.name!r} has type {i.type}, which the probe cannot feed")
        feeds[i.name] = np.ones([d if isinstance(d, int) else 1 for d in i.shape], ONNX_DTYPES[i.type])
    return feeds


def fix_for(provider: str, error: str) -> str:
    """The command that would most likely make `provider` work, from onnxruntime's load error."""
    if provider != sessions.CUDA:
        return ""
    if "libcuda.so" in error or "no CUDA-capable device" in error or "CUDA driver" in error:
        return FIX_DRIVER
    return FIX_CUDA_LIBS


def check_provider(provider: str, model: Path, nvidia: bool = True) -> ProviderCheck:
    """Create a session on `provider` alone (CPU as fallback) and run the model once; report what happened.
    Without an NVIDIA device (`nvidia` False) CUDA is not tried and nothing is recommended for it."""
    if provider == sessions.CUDA and not nvidia:
        return ProviderCheck(provider, provider in ort.get_available_providers(), False, NO_DEVICE)
    if provider not in ort.get_available_providers():
        fix = FIX_GPU_BUILD if provider == sessions.CUDA else ""
        return ProviderCheck(provider, False, False, "not in this onnxruntime build", fix)
    if provider == sessions.CUDA:
        sessions.preload_cuda_libraries()
    options = sessions.session_options(1)
    options.log_severity_level = 3
    ort.set_default_logger_severity(3)
    try:
        with captured_stderr() as logged:
            try:
                session = ort.InferenceSession(str(model), sess_options=options,
                                               providers=[provider, sessions.CPU])
                if session.get_providers()[0] == provider:
                    session.run(None, probe_feeds(session))
                    return ProviderCheck(provider, True, True)
            except Exception as e:  # onnxruntime's pybind errors
                logged.append(str(e))
    finally:
        ort.set_default_logger_severity(2)
    errors = [ln for ln in logged if "error" in ln.lower() or "fail" in ln.lower()] or logged
    error = LOG_PREFIX.sub("", errors[0]) if errors else "onnxruntime fell back to the CPU without saying why"
    return ProviderCheck(provider, True, False, error, fix_for(provider, error))


def diagnose(model: Path | None = None, nvidia: bool | None = None) -> list[ProviderCheck]:
    """CPU and CUDA, the providers qa-engine uses, checked on `model` (default: the bundled probe); `nvidia`:
    whether the machine has an NVIDIA device (None: look, see nvidia_device_present)."""
    if model is None:
        model = Path(str(importlib.resources.files("qa_engine") / "data" / PROBE_MODEL))
    nvidia = nvidia_device_present() if nvidia is None else nvidia
    return [check_provider(p, model, nvidia) for p in (sessions.CPU, sessions.CUDA)]


def failed(check: ProviderCheck) -> bool:
    """A probe that ran and failed: an installed provider that should work here and did not."""
    return check.installed and not check.works and check.error != NO_DEVICE


def _cmd_doctor(args: argparse.Namespace) -> int:
    print(f"onnxruntime {ort.__version__} ({ort.get_device()} build); "
          f"installed providers: {', '.join(ort.get_available_providers())}")
    checks = diagnose(Path(args.onnx) if args.onnx else None)
    for c in checks:
        status = "ok" if c.works else "FAILED" if failed(c) else "not usable" if c.installed else "not installed"
        print(f"{c.provider:24s} {status}")
        if c.error:
            print(f"  onnxruntime: {c.error}")
        if c.fix:
            print(f"  fix: {c.fix}")
    required = {sessions.PROVIDER_NAMES[r] for r in args.require}
    return 1 if any(failed(c) or c.provider in required and not c.works for c in checks) else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `doctor` to the qa-engine command."""
    p = sub.add_parser("doctor", help="check which onnxruntime providers work here and how to fix those that do not")
    p.add_argument("--onnx", help="ONNX file to try instead of the bundled probe (e.g. an artifact's model.fp16.onnx)")
    p.add_argument("--require", action="append", default=[], choices=sorted(sessions.PROVIDER_NAMES),
                   help="exit 1 unless this provider works (repeatable); a probe that fails exits 1 anyway")
    p.set_defaults(func=_cmd_doctor)
