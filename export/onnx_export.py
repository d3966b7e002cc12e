"""Checkpoint checks and the plain ONNX export of a question-answering model through Optimum."""
from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

log = logging.getLogger(__name__)

# model_type -> the onnxruntime transformer-optimizer type that fuses it ("bert" matches RoBERTa's graph too)
FUSION_TYPES = {"distilbert": "bert", "bert": "bert", "electra": "bert", "roberta": "bert", "xlm-roberta": "bert",
                "qa-engine-relbert": "bert"}
MIN_OPSET = 14
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILE = "tokenizer.json"


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be exported, named in the message."""


@dataclass(frozen=True)
class Checkpoint:
    """A checked save_pretrained folder: a supported QA architecture with a fast tokenizer and weights."""

    path: Path
    config: "PretrainedConfig"
    weights: Path

    @property
    def model_type(self) -> str:
        return self.config.model_type

    @property
    def tokenizer_file(self) -> Path:
        return self.path / TOKENIZER_FILE


def inspect_checkpoint(model_dir: str | Path) -> Checkpoint:
    """Check a checkpoint folder before any heavy work: config, QA head, architecture, tokenizer, weights."""
    from tokenizers import Tokenizer
    from transformers import AutoConfig

    from qa_engine.features import PairTemplate
    from qa_engine.train import relbert  # noqa: F401  (registers the offline tiny model's type with AutoConfig)

    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {path}")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file}: missing; is {path} a save_pretrained model folder?")
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{config_file}: unreadable model config ({e})") from e
    architectures = list(getattr(config, "architectures", None) or [])
    if not any(a.endswith("ForQuestionAnswering") for a in architectures):
        raise CheckpointError(
            f"{config_file}: not a question-answering model (architectures: {architectures or 'none'}); "
            "fine-tune it with `qa-engine train` first"
        )
    if config.model_type not in FUSION_TYPES:
        raise CheckpointError(
            f"{config_file}: model type {config.model_type!r} is not supported; "
            f"supported: {', '.join(sorted(FUSION_TYPES))}"
        )
    tokenizer_file = path / TOKENIZER_FILE
    if not tokenizer_file.is_file():
        raise FileNotFoundError(
            f"{tokenizer_file}: missing; the engine needs the fast tokenizer's JSON "
            "(save the tokenizer with a fast tokenizer's save_pretrained)"
        )
    try:
        PairTemplate.from_tokenizer(Tokenizer.from_file(str(tokenizer_file)))
    except Exception as e:  # tokenizers raises plain Exception on malformed JSON
        raise CheckpointError(f"{tokenizer_file}: unusable tokenizer ({e})") from e
    weights = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{path}: no model weights (looked for {', '.join(WEIGHT_FILES)})")
    return Checkpoint(path, config, weights)


def load_model(checkpoint: Checkpoint) -> "PreTrainedModel":
    """The PyTorch QA model in eval mode; corrupt or incomplete weights raise naming the weights file."""
    from transformers import AutoModelForQuestionAnswering

    try:
        model, info = AutoModelForQuestionAnswering.from_pretrained(
            checkpoint.path, local_files_only=True, output_loading_info=True
        )
    except Exception as e:  # safetensors, torch.load and transformers each raise their own types
        raise CheckpointError(f"{checkpoint.weights}: cannot load model weights ({type(e).__name__}: {e})") from e
    if info["missing_keys"]:
        raise CheckpointError(
            f"{checkpoint.weights}: weights lack {len(info['missing_keys'])} tensors the model needs "
            f"(first: {', '.join(info['missing_keys'][:5])}); is the question-answering head trained?"
        )
    return model.eval()


@dataclass(frozen=True)
class OnnxGraph:
    """An exported ONNX file with its interface."""

    path: Path
    input_names: list[str]
    output_names: list[str]
    opset: int


def read_graph(path: Path) -> OnnxGraph:
    """Check an ONNX file and read its interface; a corrupt file raises naming it."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, ValidationError or OSError
        raise ValueError(f"{path}: not a valid ONNX model ({type(e).__name__}: {e})") from e
    initializers = {i.name for i in model.graph.initializer}
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return OnnxGraph(
        path,
        [i.name for i in model.graph.input if i.name not in initializers],
        [o.name for o in model.graph.output],
        opset,
    )


def check_opset(opset: int | None) -> None:
    """Refuse opsets older than the fused graph needs (None: Optimum's default, 18 for these models)."""
    if opset is not None and opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old; the export needs at least {MIN_OPSET}")


def export_onnx(model: "PreTrainedModel", work_dir: Path, opset: int | None = None) -> OnnxGraph:
    """Export with Optimum's question-answering config: dynamic batch and sequence axes, the model's own inputs."""
    import torch
    from optimum.exporters.onnx import onnx_export_from_model

    check_opset(opset)
    log.info("exporting %s to ONNX (opset %s)", model.config.model_type, opset or "Optimum's default")
    # Optimum's own check runs on random inputs; validate.py checks real windows against PyTorch instead.
    with warnings.catch_warnings():  # tracer notes on constant masks; Optimum picks the TorchScript exporter itself
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        onnx_export_from_model(model, work_dir, opset=opset, task="question-answering", do_validation=False)
    graph = read_graph(work_dir / "model.onnx")
    if graph.output_names[:2] != ["start_logits", "end_logits"]:
        raise ValueError(f"{graph.path}: unexpected outputs {graph.output_names}")
    return graph
