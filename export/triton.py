"""A Triton Inference Server model repository from an artifact: the ONNX file and a config.pbtxt read off it
(the signature rule, `tensor_specs`, is the runtime's: qa_engine.serving.triton.server serves the same one)."""
from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from qa_engine.artifacts.atomic import atomic_dir
from qa_engine.artifacts import loader
from qa_engine.cli.numbers import non_negative_int, positive_int
from qa_engine.core.constants import (
    PRECISIONS,
    TRITON_MAX_BATCH_SIZE,
    TRITON_MAX_QUEUE_DELAY_US,
)
from qa_engine.serving.triton.config import (
    TensorSpec,
    batching_block,
    tensor_specs,
    tensors_block,
)

log = logging.getLogger(__name__)

MODEL_NAME = "qa_engine"
KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU", "kind_cpu": "KIND_CPU", "kind_gpu": "KIND_GPU"}


def config_text(
    name: str,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    max_batch_size: int = TRITON_MAX_BATCH_SIZE,
    instance_kind: str = "KIND_CPU",
    instance_count: int = 1,
    max_queue_delay_us: int = TRITON_MAX_QUEUE_DELAY_US,
) -> str:
    """config.pbtxt (protobuf text format) for the onnxruntime backend with dynamic batching."""
    return (
        f'name: "{name}"\nplatform: "onnxruntime_onnx"\nbackend: "onnxruntime"\nmax_batch_size: {max_batch_size}\n'
        + tensors_block("input", inputs)
        + tensors_block("output", outputs)
        + batching_block(max_queue_delay_us, instance_kind, instance_count)
    )


def write_triton_repo(
    artifact_dir: str | Path,
    repo_dir: str | Path,
    precision: str = "fp32",
    max_batch_size: int = TRITON_MAX_BATCH_SIZE,
    instance_kind: str = "cpu",
    instance_count: int = 1,
    max_queue_delay_us: int = TRITON_MAX_QUEUE_DELAY_US,
    model_name: str = MODEL_NAME,
    force: bool = False,
) -> Path:
    """Write `<repo_dir>/<model_name>/1/model.onnx` and `config.pbtxt` atomically; returns the model folder.

    instance_kind is "cpu"/"gpu" (or KIND_CPU/KIND_GPU); other models already in repo_dir are left alone.
    """
    kind = KINDS.get(instance_kind.lower())
    if kind is None:
        raise ValueError(f"instance_kind must be cpu or gpu (KIND_CPU/KIND_GPU), got {instance_kind!r}")
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    artifact = loader.local_artifact(artifact_dir)
    loader.check_manifest(artifact)
    source = loader.variant_file(artifact, loader.pick_variant(artifact.manifest.variants, "cpu", precision))
    inputs, outputs = tensor_specs(source)
    text = config_text(model_name, inputs, outputs, max_batch_size, kind, instance_count, max_queue_delay_us)
    target = Path(repo_dir) / model_name
    with atomic_dir(target, force=force) as tmp:
        (tmp / "1").mkdir()
        shutil.copyfile(source, tmp / "1" / "model.onnx")
        (tmp / "config.pbtxt").write_text(text, encoding="utf-8")
    log.info("wrote Triton model %s (%s, %s, max batch %d) to %s", model_name, precision, kind, max_batch_size, target)
    return target


def add_triton_args(parser: argparse.ArgumentParser) -> None:
    """Options of `qa-engine export` that also write a Triton model repository."""
    g = parser.add_argument_group("Triton Inference Server")
    g.add_argument("--triton-repo", metavar="DIR", help="also write a Triton model repository here")
    g.add_argument("--triton-precision", default="fp32", choices=PRECISIONS,
                   help="variant served by Triton (default fp32)")
    g.add_argument("--triton-instance-kind", default="cpu", choices=["cpu", "gpu"])
    g.add_argument("--triton-instances", type=positive_int, default=1, help="model instances (instance_group count)")
    g.add_argument("--triton-max-batch-size", type=positive_int, default=TRITON_MAX_BATCH_SIZE)
    g.add_argument("--triton-max-queue-delay-us", type=non_negative_int, default=TRITON_MAX_QUEUE_DELAY_US,
                   help="dynamic batching: longest wait for a fuller batch, in microseconds")


def run_triton(args: argparse.Namespace, artifact_dir: str | Path) -> Path | None:
    """Write the Triton repository when --triton-repo was given; returns its model folder or None."""
    if not args.triton_repo:
        return None
    return write_triton_repo(
        artifact_dir,
        args.triton_repo,
        precision=args.triton_precision,
        max_batch_size=args.triton_max_batch_size,
        instance_kind=args.triton_instance_kind,
        instance_count=args.triton_instances,
        max_queue_delay_us=args.triton_max_queue_delay_us,
        force=args.force,
    )
