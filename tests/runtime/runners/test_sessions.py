"""Provider options the engine passes to onnxruntime, and `qa-engine doctor`, checked on CPU with stand-ins."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import onnxruntime as ort
import pytest

from qa_engine.core.constants import PROBE_MODEL
from qa_engine.engine import QAEngine
from qa_engine.runners import doctor, sessions


class FakeSession:
    """What the engine reads of a session at load time, claiming the first provider it was given."""

    def __init__(self, providers: list):
        first = providers[0]
        self._providers = [first if isinstance(first, str) else first[0], sessions.CPU]

    def get_providers(self) -> list[str]:
        return self._providers

    def get_inputs(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(name=n) for n in ("input_ids", "attention_mask", "token_type_ids")]

    def get_outputs(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(name=n) for n in ("start_logits", "end_logits")]


@pytest.fixture
def loads(monkeypatch) -> list:
    """Every provider list handed to onnxruntime, with CUDA claimed to be available and to work."""
    seen: list = []

    def load(path, providers, options):
        seen.append(providers)
        return FakeSession(providers)

    monkeypatch.setattr(sessions, "_load", load)
    monkeypatch.setattr(ort, "get_available_providers", lambda: [sessions.CUDA, sessions.CPU])
    monkeypatch.setattr(sessions, "preload_cuda_libraries", lambda: None)
    return seen


@pytest.mark.parametrize("provider", ["cuda", "auto", ["cuda"], [sessions.CUDA, sessions.CPU]])
def test_fp32_on_cuda_runs_without_tf32(random_artifact, loads, provider):
    engine = QAEngine.from_pretrained(random_artifact, provider=provider, precision="fp32", warmup=False)
    assert engine.settings.device == "cuda"
    assert loads[-1][0] == (sessions.CUDA, {"use_tf32": 0})


def test_fp16_on_cuda_keeps_the_provider_defaults(random_artifact, loads):
    engine = QAEngine.from_pretrained(random_artifact, provider="cuda", warmup=False)
    assert engine.settings.precision == "fp16"
    assert loads[-1][0] == (sessions.CUDA, {})


def test_options_given_by_the_caller_are_kept(random_artifact, loads):
    QAEngine.from_pretrained(random_artifact, provider=[(sessions.CUDA, {"device_id": 1})], precision="fp32",
                             warmup=False)
    assert loads[-1][0] == (sessions.CUDA, {"device_id": 1})


def test_cpu_sessions_get_no_cuda_options(random_artifact, loads):
    QAEngine.from_pretrained(random_artifact, provider="cpu", precision="fp32")
    assert loads[-1] == [sessions.CPU]


def test_captured_stderr_sees_native_writes():
    with doctor.captured_stderr() as lines:
        os.write(2, b"\x1b[1;31mnative error line\x1b[m\n")
    assert lines == ["native error line"]


def test_doctor_cpu_probe_runs():
    cpu = doctor.diagnose()[0]
    assert (cpu.provider, cpu.installed, cpu.works, cpu.error) == (sessions.CPU, True, True, "")


def test_doctor_names_a_cpu_only_build(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [sessions.CPU])
    cuda = doctor.diagnose(nvidia=True)[1]
    assert not cuda.installed and not cuda.works
    assert cuda.fix == doctor.FIX_GPU_BUILD


@pytest.mark.parametrize("providers", [[sessions.CPU], [sessions.CUDA, sessions.CPU]])
def test_doctor_recommends_cuda_only_where_an_nvidia_device_is(monkeypatch, capsys, providers):
    from qa_engine.cli.main import main

    monkeypatch.setattr(ort, "get_available_providers", lambda: providers)
    monkeypatch.setattr(doctor, "nvidia_device_present", lambda: False)
    cuda = doctor.diagnose()[1]
    assert (cuda.works, cuda.fix, cuda.error) == (False, "", doctor.NO_DEVICE)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "qa-engine[cuda]" not in out and "FAILED" not in out and doctor.NO_DEVICE in out


def test_doctor_probes_a_qa_model_with_its_own_dtypes(random_artifact, capsys):
    from qa_engine.cli.main import main

    for precision in ("fp32", "int8"):
        cpu = doctor.diagnose(random_artifact / f"model.{precision}.onnx", nvidia=False)[0]
        assert (cpu.works, cpu.error) == (True, "")
        assert main(["doctor", "--onnx", str(random_artifact / f"model.{precision}.onnx")]) == 0
    assert "FAILED" not in capsys.readouterr().out


def test_doctor_exits_1_when_a_probe_fails(tmp_path, capsys):
    from qa_engine.cli.main import main

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    assert main(["doctor", "--onnx", str(broken)]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_doctor_reports_onnxruntimes_own_load_error(monkeypatch):
    """A CUDA provider that fails to load: onnxruntime logs why on fd 2 and falls back to CPU."""
    real = ort.InferenceSession
    line = ("\x1b[1;31m2026-11-26 08:21:39.4 [E:onnxruntime:Default, provider_bridge_ort.cc:2458 operator()] "
            "/src/provider_bridge_ort.cc:2043 onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() "
            "[ONNXRuntimeError] : 1 : FAIL : Failed to load library libonnxruntime_providers_cuda.so with error: "
            "libcublasLt.so.13: cannot open shared object file: No such file or directory\x1b[m\n")

    def falls_back(path, sess_options=None, providers=None):
        os.write(2, line.encode())
        return real(path, sess_options=sess_options, providers=[sessions.CPU])

    monkeypatch.setattr(ort, "get_available_providers", lambda: [sessions.CUDA, sessions.CPU])
    monkeypatch.setattr(ort, "InferenceSession", falls_back)
    monkeypatch.setattr(sessions, "preload_cuda_libraries", lambda: None)
    cuda = doctor.diagnose(nvidia=True)[1]
    assert cuda.installed and not cuda.works
    assert cuda.error.startswith("Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.13")
    assert cuda.fix == doctor.FIX_CUDA_LIBS


@pytest.mark.parametrize("error, fix", [
    ("libcuda.so.1: cannot open shared object file", doctor.FIX_DRIVER),
    ("CUDA failure 100: no CUDA-capable device is detected", doctor.FIX_DRIVER),
    ("libcudnn.so.9: cannot open shared object file", doctor.FIX_CUDA_LIBS),
])
def test_doctor_fix_follows_the_error(error, fix):
    assert doctor.fix_for(sessions.CUDA, error) == fix
    assert doctor.fix_for(sessions.CPU, error) == ""


def test_doctor_command_exit_status(capsys):
    from qa_engine.cli.main import main

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "CPUExecutionProvider" in out and "ok" in out
    cuda_works = doctor.diagnose()[1].works
    assert main(["doctor", "--require", "cuda"]) == (0 if cuda_works else 1)
    assert main(["doctor", "--onnx", str(Path(doctor.__file__).parents[1] / "data" / PROBE_MODEL), "--require", "cpu"]) == 0
