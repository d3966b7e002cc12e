"""Optimum's own export of a checkpoint: ORTModelForQuestionAnswering (fp32), ORTQuantizer dynamic int8
(avx512_vnni) for CPU, ORTOptimizer O4 (fused graph in fp16) for CUDA. Run in the Optimum peer's interpreter
(benchmarks/environments.py):
`python -m qa_engine.benchmarks.optimum_export CHECKPOINT OUT [--per-tensor] [--no-int8] [--o4]`."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from qa_engine.artifacts.atomic import atomic_dir

OPTIMUM_FP32 = "model.onnx"
OPTIMUM_INT8 = "model_quantized.onnx"
OPTIMUM_O4 = "model_optimized.onnx"  # ORTOptimizer's name for its output
OPTIMUM_FILES = {"fp32": OPTIMUM_FP32, "int8": OPTIMUM_INT8, "fp16": OPTIMUM_O4}  # by the system's precision


def register_tiny_model() -> None:
    """Make the offline tiny model (qa_engine.train.relbert) exportable by Optimum: its exporter finds a model's ONNX
    inputs by model type (BERT's, under another name) and its library by the class's module (transformers')."""
    from optimum.exporters.onnx.model_configs import BertOnnxConfig
    from optimum.exporters.tasks import TasksManager
    from optimum.onnxruntime.utils import ORTConfigManager
    from optimum.utils.normalized_config import NormalizedConfigManager
    from qa_engine.train import relbert

    register = TasksManager.create_register("onnx", overwrite_existing=True)
    register(relbert.MODEL_TYPE, "question-answering")(type("RelBertOnnxConfig", (BertOnnxConfig,), {}))
    # ORTOptimizer (O4) reads a model type's config fields and fusion family from these tables: BERT's
    NormalizedConfigManager._conf[relbert.MODEL_TYPE] = NormalizedConfigManager._conf["bert"]
    ORTConfigManager._conf[relbert.MODEL_TYPE] = "bert"
    infer = TasksManager.infer_library_from_model.__func__

    def library(cls, model, *args, **kwargs):
        return "transformers" if isinstance(model, relbert.RelBertPreTrainedModel) else infer(cls, model, *args, **kwargs)

    TasksManager.infer_library_from_model = classmethod(library)


def export_optimum(checkpoint: Path, out: Path, per_channel: bool, quantize: bool = True, o4: bool = False) -> None:
    """Optimum's fp32 export into `out` (atomically) and, when `quantize`, its dynamic int8 beside it; when `o4`,
    its O4 graph (Optimum's most aggressive GPU level: fusions plus fp16 weights and activations)."""
    from optimum.onnxruntime import ORTModelForQuestionAnswering, ORTOptimizer, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig, AutoQuantizationConfig
    from transformers import AutoTokenizer

    register_tiny_model()
    with atomic_dir(out, force=True) as tmp:
        model = ORTModelForQuestionAnswering.from_pretrained(checkpoint, export=True, local_files_only=True)
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(checkpoint, local_files_only=True).save_pretrained(tmp)
        del model
        if o4:
            optimizer = ORTOptimizer.from_pretrained(tmp, file_names=[OPTIMUM_FP32])
            optimizer.optimize(save_dir=tmp, optimization_config=AutoOptimizationConfig.O4(for_gpu=True))
            if not (tmp / OPTIMUM_O4).is_file():
                raise RuntimeError(f"ORTOptimizer wrote no {OPTIMUM_O4} in {tmp}")
        if not quantize:
            return
        quantizer = ORTQuantizer.from_pretrained(tmp, file_name=OPTIMUM_FP32)
        config = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=per_channel)
        quantizer.quantize(quantization_config=config, save_dir=tmp)
        if not (tmp / OPTIMUM_INT8).is_file():
            raise RuntimeError(f"ORTQuantizer wrote no {OPTIMUM_INT8} in {tmp}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m qa_engine.benchmarks.optimum_export")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--per-tensor", action="store_true", help="int8 weights per tensor (default: per channel)")
    p.add_argument("--no-int8", action="store_true", help="no dynamic int8 file")
    p.add_argument("--o4", action="store_true", help="also Optimum's O4 fp16 graph (for CUDA)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    export_optimum(args.checkpoint, args.out, per_channel=not args.per_tensor, quantize=not args.no_int8, o4=args.o4)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
