"""Checkpoint checks and the plain ONNX export of a question-answering model with torch.onnx.export."""
from __future__ import annotations

import contextlib
import inspect
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

log = logging.getLogger(__name__)

# model_type -> the onnxruntime transformer-optimizer type that fuses it ("bert" matches RoBERTa's graph too)
FUSION_TYPES = {"distilbert": "bert", "bert": "bert", "electra": "bert", "roberta": "bert", "xlm-roberta": "bert",
                "qa-engine-relbert": "bert"}
MIN_OPSET = 14
DEFAULT_OPSET = 18  # what Optimum chose for these models; LayerNormalization is one op from opset 17
MIN_DYNAMO_OPSET = 18  # the dynamo exporter writes opset 18 or newer
EXPORTERS = ("auto", "torchscript", "dynamo")
OUTPUT_NAMES = ("start_logits", "end_logits")
# UserWarnings the exporters print on every BERT-like model: negative gather indices (the models use none; the
# parity gate would see a wrong result) and dynamo's note that equal axes share one name
QUIET_NOTES = ("Exporting aten::index operator", "# The axis name")
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
    from qa_engine.train import relbert  # noqa: F401  (registers the offline tiny model's type with AutoConfig)
    from tokenizers import Tokenizer
    from transformers import AutoConfig

    from qa_engine.core.windows import PairTemplate

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


def export_attention() -> str | None:
    """The attention implementation to load a model with for export (None: the model's default).

    onnxruntime's fusions match one attention graph per transformers line (export/VALIDATION.md): on 5.x the eager
    one (its sdpa graph fuses no Attention under TorchScript); on 4.x the default, sdpa where the architecture has
    it (4.57's eager DistilBERT graph fuses none), and 4.x cannot switch a loaded model."""
    from transformers import __version__

    return "eager" if int(__version__.split(".")[0]) >= 5 else None


def load_model(checkpoint: Checkpoint) -> "PreTrainedModel":
    """The PyTorch QA model in eval mode; corrupt or incomplete weights, or weights this transformers would leave
    unused (an architecture option it ignores), raise naming the weights file."""
    from qa_engine.train.weights import UnusedWeightsError, refuse_unused_weights
    from transformers import AutoModelForQuestionAnswering

    attention = export_attention()
    try:
        model, info = AutoModelForQuestionAnswering.from_pretrained(
            checkpoint.path, local_files_only=True, output_loading_info=True,
            **({"attn_implementation": attention} if attention else {}),
        )
    except Exception as e:  # safetensors, torch.load and transformers each raise their own types
        raise CheckpointError(f"{checkpoint.weights}: cannot load model weights ({type(e).__name__}: {e})") from e
    if info["missing_keys"]:
        raise CheckpointError(
            f"{checkpoint.weights}: weights lack {len(info['missing_keys'])} tensors the model needs "
            f"(first: {', '.join(sorted(info['missing_keys'])[:5])}); is the question-answering head trained?"
        )
    try:
        refuse_unused_weights(model, info, checkpoint.weights)
    except UnusedWeightsError as e:
        raise CheckpointError(str(e)) from e
    return model.eval()


def model_input_names(model: "PreTrainedModel") -> list[str]:
    """The graph's inputs: input_ids, attention_mask and, where the model has more than one segment embedding,
    token_type_ids (DistilBERT has none; RoBERTa's family one segment, which a type id 1 would index past)."""
    params = inspect.signature(model.forward).parameters
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in params and getattr(model.config, "type_vocab_size", 2) > 1:
        names.append("token_type_ids")
    return names


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


class ExportError(ValueError):
    """torch.onnx.export could not convert the model; the message names the exporter and the cause."""


def torchscript_available() -> bool:
    """Whether this torch still has the TorchScript-based ONNX exporter (deprecated since torch 2.9, to be removed)."""
    import importlib.util

    return any(importlib.util.find_spec(m) is not None
               for m in ("torch.onnx._internal.torchscript_exporter", "torch.onnx.utils"))


def choose_exporter(exporter: str = "auto") -> str:
    """'torchscript' or 'dynamo': auto takes TorchScript while torch has it (its graphs fuse as Optimum's did),
    else the dynamo exporter; an explicit choice this torch cannot run is refused."""
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; choose from {', '.join(EXPORTERS)}")
    if exporter == "auto":
        return "torchscript" if torchscript_available() else "dynamo"
    if exporter == "torchscript" and not torchscript_available():
        import torch

        raise ValueError(f"torch {torch.__version__} has no TorchScript ONNX exporter; use --exporter dynamo (or auto)")
    return exporter


def check_opset(opset: int | None, exporter: str = "auto") -> None:
    """Refuse opsets older than the fused graph needs, or than the dynamo exporter writes (None: DEFAULT_OPSET)."""
    if opset is None:
        return
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old; the export needs at least {MIN_OPSET}")
    if exporter == "dynamo" and opset < MIN_DYNAMO_OPSET:
        raise ValueError(f"opset {opset} is too old for the dynamo exporter; it needs at least {MIN_DYNAMO_OPSET}")


def export_onnx(
    model: "PreTrainedModel", work_dir: Path, opset: int | None = None, exporter: str = "auto"
) -> OnnxGraph:
    """Export to work_dir/model.onnx with torch.onnx.export: dynamic batch and sequence axes, the inputs of
    model_input_names, outputs start_logits and end_logits.

    On transformers 5 the model is switched to eager attention first (export_attention), so that it and the graph
    compute the same thing and onnxruntime can fuse the graph."""
    exporter = choose_exporter(exporter)
    check_opset(opset, exporter)
    opset = opset or DEFAULT_OPSET
    attention = export_attention()
    if attention and model.config._attn_implementation != attention:
        try:
            model.set_attn_implementation(attention)
        except (ValueError, AttributeError) as e:  # a model with attention of its own
            log.info("%s keeps its %s attention (%s)", model.config.model_type, model.config._attn_implementation, e)
    names = model_input_names(model)
    path = work_dir / "model.onnx"
    log.info("exporting %s to ONNX (%s exporter, opset %d)", model.config.model_type, exporter, opset)
    wrapper = _qa_module(model)
    args = _dummy_inputs(names, model.config.vocab_size)
    try:
        with _quiet_exporter():
            if exporter == "torchscript":
                _export_torchscript(wrapper, args, names, path, opset)
            else:
                _export_dynamo(wrapper, args, names, path, opset)
    except Exception as e:  # torch.export and the exporters raise many types, with pages of detail
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        other = "dynamo" if exporter == "torchscript" else "torchscript"
        raise ExportError(f"torch.onnx.export ({exporter} exporter) failed on {model.config.model_type}: "
                          f"{type(e).__name__}: {first}; --exporter {other} may succeed") from e
    graph = read_graph(path)
    if graph.output_names[:2] != list(OUTPUT_NAMES) or graph.input_names != names:
        raise ExportError(f"{graph.path}: unexpected interface, inputs {graph.input_names}, outputs {graph.output_names}")
    return graph


def _export_torchscript(wrapper, args: tuple, names: list[str], path: Path, opset: int) -> None:
    import torch

    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in (*names, *OUTPUT_NAMES)}
    torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=list(OUTPUT_NAMES),
                      dynamic_axes=axes, opset_version=opset, dynamo=False, do_constant_folding=True)


def _export_dynamo(wrapper, args: tuple, names: list[str], path: Path, opset: int) -> None:
    import torch

    batch, sequence = torch.export.Dim("batch_size"), torch.export.Dim("sequence_length")
    program = torch.onnx.export(wrapper, args, input_names=names, output_names=list(OUTPUT_NAMES),
                                dynamic_shapes={name: {0: batch, 1: sequence} for name in names},
                                opset_version=opset, dynamo=True, verbose=False)
    program.save(str(path))


def _qa_module(model: "PreTrainedModel"):
    """A torch module around `model` that takes the graph's inputs by position and returns (start, end) logits."""
    import torch

    class QuestionAnswering(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            feed = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                feed["token_type_ids"] = token_type_ids
            out = self.model(**feed)
            if hasattr(out, "start_logits"):
                return out.start_logits, out.end_logits
            return out[0], out[1]  # a model that returns tuples (return_dict off, or a model of its own)

    return QuestionAnswering().eval()


def _dummy_inputs(names: list[str], vocab_size: int) -> tuple:
    """Two windows of 16 tokens, the second padded from token 9 on, with two segments: traced code that looks
    at the values (a mask shortcut for unpadded batches) sees padding and both segment ids."""
    import torch

    ids = torch.arange(32, dtype=torch.int64).reshape(2, 16) % max(vocab_size - 1, 1) + 1
    mask = torch.ones(2, 16, dtype=torch.int64)
    mask[1, 9:] = 0
    segments = torch.zeros(2, 16, dtype=torch.int64)
    segments[:, 6:] = 1
    segments[mask == 0] = 0
    values = {"input_ids": ids, "attention_mask": mask, "token_type_ids": segments}
    return tuple(values[n] for n in names)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Mute the exporters' notes: TorchScript's deprecation and tracer warnings, the dynamo exporter's log lines
    about optional torchvision ops. Errors still raise."""
    import torch

    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            tracer = getattr(getattr(torch, "jit", None), "TracerWarning", None)
            if tracer is not None:
                warnings.simplefilter("ignore", tracer)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            for note in QUIET_NOTES:
                warnings.filterwarnings("ignore", message=note, category=UserWarning)
            yield
    finally:
        logger.setLevel(level)
