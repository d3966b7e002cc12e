"""Training threads on a shared CPU: passive OpenMP waiting unless the user chose, one torch thread per usable
core, set by `qa-engine train-tiny` and `qa-engine train` before the training stack loads."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from qa_engine.train import threads


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_share_cores_waits_passively_with_a_thread_per_usable_core(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert threads.share_cores() == {"omp_wait_policy": "PASSIVE", "torch_threads": 1}
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_a_wait_policy_the_user_set_is_kept(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert threads.share_cores()["omp_wait_policy"] == "ACTIVE"


@pytest.mark.parametrize("command", ["train-tiny", "train"])
def test_training_commands_share_cores_before_training(monkeypatch, tmp_path: Path, command: str):
    from qa_engine.cli.main import main
    from qa_engine.train import tiny, trainer

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    seen: list[str | None] = []

    def record(*args, **kwargs):
        seen.append(os.environ.get("OMP_WAIT_POLICY"))
        return tmp_path

    monkeypatch.setattr(tiny, "build_tiny_model", record)
    monkeypatch.setattr(trainer, "train", record)
    assert main([command, "--output", str(tmp_path / "out")]) == 0
    assert seen == ["PASSIVE"]
