"""`qa-engine batch --ray`: a local two-actor Ray cluster gives the single-process output, even when an actor dies."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from qa_engine.cli.main import main  # noqa: E402
from qa_engine.serving import ray_batch  # noqa: E402

CONTEXTS = [
    "세종대왕은 조선의 제4대 임금으로 1443년에 훈민정음을 창제하였다. 그는 집현전을 설치하여 학자들을 길렀다.",
    "이순신은 조선 중기의 무신으로 임진왜란 때 거북선을 이끌고 한산도 대첩에서 승리하였다. " * 20,
    "서울은 대한민국의 수도이며 한강이 도시를 가로질러 흐른다. 인구는 약 천만 명이다.",
]
QUESTIONS = ["누가 훈민정음을 창제하였나?", "거북선을 이끈 사람은?", "대한민국의 수도는?", "한강은 어디를 흐르나?"]


class CrashOnce(ray_batch.Answerer):
    """Kills its actor process on a batch while the marker file exists. The crash is claimed by renaming the
    marker, which only one process can do (the others get FileNotFoundError), so exactly one actor dies."""

    marker = ""

    def __call__(self, batch):
        try:
            os.rename(self.marker, self.marker + ".claimed")
        except FileNotFoundError:
            return super().__call__(batch)
        os._exit(1)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors cannot import this test module
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def questions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ray") / "questions.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(48):
            record = {"id": f"q{i:03d}", "question": QUESTIONS[i % 4], "context": CONTEXTS[i % 3]}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def reference(random_artifact: Path, questions: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The single-process `qa-engine batch` output."""
    out = tmp_path_factory.mktemp("ref") / "answers.jsonl"
    assert main(["batch", "--model", str(random_artifact), "--provider", "cpu", "--precision", "fp32",
                 "--input", str(questions), "--output", str(out), "--top-k", "2"]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def _same(got: list[dict], want: list[dict]) -> None:
    assert [r["id"] for r in got] == [r["id"] for r in want]
    for g, w in zip(got, want):
        assert set(g) == set(w)
        assert (g["question"], g["answer"], g["start"], g["end"]) == (w["question"], w["answer"], w["start"], w["end"])
        assert [a["answer"] for a in g["top_k"]] == [a["answer"] for a in w["top_k"]]
        assert g["score"] == pytest.approx(w["score"], rel=1e-3, abs=1e-6)


def test_ray_cli_matches_single_process(local_ray, random_artifact: Path, questions: Path, reference: list[dict],
                                        tmp_path: Path, capsys) -> None:
    out, preds = tmp_path / "answers.jsonl", tmp_path / "predictions.json"
    assert main(["batch", "--model", str(random_artifact), "--provider", "cpu", "--precision", "fp32", "--top-k", "2",
                 "--input", str(questions), "--output", str(out), "--predictions-json", str(preds),
                 "--ray", "--num-workers", "2"]) == 0
    _same([json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()], reference)
    assert json.loads(preds.read_text(encoding="utf-8")) == {r["id"]: r["answer"] for r in reference}
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["questions"] == len(reference)


def test_killed_actor_is_restarted_and_nothing_is_lost(local_ray, random_artifact: Path, questions: Path,
                                                       reference: list[dict], tmp_path: Path, monkeypatch) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    marker = tmp_path / "crash-once"
    marker.touch()
    monkeypatch.setattr(CrashOnce, "marker", str(marker))
    monkeypatch.setattr(ray_batch, "Answerer", CrashOnce)
    out = tmp_path / "answers.parquet"
    summary = ray_batch.answer_dataset_ray(random_artifact, questions, out, num_workers=2, batch_size=6,
                                           precision="fp32", top_k=2)
    assert not marker.exists() and marker.with_name("crash-once.claimed").exists()  # one actor did die mid-run
    assert summary["questions"] == len(reference)
    _same(pq.read_table(out).to_pylist(), reference)


def test_an_interrupted_ray_job_resumes_to_the_uninterrupted_bytes(local_ray, random_artifact: Path, questions: Path,
                                                                    tmp_path: Path, monkeypatch) -> None:
    from qa_engine.cli.batch_job import Interrupted, Stopped
    from qa_engine.formats.journal import Journal, partial_path

    def job(out: Path, **options) -> dict:
        return ray_batch.answer_dataset_ray(random_artifact, questions, out, num_workers=2, batch_size=6,
                                            precision="fp32", job_options=options)

    whole, out = tmp_path / "whole.jsonl", tmp_path / "answers.jsonl"
    job(whole)
    real, commits = Journal.commit, []

    def commit(self, lines, done):
        commits.append(done.answers)
        if len(commits) > 3:
            raise Interrupted(15)
        real(self, lines, done)

    with monkeypatch.context() as m:
        m.setattr(Journal, "commit", commit)
        with pytest.raises(Stopped, match="18 answers of 48 questions are kept"):
            job(out, resume_command="qa-engine batch ... --resume")
    assert commits[:3] == [6, 12, 18] and partial_path(out).exists()  # committed a Ray batch at a time
    assert job(out, resume=True)["resumed_from"] == 18
    assert out.read_bytes() == whole.read_bytes() and not partial_path(out).exists()
