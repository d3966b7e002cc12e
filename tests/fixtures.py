"""Fixtures shared by tests/ and benchmarks/ (both conftests import them): the KorQuAD dev set, the random-weight
artifact the runtime tests run on, and the trained tiny models and their exports (cached in pytest's cache dir).

Only pytest, numpy, tokenizers and qa_engine are imported at module level: the runtime-only test job
(scripts/test.sh) has nothing else installed. Fixtures named in TRAINED train or export a model; every test that
uses one, directly or through another fixture, is marked `slow` by tests/conftest.py.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)

from qa_engine import QAEngine
from qa_engine.artifacts.manifest import Manifest, Variant, sha256_file

ROOT = Path(__file__).resolve().parents[1]
KORQUAD_DEV = ROOT / ".." / "shared" / "data" / "korquad" / "KorQuAD_v1.0_dev.json"
RANDOM_MODEL = ROOT / "tests" / "data" / "random_bert"  # written by tests/random_model.py
TRAINED = frozenset({"tiny_bert_checkpoint", "quick_distilbert_checkpoint", "tiny_bert_artifact",
                     "quick_distilbert_artifact"})
# the random model's positions are computed (no table); its config claims BERT's 512 so the limit is checked
RANDOM_MODEL_POSITIONS = 512
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4, as train.tokenizer's


def cache_dir(request: pytest.FixtureRequest, name: str) -> Path:
    """A folder kept across runs in pytest's cache (.pytest_cache/d/qa-engine/<name>)."""
    return Path(request.config.cache.mkdir("qa-engine")) / name


def korquad_path() -> Path:
    """The KorQuAD 1.0 dev set's path (KORQUAD_DEV overrides it); it may not exist."""
    return Path(os.environ.get("KORQUAD_DEV", KORQUAD_DEV)).resolve()


@pytest.fixture(scope="session")
def korquad_dev() -> Path:
    """The real KorQuAD 1.0 dev set; tests using it skip where it is absent."""
    path = korquad_path()
    if not path.is_file():
        pytest.skip(f"KorQuAD dev set not found at {path}")
    return path


# --- the random-weight artifact: runtime tests that do not depend on answer quality --------------------------

def korean_alphabet() -> str:
    """The 2,350 Hangul syllables of KS X 1001 (what Korean text uses) and printable ASCII."""
    hangul = "".join(chr(c) for c in range(0xAC00, 0xD7A4) if _in_ks_x_1001(chr(c)))
    return hangul + "".join(chr(c) for c in range(0x21, 0x7F))


def _in_ks_x_1001(ch: str) -> bool:
    try:
        ch.encode("euc-kr")
        return True
    except UnicodeEncodeError:
        return False


def char_wordpiece(alphabet: str, specials: tuple[str, ...] = SPECIAL_TOKENS) -> Tokenizer:
    """A merge-free WordPiece over `alphabet`, each character word-initial and ##continuation, framed
    [CLS] q [SEP] c [SEP] (the layout of train.tokenizer.char_wordpiece, built here without the train package)."""
    chars = sorted(set(alphabet) - set(" \t\n"))
    vocab = {t: i for i, t in enumerate([*specials, *chars, *("##" + c for c in chars)])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##",
                                     max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                                lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def build_random_artifact(folder: Path) -> Path:
    """An artifact folder (manifest with checksums, tokenizer, model config, fp32/int8/fp16 ONNX files) of the committed
    random-weight BERT-like model: what `qa-engine export` writes, without training or exporting anything."""
    folder.mkdir(parents=True, exist_ok=True)
    variants = {}
    for precision, providers in (("fp32", ["cpu", "cuda"]), ("int8", ["cpu"]), ("fp16", ["cuda"])):
        name = f"model.{precision}.onnx"
        shutil.copyfile(RANDOM_MODEL / name, folder / name)
        variants[precision] = Variant(name, sha256_file(folder / name), providers,
                                      note="random weights for the runtime tests: answers mean nothing")
    char_wordpiece(korean_alphabet()).save(str(folder / "tokenizer.json"))
    config = {"model_type": "bert", "max_position_embeddings": RANDOM_MODEL_POSITIONS}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    Manifest(model_type="bert", input_names=["input_ids", "attention_mask", "token_type_ids"],
             output_names=["start_logits", "end_logits"], variants=variants, opset=17,
             files={name: sha256_file(folder / name) for name in ("tokenizer.json", "config.json")}).write(folder)
    return folder


@pytest.fixture(scope="session")
def random_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random-weight artifact (fresh per session; building it takes well under a second)."""
    return build_random_artifact(tmp_path_factory.mktemp("random-artifact"))


@pytest.fixture(scope="session")
def engine(random_artifact: Path) -> QAEngine:
    """The fp32 engine on the random-weight artifact, shared by the runtime tests (int8's dynamic activation
    scales depend on the batch, fp32's answers do not)."""
    return QAEngine.from_pretrained(random_artifact, provider="cpu", precision="fp32")


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` TCP ports free on `host` just now (for the servers a test starts)."""
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for sock in sockets:
        sock.bind((host, 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


NAMES = ("철수", "영희", "민수", "지영", "현우", "서연", "도윤", "하은", "준호", "민지")
PLACES = ("서울", "부산", "대구", "광주", "대전", "제주", "인천", "울산", "수원", "춘천")
DEEDS = (("에 삽니다", "어디에 삽니까?"), ("에서 일합니다", "어디에서 일합니까?"), ("으로 떠났습니다", "어디로 떠났습니까?"))


def qa_pairs(n: int, seed: int) -> list[tuple[str, str, str]]:
    """`n` (question, context, answer) triples in Korean, made from a few names and places (no train package):
    each context says where two or three people live, work or went, and the question asks about one of them."""
    rng = random.Random(seed)
    triples = []
    for _ in range(n):
        people = rng.sample(NAMES, rng.randint(2, 3))
        facts = [(p, rng.choice(PLACES), rng.choice(DEEDS)) for p in people]
        context = " ".join(f"{p}는 {place}{deed}." for p, place, (deed, _) in facts)
        person, place, (_, asked) = rng.choice(facts)
        triples.append((f"{person}는 {asked}", context, place))
    return triples


# --- trained tiny models and their exports (slow: minutes on 2 cores the first time, then cached) ------------

@pytest.fixture(scope="session")
def tiny_bert_checkpoint(request: pytest.FixtureRequest) -> Path:
    """The tiny BERT (relative-position attention) trained on synthetic Korean data: answers seed questions."""
    from qa_engine.train.tiny import build_tiny_model

    return build_tiny_model(cache_dir(request, "tiny-bert"), family="bert")


@pytest.fixture(scope="session")
def quick_distilbert_checkpoint(request: pytest.FixtureRequest) -> Path:
    """A tiny DistilBERT, briefly trained: the family whose attention onnxruntime fuses, like the default base
    model, so the benchmarks time the production graph layout."""
    from qa_engine.train.tiny import build_tiny_model

    return build_tiny_model(cache_dir(request, "tiny-distilbert-quick"), family="distilbert", quick=True)


def _export_cached(request: pytest.FixtureRequest, checkpoint: Path, name: str, precisions: tuple[str, ...]) -> Path:
    """`checkpoint` exported once per training recipe and artifact format (a new recipe or manifest format gets a
    new export, not a stale one)."""
    from qa_engine.artifacts.manifest import FORMAT_VERSION
    from qa_engine.export.pipeline import export_artifact

    recipe = json.loads((checkpoint / "metrics.json").read_text(encoding="utf-8"))["recipe"]
    out = cache_dir(request, f"{name}-{recipe}-format{FORMAT_VERSION}")
    if not (out / "qa_engine.json").is_file():
        export_artifact(checkpoint, out, precisions=precisions, force=True)
    return out


@pytest.fixture(scope="session")
def tiny_bert_artifact(request: pytest.FixtureRequest, tiny_bert_checkpoint: Path) -> Path:
    """The trained tiny BERT exported in every precision (an artifact folder with qa_engine.json)."""
    return _export_cached(request, tiny_bert_checkpoint, "tiny-artifact", ("fp32", "int8", "fp16"))


@pytest.fixture(scope="session")
def quick_distilbert_artifact(request: pytest.FixtureRequest, quick_distilbert_checkpoint: Path) -> Path:
    """The quick DistilBERT exported for CPU (fp32 and int8): the benchmarks' model."""
    return _export_cached(request, quick_distilbert_checkpoint, "bench-artifact", ("fp32", "int8"))
