"""An export stopped at each of its phases: SIGTERM and SIGINT remove its temp folder and keep the previous
artifact; what a SIGKILL leaves is removed (and reported) by the next export into the same place. The exports run
in child processes on a random tiny checkpoint, each held at its phase until the test has signalled it."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxscript")

from qa_engine.benchmarks.parity_export import tiny_checkpoint  # noqa: E402

pytestmark = pytest.mark.slow  # exports a model (tens of seconds on 2 cores per phase reached)
WAIT = 600  # a guard against a child that never ends, far beyond an export's unwinding; never measured

# the export's phases, as (module of qa_engine.export, function) the child holds before it runs
PHASES = [("onnx_export", "export_onnx"), ("fusion", "fuse"), ("quantize", "quantize_int8"),
          ("quantize", "convert_fp16"), ("validate", "check_fp32_parity"), ("validate", "compare_to_fp32"),
          ("pipeline", "Manifest.write")]

CHILD = r"""
import functools, importlib, json, sys
module, name, checkpoint, out = sys.argv[1:5]
owner = importlib.import_module(f"qa_engine.export.{module}")
if "." in name:
    owner, name = getattr(owner, name.split(".")[0]), name.split(".")[1]
real = getattr(owner, name)

@functools.wraps(real)
def held(*args, **kwargs):
    print("held", flush=True)
    sys.stdin.readline()
    return real(*args, **kwargs)

setattr(owner, name, held)
from qa_engine.export.pipeline import export_artifact
export_artifact(checkpoint, out, precisions=("fp32", "int8", "fp16"), force=True, max_validation=8,
                calibration_questions=8)
print("done", flush=True)
"""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint("bert", tmp_path_factory.mktemp("checkpoint") / "bert")


def _default_sigint() -> None:
    """A job started in the background (CI under nohup or `&`) inherits SIGINT ignored; the child must see it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _held_export(checkpoint: Path, out: Path, phase: tuple[str, str]) -> subprocess.Popen:
    """A child exporting into `out`, held at the start of `phase`."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, *phase, str(checkpoint), str(out)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=_default_sigint)
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line == "held\n", f"{line!r}; {child.communicate()[1][-3000:]}"
    return child


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def previous(tmp_path: Path) -> Path:
    """A 'previous artifact' at the export's output, which an interrupted export must leave as it was."""
    out = tmp_path / "artifact"
    out.mkdir()
    (out / "qa_engine.json").write_text(json.dumps({"previous": True}), encoding="utf-8")
    return out


@pytest.mark.parametrize("phase", PHASES, ids=[name for _, name in PHASES])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_export_stopped_at_any_phase_removes_its_temp_folder(checkpoint: Path, previous: Path,
                                                                phase: tuple[str, str], sig: int) -> None:
    child = _held_export(checkpoint, previous, phase)
    assert len(_temps(previous.parent)) == 1
    child.send_signal(sig)
    child.communicate(timeout=WAIT)
    assert child.returncode != 0
    assert _temps(previous.parent) == []
    assert json.loads((previous / "qa_engine.json").read_text(encoding="utf-8")) == {"previous": True}


@pytest.mark.parametrize("phase", [PHASES[2], PHASES[-1]], ids=["quantize_int8", "Manifest.write"])
def test_the_next_export_removes_what_a_killed_export_left_and_says_so(checkpoint: Path, previous: Path,
                                                                       phase: tuple[str, str]) -> None:
    killed = _held_export(checkpoint, previous, phase)
    killed.kill()
    killed.communicate(timeout=WAIT)
    left = _temps(previous.parent)
    assert len(left) == 1 and any((previous.parent / left[0]).iterdir())  # SIGKILL cannot be caught
    following = _held_export(checkpoint, previous, PHASES[0])
    now = _temps(previous.parent)
    assert len(now) == 1 and now != left  # the killed export's folder is gone; this export's own is there
    following.terminate()
    _, stderr = following.communicate(timeout=WAIT)
    assert f"removed {previous.parent / left[0]}, left by an interrupted write of artifact" in stderr
    assert _temps(previous.parent) == []
    assert json.loads((previous / "qa_engine.json").read_text(encoding="utf-8")) == {"previous": True}
    shutil.rmtree(previous)
