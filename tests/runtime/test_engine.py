"""QAEngine: API, bucketing, long contexts, providers, threads and bad input on the random-weight artifact (runtime
dependencies only); answers, accuracy and parity with the HF pipeline on the trained tiny model (slow)."""
import json
import logging
import re
import shutil
import unicodedata
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from qa_engine import QAEngine
from qa_engine.artifacts.manifest import Manifest
from qa_engine.core.pipeline import model_feed
from qa_engine.core.runner import CallRunner
from qa_engine.runners import sessions
from tests.fixtures import char_wordpiece, qa_pairs

SEEDS = [
    ("철수는 어디에 삽니까?", "철수는 서울에 삽니다.", "서울"),
    ("고양이가 어디에 앉습니까?", "고양이가 의자에 앉습니다.", "의자"),
]


@pytest.fixture(scope="module")
def trained_engine(tiny_bert_artifact):
    return QAEngine.from_pretrained(tiny_bert_artifact, provider="cpu", precision="fp32")


@pytest.fixture(scope="module")
def pairs():
    triples = qa_pairs(60, seed=7)
    return [q for q, _, _ in triples], [c for _, c, _ in triples]


@pytest.fixture(scope="module")
def synthetic():
    from qa_engine.train.synthetic import generate

    records = generate(60, seed=7, split="heldout")
    return [r["question"] for r in records], [r["context"] for r in records], records


def _check_offsets(engine, context, results, expected=None):
    """Each result is a real answer (not the empty fallback at 0, 0) whose offsets cut it from the original
    `context` on the boundaries of the engine's context tokens; `expected`, where the answer is known, is its text."""
    w = engine.tokenizer.windows(["질문"], [context])
    offsets = w.offsets[w.context_mask]
    starts, ends = set(offsets[:, 0].tolist()), set(offsets[:, 1].tolist())
    for result in results if isinstance(results, list) else [results]:
        assert set(result) == {"answer", "score", "start", "end"}
        assert 0 <= result["start"] < result["end"] <= len(context)
        assert result["start"] in starts and result["end"] in ends
        assert context[result["start"] : result["end"]] == result["answer"]
        assert result["score"] > 0.0  # identical texts from several windows add up, as in the pipeline
        if expected is not None:
            assert result["answer"] == expected


@pytest.mark.parametrize("question, context, expected", SEEDS)
def test_seed_questions_in_both_cpu_precisions(tiny_bert_artifact, question, context, expected):
    for precision in ("fp32", "int8"):
        eng = QAEngine.from_pretrained(tiny_bert_artifact, provider="cpu", precision=precision)
        _check_offsets(eng, context, eng.answer(question, context), expected)


def test_default_precision_on_cpu_is_int8(random_artifact):
    assert QAEngine.from_pretrained(random_artifact, provider="cpu").settings.precision == "int8"


def test_top_k_returns_a_sorted_list(engine):
    results = engine.answer(*SEEDS[0][:2], top_k=3)
    assert isinstance(results, list) and len(results) == 3
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    _check_offsets(engine, SEEDS[0][1], results)
    assert results[0] == engine.answer(*SEEDS[0][:2])


def test_top_k_starts_with_the_seed_answer(trained_engine):
    assert trained_engine.answer(*SEEDS[0][:2], top_k=3)[0]["answer"] == SEEDS[0][2]


def test_batch_order_is_kept_under_bucketing(engine, pairs):
    questions, contexts = pairs
    # pad some contexts so the batch mixes very different lengths
    contexts = [c + (" 그리고 날씨가 맑았습니다." * (i % 7) * 10) for i, c in enumerate(contexts)]
    batched = engine.answer_batch(questions, contexts, batch_size=4)
    one_by_one = [engine.answer(q, c) for q, c in zip(questions, contexts)]
    assert [b["answer"] for b in batched] == [o["answer"] for o in one_by_one]
    assert [b["start"] for b in batched] == [o["start"] for o in one_by_one]
    np.testing.assert_allclose([b["score"] for b in batched], [o["score"] for o in one_by_one], rtol=1e-4)


def test_heldout_accuracy_through_the_engine_matches_pytorch(tiny_bert_checkpoint, trained_engine, synthetic):
    """The exported engine scores what the PyTorch checkpoint scores on questions about unseen names."""
    from tests.hf_pipeline import pipeline_answers

    questions, contexts, records = synthetic
    torch_answers = pipeline_answers(tiny_bert_checkpoint, questions, contexts, max_seq_len=384, doc_stride=128)
    gold = [rec["answers"]["text"][0] for rec in records]
    engine_em = np.mean([r["answer"] == g for r, g in zip(trained_engine.answer_batch(questions, contexts), gold)])
    torch_em = np.mean([r["answer"] == g for r, g in zip(torch_answers, gold)])
    assert engine_em >= 0.85  # the 90 of training is measured on 824 questions; these are 158 others
    assert abs(engine_em - torch_em) <= 0.01


def _agreement(engine, checkpoint, questions, contexts):
    """The share of the engine's answers (text and offsets) that are the HF pipeline's on the PyTorch checkpoint
    (align_to_words=False, the engine's window settings); the scores of equal answers must agree."""
    from tests.hf_pipeline import pipeline_answers

    ours = engine.answer_batch(questions, contexts)
    window = engine.settings.window
    theirs = pipeline_answers(checkpoint, questions, contexts, window.max_length, window.doc_stride)
    same = [(o["answer"], o["start"], o["end"]) == (t["answer"], t["start"], t["end"]) for o, t in zip(ours, theirs)]
    for o, t in zip(ours, theirs):
        assert o["score"] == pytest.approx(t["score"], rel=1e-3, abs=1e-6) or o["answer"] != t["answer"]
    return np.mean(same)


FILLER = "오늘은 날씨가 맑고 바람이 조금 붑니다. 시장에는 사람이 많습니다. " * 600
LONG = ("철수는 어디에 삽니까?", FILLER + "철수는 서울에 삽니다.")


def test_long_context_is_answered_across_all_its_windows(engine):
    """No text repeats (windows of repeated text give the same answer text, reported at its first place)."""
    question = "철수는 어디에 삽니까?"
    context = " ".join(c for _, c, _ in qa_pairs(500, seed=5))
    assert len(engine.tokenizer.windows([question], [context])) > 50
    candidates = engine.answer(question, context, top_k=100)
    _check_offsets(engine, context, candidates)
    assert max(r["start"] for r in candidates) > 0.9 * len(context)  # from the last windows too


def test_long_context_answer_in_the_last_window_as_the_hf_pipeline(tiny_bert_checkpoint, trained_engine):
    question, context = LONG
    late = [r for r in trained_engine.answer(question, context, top_k=100) if r["start"] >= len(FILLER)]
    assert late, "no candidate from the last window"
    assert all(r["end"] <= len(context) for r in late)
    assert _agreement(trained_engine, tiny_bert_checkpoint, [question], [context]) == 1.0


def test_same_answers_as_hf_pipeline_on_synthetic(tiny_bert_checkpoint, trained_engine, synthetic):
    questions, contexts, _ = synthetic
    assert _agreement(trained_engine, tiny_bert_checkpoint, questions, contexts) == 1.0


def test_same_answers_as_hf_pipeline_on_korquad(tiny_bert_checkpoint, trained_engine, korquad_dev):
    """Real contexts (multi-window ones included). The tiny model is weak on them, which makes
    near-ties more likely; any difference would come from float32 rounding between PyTorch and the fused graph."""
    from qa_engine.formats.squad import load_examples

    examples = load_examples(korquad_dev)[::20]
    rate = _agreement(trained_engine, tiny_bert_checkpoint, [e.question for e in examples], [e.context for e in examples])
    assert rate >= 0.999


def test_eight_threads_give_sequential_answers(engine, pairs):
    questions, contexts = pairs
    expected = [engine.answer(q, c) for q, c in zip(questions, contexts)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda qc: engine.answer(*qc), zip(questions * 3, contexts * 3)))
    assert got == expected * 3


def test_auto_falls_back_to_cpu_with_one_log_line(random_artifact, monkeypatch, caplog):
    monkeypatch.setattr(sessions, "cuda_session", lambda *a, **k: None)
    caplog.set_level(logging.INFO, logger="qa_engine")
    eng = QAEngine.from_pretrained(random_artifact, provider="auto")
    assert eng.settings.device == "cpu" and eng.settings.precision == "int8"
    assert sum("CUDA is not usable" in r.message for r in caplog.records) == 1
    with pytest.raises(RuntimeError, match="cuda"):
        QAEngine.from_pretrained(random_artifact, provider="cuda")


def test_explicit_provider_list_and_unknown_provider(random_artifact):
    eng = QAEngine.from_pretrained(random_artifact, provider=["CPUExecutionProvider"], precision="fp32")
    assert eng.runner.session.get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="provider"):
        QAEngine.from_pretrained(random_artifact, provider="tpu")
    with pytest.raises(ValueError, match="precision"):
        QAEngine.from_pretrained(random_artifact, provider="cpu", precision="int4")


@pytest.mark.parametrize(
    "questions, contexts, message",
    [
        ([""], ["철수는 서울에 삽니다."], "question 0 is empty"),
        (["  \n"], ["철수는 서울에 삽니다."], "question 0 is empty"),
        (["어디?"], ["\t "], "context 0 is empty"),
        ([None], ["철수는 서울에 삽니다."], "question 0 must be a string"),
        (["어디?"], [b"bytes"], "context 0 must be a string"),
        (["어디?", "누구?"], ["철수는 서울에 삽니다."], "2 questions but 1 contexts"),
        (["철수 " * 400], ["철수는 서울에 삽니다."], "question 0 is too long"),
    ],
)
def test_bad_input_is_a_clear_value_error(engine, questions, contexts, message):
    with pytest.raises(ValueError, match=message):
        engine.answer_batch(questions, contexts)


@pytest.mark.parametrize("question, context, message", [
    ("", "철수는 서울에 삽니다.", "^the question is empty$"),
    ("어디?", "\t ", "^the context is empty$"),
    (None, "철수는 서울에 삽니다.", "^the question must be a string, got NoneType$"),
    ("철수 " * 400, "철수는 서울에 삽니다.", "^the question is too long: 800 tokens"),
])
def test_one_question_is_not_numbered_in_errors(engine, question, context, message):
    with pytest.raises(ValueError, match=message):
        engine.answer(question, context)


def test_a_single_string_is_not_taken_for_a_list(engine):
    with pytest.raises(ValueError, match="sequences"):
        engine.answer_batch("철수는 어디에 삽니까?", "철수는 서울에 삽니다.")


@pytest.mark.parametrize(
    "context, same_tokens_as_seed",
    [
        (unicodedata.normalize("NFD", "철수는 서울에 삽니다."), True),  # jamo: tokenized as their NFC syllables
        ("철수는 🏙️서울에 삽니다. 😀", False),
        ("철수는\u200b 서울\u200d에 삽니다.\ufeff", True),  # the normalizer drops what the model never sees
        ("철수는\x00\x07 서울에\r\n삽니다.\x1b", True),
        ("철\u0301수는 서울에 삽니다.", False),
    ],
)
def test_odd_unicode_keeps_offsets_on_the_original_string(engine, context, same_tokens_as_seed):
    """Offsets index the string as given. Where the model sees the seed's own tokens the answer is the seed's
    span (same score), cut from the odd string; elsewhere it must still be a real answer on token boundaries."""
    question, seed_context, _ = SEEDS[0]
    seed_ids = engine.tokenizer.windows([question], [seed_context]).input_ids
    assert np.array_equal(engine.tokenizer.windows([question], [context]).input_ids, seed_ids) == same_tokens_as_seed
    result = engine.answer(question, context)
    _check_offsets(engine, context, result)
    if same_tokens_as_seed:
        seed = engine.answer(question, seed_context)
        assert unicodedata.normalize("NFC", _visible(result["answer"])) == _visible(seed["answer"])
        assert result["score"] == pytest.approx(seed["score"], rel=1e-5)


def _visible(text):
    """`text` without whitespace, control and zero-width characters (what the normalizer drops or splits on)."""
    return re.sub(r"[\s\x00-\x1f\u200b\u200d\ufeff]", "", text)


CONTEXT_100K = ("가나다라마바사 아자차카타파하. " * 7000)[:100_000] + " 철수는 서울에 삽니다."


def test_context_of_100k_characters(engine):
    _check_offsets(engine, CONTEXT_100K, engine.answer("철수는 어디에 삽니까?", CONTEXT_100K, top_k=5))


def test_context_of_100k_characters_has_its_answer_found_at_the_end(trained_engine):
    result = trained_engine.answer("철수는 어디에 삽니까?", CONTEXT_100K)
    _check_offsets(trained_engine, CONTEXT_100K, result, "서울")
    assert result["start"] == CONTEXT_100K.rindex("서울")


def test_missing_and_corrupt_artifacts(random_artifact, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        QAEngine.from_pretrained(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(random_artifact, broken)
    (broken / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        QAEngine.from_pretrained(broken, provider="cpu")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(random_artifact, corrupt)
    (corrupt / "model.fp32.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(ValueError, match="checksum"):
        QAEngine.from_pretrained(corrupt, provider="cpu", precision="fp32")
    with pytest.raises(ValueError, match="cannot load the ONNX model"):
        QAEngine.from_pretrained(corrupt, provider="cpu", precision="fp32", verify=False)


def test_manifest_from_a_newer_version_is_refused(random_artifact, tmp_path):
    newer = tmp_path / "newer"
    shutil.copytree(random_artifact, newer)
    raw = json.loads((newer / "qa_engine.json").read_text())
    raw["format_version"] = 99
    (newer / "qa_engine.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="newer"):
        Manifest.read(newer)
    (newer / "qa_engine.json").write_text("{")
    with pytest.raises(ValueError, match="malformed"):
        QAEngine.from_pretrained(newer)


def test_io_binding_path_gives_the_plain_run_outputs(engine):
    """The CUDA path's IO binding, exercised on the CPU provider (no GPU needed)."""
    w = engine.tokenizer.windows([SEEDS[0][0]] * 3, [SEEDS[0][1]] * 3)
    feed = model_feed(w, np.arange(3), 24, engine.runner.input_names, engine.tokenizer.template.pad_id)
    plain = sessions.run(engine.runner.session, feed, "cpu")
    bound = sessions.run(engine.runner.session, feed, "cuda")
    for a, b in zip(plain, bound):
        np.testing.assert_array_equal(a, b)


def _engine_with_pad_id(pad_id, device, feeds):
    """An engine whose tokenizer's [PAD] is `pad_id` (neither 0 nor 1), with a stand-in model that records every
    feed into `feeds` and returns zero logits."""
    from qa_engine.core.windows import WindowTokenizer
    from qa_engine.engine import EngineSettings

    specials = ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    specials.insert(pad_id, "[PAD]")
    tok = char_wordpiece("".join(q + c for q, c, _ in SEEDS), tuple(specials))
    def run(feed):
        feeds.append({name: array.copy() for name, array in feed.items()})
        logits = np.zeros(feed["input_ids"].shape, np.float32)
        return logits, logits

    runner = CallRunner(run, ("input_ids", "attention_mask", "token_type_ids"), device)
    return QAEngine(runner, WindowTokenizer(tok), EngineSettings(device=device))


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_padded_feed_columns_hold_the_pad_id(device):
    """Every column a model call pads (past a window's end, up to the call's width) holds the tokenizer's pad id
    in input_ids and 0 in attention_mask and token_type_ids; the real tokens are the windows' own."""
    feeds: list[dict] = []
    engine = _engine_with_pad_id(3, device, feeds)
    questions = [q for q, _, _ in SEEDS] * 3
    contexts = [c * (1 + i) for i, (_, c, _) in enumerate(SEEDS * 3)]  # windows of six different lengths
    engine.answer_batch(questions, contexts, batch_size=2)
    windows = engine.tokenizer.windows(questions, contexts)
    own = {tuple(ids[:n]) for ids, n in zip(windows.input_ids.tolist(), windows.lengths)}
    assert feeds
    for feed in feeds:
        real = feed["attention_mask"] == 1
        n = real.sum(axis=1)
        assert (real == (np.arange(real.shape[1]) < n[:, None])).all()  # real tokens first, then padding
        assert (feed["input_ids"][~real] == 3).all()
        assert (feed["token_type_ids"][~real] == 0).all()
        assert {tuple(ids[:k]) for ids, k in zip(feed["input_ids"].tolist(), n)} <= own
    assert any(feed["input_ids"].shape[1] > n for feed in feeds for n in feed["attention_mask"].sum(axis=1))


def test_auto_on_a_cpu_only_artifact_goes_straight_to_cpu(random_artifact, tmp_path):
    """An int8-only artifact (what the quick start exports) has nothing for CUDA: auto must not fail on it."""
    cpu_only = tmp_path / "cpu-only"
    shutil.copytree(random_artifact, cpu_only)
    manifest = Manifest.read(cpu_only)
    manifest.variants = {"int8": manifest.variants["int8"]}
    manifest.write(cpu_only)
    eng = QAEngine.from_pretrained(cpu_only, provider="auto")
    assert (eng.settings.device, eng.settings.precision) == ("cpu", "int8")
    with pytest.raises(ValueError, match="no variant usable on cuda"):
        QAEngine.from_pretrained(cpu_only, provider="cuda")


def test_cpu_calls_hold_a_few_windows_and_cuda_calls_the_whole_batch():
    from qa_engine.core.config import CPU_WINDOWS_PER_CALL
    from qa_engine.engine import EngineSettings

    assert EngineSettings(device="cpu").budget(32) == CPU_WINDOWS_PER_CALL * 384
    assert EngineSettings(device="cpu").budget(2) == 2 * 384
    assert EngineSettings(device="cuda").budget(32) == 32 * 384
    assert EngineSettings(device="cpu", token_budget=1000).budget(32) == 1000
