"""Static against dynamic int8 activation scales, same artifact, same questions, one process (export/QUANTIZATION.md,
"Static against dynamic"): does fixing the scales at export cost speed?

    python -m qa_engine.benchmarks.int8_scales --artifact benchmarks/.work/<speed model>/artifact \
        --data ../shared/data/korquad/KorQuAD_v1.0_dev.json

The dynamic graph is onnxruntime's `quantize_dynamic` of the artifact's fused fp32 graph, exactly the graph the
static one starts from (export/quantize.py), written into a copy of the artifact. The two engines answer the same
questions at the same batch size in alternating rounds, so a load from other work falls on both; the figures are
each variant's best round (wall q/s and process CPU ms per window) and the static/dynamic ratios. One JSON line.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from qa_engine import QAEngine
from qa_engine.artifacts.manifest import Manifest, sha256_file
from qa_engine.core.windows import WindowTokenizer

from .workload import Workload, load_workload

log = logging.getLogger(__name__)


def dynamic_copy(artifact: Path, out: Path) -> Path:
    """`artifact` copied to `out` with its int8 variant replaced by the dynamic-scale graph of its fp32 one."""
    from qa_engine.export.quantize import quantize_dynamic_int8

    shutil.copytree(artifact, out)
    manifest = Manifest.read(out)
    int8 = out / manifest.variants["int8"].file
    quantize_dynamic_int8(out / manifest.variants["fp32"].file, int8)
    manifest.variants["int8"].sha256 = sha256_file(int8)
    manifest.write(out)
    return out


def _round(engine: QAEngine, work: Workload, batch_size: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one answer_batch over the workload."""
    wall, cpu = time.perf_counter(), time.process_time()
    engine.answer_batch(list(work.questions), list(work.contexts), batch_size=batch_size)
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(artifact: Path, work: Workload, batch_size: int, rounds: int) -> dict:
    """Best-round throughput and CPU time per window of the static and dynamic int8 graphs, alternating."""
    with tempfile.TemporaryDirectory(prefix="int8-scales-") as tmp:
        engines = {
            "static": QAEngine.from_pretrained(artifact, provider="cpu", precision="int8"),
            "dynamic": QAEngine.from_pretrained(dynamic_copy(artifact, Path(tmp) / "dynamic"), provider="cpu",
                                                precision="int8"),
        }
        windows = len(WindowTokenizer.from_file(artifact / Manifest.read(artifact).tokenizer_file).windows(work.questions, work.contexts))
        for engine in engines.values():  # warm-up: every call shape once
            _round(engine, work, batch_size)
        best = {name: (float("inf"), float("inf")) for name in engines}
        for i in range(rounds):
            for name in (("static", "dynamic") if i % 2 == 0 else ("dynamic", "static")):
                wall, cpu = _round(engines[name], work, batch_size)
                best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
                log.info("round %d %s: %.2f s wall, %.2f s CPU", i, name, wall, cpu)
    figures = {name: {"questions_per_s": len(work) / wall, "cpu_ms_per_window": 1000 * cpu / windows}
               for name, (wall, cpu) in best.items()}
    return {
        "questions": len(work), "windows": windows, "batch_size": batch_size, "rounds": rounds, **figures,
        "static_over_dynamic_throughput": figures["static"]["questions_per_s"] / figures["dynamic"]["questions_per_s"],
        "static_over_dynamic_cpu": figures["static"]["cpu_ms_per_window"] / figures["dynamic"]["cpu_ms_per_window"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, required=True, help="a qa-engine artifact with fp32 and int8")
    parser.add_argument("--data", required=True, help="SQuAD-format file or hub id (its validation split)")
    parser.add_argument("--questions", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds per variant, alternating")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work, _ = load_workload(args.data, args.questions, args.seed)
    print(json.dumps(compare(args.artifact, work, args.batch_size, args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
