"""Training steps per second of the tiny model on this machine, alone or beside CPU-bound competitors.

`python -m qa_engine.benchmarks.train_contention --steps 30 --busy 1` trains train-tiny's model (same recipe settings,
a smaller synthetic training set) for a few dozen steps while `--busy` processes spin at the same priority, and
prints steps/s over the steps after the first few (threads set as `qa-engine train-tiny` sets them)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WARM_STEPS = 3  # first steps (allocations, first-call costs) left out of the rate


def measure(steps: int, contexts: int) -> dict[str, Any]:
    """Train for `steps` steps on `contexts` synthetic contexts; steps/s after WARM_STEPS, and the thread settings."""
    from qa_engine.train.threads import share_cores

    threads = share_cores()
    from transformers import TrainerCallback

    from qa_engine.train.config import TrainConfig
    from qa_engine.train.synthetic import generate, write_jsonl
    from qa_engine.train.tiny import TinyRecipe
    from qa_engine.train.tokenizer import char_wordpiece, save_tokenizer_dir
    from qa_engine.train.trainer import train

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.times.append(time.perf_counter())
            if state.global_step >= steps:
                control.should_training_stop = True

    recipe, clock = TinyRecipe(), Clock()
    with tempfile.TemporaryDirectory(prefix="qa-engine-train-contention-") as tmp:
        work = Path(tmp)
        write_jsonl(generate(contexts, seed=0, split="train", mix=recipe.mix), work / "train.jsonl")
        save_tokenizer_dir(char_wordpiece(), work / "tokenizer", model_max_length=512,
                           model_input_names=("input_ids", "token_type_ids", "attention_mask"))
        cfg = TrainConfig(output=str(work / "model"), model="bert", model_config="tiny",
                          tokenizer=str(work / "tokenizer"), dataset=str(work / "train.jsonl"), lr=recipe.lr,
                          batch_size=recipe.batch_size, epochs=100.0, warmup_ratio=recipe.warmup_ratio,
                          mixed_precision="no", logging_steps=1000, save_total_limit=1, force=True)
        train(cfg, callbacks=[clock])
    timed = clock.times[WARM_STEPS:]
    rate = (len(timed) - 1) / (timed[-1] - timed[0])
    return {"steps_per_s": round(rate, 3), "steps_timed": len(timed) - 1, **threads}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--contexts", type=int, default=600, help="synthetic training contexts (enough for --steps)")
    p.add_argument("--busy", type=int, default=0, help="CPU-bound competitors, run at this process's priority")
    args = p.parse_args(argv)
    competitors = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        result = measure(args.steps, args.contexts)
    finally:
        for c in competitors:
            c.kill()
            c.wait()
    print(json.dumps({"busy": args.busy, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
