"""`qa-engine bench --device cuda` without a GPU: its systems, settings and job wiring, the refusal where CUDA is
missing, the GPU-specific analysis and the report rendered from a made-up GPU result (no timing asserts)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from qa_engine.benchmarks import analysis, hardware, worker
from qa_engine.benchmarks.cli import bench_config, register
from qa_engine.benchmarks.flops import ModelShape, TokenCounts
from qa_engine.benchmarks.report import console_table, render_markdown, write_report
from qa_engine.benchmarks.run import BenchConfig, Job, job_spec, plan_jobs
from qa_engine.benchmarks.systems import (
    SYSTEMS,
    Runner,
    baseline_for,
    counted,
    engine_load_options,
    systems_for,
)

CPU_SYSTEMS = ("hf-fp32", "hf-bf16", "optimum-fp32", "optimum-int8", "openvino-fp32", "openvino-int8", "openvino-bf16",
               "engine-fp32", "engine-int8")
CUDA_SYSTEMS = ("hf-cuda-fp16", "hf-cuda-fp32", "optimum-cuda-fp32", "optimum-cuda-o4", "engine-cuda-fp16",
                "engine-cuda-fp32")
GPU_PEAKS = {"fp16": 700e12, "fp32": 50e12, "tf32": 350e12}
SHAPE = ModelShape(6, 768, 12, 3072, 119547)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bench", "--data", "d.json", "--out", "o", *argv])


def test_each_device_runs_its_own_systems():
    assert systems_for("cpu") == CPU_SYSTEMS
    assert set(BenchConfig(data="d", out=Path("o")).systems) <= set(CPU_SYSTEMS)
    assert systems_for("cuda") == CUDA_SYSTEMS
    assert BenchConfig(data="d", out=Path("o"), device="cuda").systems == CUDA_SYSTEMS
    assert {SYSTEMS[n].precision for n in CUDA_SYSTEMS} == {"fp16", "fp32"}
    assert [n for n in CUDA_SYSTEMS if not SYSTEMS[n].peer] == ["engine-cuda-fp16", "engine-cuda-fp32"]
    # Optimum keeps the CUDA provider's TF32 default, so its share is of the TF32 peak; the others of their own
    assert {n: SYSTEMS[n].peak for n in CUDA_SYSTEMS}["optimum-cuda-fp32"] == "tf32"
    assert SYSTEMS["engine-cuda-fp32"].peak == "fp32" and SYSTEMS["engine-int8"].peak == "int8"
    assert baseline_for(CUDA_SYSTEMS) == "hf-cuda-fp32" and baseline_for(CPU_SYSTEMS) == "hf-fp32"
    with pytest.raises(ValueError, match="several devices"):
        baseline_for(["hf-fp32", "engine-cuda-fp16"])


def test_a_system_of_the_other_device_is_refused():
    with pytest.raises(ValueError, match="engine-int8 do not run on --device cuda"):
        BenchConfig(data="d", out=Path("o"), device="cuda", systems=("engine-int8",))
    with pytest.raises(ValueError, match="unknown system nope"):
        BenchConfig(data="d", out=Path("o"), systems=("nope",))
    with pytest.raises(ValueError, match="device must be"):
        BenchConfig(data="d", out=Path("o"), device="tpu")


def test_cuda_settings_come_from_the_cuda_preset_and_cpu_keeps_its_own():
    cfg = bench_config(_args("--device", "cuda"))
    assert (cfg.device, cfg.questions, cfg.batch_sizes, cfg.target_batch) == ("cuda", 2048, (1, 32, 64, 256), 256)
    assert (cfg.latency_questions, cfg.accuracy_questions, cfg.gemm_size, cfg.clients) == (200, 300, 8192, 64)
    assert cfg.repeats == 1 and cfg.systems == CUDA_SYSTEMS
    quick = bench_config(_args("--device", "cuda", "--quick", "--questions", "100"))
    assert quick.questions == 100 and quick.batch_sizes == (1, 32, 256) and quick.repeats == 1
    cpu = bench_config(_args())
    assert (cpu.device, cpu.questions, cpu.batch_sizes, cpu.target_batch) == ("cpu", 256, (1, 8, 32, 64), 32)
    assert cpu.accuracy_questions is None and cpu.gemm_size == 4096 and cpu.systems == CPU_SYSTEMS
    with pytest.raises(ValueError, match="--target-batch 256 is not among"):
        bench_config(_args("--device", "cuda", "--batch-sizes", "1,64"))
    assert bench_config(_args("--device", "cuda", "--batch-sizes", "1,64", "--target-batch", "64")).target_batch == 64


def test_cuda_jobs_add_the_concurrency_job_and_limit_accuracy_questions(tmp_path):
    cfg = BenchConfig(data="d", out=tmp_path, device="cuda", batch_sizes=(1, 32, 256), target_batch=256,
                      repeats=2, accuracy_questions=300, clients=64)
    jobs = plan_jobs(cfg, separate_accuracy=True)
    roles = [j.role for j in jobs]
    n = len(CUDA_SYSTEMS)
    assert roles == ["speed"] * 2 * n + ["concurrency"] + ["accuracy"] * n
    assert jobs[2 * n] == Job("engine-cuda-fp16", "concurrency", 0, ())
    assert jobs[n].batch_sizes == (256,) and jobs[0].batch_sizes == (1, 32, 256)
    model = type("M", (), {"checkpoint": Path("c"), "artifact": Path("a"), "optimum": Path("o")})()
    accuracy = job_spec(jobs[-1], model, tmp_path / "w.json", cfg, tmp_path)
    speed = job_spec(jobs[0], model, tmp_path / "w.json", cfg, tmp_path)
    assert accuracy["questions"] == 300 and speed["questions"] is None and speed["clients"] == 64
    no_engine = BenchConfig(data="d", out=tmp_path, device="cuda", systems=("hf-cuda-fp32",), repeats=1)
    assert [j.role for j in plan_jobs(no_engine, False)] == ["speed"]
    assert "concurrency" not in [j.role for j in plan_jobs(BenchConfig(data="d", out=tmp_path), True)]


class _Check:
    def __init__(self, provider, works, error="", fix=""):
        self.provider, self.works, self.error, self.fix = provider, works, error, fix


def _fake_machine(monkeypatch, torch_gpu: bool, ort_cuda: bool):
    import torch

    import qa_engine.runners.doctor

    monkeypatch.setattr(torch.cuda, "is_available", lambda: torch_gpu)
    error = "" if ort_cuda else "libcublasLt.so.13: cannot open shared object file"
    cuda = _Check("CUDAExecutionProvider", ort_cuda, error, "" if ort_cuda else "pip install 'qa-engine[cuda]'")
    monkeypatch.setattr(qa_engine.runners.doctor, "diagnose", lambda model=None: [_Check("CPUExecutionProvider", True), cuda])


def test_cuda_problems_name_what_is_missing(monkeypatch):
    _fake_machine(monkeypatch, torch_gpu=False, ort_cuda=False)
    problems = hardware.cuda_problems()
    assert len(problems) == 2
    assert "sees no CUDA GPU" in problems[0]
    assert "libcublasLt.so.13" in problems[1] and "qa-engine[cuda]" in problems[1]
    _fake_machine(monkeypatch, torch_gpu=True, ort_cuda=False)
    assert len(hardware.cuda_problems()) == 1
    _fake_machine(monkeypatch, torch_gpu=True, ort_cuda=True)
    assert hardware.cuda_problems() == []


def test_bench_cuda_without_a_gpu_stops_before_building_anything(monkeypatch, tmp_path):
    import qa_engine.benchmarks.run

    _fake_machine(monkeypatch, torch_gpu=False, ort_cuda=True)
    monkeypatch.setattr(qa_engine.benchmarks.run, "run", lambda cfg: pytest.fail("the run started without a GPU"))
    args = _args("--device", "cuda", "--workdir", str(tmp_path / "work"))
    with pytest.raises(ValueError, match="--device cuda needs a CUDA GPU.*sees no CUDA GPU"):
        args.func(args)
    assert not (tmp_path / "work").exists()


def test_bench_cuda_with_a_gpu_goes_on_to_the_run(monkeypatch, tmp_path):
    import qa_engine.benchmarks.run

    class Started(Exception):
        pass

    def fake_run(cfg):
        raise Started(cfg.device)

    _fake_machine(monkeypatch, torch_gpu=True, ort_cuda=True)
    monkeypatch.setattr(qa_engine.benchmarks.run, "run", fake_run)
    args = _args("--device", "cuda")
    with pytest.raises(Started, match="cuda"):
        args.func(args)


def test_counted_engine_counts_every_model_call_on_cpu_and_cuda_paths():
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from qa_engine.engine import EngineSettings, QAEngine
    from qa_engine.runners.onnx import OnnxRunner

    graph = helper.make_graph(
        [helper.make_node("Identity", ["attention_mask"], ["s"]), helper.make_node("Identity", ["attention_mask"], ["e"]),
         helper.make_node("Add", ["input_ids", "attention_mask"], ["unused"])], "count",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["b", "l"]) for n in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["b", "l"]) for n in ("s", "e")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {"input_ids": np.arange(8, dtype=np.int64).reshape(2, 4),
            "attention_mask": np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=np.int64)}
    for device in ("cuda", "cpu"):  # cuda: the engine's IO-binding path, run here on the CPU provider
        engine = QAEngine(OnnxRunner(session, device), None, EngineSettings(device=device))
        counts = TokenCounts()
        start, _ = counted(engine, counts).runner.run(feed)
        np.testing.assert_array_equal(start, feed["attention_mask"])
        assert counts.calls == 1 and counts.real == 5 and counts.padded == 8


def test_engine_is_asked_for_its_load_warmup_on_cuda_only_where_it_has_the_option():
    def with_option(path, provider="auto", precision=None, *, warmup=None, **overrides):
        pass

    def without(path, provider="auto", precision=None, **overrides):
        pass

    assert engine_load_options(with_option, "cuda") == {"warmup": True}
    assert engine_load_options(with_option, "cpu") == {}
    assert engine_load_options(without, "cuda") == {}


def test_harness_warms_every_power_of_two_row_count():
    assert worker.harness_shapes([1, 32, 256]) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert worker.harness_shapes([3]) == [1, 2, 3]


class _FakeEngine:
    """Stands in for a QAEngine: records calls, answers every question with the same text."""

    def __init__(self, events: list):
        self.events = events
        self.settings = type("S", (), {"batch_size": 32})()

    def warmup(self, batch_sizes=None):
        self.events.append(("warmup", tuple(batch_sizes)))

    def answer_batch(self, questions, contexts, batch_size=None, **kwargs):
        time.sleep(0.001)  # a call takes some time, as a model call does (latency ratios divide by it)
        return [{"answer": "가", "score": 1.0, "start": 0, "end": 1} for _ in questions]

    def answer(self, question, context, **kwargs):
        return self.answer_batch([question], [context])[0]

    def batcher(self, **kwargs):
        from qa_engine.serving.batcher import MicroBatcher

        return MicroBatcher(self, **kwargs)


def _fake_runner(name: str, events: list) -> Runner:
    counts, profile = TokenCounts(), {}
    engine = _FakeEngine(events)

    def answer(questions, contexts, batch_size):
        events.append(("answer", batch_size, len(questions)))
        counts.add(np.ones((len(questions), 8), dtype=np.int64))
        profile["tokenize"] = profile.get("tokenize", 0.0) + 0.001
        return engine.answer_batch(questions, contexts)

    return Runner(SYSTEMS[name], answer, counts, profile, engine, load_warmup_s=0.5)


def _workload_file(tmp_path: Path, n: int) -> Path:
    from qa_engine.benchmarks.workload import Workload

    ids = tuple(f"q{i}" for i in range(n))
    work = Workload("x", 0, ids, tuple(f"질문 {i}" for i in ids), tuple(f"문맥 {i}" for i in ids),
                    {i: ["가"] for i in ids})
    work.to_json(tmp_path / "w.json")
    return tmp_path / "w.json"


def test_cuda_worker_times_batch_1_from_a_fresh_load_then_warms_up(monkeypatch, tmp_path):
    events: list = []
    monkeypatch.setattr(worker, "load", lambda system, model: _fake_runner(system, events))
    job = {"system": "engine-cuda-fp16", "role": "speed", "repetition": 1, "batch_sizes": [256, 32, 1],
           "latency_questions": 5, "workload": str(_workload_file(tmp_path, 40)), "model": {}}
    out = worker.run_job(job)
    latency_calls = [e for e in events[:10] if e[0] == "answer" and e[1] == 1]
    assert len(latency_calls) == 10 and events[10] == ("warmup", tuple(worker.harness_shapes([256, 32, 1])))
    b1 = out["batches"][1]
    assert b1["questions"] == 5 and len(b1["latency_ms"]["all"]) == 5
    assert set(b1["second_pass"]) == {"seconds", "questions_per_s", "latency_ms"}
    assert list(out["batches"]) == [256, 32, 1] and out["batches"][256]["questions"] == 40
    assert out["load_warmup_s"] == 0.5 and "gpu_memory_mb" in out


def test_cpu_worker_keeps_warm_up_first(monkeypatch, tmp_path):
    events: list = []
    monkeypatch.setattr(worker, "load", lambda system, model: _fake_runner(system, events))
    job = {"system": "engine-int8", "role": "speed", "repetition": 0, "batch_sizes": [1, 8],
           "latency_questions": 4, "workload": str(_workload_file(tmp_path, 20)), "model": {}}
    out = worker.run_job(job)
    assert events[:2] == [("answer", 8, 16), ("answer", 1, 2)]  # the harness warm-up, no engine.warmup on CPU
    assert "second_pass" not in out["batches"][1] and "gpu_memory_mb" not in out


def test_accuracy_job_answers_only_its_questions(monkeypatch, tmp_path):
    events: list = []
    monkeypatch.setattr(worker, "load", lambda system, model: _fake_runner(system, events))
    job = {"system": "hf-cuda-fp32", "role": "accuracy", "repetition": 0, "batch_sizes": [256], "questions": 12,
           "latency_questions": 4, "workload": str(_workload_file(tmp_path, 30)), "model": {}}
    assert len(worker.run_job(job)["batches"][256]["answers"]) == 12


def test_concurrency_job_serves_clients_with_and_without_the_batcher(monkeypatch, tmp_path):
    events: list = []
    monkeypatch.setattr(worker, "load", lambda system, model: _fake_runner(system, events))
    job = {"system": "engine-cuda-fp16", "role": "concurrency", "repetition": 0, "batch_sizes": [], "clients": 4,
           "latency_questions": 4, "workload": str(_workload_file(tmp_path, 24)), "model": {}}
    out = worker.run_job(job)
    c = out["concurrency"]
    assert events[0] == ("warmup", tuple(worker.harness_shapes([32])))
    assert [r["mode"] for r in c["rows"]] == ["batch-1, one client", "per-request, threads", "per-request, asyncio",
                                              "batcher, threads", "batcher, asyncio"]
    assert all(r["questions"] == 24 for r in c["rows"][1:]) and c["max_batch_size"] == 4
    assert set(c["summary"]) == {"threads", "asyncio"} and out["batches"] == {}


def test_concurrency_needs_a_qa_engine_system(monkeypatch, tmp_path):
    monkeypatch.setattr(worker, "load", lambda system, model: Runner(SYSTEMS[system], None, TokenCounts()))
    job = {"system": "hf-cuda-fp16", "role": "concurrency", "repetition": 0, "batch_sizes": [], "clients": 4,
           "latency_questions": 4, "workload": str(_workload_file(tmp_path, 8)), "model": {}}
    with pytest.raises(ValueError, match="needs a qa-engine system"):
        worker.run_job(job)


def test_process_gpu_memory_is_read_from_nvidia_smi_output():
    csv = "1234, 1500\n99, 20\n1234, 500\nno devices\n"
    assert hardware.parse_process_memory(csv, 1234) == 2000.0
    assert hardware.parse_process_memory(csv, 7) is None


def _gpu_batch(qps: float, questions: int, stages: dict | None = None, latency: tuple | None = None) -> dict:
    out = {"questions": questions, "seconds": questions / qps, "questions_per_s": qps,
           "tokens": {"calls": 8, "sequences": 2469, "padded": 2469 * 384, "real": 2469 * 320,
                      "padded_sq": 2469 * 384**2, "real_sq": 2469 * 320**2},
           "stages": stages or {}, "answers": ["가"] * questions}
    if latency:
        first, second = latency
        out["latency_ms"] = {"p50": first[0], "p95": first[1], "p99": first[2], "mean": first[0], "all": list(first)}
        out["second_pass"] = {"seconds": 1.0, "questions_per_s": 300.0,
                              "latency_ms": {"p50": second[0], "p95": second[1], "p99": second[2],
                                             "mean": second[0], "all": list(second)}}
    return out


def _gpu_run(name: str, qps256: float, engine: bool) -> dict:
    # overlapping stages: their sum (1.2 s) exceeds the wall time of 2048 questions at qps256
    stages = {"tokenize": 0.3, "bucket": 0.02, "run": 0.8, "decode": 0.08} if engine else None
    return {"rss_peak_mb": 2000.0, "rss_after_load_mb": 1500.0, "load_s": 3.0, "repetition": 0,
            "load_warmup_s": 0.4 if engine else None, "gpu_memory_mb": 1800.0,
            "batches": {"1": _gpu_batch(300.0, 200, latency=((2.7, 60.0, 81.0), (2.6, 3.3, 3.8))),
                        "256": _gpu_batch(qps256, 2048, stages)}}


@pytest.fixture()
def gpu_result() -> dict:
    """A made-up result dict of the shape run() returns for --device cuda (figures invented, not measured)."""
    qps = {"hf-cuda-fp16": 92.0, "hf-cuda-fp32": 323.0, "optimum-cuda-fp32": 346.0,
           "engine-cuda-fp16": 3875.0, "engine-cuda-fp32": 1500.0}
    systems = {n: analysis.summarize_system(n, [_gpu_run(n, v, n.startswith("engine"))], SHAPE, GPU_PEAKS)
               for n, v in qps.items()}
    ratios = analysis.ratios(systems)
    ids = [f"q{i}" for i in range(300)]
    answers = {n: ["가"] * 300 for n in qps}
    answers["engine-cuda-fp32"] = ["가"] * 297 + ["나"] * 3
    accuracy = analysis.agreement(answers, ids, {i: ["가"] for i in ids})
    rows = [{"mode": m, "clients": c, "questions": 2048, "seconds": 2.0, "questions_per_s": q,
             "questions_per_cpu_s": q, "p50_ms": p, "p99_ms": p * 2, "mean_batch": b}
            for m, c, q, p, b in (("batch-1, one client", 1, 350.0, 2.8, None),
                                  ("per-request, threads", 64, 400.0, 150.0, None),
                                  ("per-request, asyncio", 64, 390.0, 155.0, None),
                                  ("batcher, threads", 64, 2400.0, 25.0, 60.0),
                                  ("batcher, asyncio", 64, 2300.0, 26.0, 58.0))]
    return {
        "meta": {"command": "qa-engine bench --device cuda --data x", "date": "today", "data": "x.json",
                 "questions": 2048, "seed": 0, "latency_questions": 200, "batch_sizes": [1, 256],
                 "target_batch": 256, "repetitions": 1, "windows": 2469, "real_tokens_per_window": 320.0,
                 "versions": {"onnxruntime-gpu": "1.31.1"}, "device": "cuda", "accuracy_questions": 300,
                 "clients": 64},
        "hardware": {"cpu": {"model": "Host CPU", "physical_cores": 16, "logical_cpus": 32, "isa": [],
                             "load_average_1m": 0.3},
                     "gpu": {"name": "Test GPU", "memory_gib": 139.8, "compute_capability": "9.0",
                             "multiprocessors": 132, "cuda": "13.0", "driver": "580.1"},
                     "peaks": GPU_PEAKS, "gemm_size": 8192},
        "models": {"speed": {"description": "speed shape", "tokens_per_char": 0.74},
                   "accuracy": {"description": "tiny"}},
        "systems": systems, "ratios": ratios, "accuracy": accuracy,
        "speed_model_agreement": {n: 1.0 for n in qps},
        "decoder": {"windows": 64, "width": 384, "questions": 40, "identical_answers": True,
                    "engine_ms": 0.5, "hf_ms": 40.0, "speedup": 80.0},
        "windows": {"questions": 2048, "contexts": 900, "windows": 2469, "encode_ms": 57.0, "windows_ms": 70.0,
                    "ratio": 1.23, "target_ratio": 1.5},
        "ort_profile": {},
        "concurrency": {"engine-cuda-fp16": {"clients": 64, "max_batch_size": 64, "rows": rows,
                                             "summary": {"threads": {"throughput_x": 6.0, "cpu_efficiency_x": 6.0,
                                                                     "p99_over_per_request_p99": 0.17,
                                                                     "p99_over_batch1_p99": 8.9},
                                                         "asyncio": {"throughput_x": 5.9, "cpu_efficiency_x": 5.9,
                                                                     "p99_over_per_request_p99": 0.17,
                                                                     "p99_over_batch1_p99": 9.3}}}},
        "targets": analysis.cuda_targets(systems, ratios, accuracy, 256), "errors": {},
        "notes": ["a note"],
    }


def test_cuda_stage_shares_are_of_the_stage_sum(gpu_result):
    b = gpu_result["systems"]["engine-cuda-fp16"]["batches"]["256"]
    assert sum(b["stage_share"].values()) == pytest.approx(1.0) and "other" not in b["stage_share"]
    assert b["stage_share"]["tokenize"] == pytest.approx(0.3 / 1.2)
    assert b["stage_seconds_over_wall"] == pytest.approx(1.2 / (2048 / 3875.0))
    assert gpu_result["systems"]["engine-cuda-fp16"]["load_warmup_s"] == 0.4


def test_cuda_peak_shares_use_each_systems_peak(gpu_result):
    opt = gpu_result["systems"]["optimum-cuda-fp32"]["batches"]["256"]
    eng = gpu_result["systems"]["engine-cuda-fp32"]["batches"]["256"]
    assert opt["peak_share_real"] == pytest.approx(opt["flops_real"] / opt["seconds"] / GPU_PEAKS["tf32"])
    assert eng["peak_share_real"] == pytest.approx(eng["flops_real"] / eng["seconds"] / GPU_PEAKS["fp32"])
    assert gpu_result["ratios"]["256"]["engine-cuda-fp16"]["vs_hf_fp32"] == pytest.approx(3875 / 323)
    assert gpu_result["ratios"]["256"]["engine-cuda-fp16"]["best_peer"] == "optimum-cuda-fp32"


def test_cuda_targets_judge_the_gpu_goals(gpu_result):
    t = {x["name"]: x for x in gpu_result["targets"]}
    assert t["qa-engine fp16 throughput"]["value"] == 3875.0 and t["qa-engine fp16 throughput"]["met"] is False
    assert t["qa-engine fp16 vs best GPU peer throughput"]["value"] == pytest.approx(3875 / 346)
    host = t["tokenization + decoding share of qa-engine fp16 stage time"]
    assert host["value"] == pytest.approx(0.38 / 1.2) and host["met"] is False
    p99 = t["qa-engine fp16 batch-1 p99 from a fresh load"]
    assert p99["value"] == 81.0 and p99["met"] is False and p99["higher_is_better"] is False
    fp32 = t["qa-engine fp32 (CUDA) answers identical to PyTorch fp32 (CUDA)"]
    assert fp32["value"] == pytest.approx(297 / 300) and fp32["met"] is False
    assert analysis.cuda_targets({}, {}, {}, 256)[0]["met"] is None  # not measured, not failed


def test_cuda_report_renders_every_gpu_section(gpu_result, tmp_path):
    md = render_markdown(gpu_result)
    assert md.startswith("# qa-engine benchmark: Test GPU (CUDA), 16 host cores")
    assert "fresh process, one repetition." in md
    assert "fp16 700.0 TFLOP/s, fp32 50.0 TFLOP/s (no TF32), TF32 350.0 TFLOP/s" in md
    assert "| HF pipeline, Optimum ORT fp32 (CUDA) | 300.0 | 346.0 |" in md
    assert "| qa-engine fp16 (CUDA) | 200 | 2.70 | 60.00 | 81.00 | 2.60 | 3.30 | 3.80 |" in md
    assert "share of fp16 peak (unpadded)" in md and "| HF pipeline, Optimum ORT fp32 (CUDA) | tf32 |" in md
    assert "| qa-engine fp16 (CUDA) | 256 | 25.0% | 1.7% | 66.7% | 6.7% | 31.7% |" in md
    assert "stage sum / wall time" in md and "## Concurrent clients" in md
    assert "| batcher, threads | 64 | 2048 | 2,400.0 | 25.00 | 50.00 | 60.0 |" in md
    assert "threads: 6.00× the per-request throughput" in md
    assert "≥ 10,000 q/s" in md and "3,875 q/s" in md and "≤ 5.0 ms" in md and "81.0 ms" in md
    assert "same answer as HF fp32 (CUDA)" in md and "| qa-engine fp32 (CUDA) | 99.0% |" in md
    assert "GPU memory MB" in md and "| 0.40 |" in md and "onnxruntime profile" not in md
    assert "## Host pipeline against a simulated GPU\n\n(host pipeline benchmark not run)" in md
    run = {"wall_s": 0.2, "model_s": 0.19, "host_s": 0.1, "qps": 10240.0, "bound_s": 0.19, "efficiency": 0.95,
           "stages_s": {"tokenize": 0.08, "bucket": 0.002, "run": 0.19, "decode": 0.018}}
    gpu_result["host"] = {"questions": 2048, "batch_size": 256, "seconds_per_token": 2.29e-7,
                          "runs": [{"model": "simulated", "overlap": True, **run}]}
    assert "| simulated | on | 10,240 | 200 | 190 | 100 | 80 | 2 | 18 | 95% |" in render_markdown(gpu_result)
    assert "qa-engine fp16 (CUDA)" in console_table(gpu_result)
    write_report(gpu_result, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["meta"]["device"] == "cuda"
    for name in ("report.md", "throughput.png", "latency.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_cuda_models_get_their_own_fp16_artifact_and_optimum_o4_export(monkeypatch, tmp_path):
    import qa_engine.export.pipeline
    from qa_engine.benchmarks import models
    from transformers import DistilBertConfig

    calls = []

    def fake_artifact(checkpoint, out, precisions, **kwargs):
        calls.append(("artifact", Path(out).name, tuple(precisions)))
        Path(out).mkdir(parents=True)
        (Path(out) / "qa_engine.json").write_text("{}")

    def fake_optimum(checkpoint, out, per_channel, quantize, workdir, o4=False):
        calls.append(("optimum", quantize, o4))
        assert workdir == work.resolve()
        out.mkdir(parents=True, exist_ok=True)
        if quantize:
            (out / models.OPTIMUM_INT8).write_text("")
        if o4:
            (out / models.OPTIMUM_O4).write_text("")

    monkeypatch.setattr(qa_engine.export.pipeline, "export_artifact", fake_artifact)
    monkeypatch.setattr(models, "export_optimum", fake_optimum)
    checkpoint = tmp_path / "ckpt"
    DistilBertConfig(vocab_size=100, dim=32, n_layers=1, n_heads=2, hidden_dim=64).save_pretrained(checkpoint)
    work = tmp_path / "work"
    cuda = models.checkpoint_model(work, "accuracy", checkpoint, True, "cuda")
    assert calls == [("artifact", "artifact-cuda", ("fp32", "fp16")), ("optimum", False, True)]
    assert cuda.artifact.name == "artifact-cuda" and cuda.shape.hidden == 32
    cpu = models.checkpoint_model(work, "accuracy", checkpoint, True, "cpu")
    assert calls[2:] == [("artifact", "artifact", ("fp32", "int8")), ("optimum", True, False)]
    assert cpu.artifact.name == "artifact"
    calls.clear()
    assert models.checkpoint_model(work, "accuracy", checkpoint, True, "cuda") == cuda and calls == []


def test_missing_packages_are_named_before_the_run(monkeypatch, tmp_path):
    import importlib.util

    import qa_engine.benchmarks.run

    real = importlib.util.find_spec
    absent = {"matplotlib", "accelerate"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in absent else real(name, *a))
    monkeypatch.setattr(qa_engine.benchmarks.run, "run", lambda cfg: pytest.fail("the run started without its packages"))
    cfg = BenchConfig(data="d", out=tmp_path, workdir=tmp_path / "work", device="cuda")
    assert qa_engine.benchmarks.run.missing_packages(cfg) == ["matplotlib", "accelerate"]
    # the tiny model already trained, or a trained accuracy model given: no training stack needed
    (tmp_path / "work" / "tiny-bert").mkdir(parents=True)
    (tmp_path / "work" / "tiny-bert" / "metrics.json").write_text("{}")
    assert qa_engine.benchmarks.run.missing_packages(cfg) == ["matplotlib"]
    assert qa_engine.benchmarks.run.missing_packages(BenchConfig(data="d", out=tmp_path, accuracy_model=tmp_path)) == \
        ["matplotlib"]
    args = _args("--device", "cuda", "--workdir", str(tmp_path / "none"))
    with pytest.raises(ValueError, match="needs matplotlib, accelerate: pip install matplotlib accelerate"):
        args.func(args)
    absent.clear()
    assert qa_engine.benchmarks.run.missing_packages(cfg) == []


def test_cuda_run_wires_jobs_into_one_report(monkeypatch, tmp_path):
    """run() for --device cuda with the models, the GPU and the worker processes replaced: which jobs it starts,
    and how their results land in the report (agreement on the accuracy questions, concurrency, GPU peaks)."""
    import qa_engine.benchmarks.run as run_module
    from qa_engine.benchmarks.models import PreparedModel
    from qa_engine.benchmarks.workload import Workload

    ids = tuple(f"q{i}" for i in range(40))
    work = Workload("x", 0, ids, tuple(f"질문 {i}" for i in ids), tuple(f"문맥 {i}" for i in ids),
                    {i: ["가"] for i in ids})
    model = PreparedModel("speed", "fake", tmp_path, tmp_path / "artifact-cuda", tmp_path / "optimum", SHAPE, True)
    accuracy = PreparedModel("accuracy", "fake tiny", tmp_path, tmp_path / "a", tmp_path / "o", SHAPE, False)
    started = []

    def fake_job(job, prepared, workload_file, cfg, logs):
        started.append((job.role, job.system, job.batch_sizes, prepared.role))
        if job.role == "concurrency":
            return {"concurrency": {"clients": cfg.clients, "max_batch_size": cfg.clients, "rows": [], "summary": {}},
                    "batches": {}}
        n = cfg.accuracy_questions if job.role == "accuracy" else len(work)
        wrong = job.system == "engine-cuda-fp32" and job.role == "accuracy"
        run = _gpu_run(job.system, 1000.0, job.system.startswith("engine"))
        run["batches"] = {str(b): {**_gpu_batch(1000.0, n), "answers": ["나" if wrong and i == 0 else "가"
                                                                        for i in range(n)]}
                          for b in job.batch_sizes if b != 1}
        if 1 in job.batch_sizes:
            run["batches"]["1"] = _gpu_run(job.system, 1000.0, False)["batches"]["1"]
        return run

    monkeypatch.setattr(run_module, "load_workload", lambda data, n, seed: (work, []))
    monkeypatch.setattr(run_module, "speed_model", lambda *a: model)
    monkeypatch.setattr(run_module, "tiny_bert_checkpoint", lambda workdir, quick: tmp_path)
    monkeypatch.setattr(run_module, "checkpoint_model", lambda *a: accuracy)
    monkeypatch.setattr(run_module, "gpu_info", lambda: {"name": "Fake GPU"})
    monkeypatch.setattr(run_module, "cuda_peaks", lambda n: dict(GPU_PEAKS))
    monkeypatch.setattr(run_module, "gemm_peaks", lambda n: pytest.fail("CPU GEMM peaks in a CUDA run"))
    monkeypatch.setattr(run_module, "profile_engine", lambda *a: pytest.fail("CPU profile in a CUDA run"))
    monkeypatch.setattr(run_module, "run_job", fake_job)
    # every system in this interpreter (no peers' environment), so the decoder benchmark runs in-process, replaced
    monkeypatch.setattr(run_module.environments, "interpreter", lambda family, workdir: sys.executable)
    monkeypatch.setattr(run_module, "sample", lambda *a: work)
    monkeypatch.setattr(run_module, "decoder_benchmark", lambda *a: None)
    monkeypatch.setattr(run_module, "windows_benchmark", lambda *a: None)
    monkeypatch.setattr(run_module, "host_benchmark", lambda *a: None)
    monkeypatch.setattr(run_module, "_token_stats", lambda *a: {"windows": 50, "real_tokens_per_window": 300.0})
    cfg = BenchConfig(data="x", out=tmp_path / "out", workdir=tmp_path / "work", device="cuda", questions=40,
                      batch_sizes=(1, 256), target_batch=256, repeats=1, accuracy_questions=10, clients=8)
    result = run_module.run(cfg, progress=False)
    assert [(r, s) for r, s, _, _ in started if r != "speed"] == \
        [("concurrency", "engine-cuda-fp16")] + [("accuracy", s) for s in CUDA_SYSTEMS]
    assert {p for r, _, _, p in started if r == "accuracy"} == {"accuracy"}
    assert {p for r, _, _, p in started if r != "accuracy"} == {"speed"}
    assert result["accuracy"]["engine-cuda-fp32"]["agreement_with_hf_fp32"] == pytest.approx(0.9)
    assert result["meta"]["device"] == "cuda" and result["meta"]["accuracy_questions"] == 10
    assert result["concurrency"]["engine-cuda-fp16"]["clients"] == 8
    assert result["hardware"]["gpu"]["name"] == "Fake GPU" and result["hardware"]["peaks"] == GPU_PEAKS
    assert [t["name"] for t in result["targets"]][0] == "qa-engine fp16 throughput"
    assert result["systems"]["engine-cuda-fp16"]["batches"]["1"]["second_pass"]["latency_ms"]["p99"] == 3.8
