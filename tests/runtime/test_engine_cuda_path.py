"""The CUDA path's host logic, run on the CPU provider: fixed shapes, warm-up, chunked tokenization, overlap."""
from __future__ import annotations

import copy
import threading
from dataclasses import replace

import pytest

from qa_engine import QAEngine
from qa_engine.core.buckets import Shapes, plan_batches
from qa_engine.runners import sessions
from qa_engine.runners.onnx import OnnxRunner
from tests.fixtures import qa_pairs


@pytest.fixture(scope="module")
def cpu_engine(random_artifact) -> QAEngine:
    return QAEngine.from_pretrained(random_artifact, provider="cpu", precision="fp32")


@pytest.fixture(scope="module")
def pairs() -> tuple[list[str], list[str]]:
    triples = qa_pairs(40, seed=11)
    questions = [q for q, _, _ in triples]
    contexts = [c for _, c, _ in triples]
    long = " ".join(dict.fromkeys(contexts))  # several windows at max_length
    return questions + questions[:6], contexts + [long] * 6


def same_answers(got: list[dict], want: list[dict]) -> bool:
    """Same spans; scores equal up to float rounding (another padded width changes the fp32 sums slightly)."""
    return len(got) == len(want) and all(
        (g["answer"], g["start"], g["end"]) == (w["answer"], w["start"], w["end"])
        and g["score"] == pytest.approx(w["score"], rel=1e-5) for g, w in zip(got, want))


def as_cuda(engine: QAEngine, **settings) -> QAEngine:
    """The same session and tokenizer with the settings a CUDA engine gets; sessions.run takes the IO-binding path."""
    runner = OnnxRunner(engine.runner.session, "cuda", engine.runner.precision, engine.runner.input_names)
    return QAEngine(runner, engine.tokenizer, replace(engine.settings, device="cuda", **settings))


@pytest.fixture
def calls(monkeypatch) -> list[tuple[int, int, str]]:
    """(rows, width, thread) of every model call."""
    seen: list[tuple[int, int, str]] = []
    real = sessions.run

    def run(session, feed, device):
        rows, width = feed["input_ids"].shape
        seen.append((rows, width, threading.current_thread().name))
        return real(session, feed, device)

    monkeypatch.setattr(sessions, "run", run)
    return seen


def test_cuda_shapes_are_a_few_widths_and_powers_of_two():
    s = Shapes.for_device("cuda", 384, 32)
    assert s.widths == (64, 128, 192, 256, 320, 384)
    assert s.batch_sizes == (1, 2, 4, 8, 16, 32)
    assert [s.width(n) for n in (1, 64, 65, 383)] == [64, 64, 128, 384]
    assert [s.rows(n) for n in (1, 3, 17, 32)] == [1, 4, 32, 32]
    odd = Shapes.for_device("cuda", 200, 48)
    assert odd.widths == (64, 128, 192, 200) and odd.batch_sizes[-2:] == (32, 48)
    cpu = Shapes.for_device("cpu", 384, 32)
    assert (cpu.width(65), cpu.rows(3)) == (72, 3)
    with pytest.raises(ValueError, match="exceeds the widest shape 384"):
        s.width(385)


def test_plan_uses_the_allowed_widths():
    import numpy as np

    lengths = np.array([10, 70, 130, 384, 65, 5])
    plan = list(plan_batches(lengths, 2, shapes=Shapes.for_device("cuda", 384, 2)))
    assert [w for _, w in plan] == [384, 128, 64]  # (384, 130), (70, 65), (10, 5)
    assert sorted(int(r) for rows, _ in plan for r in rows) == list(range(6))


def test_cuda_settings_give_the_cpu_answers_in_allowed_shapes(cpu_engine, pairs, calls):
    questions, contexts = pairs
    want = cpu_engine.answer_batch(questions, contexts, batch_size=8)
    calls.clear()
    cuda = as_cuda(cpu_engine)
    assert same_answers(cuda.answer_batch(questions, contexts, batch_size=8), want)
    shapes = cuda.settings.shapes(8)
    assert calls and all(r in shapes.batch_sizes and w in shapes.widths for r, w, _ in calls)
    assert any(r > 1 for r, _, _ in calls)


def test_overlap_on_cuda_runs_the_model_on_a_worker_thread(cpu_engine, pairs, calls):
    questions, contexts = pairs
    cuda = as_cuda(cpu_engine)
    assert cuda.settings.overlaps() and not cpu_engine.settings.overlaps()
    cuda.answer_batch(questions, contexts, batch_size=4)
    assert {t for _, _, t in calls} != {threading.current_thread().name}
    calls.clear()
    cuda.answer(questions[0], contexts[0])  # one question, one call: no thread is started for it
    assert [t for _, _, t in calls] == [threading.current_thread().name] and workers() == []


def test_overlap_can_be_chosen_on_cpu_and_gives_the_same_answers(cpu_engine, pairs, calls):
    questions, contexts = pairs
    want = cpu_engine.answer_batch(questions, contexts, batch_size=4)
    assert {t for _, _, t in calls} == {threading.current_thread().name}
    calls.clear()
    overlapping = QAEngine(cpu_engine.runner, cpu_engine.tokenizer, replace(cpu_engine.settings, overlap=True))
    assert same_answers(overlapping.answer_batch(questions, contexts, batch_size=4), want)
    assert threading.current_thread().name not in {t for _, _, t in calls}


def test_warmup_runs_each_width_at_batch_one_and_the_batch_size(cpu_engine, calls):
    cuda = as_cuda(cpu_engine, batch_size=16)
    seconds = cuda.warmup()
    assert seconds > 0
    widths = cuda.settings.shapes(16).widths
    assert sorted((r, w) for r, w, _ in calls) == sorted((r, w) for w in widths for r in (1, 16))


def test_after_a_full_warmup_no_call_meets_a_new_shape(cpu_engine, pairs, calls):
    questions, contexts = pairs
    cuda = as_cuda(cpu_engine, batch_size=8)
    cuda.warmup(batch_sizes=cuda.settings.shapes(8).batch_sizes)
    warm = {(r, w) for r, w, _ in calls}
    calls.clear()
    cuda.answer_batch(questions, contexts)
    cuda.answer(questions[0], contexts[0])
    assert {(r, w) for r, w, _ in calls} <= warm


def test_large_calls_tokenize_in_chunks_and_start_the_model_early(cpu_engine, pairs, calls, monkeypatch):
    questions, contexts = pairs
    want = cpu_engine.answer_batch(questions, contexts, batch_size=64)
    calls.clear()
    events: list[str] = []
    real_windows = cpu_engine.tokenizer.windows
    monkeypatch.setattr(cpu_engine.tokenizer, "windows", lambda *a: events.append("tokenize") or real_windows(*a))
    real_run = sessions.run
    monkeypatch.setattr(sessions, "run", lambda s, f, d: events.append("run") or real_run(s, f, d))
    got = cpu_engine.answer_batch(questions, contexts, batch_size=2)  # chunks of 2, 4, 8, 16, 16 questions
    assert same_answers(got, want)  # chunk boundaries change no span (fp32: no batch-dependent quantization)
    assert len(questions) == 46 and events.count("tokenize") == 5
    assert events.index("run") < events.index("tokenize", 1)  # the first call ran before the second chunk was cut


def test_from_pretrained_warms_up_when_asked_and_not_on_cpu_by_default(random_artifact, calls):
    QAEngine.from_pretrained(random_artifact, provider="cpu", precision="fp32")
    assert calls == []
    engine = QAEngine.from_pretrained(random_artifact, provider="cpu", precision="fp32", warmup=True, batch_size=4)
    assert sorted({(r, w) for r, w, _ in calls}) == [(1, engine.settings.window.max_length),
                                                     (4, engine.settings.window.max_length)]


def test_a_too_long_question_is_named_by_its_position_in_the_whole_call(cpu_engine, pairs):
    questions, contexts = pairs
    questions = list(questions[:20])
    questions[13] = "아주 긴 질문 " * 200
    with pytest.raises(ValueError, match="question 13 is too long"):
        cpu_engine.answer_batch(questions, contexts[:20], batch_size=2)  # chunks of 2, 4, 8: in the 3rd


def test_a_stream_runs_as_one_pipeline_across_its_chunks(cpu_engine, pairs, calls):
    questions, contexts = pairs
    cuda = as_cuda(cpu_engine)
    want = cpu_engine.answer_batch(questions, contexts, batch_size=4)
    calls.clear()
    got = list(cuda.answer_stream(zip(questions, contexts), batch_size=4, chunk_size=8))
    assert same_answers(got, want)
    assert threading.current_thread().name not in {t for _, _, t in calls}


class RecordingTokenizer:
    """The Rust tokenizer, recording each context encode_batch gets and the thread it runs on (questions go through
    encode_batch_fast)."""

    def __init__(self, inner):
        self.inner, self.contexts, self.threads = inner, [], set()

    def encode_batch(self, texts, **kwargs):
        self.contexts.extend(texts)
        self.threads.add(threading.current_thread().name)
        return self.inner.encode_batch(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def recording(engine: QAEngine) -> tuple[QAEngine, RecordingTokenizer]:
    tokenizer = copy.copy(engine.tokenizer)
    tokenizer.tokenizer = recorder = RecordingTokenizer(engine.tokenizer.tokenizer)
    return QAEngine(engine.runner, tokenizer, engine.settings), recorder


def workers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("qa-engine-")]


@pytest.mark.parametrize("cuda", [False, True])
def test_a_context_is_encoded_once_per_call_however_many_chunks_share_it(cpu_engine, pairs, cuda):
    questions, contexts = pairs
    engine, recorder = recording(as_cuda(cpu_engine) if cuda else cpu_engine)
    want = cpu_engine.answer_batch(questions, contexts, batch_size=4)
    got = engine.answer_batch(questions * 3, contexts * 3, batch_size=4)  # several chunks
    assert same_answers(got, want * 3)
    assert sorted(recorder.contexts) == sorted(set(contexts))
    recorder.contexts.clear()
    assert same_answers(list(engine.answer_stream(zip(questions * 3, contexts * 3), batch_size=4)), want * 3)
    assert sorted(recorder.contexts) == sorted(set(contexts))


def test_with_overlap_the_next_chunk_is_tokenized_on_its_own_thread(cpu_engine, pairs):
    questions, contexts = pairs
    serial, serial_tokens = recording(cpu_engine)
    serial.answer_batch(questions, contexts, batch_size=2)
    assert serial_tokens.threads == {threading.current_thread().name}
    overlapping, tokens = recording(as_cuda(cpu_engine))
    assert same_answers(overlapping.answer_batch(questions, contexts, batch_size=2),
                        serial.answer_batch(questions, contexts, batch_size=2))
    assert len(tokens.threads) == 1 and next(iter(tokens.threads)).startswith("qa-engine-tokenize")
    assert workers() == []  # both pipeline threads are gone once the call returns


def test_chunks_ramp_up_to_a_device_chosen_size(cpu_engine):
    from itertools import islice

    from qa_engine.engine import OVERLAP_CHUNK_BATCHES, SERIAL_CHUNK_BATCHES

    assert (OVERLAP_CHUNK_BATCHES, SERIAL_CHUNK_BATCHES) == (2, 16)
    assert list(islice(cpu_engine.chunk_sizes(3), 7)) == [3, 6, 12, 24, 48, 48, 48]
    assert list(islice(as_cuda(cpu_engine).chunk_sizes(3), 4)) == [3, 6, 6, 6]


def test_a_failing_later_chunk_raises_with_no_thread_left_running(cpu_engine, pairs):
    questions, contexts = pairs
    questions = list(questions)
    questions[30] = "아주 긴 질문 " * 200
    cuda = as_cuda(cpu_engine)
    with pytest.raises(ValueError, match="question 30 is too long"):
        cuda.answer_batch(questions, contexts, batch_size=2)  # chunks of 2, then 4: in the 9th
    assert workers() == []
    stream = cuda.answer_stream(zip(questions, contexts), batch_size=2)
    assert len([next(stream) for _ in range(3)]) == 3  # the stream is left open mid-way ...
    stream.close()  # ... and closed: its threads stop
    assert workers() == []


def test_a_first_chunk_of_one_model_call_runs_before_the_second_chunk_is_cut(cpu_engine, monkeypatch):
    """Short contexts: the first chunk (one batch) is one model call. The model must not wait for the next chunk:
    cutting the second chunk here waits until a model call has started (a stalled pipeline would time out)."""
    triples = qa_pairs(16, seed=5)
    questions, contexts = [q for q, _, _ in triples], [c for _, c, _ in triples]
    cuda = as_cuda(cpu_engine)
    started, cuts, waited = threading.Event(), [], []
    real_windows, real_run = cuda.tokenizer.windows, sessions.run

    def windows(*args):
        cuts.append(len(args[0]))
        if len(cuts) == 2:
            waited.append(started.wait(timeout=10))
        return real_windows(*args)

    def run(session, feed, device):
        started.set()
        return real_run(session, feed, device)

    monkeypatch.setattr(cuda.tokenizer, "windows", windows)
    monkeypatch.setattr(sessions, "run", run)
    got = cuda.answer_batch(questions, contexts, batch_size=4)
    assert cuts[:2] == [4, 8] and waited == [True]
    assert same_answers(got, cpu_engine.answer_batch(questions, contexts, batch_size=4))
