"""Triton model signatures and config.pbtxt text: one rule for every Triton model qa-engine writes.

export/triton.py (the onnxruntime-backend repository) and qa_engine.serving.triton.server (the python-backend models the
bundled server runs) both read an ONNX model's inputs and outputs through `tensor_specs`, so a client that talks to
one talks to the other.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

ONNX_TO_TRITON = {
    "tensor(int64)": "TYPE_INT64",
    "tensor(int32)": "TYPE_INT32",
    "tensor(float)": "TYPE_FP32",
    "tensor(float16)": "TYPE_FP16",
    "tensor(double)": "TYPE_FP64",
    "tensor(bool)": "TYPE_BOOL",
}


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as Triton declares it: dims without the batch dimension, -1 where free."""

    name: str
    data_type: str
    dims: tuple[int, ...]


def tensor_specs(model_path: str | Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs) of an ONNX model as onnxruntime reports them; the first dimension must be the free batch."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])

    def spec(arg: "ort.NodeArg") -> TensorSpec:
        if arg.type not in ONNX_TO_TRITON:
            raise ValueError(f"{model_path}: {arg.name} has type {arg.type}, which has no Triton data type here")
        if not arg.shape or isinstance(arg.shape[0], int):
            raise ValueError(f"{model_path}: {arg.name} has shape {arg.shape}; Triton batching needs a free first dim")
        dims = tuple(d if isinstance(d, int) else -1 for d in arg.shape[1:])
        return TensorSpec(arg.name, ONNX_TO_TRITON[arg.type], dims)

    return [spec(a) for a in session.get_inputs()], [spec(a) for a in session.get_outputs()]


def tensors_block(block: str, specs: Iterable[TensorSpec]) -> str:
    """An `input [...]` or `output [...]` block of config.pbtxt."""
    items = [
        f'  {{\n    name: "{s.name}"\n    data_type: {s.data_type}\n    dims: [ {", ".join(map(str, s.dims))} ]\n  }}'
        for s in specs
    ]
    return f"{block} [\n" + ",\n".join(items) + "\n]\n"


def batching_block(max_queue_delay_us: int, instance_kind: str, instance_count: int) -> str:
    """The dynamic_batching and instance_group blocks of config.pbtxt."""
    return (
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {max_queue_delay_us}\n}}\n"
        + f"instance_group [\n  {{\n    count: {instance_count}\n    kind: {instance_kind}\n  }}\n]\n"
    )


def parameters_block(parameters: Mapping[str, str]) -> str:
    """A `parameters` block: string values a python-backend model reads from its config at initialize()."""
    items = [
        f'  {{\n    key: "{key}"\n    value: {{ string_value: "{_escape(value)}" }}\n  }}' for key, value in parameters.items()
    ]
    return "parameters [\n" + ",\n".join(items) + "\n]\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
