"""Where the engine's model time goes: onnxruntime's per-operator profile of a real engine run, summed by op type."""
from __future__ import annotations

import json
import logging
import tempfile
from collections import defaultdict
from pathlib import Path

from .flops import ModelShape, TokenCounts
from .workload import Workload

log = logging.getLogger(__name__)

TOP_NODES = 12
# op types doing the layers' dense products outside attention (output projection, FFN), fp32 or int8
DENSE_OPS = ("MatMul", "FusedMatMul", "Gemm", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat")
ATTENTION_OPS = ("Attention", "QAttention", "MultiHeadAttention")


def summarize_trace(events: list[dict], skip_runs: int = 0) -> dict:
    """Kernel time per op type and the slowest nodes, from onnxruntime's Chrome-trace event list,
    leaving out the first `skip_runs` model runs (warm-up)."""
    run_events = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                        key=lambda e: e["ts"])
    cutoff = run_events[skip_runs - 1]["ts"] + run_events[skip_runs - 1]["dur"] if skip_runs else -1
    events = [e for e in events if e.get("ts", 0) > cutoff]
    by_op: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    by_node: dict[str, list] = defaultdict(lambda: [0.0, ""])
    run_us = 0.0
    runs = 0
    for e in events:
        if e.get("cat") == "Session" and e.get("name") == "model_run":
            run_us += e["dur"]
            runs += 1
        elif e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            by_op[op][0] += e["dur"]
            by_op[op][1] += 1
            node = e["name"][: -len("_kernel_time")]
            by_node[node][0] += e["dur"]
            by_node[node][1] = op
    kernel_us = sum(v[0] for v in by_op.values())
    ops = sorted(({"op": k, "ms": v[0] / 1e3, "calls": v[1], "share": v[0] / kernel_us if kernel_us else 0.0}
                  for k, v in by_op.items()), key=lambda r: -r["ms"])
    nodes = sorted(({"node": k, "op": v[1], "ms": v[0] / 1e3} for k, v in by_node.items()), key=lambda r: -r["ms"])
    return {"runs": runs, "model_run_ms": run_us / 1e3, "kernel_ms": kernel_us / 1e3, "ops": ops,
            "top_nodes": nodes[:TOP_NODES]}


def op_rates(ops: list[dict], shape: ModelShape, counts: dict) -> dict[str, float]:
    """Achieved op/s of the dense-product ops and of the fused attention ops, on the padded tokens they ran."""
    d, f, layers = shape.hidden, shape.ffn, shape.layers
    dense = 2.0 * layers * (d * d + 2 * d * f) * counts["padded"]
    attention = layers * (2.0 * 3 * d * d * counts["padded"] + 4.0 * d * counts["padded_sq"])
    ms = {name: sum(o["ms"] for o in ops if o["op"] in group) for name, group in
          (("dense", DENSE_OPS), ("attention", ATTENTION_OPS))}
    return {"dense_ops_per_s": dense / (ms["dense"] / 1e3) if ms["dense"] else 0.0,
            "attention_ops_per_s": attention / (ms["attention"] / 1e3) if ms["attention"] else 0.0}


def profile_engine(artifact: Path, precision: str, work: Workload, shape: ModelShape, batch_size: int = 32) -> dict:
    """Run the engine over the workload with a profiling session in place of its own; summarize the trace."""
    import onnxruntime as ort

    from qa_engine.engine import QAEngine
    from qa_engine.runners import sessions
    from qa_engine.runners.onnx import OnnxRunner

    from .systems import counted

    loaded = QAEngine.from_pretrained(artifact, provider="cpu", precision=precision, verify=False)
    model_file = artifact / json.loads((artifact / "qa_engine.json").read_text())["variants"][precision]["file"]
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as tmp:
        options = sessions.session_options()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / precision)
        session = ort.InferenceSession(str(model_file), sess_options=options, providers=[sessions.CPU])
        engine = QAEngine(OnnxRunner(session, "cpu", precision, loaded.runner.input_names), loaded.tokenizer,
                          loaded.settings)
        warmup, measured = TokenCounts(), TokenCounts()
        counted(engine, warmup).answer_batch(work.questions[:batch_size], work.contexts[:batch_size],
                                             batch_size=batch_size)
        counted(engine, measured).answer_batch(work.questions, work.contexts, batch_size=batch_size)
        trace = json.loads(Path(session.end_profiling()).read_text())
    summary = summarize_trace(trace, skip_runs=warmup.calls)
    summary.update(op_rates(summary["ops"], shape, measured.as_dict()), tokens=measured.as_dict())
    log.info("%s profile: %.0f ms in %d runs; top ops: %s", precision, summary["model_run_ms"], summary["runs"],
             ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in summary["ops"][:5]))
    return {"precision": precision, "batch_size": batch_size, "questions": len(work), **summary}
