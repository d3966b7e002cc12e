"""Render the benchmark result dict as Markdown (report.md), JSON (report.json) and a console table."""
from __future__ import annotations

import json
import math
from pathlib import Path

from qa_engine.artifacts.atomic import atomic_write_text

from .analysis import STAGES, TARGET_BATCH
from .hardware import peak_kernel
from .systems import SYSTEMS


def _cuda(result: dict) -> bool:
    return result["meta"].get("device", "cpu") == "cuda"


def _num(v: float | None, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:,.{digits}f}"


def _pct(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{100 * v:.{digits}f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def _with_unit(value: float, unit: str, goal: bool = False) -> str:
    if unit == "peak share" and not goal:
        return share_of_peak(value)
    if unit in ("share", "peak share"):
        return _pct(value, 0 if goal else 1)
    if unit == "q/s":
        return f"{value:,.0f} q/s"
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:g}×" if goal else f"{value:.2f}×"


def _target_value(t: dict) -> str:
    return "–" if t["value"] is None else _with_unit(t["value"], t["unit"])


def _target_goal(t: dict) -> str:
    return ("≥ " if t["higher_is_better"] else "≤ ") + _with_unit(t["target"], t["unit"], goal=True)


def _verdict(t: dict) -> str:
    if t["met"] is None:
        return "not measured"
    if t["unit"] == "peak share" and t["value"] > 1:
        return "not judged: the peak is too low"
    if t["higher_is_better"]:
        gap = t["value"] / t["target"]
        return f"met ({gap:.2f}× the target)" if t["met"] else f"missed ({100 * (1 - gap):.0f}% short)"
    over = t["value"] / t["target"]
    return f"met ({100 * (1 - over):.0f}% under)" if t["met"] else f"missed ({100 * (over - 1):.0f}% over)"


def targets_section(result: dict) -> list[str]:
    rows = [[t["name"], _target_value(t), _target_goal(t), _verdict(t), t["detail"]] for t in result["targets"]]
    return _table(["target", "measured", "goal", "result", "where"], rows)


def throughput_section(result: dict) -> list[str]:
    sizes = [str(b) for b in result["meta"]["batch_sizes"]]
    tb = str(result["meta"].get("target_batch", TARGET_BATCH))
    rows = []
    for name, s in result["systems"].items():
        r = result["ratios"].get(tb, {}).get(name, {})
        rows.append([s["label"], *(_num(s["batches"].get(b, {}).get("questions_per_s")) for b in sizes),
                     _num(r.get("vs_hf_fp32"), 2) + "×", _num(r.get("vs_best_peer"), 2) + "×"])
    return _table(["system", *(f"batch {b}" for b in sizes), f"vs HF fp32 (b{tb})", f"vs best peer (b{tb})"], rows)


def latency_section(result: dict) -> list[str]:
    if _cuda(result):
        return cuda_latency_section(result)
    rows = []
    for s in result["systems"].values():
        lat = s["batches"].get("1", {}).get("latency_ms")
        if lat:
            rows.append([s["label"], str(s["batches"]["1"]["questions"]), _num(lat["p50"]), _num(lat["p95"]),
                         _num(lat["p99"])])
    return _table(["system", "questions", "p50 ms", "p95 ms", "p99 ms"], rows) if rows else ["(batch 1 not run)"]


def cuda_latency_section(result: dict) -> list[str]:
    """Batch 1 from a fresh load (first pass) next to the same questions again (second pass)."""
    rows = []
    for s in result["systems"].values():
        b = s["batches"].get("1", {})
        first, second = b.get("latency_ms"), b.get("second_pass", {}).get("latency_ms")
        if first:
            again = [_num(second[k], 2) for k in ("p50", "p95", "p99")] if second else ["–"] * 3
            rows.append([s["label"], str(b["questions"]), *(_num(first[k], 2) for k in ("p50", "p95", "p99")),
                         *again])
    if not rows:
        return ["(batch 1 not run)"]
    return _table(["system", "questions", "first pass p50 ms", "p95 ms", "p99 ms", "second pass p50 ms", "p95 ms",
                   "p99 ms"], rows)


OVER_PEAK = "over peak (measurement error)"


def share_of_peak(share: float | None) -> str:
    """A share of a matrix peak; above 100% the peak was measured on a slower kernel than the system ran, so the
    figure is flagged instead of printed."""
    return OVER_PEAK if share is not None and share > 1 else _pct(share)


def efficiency_section(result: dict) -> list[str]:
    tb = str(result["meta"].get("target_batch", TARGET_BATCH))
    peaks = result["hardware"]["peaks"]
    cuda = _cuda(result)
    rows = []
    for s in result["systems"].values():
        b = s["batches"].get(tb)
        if not b:
            continue
        peak = s.get("peak", s["precision"])
        row = [s["label"], peak if cuda else s["precision"], _num(peaks[peak] / 1e12, 2 if not cuda else 1),
               _num(b["flops_real"] / b["seconds"] / 1e12, 3), share_of_peak(b["peak_share_real"]),
               share_of_peak(b["peak_share_padded"]), _pct(b["pad_overhead"], 0)]
        if cuda:
            row.insert(5, share_of_peak(b["flops_real"] / b["seconds"] / peaks["fp16"]))
        rows.append(row)
    header = ["system", "precision", "peak T(FL)OP/s", "achieved T/s (unpadded)", "share of peak (unpadded)",
              "share of peak (padded)", "padding overhead"]
    if cuda:
        header[1] = "peak of"
        header.insert(5, "share of fp16 peak (unpadded)")
    return _table(header, rows)


def stages_section(result: dict) -> list[str]:
    if _cuda(result):
        return cuda_stages_section(result)
    tb = str(result["meta"].get("target_batch", TARGET_BATCH))
    rows = []
    for s in result["systems"].values():
        for bs, b in s["batches"].items():
            if "stage_share" in b and bs in (tb, "1"):
                rows.append([s["label"], bs, *(_pct(b["stage_share"][k]) for k in (*STAGES, "other"))])
    return _table(["system", "batch", *STAGES, "other"], rows) if rows else ["(no stage profile)"]


def cuda_stages_section(result: dict) -> list[str]:
    """Every batch size's stage shares of the stages' sum, and that sum against the wall time (over 100%: overlap)."""
    rows = []
    for s in result["systems"].values():
        for bs in sorted(s["batches"], key=int):
            b = s["batches"][bs]
            if "stage_share" in b:
                rows.append([s["label"], bs, *(_pct(b["stage_share"][k]) for k in STAGES),
                             _pct(b["stage_share"]["tokenize"] + b["stage_share"]["decode"]),
                             _pct(b.get("stage_seconds_over_wall"), 0)])
    if not rows:
        return ["(no stage profile)"]
    return ["With the overlap pipeline the host stages run while the model runs, so the stage times add up to more "
            "than the wall time: shares are of the stages' sum, and the last column gives that sum over the "
            "end-to-end time.", "",
            *_table(["system", "batch", *STAGES, "tokenize + decode", "stage sum / wall time"], rows)]


def accuracy_section(result: dict) -> list[str]:
    rows = []
    speed = result.get("speed_model_agreement", {})
    for name, a in result["accuracy"].items():
        rows.append([SYSTEMS[name].label, _pct(a["agreement_with_hf_fp32"]), _num(a["exact_match"], 2),
                     _num(a["f1"], 2), _pct(speed.get(name))])
    reference = "same answer as HF fp32 (CUDA)" if _cuda(result) else "same answer as HF fp32"
    return _table(["system", reference, "EM", "F1", "same answer, speed model (random weights)"], rows)


def memory_section(result: dict) -> list[str]:
    if _cuda(result):
        rows = [[s["label"], _num(s.get("gpu_memory_mb"), 0), _num(s["rss_peak_mb"], 0), _num(s["load_s"], 1),
                 _num(s.get("load_warmup_s"), 2)] for s in result["systems"].values()]
        return _table(["system", "GPU memory MB (nvidia-smi, end of job)", "peak RSS MB", "load s",
                       "of which qa-engine's warm-up s"], rows)
    rows = [[s["label"], _num(s["rss_peak_mb"], 0), _num(s["rss_after_load_mb"], 0), _num(s["load_s"], 1)]
            for s in result["systems"].values()]
    return _table(["system", "peak RSS MB", "RSS after load MB", "load s"], rows)


def software_section(result: dict) -> list[str]:
    """The interpreter and stack each system ran on (Optimum may have an environment of its own)."""
    names = ["python", "torch", "transformers", "optimum-onnx", "onnxruntime", "openvino", "nncf"]
    rows = []
    for name, versions in result.get("software", {}).items():
        ort = versions.get("onnxruntime-gpu") and f"{versions['onnxruntime-gpu']} (-gpu)"
        row = {**versions, "onnxruntime": ort or versions.get("onnxruntime", "–")}
        if SYSTEMS[name].family != "openvino":  # installed beside qa-engine, but only the OpenVINO peers run it
            for key in ("openvino", "nncf"):
                row.pop(key, None)
        rows.append([SYSTEMS[name].label, *(row.get(n, "–") for n in names)])
    return _table(["system", *names], rows) if rows else []


def concurrency_section(result: dict) -> list[str]:
    """Single-question clients served by per-request calls and by the micro-batcher (benchmarks/bench_concurrency)."""
    lines = []
    for name, c in result.get("concurrency", {}).items():
        rows = [[r["mode"], str(r["clients"]), str(r["questions"]), _num(r["questions_per_s"]), _num(r["p50_ms"], 2),
                 _num(r["p99_ms"], 2), _num(r["mean_batch"])] for r in c["rows"]]
        gains = "; ".join(f"{kind}: {v['throughput_x']:.2f}× the per-request throughput, p99 "
                          f"{v['p99_over_per_request_p99']:.2f}× per-request's"
                          for kind, v in c["summary"].items())
        lines += [f"**{SYSTEMS[name].label}**, {c['clients']} closed-loop clients, batcher max_batch_size "
                  f"{c['max_batch_size']}: {gains}.", "",
                  *_table(["mode", "clients", "questions", "q/s", "p50 ms", "p99 ms", "mean batch"], rows), ""]
    return lines or ["(not run)"]


def decoder_section(result: dict) -> list[str]:
    d = result.get("decoder")
    if not d:
        return ["(decoder benchmark not run)"]
    return [f"{d['windows']} windows × {d['width']} tokens ({d['questions']} questions), identical random logits, "
            f"top-1, max answer length 30; answers asserted identical.", "",
            *_table(["decoder", "ms", "speed-up"],
                    [["qa_engine.core.spans best_spans + merge_answers", _num(d["engine_ms"], 2),
                      _num(d["speedup"], 0) + "×"],
                     ["HF pipeline postprocess, per question", _num(d["hf_ms"], 1), "1×"]])]


def windows_section(result: dict) -> list[str]:
    w = result.get("windows")
    if not w:
        return ["(window benchmark not run)"]
    return [f"{w['questions']} questions ({w['contexts']} distinct contexts) cut into {w['windows']} windows; "
            f"goal: windows() at most {w['target_ratio']}× its Rust encode calls.", "",
            *_table(["step", "ms", "ratio"],
                    [["Rust encode calls (contexts, questions)", _num(w["encode_ms"], 1), "1×"],
                     ["WindowTokenizer.windows (encode included)", _num(w["windows_ms"], 1),
                      _num(w["ratio"], 2) + "×"]])]


def host_section(result: dict) -> list[str]:
    h = result.get("host")
    if not h:
        return ["(host pipeline benchmark not run)"]
    rows = [[r["model"], "on" if r["overlap"] else "off", _num(r["qps"], 0), _num(r["wall_s"] * 1e3, 0),
             _num(r["model_s"] * 1e3, 0), _num(r["host_s"] * 1e3, 0),
             *(_num(r["stages_s"][k] * 1e3, 0) for k in ("tokenize", "bucket", "decode")), _pct(r["efficiency"], 0)]
            for r in h["runs"]]
    return [f"{h['questions']} questions at batch {h['batch_size']} in CUDA shapes, answered by the engine with a "
            f"model that only waits, with the GIL released, {h['seconds_per_token'] * 1e9:.0f} ns per padded token "
            "(the fused fp16 mBERT-shape model on an H200: 22.5 ms per [256, 384] call), or not at all (instant). "
            "The host work runs on this machine's cores. The bound, max(host, model), is the least any pipeline "
            "could take; the last column is how close the wall time comes to it (with overlap the host stages run on "
            "two threads at once, so their sum may exceed the wall time).", "",
            *_table(["model", "overlap", "q/s", "wall ms", "model ms", "host ms", "tokenize ms", "bucket ms",
                     "decode ms", "bound / wall"], rows)]


def profile_section(result: dict, top: int = 8) -> list[str]:
    lines = []
    peaks = result["hardware"]["peaks"]
    for precision, prof in result.get("ort_profile", {}).items():
        peak = peaks[precision]
        lines += [
            f"**{precision}**: {prof['questions']} questions at batch {prof['batch_size']}, {prof['runs']} model runs, "
            f"{prof['model_run_ms']:,.0f} ms in the model. Dense products (output projection, FFN) reach "
            f"{prof['dense_ops_per_s'] / 1e12:.3f} T/s ({_pct(prof['dense_ops_per_s'] / peak)} of the {precision} "
            f"peak), fused attention {prof['attention_ops_per_s'] / 1e12:.3f} T/s "
            f"({_pct(prof['attention_ops_per_s'] / peak)}), on padded tokens.", "",
            *_table(["op type", "ms", "share", "calls"],
                    [[o["op"], _num(o["ms"], 0), _pct(o["share"]), str(o["calls"])] for o in prof["ops"][:top]]),
            "",
        ]
    return lines or ["(not profiled)"]


HF_SETTINGS = ("- HF pipelines run with `align_to_words=False` (qa-engine answers on token offsets too) and "
               "max_answer_len 30, max_seq_len 384, doc_stride 128.")
FLOPS_RULE = ("FLOPs = 2 · non-embedding params · tokens + 4 · L² · d per layer per window, on the tokens each system "
              "really ran (padded) and on the real tokens only (unpadded)")


PEAK_KERNELS = {
    "fp32_numpy": "numpy", "fp32_torch": "torch", "fp32_ort": "onnxruntime MatMul", "bf16_torch": "torch",
    "int8_ort": "onnxruntime MatMulInteger", "int8_ort_to_float": "onnxruntime MatMulIntegerToFloat",
    "int8_ort_dynamic": "onnxruntime DynamicQuantizeMatMul", "int8_openvino": "OpenVINO int8 MatMul",
}


def peaks_line(peaks: dict[str, float], precision: str) -> str:
    """'fp32 0.210 TFLOP/s (onnxruntime MatMul; numpy 0.180, torch 0.190)': the peak, its kernel, the others."""
    unit = "TOP/s" if precision == "int8" else "TFLOP/s"
    best = peak_kernel(peaks, precision)
    others = [f"{PEAK_KERNELS.get(k, k)} {v / 1e12:.3f}" for k, v in peaks.items()
              if k.startswith(f"{precision}_") and k != best]
    figure = f"{precision} {peaks[precision] / 1e12:.3f} {unit}"
    return figure if best == precision else f"{figure} ({'; '.join([PEAK_KERNELS.get(best, best), *others])})"


def openvino_lines(result: dict) -> list[str]:
    """How the OpenVINO peers were built and run, with the versions (none without OpenVINO systems)."""
    info = result.get("openvino")
    if not info:
        return []
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    c = info["calibration"]
    return [f"- OpenVINO peers ({versions}; optimum-intel does not install beside the peers' transformers, so "
            "OpenVINO's own API): IR from `ov.convert_model` of the PyTorch checkpoint, dynamic [batch, length] "
            "inputs; int8 from `nncf.quantize(model_type=ModelType.TRANSFORMER)` calibrated on the "
            f"{c['windows']} windows of {c['questions']} questions ({c['data']}) that qa-engine's static int8 is "
            "calibrated on; compiled for the CPU with `PERFORMANCE_HINT=LATENCY` and `INFERENCE_PRECISION_HINT` "
            "f32 (bf16 for the bf16 peer). qa-engine's tokenizer, call planning and span decoder run around it: "
            "only the model runner differs from qa-engine's."]


def _speed_model_line(result: dict) -> str:
    speed = result["models"]["speed"]
    return (f"- Speed model: {speed['description']}; {speed.get('tokens_per_char') or 0:.3f} tokens per context "
            "character. Throughput does not depend on weight values (dense kernels, same shapes), so random weights "
            "time exactly what trained weights would.")


def _host_sections(result: dict, suffix: str) -> list[str]:
    """Decoder, window building and the simulated-GPU pipeline: the host-side sections both reports carry."""
    return ["## Decoder micro-benchmark" + suffix, "", *decoder_section(result), "",
            "## Window building" + suffix, "", *windows_section(result), "",
            "## Host pipeline against a simulated GPU", "", *host_section(result), ""]


def _closing_sections(result: dict) -> list[str]:
    lines = ["## Software per system", "", *software_section(result), ""] if result.get("software") else []
    if result.get("errors"):
        lines += ["## Failed systems", "", *(f"- {k}: {v}" for k, v in result["errors"].items()), ""]
    if result.get("notes"):
        lines += ["## Notes", "", *(f"- {n}" for n in result["notes"]), ""]
    return lines


def render_cuda_markdown(result: dict) -> str:
    """The whole human report of a `--device cuda` run: the same sections as the CPU one where they apply, the GPU's
    matrix peaks, batch 1 from a fresh load in two passes, the stage split of overlapping stages, concurrency."""
    m, hw = result["meta"], result["hardware"]
    cpu, gpu, peaks = hw["cpu"], hw["gpu"], hw["peaks"]
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
    tb = m["target_batch"]
    lines = [
        f"# qa-engine benchmark: {gpu['name']} (CUDA), {cpu['physical_cores']} host cores",
        "",
        f"Run {m['date']}; `{m['command']}`",
        "",
        f"- Workload: {m['questions']} questions from `{m['data']}` (seed {m['seed']}); batch 1 on the first "
        f"{m['latency_questions']}, twice, from a fresh load. {m['windows']} windows, "
        f"{m['real_tokens_per_window']:.0f} real tokens per window.",
        _speed_model_line(result),
        f"- Accuracy model: {result['models']['accuracy']['description']}"
        + (f"; answers compared on the first {m['accuracy_questions']} questions." if m.get("accuracy_questions")
           else "."),
        f"- GPU: {gpu['name']}, {gpu['memory_gib']:.0f} GiB, compute capability {gpu['compute_capability']}, "
        f"CUDA {gpu['cuda']}, driver {gpu['driver'] or 'unknown'}. Host: {cpu['model']}, {cpu['physical_cores']} "
        f"cores, 1-minute load average at start {cpu['load_average_1m']:.2f}.",
        f"- Matrix peaks measured in this run (torch {hw.get('gemm_size', 8192)}³ matmul on the GPU, synchronized, "
        f"best of start/end of run): fp16 {peaks['fp16'] / 1e12:.1f} TFLOP/s, fp32 {peaks['fp32'] / 1e12:.1f} "
        f"TFLOP/s (no TF32), TF32 {peaks['tf32'] / 1e12:.1f} TFLOP/s.",
        "- Each system runs in a fresh process, " + (
            "one repetition." if m["repetitions"] == 1 else
            f"{m['repetitions']} repetitions with the system order reversed every other repetition; figures are "
            "the best repetition"
            + ("." if m.get("full_repeats") else f" (repetitions after the first re-measure batch {tb} only).")),
        HF_SETTINGS,
        f"- Versions: {versions}.",
        "",
        "## Targets", "", *targets_section(result), "",
        "## Throughput (questions/s)", "", *throughput_section(result), "",
        "![throughput](throughput.png)", "",
        "## Latency, batch 1 from a fresh load (ms per question)", "", *latency_section(result), "",
        "![latency](latency.png)", "",
        f"## GPU share (batch {tb})", "",
        FLOPS_RULE + "; shares of the peak of the system's matrix math and of the fp16 peak.", "",
        *efficiency_section(result), "",
        "## qa-engine stage split (share of the stages' sum)", "", *stages_section(result), "",
        "## Concurrent clients: micro-batcher against per-request calls", "", *concurrency_section(result),
        "## Answers and accuracy", "", *accuracy_section(result), "",
        "## Memory (fresh process per system)", "", *memory_section(result), "",
        *_host_sections(result, " (host)"),
        *_closing_sections(result),
    ]
    return "\n".join(lines)


def render_markdown(result: dict) -> str:
    """The whole human report."""
    if _cuda(result):
        return render_cuda_markdown(result)
    m, hw = result["meta"], result["hardware"]
    cpu = hw["cpu"]
    peaks = hw["peaks"]
    lines = [
        f"# qa-engine benchmark: {cpu['model']}, {cpu['physical_cores']} cores",
        "",
        f"Run {m['date']}; `{m['command']}`",
        "",
        f"- Workload: {m['questions']} questions from `{m['data']}` (seed {m['seed']}); batch 1 on the first "
        f"{m['latency_questions']}. {m['windows']} windows, {m['real_tokens_per_window']:.0f} real tokens per window.",
        _speed_model_line(result),
        f"- Accuracy model: {result['models']['accuracy']['description']}.",
        f"- CPU: {cpu['model']}, ISA {', '.join(cpu['isa'])}; "
        f"1-minute load average at start {cpu['load_average_1m']:.2f}.",
        f"- GEMM peaks ({hw.get('gemm_size', 4096)}², best of start/end of run), each the fastest kernel measured: "
        + "; ".join(peaks_line(peaks, p) for p in ("fp32", "bf16", "int8")) + ".",
        f"- Each system runs in a fresh process, warmed up, {m['repetitions']} repetitions with the system order "
        "reversed every other repetition; figures are the best repetition"
        + ("." if m.get("full_repeats") else f" (repetitions after the first re-measure batch {m['target_batch']} only)."),
        HF_SETTINGS,
        *openvino_lines(result),
        "",
        "## Targets", "", *targets_section(result), "",
        "## Throughput (questions/s)", "", *throughput_section(result), "",
        "![throughput](throughput.png)", "",
        "## Latency, batch 1 (ms per question)", "", *latency_section(result), "",
        "![latency](latency.png)", "",
        f"## Hardware share (batch {m.get('target_batch', TARGET_BATCH)})", "",
        FLOPS_RULE + ".", "",
        *efficiency_section(result), "",
        "## qa-engine stage split (share of end-to-end time)", "", *stages_section(result), "",
        "## Answers and accuracy", "", *accuracy_section(result), "",
        "## Memory (fresh process per system)", "", *memory_section(result), "",
        *_host_sections(result, ""),
        "## Where qa-engine's model time goes (onnxruntime profile, speed model)", "", *profile_section(result),
        *_closing_sections(result),
    ]
    return "\n".join(lines)


def console_table(result: dict) -> str:
    """Throughput and targets, for the terminal."""
    return "\n".join(["", *throughput_section(result), "", *targets_section(result), ""])


def write_report(result: dict, out: Path) -> None:
    """report.json, report.md and the plots into `out`."""
    from .plots import plot_latency, plot_throughput

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.json", json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    plot_throughput(result, out / "throughput.png")
    plot_latency(result, out / "latency.png")
    atomic_write_text(out / "report.md", render_markdown(result))
    for name in ("report.json", "report.md"):
        (out / name).chmod(0o644)
