"""`qa-engine batch` killed with SIGKILL at random moments and resumed until done, against one uninterrupted run.

    python -m benchmarks.kill_resume --questions 3000 --kills 10 --out /tmp/kill-resume

Questions are the tests' synthetic Korean pairs on the random-weight artifact (answers mean nothing; the job's
bookkeeping is what is measured). Prints the rows lost, duplicated and changed against the uninterrupted output,
and the questions answered again per kill: how far the killed run's progress (logged every model call) had got
beyond what its partial file had committed.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from qa_engine.formats.journal import partial_path
from tests.fixtures import ROOT, build_random_artifact, qa_pairs

PROGRESS = re.compile(r"answered ([\d,]+) of")


def write_questions(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i, (q, c, _) in enumerate(qa_pairs(n, seed=7)):
            context = c + " 그리고 날씨가 맑았습니다." * (i % 7) * 4
            record = {"id": f"q{i:05d}", "question": q, "context": context}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def committed(out: Path) -> int:
    """Answers the partial file's last commit marker counts."""
    path = partial_path(out)
    if not path.exists():
        return 0
    markers = [line for line in path.read_bytes().splitlines() if line.startswith(b'{"commit"')]
    return json.loads(markers[-1])["commit"]["answers"] if markers else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--questions", type=int, default=3000)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    artifact, questions = build_random_artifact(args.out / "artifact"), args.out / "questions.jsonl"
    write_questions(questions, args.questions)
    base = [sys.executable, "-m", "qa_engine.cli", "batch", "--model", str(artifact), "--provider", "cpu",
            "--precision", "fp32", "--input", str(questions), "--progress-every", "0"]
    whole, out = args.out / "whole.jsonl", args.out / "resumed.jsonl"
    t0 = time.perf_counter()
    subprocess.run([*base, "--output", str(whole)], cwd=ROOT, check=True, capture_output=True)
    seconds = time.perf_counter() - t0
    rng, redone, kills = random.Random(args.seed), [], 0
    while kills < args.kills:
        child = subprocess.Popen([*base, "--output", str(out), "--resume"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.5, seconds))
        child.kill()
        err = child.communicate()[1]
        if child.returncode == 0:
            out.unlink()  # finished before the kill: start over
            continue
        reached = [int(m.replace(",", "")) for m in PROGRESS.findall(err)]
        redone.append(max(0, (reached[-1] if reached else 0) - committed(out)))
        kills += 1
    subprocess.run([*base, "--output", str(out), "--resume"], cwd=ROOT, check=True, capture_output=True)
    want = whole.read_text(encoding="utf-8").splitlines()
    got = out.read_text(encoding="utf-8").splitlines()
    ids = Counter(json.loads(line)["id"] for line in got)
    print(json.dumps({
        "questions": args.questions, "kills": kills, "uninterrupted_s": round(seconds, 1),
        "identical_bytes": whole.read_bytes() == out.read_bytes(),
        "rows_lost": len(set(json.loads(line)["id"] for line in want) - set(ids)),
        "rows_duplicated": sum(n - 1 for n in ids.values()),
        "rows_changed": sum(a != b for a, b in zip(want, got)),
        "answered_again_per_kill": redone,
        "answered_again_mean": round(sum(redone) / len(redone), 1) if redone else 0,
    }))


if __name__ == "__main__":
    main()
