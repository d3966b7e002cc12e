"""Names and defaults shared across the runtime, the stages and the CLI, each defined once."""
from __future__ import annotations

PRECISIONS = ("fp32", "int8", "fp16")  # artifact variants, in export order
PROVIDERS = ("auto", "cpu", "cuda")  # the engine's onnxruntime provider shorthands
OPENVINO = "openvino"  # the provider name of the artifact's OpenVINO IR (qa_engine.runners.openvino)
OPENVINO_PRECISIONS = ("int8", "fp32", "bf16")  # what the OpenVINO runner runs, best first

# the reference task's window and decode settings (KorQuAD 1.0, as Hugging Face's run_qa)
MAX_LENGTH = 384
DOC_STRIDE = 128
MAX_ANSWER_LENGTH = 30

# Triton dynamic batching: requests' rows per batch and the longest wait for a fuller one
TRITON_MAX_BATCH_SIZE = 32
TRITON_MAX_QUEUE_DELAY_US = 2000

PROBE_MODEL = "probe.onnx"  # packaged in qa_engine/data: a 4x4 MatMul that loads a provider and runs one kernel
TRAIN_CONFIG = "train_config.json"  # written by `qa-engine train` beside the model: its window settings
