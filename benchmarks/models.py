"""The models the benchmark runs, built once and cached under the work dir with every export the systems need.

Speed model: the distilbert-base-multilingual-cased shape with random weights (throughput does not depend on
weight values) and a WordPiece tokenizer trained on the workload's own text. Accuracy model: a trained checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from qa_engine.artifacts.atomic import atomic_dir
from qa_engine.formats.squad import Example

from . import environments, optimum_export
from .flops import ModelShape
from .optimum_export import OPTIMUM_INT8, OPTIMUM_O4

log = logging.getLogger(__name__)

# distilbert-base-multilingual-cased
MBERT_SHAPE = ModelShape(layers=6, hidden=768, heads=12, ffn=3072, vocab=119547)
MAX_POSITIONS = 512
MIN_TOKENS_PER_CHAR = 0.6  # below this the local vocabulary would make windows unrealistically short
VOCAB_SIZES = (32000, 16000, 8000, 4000, 2000)  # tried largest first until contexts reach MIN_TOKENS_PER_CHAR
EXPORT_VALIDATION_QUESTIONS = 32
INFO = "bench_model.json"
# per device: the artifact's precisions, its folder, and the record of a prepared model (CPU names as before)
ARTIFACT_PRECISIONS = {"cpu": ("fp32", "int8"), "cuda": ("fp32", "fp16")}
ARTIFACT_DIRS = {"cpu": "artifact", "cuda": "artifact-cuda"}
INFO_FILES = {"cpu": INFO, "cuda": "bench_model-cuda.json"}


@dataclass(frozen=True)
class PreparedModel:
    """A checkpoint with its qa-engine artifact and Optimum exports: for CPU fp32 and int8 each; for CUDA
    an fp32 + fp16 artifact and Optimum's fp32."""

    role: str
    description: str
    checkpoint: Path
    artifact: Path
    optimum: Path
    shape: ModelShape
    random_weights: bool
    tokens_per_char: float | None = None
    vocab_size: int | None = None

    def as_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def digest(*parts: object) -> str:
    """A short stable hash of the parts' string forms (cache keys)."""
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:12]


def source_digest(source: str) -> str:
    """Content hash of a local data file, or the id itself for a hub dataset."""
    path = Path(source)
    if not path.is_file():
        return digest(source)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()[:12]


def tokens_per_char(tokenizer, texts: Sequence[str]) -> float:
    """Tokens per character over `texts` (no special tokens)."""
    encoded = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    return sum(len(e.ids) for e in encoded) / max(1, sum(len(t) for t in texts))


def train_speed_tokenizer(examples: Sequence[Example]):
    """WordPiece trained on the data's contexts and questions: the largest vocabulary reaching MIN_TOKENS_PER_CHAR."""
    from qa_engine.train.tokenizer import train_wordpiece

    contexts = list(dict.fromkeys(e.context for e in examples))
    texts = contexts + [e.question for e in examples]
    for vocab_size in VOCAB_SIZES:
        tok = train_wordpiece(texts, vocab_size)
        ratio = tokens_per_char(tok, contexts)
        log.info("WordPiece vocab %d: %.3f tokens per context character", tok.get_vocab_size(), ratio)
        if ratio >= MIN_TOKENS_PER_CHAR:
            return tok, ratio
    log.warning("no vocabulary size reached %.2f tokens/char; using the smallest (%.3f)", MIN_TOKENS_PER_CHAR, ratio)
    return tok, ratio


def build_speed_checkpoint(out: Path, examples: Sequence[Example], seed: int) -> dict:
    """save_pretrained folder: random-weight DistilBERT QA model of the mBERT shape plus the trained tokenizer."""
    import torch
    from qa_engine.train.tokenizer import save_tokenizer_dir
    from transformers import DistilBertConfig, DistilBertForQuestionAnswering

    tok, ratio = train_speed_tokenizer(examples)
    torch.manual_seed(seed)
    s = MBERT_SHAPE
    config = DistilBertConfig(
        vocab_size=s.vocab, dim=s.hidden, n_layers=s.layers, n_heads=s.heads, hidden_dim=s.ffn,
        max_position_embeddings=MAX_POSITIONS, pad_token_id=tok.token_to_id("[PAD]"),
        architectures=["DistilBertForQuestionAnswering"],
    )
    DistilBertForQuestionAnswering(config).eval().save_pretrained(out)
    save_tokenizer_dir(tok, out)
    return {"tokens_per_char": ratio, "vocab_size": tok.get_vocab_size()}


def export_optimum(checkpoint: Path, out: Path, per_channel: bool, quantize: bool, workdir: Path,
                   o4: bool = False) -> None:
    """Optimum's own export (benchmarks/optimum_export.py), in the interpreter the Optimum peer runs in."""
    python = environments.interpreter("optimum", workdir)
    if python == sys.executable:
        optimum_export.export_optimum(checkpoint, out, per_channel, quantize, o4)
        return
    args = [str(checkpoint), str(out), *["--per-tensor"] * (not per_channel), *["--no-int8"] * (not quantize),
            *["--o4"] * o4]
    environments.run_module(python, "qa_engine.benchmarks.optimum_export", args, f"Optimum's export of {checkpoint}")


def _prepare(role: str, description: str, folder: Path, checkpoint: Path, random_weights: bool,
             per_channel: bool, extra: dict, device: str = "cpu") -> PreparedModel:
    """Export the artifact and Optimum variants `device` needs of `checkpoint` into `folder` (skipped when cached)."""
    from qa_engine.export.pipeline import export_artifact
    from qa_engine.train import relbert  # noqa: F401  (registers the offline tiny model's type)
    from transformers import AutoConfig

    artifact, optimum = folder / ARTIFACT_DIRS[device], folder / "optimum"
    precisions = ARTIFACT_PRECISIONS[device]
    if not (artifact / "qa_engine.json").is_file():
        log.info("%s model: exporting the qa-engine artifact (%s)", role, ", ".join(precisions))
        export_artifact(checkpoint, artifact, precisions=precisions, force=True,
                        max_validation=EXPORT_VALIDATION_QUESTIONS)
    quantize, o4 = device == "cpu", device == "cuda"
    if not (optimum / (OPTIMUM_INT8 if quantize else OPTIMUM_O4)).is_file():
        log.info("%s model: exporting with Optimum (fp32%s)", role,
                 f", dynamic int8 per_channel={per_channel}" if quantize else ", O4 fp16")
        export_optimum(checkpoint, optimum, per_channel, quantize, folder.parent, o4=o4)
    shape = ModelShape.from_config(AutoConfig.from_pretrained(checkpoint, local_files_only=True))
    model = PreparedModel(role, description, checkpoint, artifact, optimum, shape, random_weights, **extra)
    (folder / INFO_FILES[device]).write_text(json.dumps(model.as_dict(), indent=1), encoding="utf-8")
    return model


def _cached(folder: Path, device: str = "cpu") -> PreparedModel | None:
    info = folder / INFO_FILES[device]
    if not info.is_file():
        return None
    raw = json.loads(info.read_text(encoding="utf-8"))
    raw["shape"] = ModelShape(**raw["shape"])
    for key in ("checkpoint", "artifact", "optimum"):
        raw[key] = Path(raw[key])
    return PreparedModel(**raw)


def speed_model(workdir: Path, source: str, examples: Sequence[Example], seed: int, per_channel: bool,
                device: str = "cpu") -> PreparedModel:
    """The random-weight mBERT-shape model for `source`, cached by data content, seed and quantization choice,
    with the exports `device` needs."""
    folder = workdir.resolve() / f"speed-{digest(source_digest(source), seed, per_channel, MBERT_SHAPE)}"
    if (cached := _cached(folder, device)) is not None:
        log.info("speed model: cached in %s", folder)
        return cached
    checkpoint = folder / "checkpoint"
    info_file = checkpoint / "build.json"
    if not info_file.is_file():
        log.info("speed model: building the distilbert-base-multilingual-cased shape with random weights")
        with atomic_dir(checkpoint, force=True) as tmp:
            info = build_speed_checkpoint(tmp, examples, seed)
            (tmp / "build.json").write_text(json.dumps(info), encoding="utf-8")
    info = json.loads(info_file.read_text(encoding="utf-8"))
    s = MBERT_SHAPE
    description = (f"distilbert-base-multilingual-cased shape ({s.layers} layers, dim {s.hidden}, vocab {s.vocab}), "
                   f"random weights, WordPiece vocab {info['vocab_size']} trained on the data")
    return _prepare("speed", description, folder, checkpoint, True, per_channel, info, device)


def checkpoint_model(workdir: Path, role: str, checkpoint: Path, per_channel: bool,
                     device: str = "cpu") -> PreparedModel:
    """A trained save_pretrained checkpoint with the exports `device` needs, cached by path and weight file times."""
    checkpoint = checkpoint.resolve()
    stamps = sorted((p.name, p.stat().st_mtime_ns) for p in checkpoint.iterdir() if p.is_file())
    folder = workdir.resolve() / f"{role}-{checkpoint.name}-{digest(checkpoint, stamps, per_channel)}"
    if (cached := _cached(folder, device)) is not None:
        log.info("%s model: cached in %s", role, folder)
        return cached
    return _prepare(role, f"trained checkpoint {checkpoint}", folder, checkpoint, False, per_channel, {}, device)


def tiny_dir(workdir: Path, quick: bool = False) -> Path:
    """Where tiny_bert_checkpoint trains the tiny model."""
    return workdir.resolve() / ("tiny-bert-quick" if quick else "tiny-bert")


def tiny_bert_checkpoint(workdir: Path, quick: bool = False) -> Path:
    """The tiny offline model (train.tiny), trained once into the work dir; `quick`: its one-minute recipe."""
    from qa_engine.train.tiny import build_tiny_model

    return Path(build_tiny_model(tiny_dir(workdir, quick), family="bert", quick=quick))
