"""The peers' own environment (benchmarks/environments.py): chosen only for a peer this interpreter cannot run
(no question-answering pipeline, no Optimum), made once with this interpreter's shared packages and Optimum's pins, made again when those change, and a
failure named with the way around it. Nothing is installed here: the steps are recorded instead of run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from qa_engine.benchmarks import environments


class _Steps:
    """Stands in for subprocess.run: records each command; `venv` creates the interpreter file it would."""

    def __init__(self, fail_at: str | None = None):
        self.commands: list[list[str]] = []
        self.fail_at = fail_at

    def __call__(self, command, **kwargs):
        self.commands.append([str(c) for c in command])
        if command[1:3] == ["-m", "venv"]:
            python = Path(command[-1]) / "bin" / "python"
            python.parent.mkdir(parents=True, exist_ok=True)
            python.write_text("")
        failed = self.fail_at is not None and self.fail_at in " ".join(map(str, command))
        return subprocess.CompletedProcess(command, 1 if failed else 0, "", "ERROR: no matching distribution")


def test_only_a_peer_this_interpreter_cannot_run_leaves_it(monkeypatch, tmp_path):
    made = []
    monkeypatch.setattr(environments, "peer_environment", lambda workdir: made.append(workdir) or Path("/env/py"))
    missing = {"optimum.onnxruntime"}
    monkeypatch.setattr(environments.importlib.util, "find_spec", lambda name: None if name in missing else object())
    assert environments.interpreter("hf", tmp_path) == environments.interpreter("engine", tmp_path) == sys.executable
    assert made == []
    assert environments.interpreter("optimum", tmp_path) == "/env/py" and made == [tmp_path]
    missing = {"transformers.pipelines.question_answering"}  # transformers >= 5.3
    assert environments.interpreter("hf", tmp_path) == "/env/py"
    assert environments.interpreter("optimum", tmp_path) == environments.interpreter("engine", tmp_path) == sys.executable


def test_the_environment_is_made_once_with_torch_first_and_the_checkout_without_deps(monkeypatch, tmp_path):
    steps = _Steps()
    monkeypatch.setattr(environments.subprocess, "run", steps)
    monkeypatch.setattr(environments, "requirements", lambda: ["torch==2.13.0", "numpy==2.4.6",
                                                               *environments.PEER_PINS])
    python = environments.peer_environment(tmp_path)
    assert python == (tmp_path / environments.ENV_DIR / "bin" / "python").resolve()
    venv, torch, everything, checkout = steps.commands
    assert venv[1:3] == ["-m", "venv"]
    assert torch[-1] == "torch==2.13.0" and "transformers" not in " ".join(torch)
    assert set(environments.PEER_PINS) | {"numpy==2.4.6"} <= set(everything)
    assert checkout[-3:] == ["--no-deps", "-e", str(environments.checkout_root())]
    assert environments.peer_environment(tmp_path) == python and len(steps.commands) == 4  # reused
    monkeypatch.setattr(environments, "requirements", lambda: ["torch==2.14.1", *environments.PEER_PINS])
    environments.peer_environment(tmp_path)
    assert len(steps.commands) == 8 and "torch==2.14.1" in steps.commands[5]  # other versions: made again


def test_a_failed_step_names_the_way_around_it_and_leaves_nothing_marked_done(monkeypatch, tmp_path):
    monkeypatch.setattr(environments.subprocess, "run", _Steps(fail_at="optimum-onnx"))
    with pytest.raises(environments.PeerEnvironmentError, match="--systems") as error:
        environments.peer_environment(tmp_path)
    assert "no matching distribution" in str(error.value)
    assert not (tmp_path / environments.ENV_DIR / environments.DONE).exists()


def test_requirements_pin_the_shared_packages_at_this_interpreters_versions():
    import numpy

    wanted = environments.requirements()
    assert f"numpy=={numpy.__version__}" in wanted
    assert wanted[-len(environments.PEER_PINS):] == list(environments.PEER_PINS)
    assert not any("+" in r for r in wanted)  # local build tags (2.13.0+cpu) are not on an index



def test_a_step_in_the_peers_interpreter_fails_with_what_it_printed(tmp_path):
    environments.run_module(sys.executable, "json.tool", [str(_json(tmp_path, "{}"))], "reading")
    with pytest.raises(RuntimeError, match=r"reading failed \(exit 1\): .*Expecting value"):
        environments.run_module(sys.executable, "json.tool", [str(_json(tmp_path, "not json"))], "reading")


def _json(folder: Path, text: str) -> Path:
    path = folder / "data.json"
    path.write_text(text, encoding="utf-8")
    return path
