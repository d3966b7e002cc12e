"""The `qa-engine export` subcommand: argparse only here; the export stack is imported when it runs."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from qa_engine.cli.numbers import non_negative_float, positive_int

from .triton import add_triton_args, run_triton
from .validate import ATOL, CALIBRATION_QUESTIONS, RTOL

if TYPE_CHECKING:
    from qa_engine.artifacts.manifest import Variant


def _cmd_export(args: argparse.Namespace) -> int:
    from qa_engine.train import stack

    from qa_engine.artifacts import hub, model_card
    from qa_engine.artifacts.manifest import Manifest

    stack.check("export")
    from .pipeline import export_artifact, parse_precisions

    if args.push_to_hub:  # fail before the export, not after it
        if not hub.is_repo_id(args.push_to_hub) or "/" not in args.push_to_hub:
            raise ValueError(f"--push-to-hub wants a hub repo id like org/name, got {args.push_to_hub!r}")
        hub.import_hub("--push-to-hub")
    out = export_artifact(
        args.model,
        args.output,
        precisions=parse_precisions(args.precision),
        opset=args.opset,
        force=args.force,
        validation_data=args.data,
        max_validation=args.max_validation,
        atol=args.atol,
        rtol=args.rtol,
        calibration_questions=args.calibration_questions,
        exporter=args.exporter,
        openvino=args.openvino,
    )
    manifest = Manifest.read(out)
    print(f"exported {manifest.model_type} to {out} (opset {manifest.opset}; fused: "
          + ", ".join(f"{k} {v}" for k, v in manifest.fusion.items()) + ")")
    for precision, variant in manifest.variants.items():
        print(f"  {precision:5s} {variant.file:18s} [{'/'.join(variant.providers)}] {_summary(variant)}")
    for precision, ir in ((p, r) for p, r in manifest.openvino.items() if "validation" in r):
        v = ir["validation"]
        print(f"  {precision:5s} {ir['file']:18s} [openvino] {100 * v['answers_identical']:.1f}% answers identical "
              f"to fp32 on {v['questions']} questions; F1 {v['f1']:.2f} ({v['f1_delta']:+.2f})")
    model_card.record_provenance(out, getattr(args, "argv", []), args.model)
    repo = run_triton(args, out)
    if repo is not None:
        print(f"wrote Triton model repository {repo}")
    if args.push_to_hub:
        card = model_card.card_for(out, args.push_to_hub)
        print(f"uploaded to {args.push_to_hub}: "
              + hub.push_artifact(out, args.push_to_hub, card=card, private=args.private))
    return 0


def _summary(variant: "Variant") -> str:
    """One line of a variant's validation numbers and note."""
    v = variant.validation
    if v.get("reference") == "pytorch":
        steps = v.get("steps", {})
        gap = (f"max |Δ logits| unfused vs PyTorch {steps['unfused_vs_pytorch']:.1e}, fused vs unfused "
               f"{steps['fused_vs_unfused']:.1e} (limit {v['limit']:.1e})" if "fused_vs_unfused" in steps
               else f"max |Δ logits| vs PyTorch {v['max_abs_diff']:.1e}")
        line = (f"{gap} on {v['questions']} questions; "
                f"EM {v['exact_match']:.2f} F1 {v['f1']:.2f} on {v['scored_questions']}")
    elif v:
        line = (f"{100 * v['answers_identical']:.1f}% answers identical to fp32 on {v['questions']} questions; "
                f"EM {v['exact_match']:.2f} ({v['exact_match_delta']:+.2f}) F1 {v['f1']:.2f} ({v['f1_delta']:+.2f})")
    else:
        line = ""
    note = f"WARNING: {variant.note}" if variant.validated and variant.note else variant.note
    return "; ".join(part for part in (line, note) if part)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `export` to the qa-engine command."""
    p = sub.add_parser("export", help="export a fine-tuned checkpoint to a validated ONNX artifact folder")
    p.add_argument("--model", required=True, help="checkpoint folder (save_pretrained, with tokenizer.json)")
    p.add_argument("--output", required=True, help="artifact folder to write")
    p.add_argument("--precision", default="all",
                   help="fp32, int8, fp16, a comma-separated list, or all (default: all)")
    p.add_argument("--opset", type=positive_int, default=None, help="ONNX opset (default 18; at least 14, 18 with dynamo)")
    p.add_argument("--exporter", choices=["auto", "torchscript", "dynamo"], default="auto",
                   help="torch.onnx exporter: torchscript (deprecated by torch, fuses as before), dynamo "
                        "(torch.export; fused with onnxscript's onnxruntime fusions), or auto: torchscript while "
                        "this torch has it (default)")
    p.add_argument("--force", action="store_true", help="replace an existing artifact folder")
    p.add_argument("--openvino", action="store_true",
                   help="also write OpenVINO fp32 and NNCF int8 IR for provider='openvino' (needs "
                        "'qa-engine[openvino-export]')")
    p.add_argument("--data", default=None,
                   help="SQuAD JSON / JSON Lines for validation (default: a held-out synthetic set)")
    p.add_argument("--max-validation", type=positive_int, default=500, help="validation questions at most (default 500)")
    p.add_argument("--calibration-questions", type=positive_int, default=CALIBRATION_QUESTIONS,
                   help="int8: questions whose windows set the static activation scales, taken from --data past "
                        f"the validation questions (default {CALIBRATION_QUESTIONS})")
    p.add_argument("--atol", type=non_negative_float, default=ATOL,
                   help="fp32 gate: max |Δ logits| allowed beyond rtol's share, unfused export vs PyTorch and "
                        f"fused vs unfused graph (default {ATOL:g})")
    p.add_argument("--rtol", type=non_negative_float, default=RTOL,
                   help="fp32 gate: max |Δ logits| allowed per unit of the largest |logit| "
                        f"(default {RTOL:g}; measured rounding stays within 2e-4, see export/VALIDATION.md)")
    p.add_argument("--push-to-hub", metavar="REPO_ID", default=None,
                   help="then upload the artifact with a model card to this hub model repo (org/name; needs "
                        "qa-engine[hub] and a token: `hf auth login` or HF_TOKEN)")
    p.add_argument("--private", action="store_true", default=None, help="with --push-to-hub: create the repo private")
    add_triton_args(p)
    p.set_defaults(func=_cmd_export)
