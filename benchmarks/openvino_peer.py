"""OpenVINO as a peer on qa-engine's own windows: the IR `qa-engine export --openvino` writes (export/openvino.py),
built here for a benchmark artifact exported without it, with int8 calibrated on the same windows as the artifact's
onnxruntime int8. qa-engine's tokenizer, call planning and span decoder run around it; only the runner differs."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from qa_engine.runners.openvino import IR_OF, OpenVinoRunner, load_runner

log = logging.getLogger(__name__)

INFO = "openvino.json"


def build_ir(checkpoint: Path, artifact: Path, out: Path, data: str | None = None, skip: int = 0) -> Path:
    """fp32 and NNCF int8 IR of `checkpoint` in `out`/openvino (skipped when built), int8 calibrated on the questions
    and windows the artifact's int8 was calibrated on (export.validate's calibration source: `data` past its first
    `skip` validation questions, else the synthetic calibration set); returns that folder."""
    from transformers import AutoModelForQuestionAnswering

    from qa_engine.artifacts.manifest import Manifest
    from qa_engine.core.windows import WindowTokenizer
    from qa_engine.export import openvino as openvino_export
    from qa_engine.export import validate
    from qa_engine.train import relbert  # noqa: F401  (registers the offline tiny model's type)

    folder = out / openvino_export.FOLDER
    if (folder / INFO).is_file():
        return folder
    manifest = Manifest.read(artifact)
    names = tuple(manifest.input_names)
    tokenizer = WindowTokenizer.from_file(artifact / manifest.tokenizer_file)
    limit = manifest.variants["int8"].validation.get("calibration", {}).get("questions", validate.CALIBRATION_QUESTIONS)
    examples, source = validate.calibration_examples(data, limit, skip)
    examples = validate.usable(examples, tokenizer)
    feeds = list(validate.calibration_feeds(examples, tokenizer, names))
    model = AutoModelForQuestionAnswering.from_pretrained(checkpoint, local_files_only=True).eval()
    calibration = {"data": source, "questions": len(examples), "windows": sum(len(f[names[0]]) for f in feeds)}
    record = openvino_export.write_ir(model, names, feeds, out, calibration)
    (folder / INFO).write_text(json.dumps(record, indent=1), encoding="utf-8")
    return folder


def ir_info(folder: Path) -> dict:
    """The build record of an IR folder made by build_ir (files, calibration, versions)."""
    return json.loads((folder / INFO).read_text(encoding="utf-8"))


def load_peer(folder: Path, precision: str, input_names: tuple[str, ...], threads: int) -> OpenVinoRunner:
    """The peer's runner: the IR of `precision` (bf16 compiles the fp32 IR) from a build_ir folder."""
    from qa_engine.export.openvino import IR_FILES

    return load_runner(folder / IR_FILES[IR_OF[precision]], precision, input_names, threads)
