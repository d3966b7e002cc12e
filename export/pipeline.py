"""export_artifact: checkpoint -> validated ONNX artifact folder (fp32/int8/fp16 + tokenizer + manifest), atomically."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Iterable, NamedTuple

from qa_engine.train import stack

from qa_engine.artifacts.atomic import atomic_dir
from qa_engine.artifacts.manifest import (
    Manifest,
    Variant,
    installed_versions,
    sha256_file,
)
from qa_engine.core.config import DecodeConfig, WindowConfig, max_window_length
from qa_engine.core.constants import PRECISIONS, TRAIN_CONFIG
from qa_engine.core.windows import WindowTokenizer
from qa_engine.formats.squad import Example
from qa_engine.runners import sessions

from . import fusion, onnx_export, quantize, validate
from . import openvino as openvino_export

log = logging.getLogger(__name__)

PROVIDERS = {"fp32": ["cpu", "cuda"], "int8": ["cpu"], "fp16": ["cuda"]}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json")
ARTIFACT_PACKAGES = ("transformers", "torch", "onnx", "onnxscript")  # recorded in the manifest
NO_VNNI = "int8-no-vnni"  # key of the 7-bit-weight int8 graph for CPUs without VNNI (int8_kernels)
NO_VNNI_FILE = "model.int8.no-vnni.onnx"
WORK = ".work"  # intermediates inside the temp artifact folder, removed before it is renamed into place


def parse_precisions(value: str | Iterable[str]) -> tuple[str, ...]:
    """'all', 'fp32,int8' or an iterable -> a checked tuple in canonical order."""
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [p.strip() for p in items if p.strip()]
    if "all" in items:
        return PRECISIONS
    unknown = sorted(set(items) - set(PRECISIONS))
    if unknown or not items:
        raise ValueError(f"unknown precision {', '.join(unknown) or '(none)'}; choose from {', '.join(PRECISIONS)} or all")
    return tuple(p for p in PRECISIONS if p in items)


def settings(checkpoint: onnx_export.Checkpoint) -> tuple[WindowConfig, DecodeConfig]:
    """The manifest's window and decoding defaults: the training run's (train_config.json) where it recorded
    them, else the package defaults, with max_length cut to what the model's position embeddings hold
    (RoBERTa's 514 positions hold 512 tokens)."""
    path = checkpoint.path / TRAIN_CONFIG
    window, decode = WindowConfig(), DecodeConfig()
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        if not isinstance(recorded, dict):
            raise ValueError("expected a JSON object")
        max_length = int(recorded.get("max_length", window.max_length))
        doc_stride = int(recorded.get("doc_stride", window.doc_stride))
        positions = max_window_length(checkpoint.config) or max_length
        if max_length > positions:
            log.info("max_length %d exceeds the %d tokens the model's positions hold; using %d",
                     max_length, positions, positions)
            max_length, doc_stride = positions, min(doc_stride, positions // 4)
        return (
            WindowConfig(max_length, doc_stride),
            DecodeConfig(max_answer_length=int(recorded.get("max_answer_length", decode.max_answer_length))),
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: unusable window settings ({e})") from e


def versions(exporter: str) -> dict[str, str]:
    """Installed versions of the packages that shaped the artifact (onnxruntime by its module: -gpu or not) and
    which torch.onnx exporter converted it."""
    import onnxruntime

    return {"onnxruntime": onnxruntime.__version__, **installed_versions(ARTIFACT_PACKAGES),
            "torch.onnx exporter": exporter}


def export_artifact(
    model_dir: str | Path,
    output_dir: str | Path,
    precisions: str | Iterable[str] = ("fp32", "int8"),
    opset: int | None = None,
    force: bool = False,
    validation_data: str | Path | None = None,
    max_validation: int = 500,
    atol: float = validate.ATOL,
    rtol: float = validate.RTOL,
    calibration_questions: int = validate.CALIBRATION_QUESTIONS,
    exporter: str = "auto",
    openvino: bool = False,
) -> Path:
    """Export, fuse, quantize and validate a QA checkpoint into `output_dir`; nothing is left half-written.

    The unfused ONNX export must match PyTorch and the fused fp32 graph the unfused one, each within
    max |Δ logits| <= atol + rtol * max |logits| and with identical answers but for near ties (else
    ParityError; the defaults come from measurements in export/VALIDATION.md); int8/fp16 are scored
    against fp32 and the scores go into the manifest. int8 activation scales are calibrated on up to
    `calibration_questions` questions of the validation source (others than the validated ones where it has
    more). An existing `output_dir` is replaced only with `force`, and only once every step has succeeded.
    `exporter`: torchscript, dynamo or auto (TorchScript while torch has it, see onnx_export). `openvino`: also
    the OpenVINO fp32 and NNCF int8 IR (export/openvino.py), calibrated on the int8 calibration windows. An
    unsupported torch or transformers is refused first (qa_engine.train.stack).
    """
    precisions = parse_precisions(precisions)
    tolerance = validate.Tolerance(atol, rtol)
    stack.check("export")
    exporter = onnx_export.choose_exporter(exporter)
    onnx_export.check_opset(opset, exporter)
    if max_validation < 1 or calibration_questions < 1:
        raise ValueError(f"max_validation and calibration_questions must be >= 1, got {max_validation} and "
                         f"{calibration_questions}")
    checkpoint = onnx_export.inspect_checkpoint(model_dir)
    output_dir = Path(output_dir)
    questions = Questions(validation_data, max_validation, calibration_questions)
    with atomic_dir(output_dir, force) as tmp:
        manifest = _build(checkpoint, tmp, precisions, opset, questions, tolerance, exporter, openvino)
        shutil.rmtree(tmp / WORK)
        manifest.write(tmp)
    log.info("artifact written to %s", output_dir)
    return output_dir


class Questions(NamedTuple):
    """Where validation and int8 calibration take their questions from, and how many of each at most."""

    data: str | Path | None
    validation: int
    calibration: int


class Outcome(NamedTuple):
    """One variant's validation: whether it counts as validated, the numbers, and a note for people."""

    validated: bool
    summary: dict
    note: str = ""


def _variants(files: dict[str, Path], precisions: tuple[str, ...], outcomes: dict[str, Outcome],
              source: str) -> dict[str, Variant]:
    """The manifest's entry per shipped precision: file, checksum, providers and how it was validated."""
    return {
        p: Variant(
            file=files[p].name,
            sha256=sha256_file(files[p]),
            providers=PROVIDERS[p],
            validated=outcomes[p].validated,
            validation={**outcomes[p].summary, "data": source} if outcomes[p].summary else {},
            note=outcomes[p].note,
        )
        for p in precisions
    }


def _record_int8(variant: Variant, files: dict[str, Path], outcomes: dict[str, Outcome], source: str,
                 calibration: quantize.Calibration, record: dict, weights: dict) -> None:
    """The int8 variant's calibration, weight range and, where written, its 7-bit twin for CPUs without VNNI."""
    variant.validation["calibration"] = {**record, "activations": len(calibration.ranges)}
    variant.weight_range = weights
    if NO_VNNI in files:
        variant.no_vnni = {"file": files[NO_VNNI].name, "sha256": sha256_file(files[NO_VNNI]),
                           "validation": {**outcomes[NO_VNNI].summary, "data": source}}


def _build(
    checkpoint: onnx_export.Checkpoint,
    out: Path,
    precisions: tuple[str, ...],
    opset: int | None,
    questions: Questions,
    tolerance: validate.Tolerance,
    exporter: str,
    openvino: bool = False,
) -> Manifest:
    """Every step of the export into the (temporary) folder `out`; returns the manifest to write."""
    work = out / WORK
    work.mkdir()
    windows, decode = settings(checkpoint)
    tokenizer = WindowTokenizer.from_file(checkpoint.tokenizer_file, windows)
    model = onnx_export.load_model(checkpoint)
    raw = onnx_export.export_onnx(model, work, opset, exporter)
    files = {p: (out if p in precisions else work) / f"model.{p}.onnx" for p in ("fp32", *precisions)}
    fusion_counts = fusion.fuse(raw.path, files["fp32"], checkpoint.config)
    feeds = _calibration_feeds(tokenizer, raw.input_names, questions) if "int8" in files or openvino else None
    int8 = _quantize_int8(files, feeds) if feeds is not None and "int8" in files else None
    weights = _int8_weight_range(files, int8) if int8 is not None else {}
    ir = openvino_export.write_ir(model, raw.input_names, feeds.feeds, out, feeds.record) if feeds and openvino else {}
    if "fp16" in files:
        quantize.convert_fp16(files["fp32"], files["fp16"])
    graph = {p: onnx_export.read_graph(path) for p, path in files.items()}["fp32"]  # checks every file
    copied = [name for name in TOKENIZER_FILES if (checkpoint.path / name).is_file()]
    for name in copied:
        shutil.copyfile(checkpoint.path / name, out / name)

    outcomes, source, reference, examples = _validate(model, raw.path, files, tokenizer, decode, graph.input_names,
                                                      questions, tolerance)
    if ir:
        _validate_openvino(ir, out, reference, tokenizer, decode, graph.input_names, examples)
    variants = _variants(files, precisions, outcomes, source)
    if int8 is not None:
        _record_int8(variants["int8"], files, outcomes, source, int8, feeds.record, weights)
    return Manifest(
        model_type=checkpoint.model_type,
        input_names=graph.input_names,
        output_names=graph.output_names,
        variants=variants,
        max_length=windows.max_length,
        doc_stride=windows.doc_stride,
        max_answer_length=decode.max_answer_length,
        opset=graph.opset,
        versions=versions(exporter),
        fusion=fusion_counts,
        files={name: sha256_file(out / name) for name in copied},
        openvino=ir,
    )


class CalibrationFeeds(NamedTuple):
    """The model calls of the int8 calibration windows, and the manifest's record of where they came from."""

    feeds: list[dict]
    record: dict


def _calibration_feeds(tokenizer: WindowTokenizer, input_names: list[str], questions: Questions) -> CalibrationFeeds:
    """The calibration questions' windows as model calls (the validation source past the validated questions)."""
    examples, source = validate.calibration_examples(questions.data, questions.calibration, questions.validation)
    examples = validate.usable(examples, tokenizer)
    feeds = list(validate.calibration_feeds(examples, tokenizer, input_names))
    windows = sum(len(f[input_names[0]]) for f in feeds)
    return CalibrationFeeds(feeds, {"data": source, "questions": len(examples), "windows": windows})


def _quantize_int8(files: dict[str, Path], feeds: CalibrationFeeds) -> quantize.Calibration:
    """The int8 file, its activation scales calibrated on the fused fp32 graph."""
    return quantize.quantize_int8(files["fp32"], files["int8"], feeds.feeds)


def _int8_weight_range(files: dict[str, Path], calibration: quantize.Calibration) -> dict:
    """The int8 weights' saturation check, for the manifest; where int16 pair sums could saturate on a CPU without
    VNNI, the 7-bit-weight graph (same activation scales) goes into files[NO_VNNI] for the engine to choose there."""
    import onnx

    weights = quantize.weight_range(onnx.load(str(files["int8"])))
    if not weights["saturates_without_vnni"]:
        return {**weights, "decision": "one int8 file for every CPU: its pair sums fit in int16"}
    path = files[NO_VNNI] = files["int8"].with_name(NO_VNNI_FILE)
    quantize.quantize_int8(files["fp32"], path, (), reduce_range=True, calibration=calibration)
    reduced = quantize.weight_range(onnx.load(str(path)))
    if reduced["saturates_without_vnni"]:
        raise ValueError(f"{path.name}: 7-bit weights still reach |w| = {reduced['max_abs_weight']}")
    return {**weights, "no_vnni_max_abs_weight": reduced["max_abs_weight"],
            "decision": f"{files['int8'].name} (8-bit weights) where the CPU has VNNI or AMX; {path.name} (7-bit "
                        f"weights, 2 * 255 * {reduced['max_abs_weight']} = {reduced['pair_sum_bound']} <= "
                        f"{reduced['int16_max']}) elsewhere"}


def _validate(
    model,
    unfused: Path,
    files: dict[str, Path],
    tokenizer: WindowTokenizer,
    decode: DecodeConfig,
    input_names: list[str],
    questions: Questions,
    tolerance: validate.Tolerance,
) -> tuple[dict[str, Outcome], str, list[str], list[Example]]:
    """fp32 parity (unfused export vs PyTorch, fused vs unfused; raises when broken), then each other variant
    against fp32; returns the outcomes, the data source, the fp32 answers and the validation examples."""
    examples, source = validate.validation_examples(questions.data, questions.validation)
    examples = validate.usable(examples, tokenizer)
    reference, summary = validate.check_fp32_parity(
        model, sessions.cpu_session(files["fp32"]), tokenizer, examples, input_names, decode,
        tolerance, unfused=sessions.cpu_session(unfused),
    )
    outcomes = {"fp32": Outcome(True, summary)}
    if "int8" in files:
        session = sessions.cpu_session(files["int8"])
        summary = validate.compare_to_fp32(session, reference.answers, tokenizer, examples, input_names, decode, "int8")
        k = min(validate.PARITY_QUESTIONS, len(examples))
        summary["batch_max_abs_diff"] = validate.batch_gap(session, tokenizer, examples[:k], input_names)
        outcomes["int8"] = Outcome(True, summary, _f1_note(summary))
    if NO_VNNI in files:
        summary = validate.compare_to_fp32(sessions.cpu_session(files[NO_VNNI]), reference.answers, tokenizer,
                                           examples, input_names, decode, "int8")
        outcomes[NO_VNNI] = Outcome(True, summary, _f1_note(summary))
    if "fp16" in files:
        outcomes["fp16"] = _validate_fp16(files["fp16"], reference.answers, tokenizer, examples, input_names, decode)
    return outcomes, source, reference.answers, examples


def _validate_openvino(ir: dict, out: Path, reference: list[str], tokenizer: WindowTokenizer, decode: DecodeConfig,
                       input_names: list[str], examples: list[Example]) -> None:
    """Score each OpenVINO IR against the onnxruntime fp32 answers on the same validation examples, into its
    record."""
    from qa_engine.runners.openvino import load_runner

    for precision in openvino_export.IR_FILES:
        runner = load_runner(out / ir[precision]["file"], precision, tuple(input_names), sessions.physical_cores())
        ir[precision]["validation"] = validate.compare_to_fp32(runner, reference, tokenizer, examples, input_names,
                                                               decode, f"openvino {precision}")


def _f1_note(summary: dict) -> str:
    drop = -summary["f1_delta"]
    return f"F1 {drop:.2f} points below fp32" if drop > validate.F1_WARN_DROP else ""


def _validate_fp16(path: Path, reference_answers, tokenizer, examples, input_names, decode) -> Outcome:
    """Score fp16 against fp32 on CUDA when a CUDA provider really runs here.

    Elsewhere it is not validated (CPU fp16 kernels are not what CUDA runs), but a short CPU run still
    checks that the converted graph answers like fp32; its numbers go into the validation record.
    """
    import onnxruntime as ort

    session = sessions.cuda_session(path, "fp16")
    if session is not None:
        summary = validate.compare_to_fp32(
            session, reference_answers, tokenizer, examples, input_names, decode, "fp16"
        )
        return Outcome(True, summary, _f1_note(summary))
    reason = (
        "CUDA provider created no session on this machine (no GPU, or CUDA/cuDNN libraries missing)"
        if sessions.CUDA in ort.get_available_providers()
        else "this onnxruntime build has no CUDA provider"
    )
    log.warning("fp16 not validated on CUDA: %s; checking it on CPU only", reason)
    k = min(validate.PARITY_QUESTIONS, len(examples))
    try:
        summary = validate.compare_to_fp32(
            sessions.cpu_session(path), reference_answers[:k], tokenizer, examples[:k], input_names, decode, "fp16"
        )
    except ValueError as e:  # an onnxruntime build without CPU fp16 kernels for some fused op
        return Outcome(False, {}, f"not validated: {reason}; the CPU check could not run ({e})")
    return Outcome(False, summary, f"not validated on CUDA: {reason}; CPU check only")
