"""The benchmark harness's own logic: FLOP counting, peaks, analysis and report rendering (no timing asserts)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from qa_engine.benchmarks import analysis
from qa_engine.benchmarks.cli import register
from qa_engine.benchmarks.flops import ModelShape, TokenCounts, flops, model_flops
from qa_engine.benchmarks.hardware import gemm_peaks, matmul_integer_model
from qa_engine.benchmarks.models import MBERT_SHAPE
from qa_engine.benchmarks.ort_profile import op_rates, summarize_trace
from qa_engine.benchmarks.report import console_table, render_markdown, write_report
from qa_engine.benchmarks.workload import sample

from qa_engine.formats.squad import Example

PEAKS = {"fp32": 1e11, "bf16": 4e11, "int8": 1e12}


def test_mbert_shape_counts_the_known_non_embedding_parameters():
    # distilbert-base-multilingual-cased: 134,735,618 parameters, of which 92,206,848 are embeddings
    assert MBERT_SHAPE.params_nonembedding == 134_735_618 - 92_206_848


def test_token_counts_separate_padding_from_real_tokens():
    counts = TokenCounts()
    counts.add(np.array([[1, 1, 1, 0], [1, 1, 0, 0]]))
    counts.add(np.array([[1, 1]]))
    assert counts.as_dict() == {"calls": 2, "sequences": 3, "padded": 10, "real": 7,
                                "padded_sq": 2 * 16 + 4, "real_sq": 9 + 4 + 4}
    counts.reset()
    assert counts.padded == 0 and counts.calls == 0


def test_flops_adds_the_quadratic_attention_term():
    shape = ModelShape(layers=2, hidden=8, heads=2, ffn=16, vocab=100)
    per_layer = 4 * 64 + 4 * 8 + 2 * 8 * 16 + 16 + 8 + 4 * 8
    assert shape.params_nonembedding == 2 * per_layer + 18
    assert flops(shape, 10, 100) == 2 * shape.params_nonembedding * 10 + 2 * 4 * 8 * 100
    both = model_flops(shape, {"padded": 12, "padded_sq": 144, "real": 10, "real_sq": 100})
    assert both["padded"] > both["real"] > 0


def test_gemm_peaks_are_positive_on_small_matrices():
    peaks = gemm_peaks(n=64, repeats=1)
    assert {"fp32", "bf16", "int8"} <= set(peaks)
    assert all(v > 0 for v in peaks.values())


def test_matmul_integer_graph_computes_an_integer_product():
    import onnxruntime as ort

    session = ort.InferenceSession(matmul_integer_model(8, seed=3), providers=["CPUExecutionProvider"])
    a = np.arange(64, dtype=np.uint8).reshape(8, 8)
    weight = np.random.default_rng(3).integers(-127, 128, size=(8, 8), dtype=np.int8)
    expected = (a.astype(np.int32) - 128) @ weight.astype(np.int32)
    np.testing.assert_array_equal(session.run(None, {"A": a})[0], expected)


def test_sample_is_seeded_and_keeps_references():
    examples = [Example(f"q{i}", f"질문 {i}", f"문맥 {i}", (f"답{i}",), (0,)) for i in range(50)]
    a, b, c = sample(examples, 10, 7, "x"), sample(examples, 10, 7, "x"), sample(examples, 10, 8, "x")
    assert a.ids == b.ids and a.ids != c.ids and len(a) == 10
    assert a.references[a.ids[0]] == [f"답{a.ids[0][1:]}"]
    assert sample(examples, 500, 0, "x").ids.__len__() == 50


def _batch(qps: float, questions: int = 64, stages: dict | None = None, latency: bool = False) -> dict:
    seconds = questions / qps
    out = {"questions": questions, "seconds": seconds, "questions_per_s": qps,
           "tokens": {"calls": 4, "sequences": 80, "padded": 80 * 384, "real": 80 * 300,
                      "padded_sq": 80 * 384**2, "real_sq": 80 * 300**2},
           "stages": stages or {}, "answers": ["가"] * questions}
    if latency:
        out["latency_ms"] = {"p50": 1000 / qps, "p95": 1200 / qps, "p99": 1300 / qps, "mean": 1000 / qps,
                             "all": [1000 / qps] * questions}
    return out


def _run(qps32: float, rep: int = 0, stages: dict | None = None) -> dict:
    return {"rss_peak_mb": 900.0, "rss_after_load_mb": 800.0, "load_s": 2.0, "repetition": rep,
            "batches": {"1": _batch(qps32 / 2, 8, latency=True), "32": _batch(qps32, stages=stages)}}


@pytest.fixture()
def fake_result() -> dict:
    qps = {"hf-fp32": 4.0, "hf-bf16": 10.0, "optimum-fp32": 5.0, "optimum-int8": 8.0,
           "engine-fp32": 7.0, "engine-int8": 30.0}
    stages = {"tokenize": 0.05, "bucket": 0.01, "run": 1.8, "decode": 0.03}
    shape = ModelShape(6, 768, 12, 3072, 119547)
    systems = {}
    for name, v in qps.items():
        runs = [_run(v * 0.9, 0, stages if name.startswith("engine") else None),
                _run(v, 1, stages if name.startswith("engine") else None)]
        systems[name] = analysis.summarize_system(name, runs, shape, PEAKS)
    ratios = analysis.ratios(systems)
    decoder = {"windows": 64, "width": 384, "questions": 40, "identical_answers": True,
               "engine_ms": 2.0, "hf_ms": 150.0, "speedup": 75.0}
    ids = [f"q{i}" for i in range(64)]
    answers = {n: ["가"] * 64 for n in qps}
    answers["engine-int8"] = ["가"] * 60 + ["나"] * 4
    return {
        "meta": {"command": "qa-engine bench --data x", "date": "today", "data": "x.json", "questions": 64,
                 "seed": 0, "latency_questions": 8, "batch_sizes": [1, 32], "target_batch": 32, "repetitions": 2,
                 "windows": 80, "real_tokens_per_window": 300.0},
        "hardware": {"cpu": {"model": "Test CPU", "physical_cores": 2, "logical_cpus": 2, "isa": ["avx512f"],
                             "load_average_1m": 0.1}, "peaks": PEAKS},
        "models": {"speed": {"description": "speed shape", "tokens_per_char": 0.74},
                   "accuracy": {"description": "tiny"}},
        "systems": systems, "ratios": ratios,
        "accuracy": analysis.agreement(answers, ids, {i: ["가"] for i in ids}),
        "speed_model_agreement": {n: 1.0 for n in qps},
        "decoder": decoder, "ort_profile": {"int8": _profile()},
        "targets": analysis.targets(systems, ratios, decoder), "errors": {}, "notes": ["a note"],
    }


def test_analysis_takes_the_best_repetition_and_ratios(fake_result):
    b32 = fake_result["systems"]["engine-int8"]["batches"]["32"]
    assert b32["questions_per_s"] == 30.0 and len(b32["all_questions_per_s"]) == 2
    r = fake_result["ratios"]["32"]["engine-int8"]
    assert r["best_peer"] == "hf-bf16" and r["vs_best_peer"] == pytest.approx(3.0)
    assert r["vs_hf_fp32"] == pytest.approx(7.5)
    assert b32["pad_overhead"] == pytest.approx(384 / 300 - 1)
    assert sum(b32["stage_share"].values()) == pytest.approx(1.0)


def test_targets_judge_met_and_missed(fake_result):
    by_name = {t["name"]: t for t in fake_result["targets"]}
    assert by_name["qa-engine int8 vs best peer throughput"]["met"] is True
    assert by_name["qa-engine fp32 vs Optimum fp32 throughput"]["met"] is True  # 7 / 5 = 1.4
    assert by_name["decoder speed-up over HF per-example decoding"]["met"] is True
    share = by_name["tokenization + decoding share of qa-engine int8 time"]
    assert share["higher_is_better"] is False and share["met"] is True
    peak = by_name["qa-engine int8 share of int8 GEMM peak (unpadded tokens)"]
    assert peak["met"] is (peak["value"] >= 0.5)


def test_agreement_counts_differing_answers(fake_result):
    acc = fake_result["accuracy"]
    assert acc["hf-fp32"]["agreement_with_hf_fp32"] == 1.0
    assert acc["engine-int8"]["agreement_with_hf_fp32"] == pytest.approx(60 / 64)
    assert acc["engine-int8"]["exact_match"] == pytest.approx(100 * 60 / 64)


def _trace() -> list[dict]:
    def node(name, op, ts, dur):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    return [
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 100},  # warm-up
        node("mm0", "DynamicQuantizeMatMul", 10, 50),
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 1000},
        node("mm0", "DynamicQuantizeMatMul", 210, 600),
        node("att0", "QAttention", 810, 300),
        node("ln0", "SkipLayerNormalization", 1110, 100),
        {"cat": "Node", "name": "mm0_fence_before", "ts": 205, "dur": 0, "args": {"op_name": "X"}},
    ]


def _profile() -> dict:
    summary = summarize_trace(_trace(), skip_runs=1)
    counts = {"padded": 384 * 32, "padded_sq": 384 * 384 * 32}
    return {"precision": "int8", "batch_size": 32, "questions": 32, **summary,
            **op_rates(summary["ops"], ModelShape(6, 768, 12, 3072, 1000), counts)}


def test_profile_summary_skips_warmup_and_sums_by_op():
    summary = summarize_trace(_trace(), skip_runs=1)
    assert summary["runs"] == 1 and summary["model_run_ms"] == 1.0
    ops = {o["op"]: o for o in summary["ops"]}
    assert ops["DynamicQuantizeMatMul"]["ms"] == 0.6 and ops["DynamicQuantizeMatMul"]["calls"] == 1
    assert summary["ops"][0]["op"] == "DynamicQuantizeMatMul"
    assert sum(o["share"] for o in summary["ops"]) == pytest.approx(1.0)
    assert summary["top_nodes"][0] == {"node": "mm0", "op": "DynamicQuantizeMatMul", "ms": 0.6}
    rates = op_rates(summary["ops"], ModelShape(1, 4, 1, 8, 10), {"padded": 10, "padded_sq": 100})
    assert rates["dense_ops_per_s"] == pytest.approx(2 * (16 + 64) * 10 / 0.6e-3)


def test_report_renders_tables_and_files(fake_result, tmp_path):
    md = render_markdown(fake_result)
    assert "## Targets" in md and "met (" in md and "qa-engine int8 (CPU)" in md
    assert "| batch 1 | batch 32 |" in md and "75×" in md and "| QAttention |" in md
    table = console_table(fake_result)
    assert "qa-engine int8 (CPU)" in table and "met (1.20× the target)" in table
    write_report(fake_result, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["meta"]["questions"] == 64
    for name in ("report.md", "throughput.png", "latency.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_missed_target_says_by_how_much(fake_result):
    fake_result["targets"] = [analysis._target("t", 1.0, 2.5, True, "x", "b32"),
                              analysis._target("s", 0.2, 0.1, False, "share", "b32")]
    md = render_markdown(fake_result)
    assert "missed (60% short)" in md and "missed (100% over)" in md


def test_bench_command_parses():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "--data", "d.json", "--out", "o", "--batch-sizes", "1,8", "--quick"])
    assert args.batch_sizes == (1, 8) and args.quick and args.func.__name__ == "_cmd_bench"
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--data", "d", "--out", "o", "--batch-sizes", "0,8"])


def test_jobs_alternate_order_and_repeat_the_target_batch():
    from qa_engine.benchmarks.run import BenchConfig, plan_jobs

    tmp = Path("o")
    cfg = BenchConfig(data="d", out=tmp, systems=("hf-fp32", "engine-int8"),
                      batch_sizes=(1, 8, 32), repeats=2)
    jobs = plan_jobs(cfg, separate_accuracy=True)
    assert [j.system for j in jobs[:4]] == ["hf-fp32", "engine-int8", "engine-int8", "hf-fp32"]
    assert jobs[0].batch_sizes == (1, 8, 32) and jobs[2].batch_sizes == (32,)
    assert [(j.role, j.batch_sizes) for j in jobs[4:]] == [("accuracy", (32,))] * 2
    full = plan_jobs(BenchConfig(data="d", out=tmp, systems=("hf-fp32",), batch_sizes=(1, 8), repeats=2,
                                 full_repeats=True, target_batch=8), separate_accuracy=False)
    assert [j.batch_sizes for j in full] == [(1, 8), (8, 1)]


def test_run_dir_keeps_finished_jobs_only_when_resuming(tmp_path):
    from types import SimpleNamespace

    from qa_engine.benchmarks.run import BenchConfig, run_dir

    work = SimpleNamespace(ids=["q1", "q2"])
    model = SimpleNamespace(artifact=tmp_path / "artifact")
    cfg = BenchConfig(data="d", out=tmp_path / "o", workdir=tmp_path / "work")
    first = run_dir(cfg, work, model, model)
    (first / "speed-0-hf-fp32.json").write_text("{}", encoding="utf-8")
    resumed = run_dir(BenchConfig(data="d", out=tmp_path / "o", workdir=tmp_path / "work", resume=True), work,
                      model, model)
    assert resumed == first and (resumed / "speed-0-hf-fp32.json").is_file()
    other = run_dir(BenchConfig(data="d", out=tmp_path / "o", workdir=tmp_path / "work", resume=True,
                                repeats=3), work, model, model)
    assert other != first and not any(other.iterdir())
    assert run_dir(cfg, work, model, model) == first and not any(first.iterdir())


def test_sleep_runner_waits_per_padded_token_and_returns_logits_of_the_feed_shape():
    import time

    from qa_engine.benchmarks.host import SleepRunner

    runner = SleepRunner(seconds_per_token=1e-5)
    t0 = time.perf_counter()
    for rows, width in ((4, 64), (2, 128), (4, 64)):
        start, end = runner.run({"input_ids": np.zeros((rows, width), dtype=np.int64)})
        assert start.shape == end.shape == (rows, width) and start.dtype == np.float32
    assert runner.slept == pytest.approx(3 * 256 * 1e-5)
    assert time.perf_counter() - t0 >= runner.slept


def test_host_benchmark_measures_the_engine_beside_an_instant_and_a_simulated_model(random_artifact):
    from qa_engine.benchmarks.host import host_benchmark
    from qa_engine.benchmarks.workload import Workload

    from tests.fixtures import qa_pairs

    triples = qa_pairs(24, seed=3)
    work = Workload("x", 0, tuple(f"q{i}" for i in range(24)), tuple(q for q, _, _ in triples),
                    tuple(c for _, c, _ in triples), {})
    result = host_benchmark(random_artifact / "tokenizer.json", work, batch_size=4, seconds_per_token=2e-6,
                            repeats=1)
    runs = {(r["model"], r["overlap"]): r for r in result["runs"]}
    assert set(runs) == {(m, o) for m in ("instant", "simulated") for o in (False, True)}
    assert runs["instant", False]["model_s"] == 0 and runs["simulated", True]["model_s"] > 0
    for r in result["runs"]:
        assert r["host_s"] == pytest.approx(sum(v for k, v in r["stages_s"].items() if k != "run"))
        assert r["qps"] == pytest.approx(24 / r["wall_s"])
    for model in ("instant", "simulated"):  # one after another, the stages fit inside the wall time
        assert runs[model, False]["efficiency"] <= 1.0
    serial = runs["simulated", False]
    assert serial["wall_s"] >= serial["model_s"] + serial["stages_s"]["tokenize"]


def test_report_shows_the_host_pipeline_section(fake_result):
    run = {"wall_s": 0.5, "model_s": 0.4, "host_s": 0.3, "qps": 4096.0, "bound_s": 0.4, "efficiency": 0.8,
           "stages_s": {"tokenize": 0.25, "bucket": 0.01, "run": 0.41, "decode": 0.04}}
    fake_result["host"] = {"questions": 2048, "batch_size": 256, "seconds_per_token": 2.29e-7,
                           "runs": [{"model": "simulated", "overlap": True, **run}]}
    md = render_markdown(fake_result)
    assert "## Host pipeline against a simulated GPU" in md and "229 ns per padded token" in md
    assert "| simulated | on | 4,096 | 500 | 400 | 300 | 250 | 10 | 40 | 80% |" in md


def test_the_report_names_each_systems_stack(fake_result):
    fake_result["software"] = {
        "optimum-int8": {"python": "3.11.7", "torch": "2.13.0", "transformers": "4.57.6", "optimum-onnx": "0.1.0",
                         "onnxruntime-gpu": "1.31.1"},
        "engine-int8": {"python": "3.11.7", "torch": "2.13.0", "transformers": "5.24.0", "onnxruntime": "1.31.1"},
    }
    md = render_markdown(fake_result)
    assert "| HF pipeline, Optimum ORT dynamic int8 | 3.11.7 | 2.13.0 | 4.57.6 | 0.1.0 | 1.31.1 (-gpu) |" in md
    assert "| qa-engine int8 (CPU) | 3.11.7 | 2.13.0 | 5.24.0 | – | 1.31.1 |" in md
    del fake_result["software"]
    assert "## Software per system" not in render_markdown(fake_result)


def test_int8_scales_times_the_static_graph_beside_the_dynamic_one(random_artifact, tmp_path):
    """benchmarks/int8_scales.py: the copy it times as "dynamic" really has per-call scales and loads under checksum
    verification, the artifact's own int8 has none, and the figures are per variant over the same windows."""
    onnx = pytest.importorskip("onnx")
    from qa_engine.benchmarks.int8_scales import compare, dynamic_copy
    from qa_engine.benchmarks.workload import Workload

    from tests.fixtures import qa_pairs

    def op_types(artifact: Path) -> set[str]:
        return {n.op_type for n in onnx.load(str(artifact / "model.int8.onnx")).graph.node}

    dynamic = dynamic_copy(random_artifact, tmp_path / "dynamic")
    assert "DynamicQuantizeLinear" in op_types(dynamic) and "DynamicQuantizeLinear" not in op_types(random_artifact)
    assert "QuantizeLinear" in op_types(random_artifact)

    triples = qa_pairs(12, seed=5)
    work = Workload("x", 0, tuple(f"q{i}" for i in range(12)), tuple(q for q, _, _ in triples),
                    tuple(c for _, c, _ in triples), {})
    result = compare(random_artifact, work, batch_size=4, rounds=2)
    assert result["questions"] == 12 and result["windows"] >= 12
    for variant in ("static", "dynamic"):
        assert result[variant]["questions_per_s"] > 0 and result[variant]["cpu_ms_per_window"] > 0
    assert result["static_over_dynamic_throughput"] == pytest.approx(
        result["static"]["questions_per_s"] / result["dynamic"]["questions_per_s"])


def test_a_workers_peak_memory_is_its_own_not_its_parents():
    """The harness holds built models in memory when it starts a system's worker: the worker's peak RSS must not
    start from the harness's (Linux's ru_maxrss does: every system once showed the same 5.8 GB)."""
    import subprocess
    import sys

    from qa_engine.benchmarks.worker import _peak_rss_mb

    held = np.ones(2**30 // 8)  # 1 GiB, touched
    assert _peak_rss_mb() >= held.nbytes / 2**20
    code = "from qa_engine.benchmarks.worker import _peak_rss_mb; print(_peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0 < child < held.nbytes / 2**20 / 2
