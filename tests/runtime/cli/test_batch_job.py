"""`qa-engine batch` loses nothing: killed (SIGKILL before, inside and after a commit, a torn last line), stopped by
SIGTERM / SIGINT, out of disk, or fed a bad record, it leaves OUTPUT.partial and `--resume` ends with the bytes an
uninterrupted run writes; a resume over another input or other settings is refused. The kills are deterministic:
the child kills itself at a chosen commit instead of being killed after a sleep."""
from __future__ import annotations

import json
import logging
import os
import resource
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qa_engine.cli.main import main
from qa_engine.formats.journal import Journal, partial_path
from tests.fixtures import ROOT, qa_pairs

N, BATCH = 200, 2  # 200 questions in chunks of 16 batches of 2: 7 commits

# Runs `qa-engine ARGV` with the commits patched: at commit number AT (1-based) it does WHAT first.
CHILD = """
import os, signal, sys
from qa_engine.formats import journal
from qa_engine.cli import batch_job
from qa_engine.cli.main import main

what, at = sys.argv[1], int(sys.argv[2])
count = [0]
commit, fsync = journal.Journal.commit, os.fsync

def patched(self, lines, done):
    count[0] += 1
    if count[0] == at:
        if what == "torn":  # half the chunk reaches the file, then the process dies
            data = "".join(lines).encode()
            os.write(self._fd, data[: len(data) // 2])
        if what in ("kill", "torn"):
            os.kill(os.getpid(), signal.SIGKILL)
        if what == "sigterm":  # arrives during the commit: the chunk is kept
            journal.os.fsync = lambda fd: (os.kill(os.getpid(), signal.SIGTERM), fsync(fd))
    commit(self, lines, done)

def sigint_first(self):  # arrives while the chunk is still to be committed: it is dropped
    count[0] += 1
    if count[0] == at:
        os.kill(os.getpid(), signal.SIGINT)
    writer_commit(self)

writer_commit = batch_job._Writer.commit


def kill_in_finish(*args, **kwargs):  # the output is written, the partial file not yet removed
    os.kill(os.getpid(), signal.SIGKILL)

if what == "sigint":
    batch_job._Writer.commit = sigint_first
else:
    journal.Journal.commit = patched
if what == "finish":
    batch_job.write_predictions = kill_in_finish
sys.exit(main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def questions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("batch-job") / "questions.jsonl"
    filler = " 그리고 날씨가 맑았습니다."
    with path.open("w", encoding="utf-8") as f:
        for i, (q, c, a) in enumerate(qa_pairs(N, seed=5)):
            record = {"id": f"q{i}", "question": q, "context": c + filler * (i % 7) * 4,
                      "answers": {"text": [a], "answer_start": [c.index(a)]}}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def _args(random_artifact: Path, questions: Path, out: Path, *extra: str) -> list[str]:
    return ["batch", "--model", str(random_artifact), "--provider", "cpu", "--precision", "fp32", "--batch-size",
            str(BATCH), "--input", str(questions), "--output", str(out), "--predictions-json",
            str(out.with_suffix(".pred.json")), *extra]


@pytest.fixture(scope="module")
def reference(random_artifact: Path, questions: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """An uninterrupted run's output and predictions."""
    out = tmp_path_factory.mktemp("reference") / "answers.jsonl"
    assert main(_args(random_artifact, questions, out)) == 0
    return out.read_bytes(), out.with_suffix(".pred.json").read_bytes()


def _child(args: list[str], what: str = "none", at: int = 0, limit: int | None = None) -> subprocess.CompletedProcess:
    def fsize() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-c", CHILD, what, str(at), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, preexec_fn=fsize if limit else None)


def _committed_rows(out: Path) -> list[bytes]:
    """The rows up to the partial file's last commit marker."""
    lines = partial_path(out).read_bytes().splitlines(keepends=True)[1:]
    last = max((i for i, line in enumerate(lines) if line.startswith(b'{"commit"')), default=-1)
    return [line for line in lines[: last + 1] if line.startswith(b'{"id"')]


def _resume_command(stderr: str) -> list[str]:
    """The command the one-line message names, run here with this interpreter."""
    last = stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr and "continue with: " in last
    command = shlex.split(last.split("continue with: ")[1].split(" (or ")[0])
    assert command[0] == "qa-engine" and command[-1] == "--resume"
    return command[1:]


def test_killed_at_every_kind_of_moment_then_resumed_writes_the_uninterrupted_bytes(
        random_artifact: Path, questions: Path, reference: tuple[bytes, bytes], tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    args = _args(random_artifact, questions, out)
    want = reference[0].splitlines(keepends=True)
    # each resume is killed again: before its first commit, mid-write (torn), after commits, in the final step
    for what, at, kept in [("kill", 1, 0), ("torn", 3, 64), ("kill", 2, 96), ("torn", 3, 160), ("finish", 0, 200)]:
        done = _child(args + ["--resume"] * (what != "kill" or kept > 0), what, at)
        assert done.returncode == -signal.SIGKILL, done.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.jsonl"] * (what == "finish") + [
            "answers.jsonl.partial"]  # one visible file (and the finished output), no hidden temps
        assert _committed_rows(out) == want[:kept]  # all chunks before the kill kept, none changed
        if what == "torn":
            partial = partial_path(out)
            assert not partial.read_bytes().endswith(b"\n")  # half a line
            Journal.open(partial, json.loads(partial.read_bytes().splitlines()[0])["settings"], resume=True).close()
            assert partial.read_bytes().endswith(b"}}\n")  # a resume cuts the file back to its last commit
    assert main(args + ["--resume"]) == 0
    assert out.read_bytes() == reference[0] and out.with_suffix(".pred.json").read_bytes() == reference[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.jsonl", "answers.pred.json"]


@pytest.mark.parametrize("what, status, kept", [("sigterm", 128 + signal.SIGTERM, 96),
                                                ("sigint", 128 + signal.SIGINT, 64)])
def test_sigterm_and_sigint_leave_a_resumable_file_and_a_one_line_resume_command(
        random_artifact: Path, questions: Path, reference: tuple[bytes, bytes], tmp_path: Path,
        what: str, status: int, kept: int) -> None:
    out = tmp_path / "answers.jsonl"
    done = _child(_args(random_artifact, questions, out), what, 3)
    assert done.returncode == status
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith(f"qa-engine batch: interrupted by {what.upper()}: {kept} answers of {N} questions")
    assert len(_committed_rows(out)) == kept  # SIGTERM inside a commit lets it finish; SIGINT before drops it
    resumed = _child(_resume_command(done.stderr))
    assert resumed.returncode == 0, resumed.stderr
    assert out.read_bytes() == reference[0]


def test_a_full_disk_is_a_clear_error_that_keeps_the_committed_answers(
        random_artifact: Path, questions: Path, reference: tuple[bytes, bytes], tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    done = _child(_args(random_artifact, questions, out), limit=12_000)  # as `ulimit -f`: room for a few chunks
    assert done.returncode == 2
    assert "File too large" in done.stderr.strip().splitlines()[-1]
    rows = _committed_rows(out)
    assert 0 < len(rows) < N and reference[0].startswith(b"".join(rows))
    assert partial_path(out).read_bytes().endswith(b"}}\n")  # cut back to the last commit marker
    resumed = _child(_resume_command(done.stderr))
    assert resumed.returncode == 0 and out.read_bytes() == reference[0]


def _stop_after_commits(monkeypatch: pytest.MonkeyPatch, commits: int) -> None:
    """In-process stand-in for a kill: SIGTERM's exception raised before commit number `commits` + 1."""
    from qa_engine.cli.batch_job import Interrupted
    from qa_engine.formats.journal import Journal

    real, count = Journal.commit, [0]

    def commit(self, lines, done):  # type: ignore[no-untyped-def]
        count[0] += 1
        if count[0] > commits:
            raise Interrupted(signal.SIGTERM)
        real(self, lines, done)

    monkeypatch.setattr(Journal, "commit", commit)


def test_resume_refuses_other_settings_another_input_and_changed_questions(
        random_artifact: Path, questions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "answers.jsonl"
    with monkeypatch.context() as m:
        _stop_after_commits(m, 2)
        assert main(_args(random_artifact, questions, out)) == 128 + signal.SIGTERM
    before = partial_path(out).read_bytes()
    lines = questions.read_text(encoding="utf-8").splitlines(keepends=True)
    other, changed = tmp_path / "other.jsonl", tmp_path / "changed.jsonl"
    other.write_text("".join(lines[1:]), encoding="utf-8")
    changed.write_text("".join(lines[:5] + [lines[5].replace("그리고", "그런데")] + lines[6:]), encoding="utf-8")
    capsys.readouterr()
    for args, message in [
        (_args(random_artifact, questions, out), "holds the answers of an interrupted run: continue it with --resume"),
        (_args(random_artifact, questions, out, "--resume", "--top-k", "2"), "top_k: 1 there, 2 here"),
        (_args(random_artifact, other, out, "--resume"),
         "entry 1 is the answer to id 'q0', the input's record 1 is id 'q1'"),
        (_args(random_artifact, changed, out, "--resume"), "changed since"),
    ]:
        assert main(args) == 2
        assert message in capsys.readouterr().err
        assert partial_path(out).read_bytes() == before  # a refusal changes nothing


def _bad_input(questions: Path, tmp_path: Path) -> Path:
    """The questions with line 51 malformed, line 80's question empty and line 120's context too long."""
    lines = questions.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[50] = '{"id": "q50", "question": \n'
    lines[79] = json.dumps({**json.loads(lines[79]), "question": " "}, ensure_ascii=False) + "\n"
    lines[119] = json.dumps({**json.loads(lines[119]), "context": "서울" * 600}, ensure_ascii=False) + "\n"
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_on_error_stop_keeps_the_answers_before_the_bad_line_and_resumes_once_it_is_fixed(
        random_artifact: Path, questions: Path, reference: tuple[bytes, bytes], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bad, out = _bad_input(questions, tmp_path), tmp_path / "answers.jsonl"
    assert main(_args(random_artifact, bad, out)) == 2
    err = capsys.readouterr().err
    assert f"{bad}:51: malformed JSON line" in err and "50 answers before it are kept" in err and "--resume" in err
    assert [json.loads(r)["id"] for r in _committed_rows(out)] == [f"q{i}" for i in range(50)]
    bad.write_text(questions.read_text(encoding="utf-8"), encoding="utf-8")
    assert main(_args(random_artifact, bad, out, "--resume")) == 0
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    want = [json.loads(line) for line in reference[0].decode().splitlines()]
    assert [(r["id"], r["answer"], r["start"]) for r in got] == [(r["id"], r["answer"], r["start"]) for r in want]


def test_on_error_skip_lists_each_refused_line_and_answers_the_rest(
        random_artifact: Path, questions: Path, reference: tuple[bytes, bytes], tmp_path: Path,
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    bad, out = _bad_input(questions, tmp_path), tmp_path / "answers.jsonl"
    with caplog.at_level(logging.INFO):
        assert main(_args(random_artifact, bad, out, "--on-error", "skip", "--max-context-chars", "1000")) == 0
    errors = [json.loads(line) for line in (tmp_path / "answers.errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(e["line"], e["id"]) for e in errors] == [(51, None), (80, "q79"), (120, "q119")]
    assert "malformed JSON" in errors[0]["reason"] and "question is empty" in errors[1]["reason"]
    assert "more than max_context_chars=1,000" in errors[2]["reason"]
    assert "3 questions refused, listed in" in caplog.text
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["refused"] == 3
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    want = [json.loads(line) for line in reference[0].decode().splitlines()]
    want = [r for r in want if r["id"] not in ("q50", "q79", "q119")]
    assert [(r["id"], r["answer"], r["start"]) for r in got] == [(r["id"], r["answer"], r["start"]) for r in want]


def test_progress_off_a_terminal_is_a_log_line_with_total_percentage_and_eta(
        random_artifact: Path, questions: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="qa_engine.progress"):
        assert main(_args(random_artifact, questions, tmp_path / "a.jsonl", "--progress-every", "0")) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "qa_engine.progress"]
    assert len(lines) > 7  # per model call, not only per chunk of 32 questions
    assert all(f" of {N} questions (" in line and "%), " in line and "ETA " in line for line in lines)
    assert lines[-1].startswith(f"answered {N} of {N} questions (100.0%)")


def test_nothing_hidden_is_left_and_the_partial_name_is_visible(tmp_path: Path) -> None:
    assert partial_path(tmp_path / "answers.jsonl") == tmp_path / "answers.jsonl.partial"
    assert not os.path.basename(partial_path(tmp_path / "answers.jsonl")).startswith(".")
