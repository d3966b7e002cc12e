"""OpenVINO peers, honest matrix peaks and readable plots: the harness's logic, no timing asserts."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from qa_engine.benchmarks import hardware, report
from qa_engine.benchmarks.plots import throughput_figure
from qa_engine.benchmarks.systems import SYSTEMS, default_systems

from tests.benchmarks.test_bench_harness import fake_result  # noqa: F401  (fixture)

GENOA = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16"]
MILAN = ["avx2"]


def test_peaks_are_the_best_kernel_of_each_precision(monkeypatch):
    monkeypatch.setattr(hardware, "openvino_int8_peak", lambda n, r: 1e18)
    peaks = hardware.gemm_peaks(n=64, repeats=1)
    assert {"fp32_numpy", "fp32_torch", "fp32_ort", "int8_ort", "int8_ort_to_float", "int8_ort_dynamic"} <= set(peaks)
    assert peaks["fp32"] == max(peaks["fp32_numpy"], peaks["fp32_torch"], peaks["fp32_ort"])
    assert peaks["int8"] == 1e18 == peaks["int8_openvino"]
    assert hardware.peak_kernel(peaks, "int8") == "int8_openvino"


def _session(model: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def test_the_int8_peak_graphs_compute_their_products():
    a = np.arange(64, dtype=np.uint8).reshape(8, 8)
    weight = np.random.default_rng(3).integers(-127, 128, size=(8, 8), dtype=np.int8)
    exact = (a.astype(np.int32) - 128) @ weight.astype(np.int32)
    to_float = _session(hardware.matmul_integer_to_float_model(8, seed=3)).run(None, {"A": a})[0]
    np.testing.assert_allclose(to_float, exact * 0.01 * 0.01, rtol=1e-5)
    x = np.random.default_rng(4).random((8, 8), dtype=np.float32)
    dynamic = _session(hardware.dynamic_quantize_matmul_model(8, seed=3)).run(None, {"A": x})[0]
    np.testing.assert_allclose(dynamic, x @ (weight * 0.01), rtol=0.05, atol=0.05)
    fp32 = _session(hardware.matmul_model(8, seed=3)).run(None, {"A": x})[0]
    np.testing.assert_allclose(fp32, x @ np.random.default_rng(3).random((8, 8), dtype=np.float32), rtol=1e-5)


def test_a_share_over_the_peak_is_flagged_not_printed(fake_result):  # noqa: F811
    b32 = fake_result["systems"]["engine-fp32"]["batches"]["32"]
    b32["peak_share_real"], b32["peak_share_padded"] = 1.37, 1.5
    md = report.render_markdown(fake_result)
    assert report.OVER_PEAK in md and "137.0%" not in md and "150.0%" not in md
    assert report.share_of_peak(0.5) == "50.0%"


def test_an_over_peak_target_is_not_judged(fake_result):  # noqa: F811
    from qa_engine.benchmarks import analysis

    fake_result["targets"] = [analysis._target("int8 share", 1.2, 0.5, True, "peak share", "b32")]
    md = report.render_markdown(fake_result)
    assert report.OVER_PEAK in md and "not judged" in md and "120" not in md


def test_the_peaks_line_names_the_kernel_of_each_peak():
    peaks = {"fp32_numpy": 1e11, "fp32_ort": 2e11, "fp32": 2e11}
    assert report.peaks_line(peaks, "fp32") == "fp32 0.200 TFLOP/s (onnxruntime MatMul; numpy 0.100)"


def test_openvino_peers_run_where_openvino_is_installed_and_bf16_where_native():
    assert not any(SYSTEMS[n].family == "openvino" for n in default_systems("cpu", GENOA, openvino=False))
    assert "openvino-bf16" in default_systems("cpu", GENOA, openvino=True)
    on_milan = default_systems("cpu", MILAN, openvino=True)
    assert "openvino-int8" in on_milan and "openvino-bf16" not in on_milan
    assert all(SYSTEMS[n].peer for n in on_milan if n.startswith("openvino"))


def test_the_throughput_legend_sits_outside_the_axes(fake_result):  # noqa: F811
    fig = throughput_figure(fake_result)
    fig.canvas.draw()
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    legend, axes = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert legend.x0 >= axes.x1
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("qa-engine")


def test_the_report_says_how_the_openvino_peers_ran_and_on_which_versions(fake_result):  # noqa: F811
    from qa_engine.benchmarks import analysis
    from qa_engine.benchmarks.flops import ModelShape
    from tests.benchmarks.test_bench_harness import PEAKS, _run

    shape = ModelShape(6, 768, 12, 3072, 119547)
    fake_result["systems"]["openvino-int8"] = analysis.summarize_system("openvino-int8", [_run(20.0)], shape, PEAKS)
    fake_result["openvino"] = {"calibration": {"data": "synthetic", "questions": 128, "windows": 166},
                               "versions": {"openvino": "2026.4.1", "nncf": "3.4.0"}}
    fake_result["software"] = {"openvino-int8": {"python": "3.11", "openvino": "2026.4.1", "nncf": "3.4.0"},
                               "engine-int8": {"python": "3.11", "openvino": "2026.4.1"}}
    md = report.render_markdown(fake_result)
    assert "openvino 2026.4.1, nncf 3.4.0" in md and "166 windows of 128 questions" in md
    assert "OpenVINO NNCF int8 on qa-engine's windows" in md
    engine_row = next(line for line in md.splitlines() if line.startswith("| qa-engine int8 (CPU) | 3.11"))
    assert "2026.4.1" not in engine_row
