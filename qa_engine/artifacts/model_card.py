"""The model card (README.md) a pushed artifact gets: base model, data, per-variant validation, how it was made.

`qa-engine export` records how it made an artifact in provenance.json beside the manifest (the command
line, and the base model and training data from the checkpoint's train_config.json), so a card
written later by `qa-engine push` can still say it.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Sequence

from qa_engine.artifacts.atomic import atomic_write_text
from qa_engine.artifacts.manifest import Manifest
from qa_engine.core.constants import TRAIN_CONFIG

PROVENANCE_NAME = "provenance.json"
METRICS = "metrics.json"


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or {} when it is missing or not an object (provenance is best effort)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def record_provenance(folder: str | Path, argv: Sequence[str], checkpoint: str | Path) -> dict[str, Any]:
    """Write provenance.json into the artifact `folder`: the `qa-engine` command line that made it and what
    the checkpoint's training run recorded (base model, training data, held-out scores)."""
    train = _read_json(Path(checkpoint) / TRAIN_CONFIG)
    metrics = _read_json(Path(checkpoint) / METRICS)
    base = train.get("model") or _read_json(Path(checkpoint) / "config.json").get("_name_or_path") or str(checkpoint)
    record: dict[str, Any] = {
        "command": shlex.join(["qa-engine", *argv]),
        "checkpoint": str(checkpoint),
        "base_model": str(base),
        "from_scratch": bool(train.get("model_config")),
        "train_data": train.get("dataset"),
        "scores": {k: metrics[k] for k in ("eval", "test") if isinstance(metrics.get(k), dict)},
    }
    atomic_write_text(Path(folder) / PROVENANCE_NAME, json.dumps(record, ensure_ascii=False, indent=2) + "\n")
    return record


def _is_hub_id(value: object) -> bool:
    from qa_engine.artifacts.hub import is_repo_id

    return isinstance(value, str) and "/" in value and is_repo_id(value) and not Path(value).exists()


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _validation(figures: dict[str, Any]) -> str:
    """A variant's validation figures as one table cell, whatever the exporter recorded."""
    shown = [f"{k.replace('_', ' ')} {_figure(v)}" for k, v in figures.items()
             if k != "data" and isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    return "; ".join(shown) or "not validated"


def _model_lines(manifest: Manifest, made: dict[str, Any]) -> list[str]:
    scratch = " (trained from scratch with its config)" if made.get("from_scratch") else ""
    lines = [f"- base model: {made.get('base_model') or 'not recorded'}{scratch}",
             f"- training data: {made.get('train_data') or 'not recorded'}"]
    for split, scores in made.get("scores", {}).items():
        if "exact_match" in scores and "f1" in scores:
            source = scores.get("source") or f"its {split} set"
            lines.append(f"- {split} scores of the checkpoint: EM {_figure(scores['exact_match'])}, "
                         f"F1 {_figure(scores['f1'])} on {source}")
    fused = ", ".join(f"{k} {v}" for k, v in manifest.fusion.items()) or "nothing"
    return lines + [
        f"- windows: max_length {manifest.max_length}, doc_stride {manifest.doc_stride}; "
        f"answers up to {manifest.max_answer_length} tokens",
        f"- ONNX opset {manifest.opset}; fused: {fused}",
    ]


def render(manifest: Manifest, repo_id: str, provenance: dict[str, Any] | None = None) -> str:
    """The model card for `manifest` published as `repo_id`: YAML metadata the hub indexes, then Markdown."""
    made = provenance or {}
    base, data = made.get("base_model"), made.get("train_data")
    meta = ["library_name: qa-engine", "pipeline_tag: question-answering", "language:", "- ko",
            "tags:", "- onnx", "- question-answering", "- qa-engine"]
    if _is_hub_id(base) and not made.get("from_scratch"):
        meta.append(f"base_model: {base}")
    if _is_hub_id(data):
        meta += ["datasets:", f"- {data}"]
    sources = sorted({str(v.validation["data"]) for v in manifest.variants.values() if v.validation.get("data")})
    lines = ["---", *meta, "---", "", f"# {repo_id}", "",
             f"Extractive question answering: a {manifest.model_type} model exported to ONNX by qa-engine, "
             f"in {len(manifest.variants)} precision(s) ({', '.join(manifest.variants)}). Answers are spans of the "
             "context with character offsets and a score, in the Hugging Face question-answering pipeline's format.",
             "", "```python", "from qa_engine import QAEngine  # pip install 'qa-engine[hub]'", "",
             f'engine = QAEngine.from_pretrained("{repo_id}")  # int8 on CPU, fp16 on CUDA',
             'engine.answer(question="철수는 어디에 삽니까?", context="철수는 서울에 삽니다.")', "```", "",
             "Only the manifest, the tokenizer and the one ONNX file chosen for the device are downloaded.", "",
             "## Model", "", *_model_lines(manifest, made), ""]
    lines += ["## Variants", "", "| precision | file | runs on | validated | validation |", "|---|---|---|---|---|"]
    for precision, v in manifest.variants.items():
        checked = "yes" if v.validated else "no"
        cell = _validation(v.validation) + (f" ({v.note})" if v.note else "")
        lines.append(f"| {precision} | `{v.file}` | {'/'.join(v.providers)} | {checked} | {cell} |")
    lines += ["", f"Validation data: {', '.join(sources) or 'not recorded'}.", "", "## How it was made", ""]
    if made.get("command"):
        lines += ["```bash", made["command"], "```", ""]
    else:
        lines += ["Exported with `qa-engine export` (the command line was not recorded).", ""]
    if manifest.versions:
        lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in manifest.versions.items()) + ".", ""]
    return "\n".join(lines)


def card_for(folder: str | Path, repo_id: str) -> str:
    """The card of the artifact in `folder`, from its manifest and its provenance.json when export wrote one."""
    folder = Path(folder)
    return render(Manifest.read(folder), repo_id, _read_json(folder / PROVENANCE_NAME) or None)
