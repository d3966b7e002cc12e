"""The artifact's OpenVINO variants (`qa-engine export --openvino`): fp32 IR converted from the PyTorch model with
`ov.convert_model`, int8 from NNCF's post-training quantization with its transformer preset, calibrated on the
windows the onnxruntime int8 graph is calibrated on. Run by qa_engine.runners.openvino (`provider="openvino"`)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from qa_engine.artifacts.manifest import installed_versions, sha256_file

if TYPE_CHECKING:
    import openvino as ov

log = logging.getLogger(__name__)

FOLDER = "openvino"
IR_FILES = {"fp32": "model.fp32.xml", "int8": "model.int8.xml"}
VERSIONED = ("openvino", "nncf")


def _logits_module(model: Any, input_names: Sequence[str]) -> Any:
    """A torch module taking the inputs positionally, in the artifact's order, and returning (start, end) logits."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # no return_dict argument: a custom model's forward may not take it (the offline tiny model's does not)
            out = self.model(**dict(zip(input_names, inputs)))
            return (out.start_logits, out.end_logits) if hasattr(out, "start_logits") else (out[0], out[1])

    return Logits().eval()


def convert(model: Any, input_names: Sequence[str]) -> "ov.Model":
    """The PyTorch QA model as an fp32 OpenVINO model with dynamic [batch, length] int64 inputs named as the
    artifact's and outputs start_logits / end_logits."""
    import openvino as ov
    import torch

    example = tuple(torch.ones((2, 16), dtype=torch.int64) for _ in input_names)
    with torch.inference_mode():
        converted = ov.convert_model(_logits_module(model, input_names), example_input=example,
                                     input=[([-1, -1], ov.Type.i64)] * len(input_names))
    for port, name in zip(converted.inputs, input_names):
        port.get_tensor().set_names({name})
    for port, name in zip(converted.outputs, ("start_logits", "end_logits")):
        port.get_tensor().set_names({name})
    return converted


def quantize(model: "ov.Model", feeds: list[dict[str, np.ndarray]]) -> "ov.Model":
    """NNCF int8 with the transformer preset (SmoothQuant; softmax and layer norms stay float), calibrated on
    `feeds`, the model calls of the calibration windows."""
    try:
        import nncf
    except ImportError as e:
        raise ImportError("the OpenVINO int8 variant needs NNCF: pip install 'qa-engine[openvino-export]'") from e
    return nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(feeds))


def write_ir(model: Any, input_names: Sequence[str], feeds: list[dict[str, np.ndarray]], artifact: Path,
             calibration: dict) -> dict:
    """fp32 and int8 IR into `artifact`/openvino; returns the manifest's `openvino` record (files relative to the
    artifact with checksums of the graph and its weights, the calibration, the versions)."""
    import openvino as ov

    folder = artifact / FOLDER
    folder.mkdir(exist_ok=True)
    fp32 = convert(model, input_names)
    ov.save_model(fp32, folder / IR_FILES["fp32"], compress_to_fp16=False)
    ov.save_model(quantize(fp32, feeds), folder / IR_FILES["int8"], compress_to_fp16=False)
    record: dict[str, Any] = {p: ir_record(artifact, folder / name) for p, name in IR_FILES.items()}
    log.info("OpenVINO IR: %s (int8 calibrated on %d windows)", ", ".join(IR_FILES.values()), calibration["windows"])
    return {**record, "calibration": calibration, "versions": installed_versions(VERSIONED)}


def ir_record(artifact: Path, xml: Path) -> dict[str, str]:
    """An IR's graph and weights files, relative to the artifact, with their SHA-256."""
    weights = xml.with_suffix(".bin")
    return {"file": xml.relative_to(artifact).as_posix(), "sha256": sha256_file(xml),
            "weights": weights.relative_to(artifact).as_posix(), "weights_sha256": sha256_file(weights)}
