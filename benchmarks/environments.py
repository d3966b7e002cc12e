"""Which Python each benchmarked system runs in. qa-engine runs in this interpreter. The peers need what current
stacks dropped: transformers removed its question-answering pipeline in 5.3, and Optimum's newest release
(optimum-onnx 0.1.0) requires transformers<4.58. Where this interpreter lacks one of them, that peer runs in an
environment of its own, made once under the work dir with transformers 4.57 and optimum-onnx."""
from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from qa_engine.artifacts.manifest import installed_versions

log = logging.getLogger(__name__)

# the newest optimum-onnx and the transformers range it declares (which has the question-answering pipeline)
PEER_PINS = ("optimum-onnx==0.1.0", "transformers>=4.45,<4.58")
# shared with this interpreter at the same versions, so that only the peers' stack differs (tokenizers is left to
# transformers 4.57, which takes tokenizers<0.23)
SHARED = ("torch", "onnxruntime-gpu", "onnxruntime", "numpy", "tqdm", "psutil")
# what a system's software line in the report names
SOFTWARE = ("torch", "transformers", "optimum-onnx", "onnxruntime-gpu", "onnxruntime", "openvino", "nncf")
ENV_DIR = "env-peers"
DONE = "requirements.txt"  # written last: an environment without it is unfinished and made again


class PeerEnvironmentError(RuntimeError):
    """The peers' environment could not be made; the message says what to do instead."""


# what a peer family needs from this interpreter to run in it
PEER_MODULES = {"hf": "transformers.pipelines.question_answering", "optimum": "optimum.onnxruntime"}


def runs_here(family: str) -> bool:
    """Whether this interpreter can run systems of `family` ("hf", "optimum", "engine") itself."""
    if family not in PEER_MODULES:
        return True
    try:
        return importlib.util.find_spec(PEER_MODULES[family]) is not None
    except ImportError:  # a parent package is missing (optimum's namespace without optimum-onnx)
        return False


def interpreter(family: str, workdir: Path) -> str:
    """The Python that runs a system of `family`."""
    return sys.executable if runs_here(family) else str(peer_environment(workdir))


def requirements() -> list[str]:
    """The peers' environment's packages: this interpreter's versions of SHARED, then PEER_PINS."""
    pinned = [f"{name}=={version.split('+')[0]}" for name, version in installed_versions(SHARED).items()]
    return [*pinned, *PEER_PINS]


def checkout_root() -> Path:
    """The qa-engine checkout these benchmarks run from (the peers' environment installs it without its deps)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise PeerEnvironmentError(
            "the HF pipeline and Optimum peers need transformers<4.58 (the question-answering pipeline, which "
            f"optimum-onnx requires): install {' '.join(repr(p) for p in PEER_PINS)} beside qa-engine, or run the "
            "benchmark from a checkout so it can make an environment of its own, or leave those systems out "
            "with --systems"
        )
    return root


def peer_environment(workdir: Path) -> Path:
    """The Python of `workdir`/env-peers, made on first use (a few minutes: torch is installed at this
    interpreter's version first, so pip takes the same build); made again when the requirements change."""
    folder = (workdir / ENV_DIR).resolve()
    python = folder / "bin" / "python"
    wanted = "\n".join(requirements()) + "\n"
    done = folder / DONE
    if python.is_file() and done.is_file() and done.read_text(encoding="utf-8") == wanted:
        return python
    root = checkout_root()
    log.info("making the peers' environment in %s (%s)", folder, ", ".join(PEER_PINS))
    done.unlink(missing_ok=True)
    steps = [[sys.executable, "-m", "venv", "--clear", str(folder)]]
    torch = [r for r in wanted.split() if r.startswith("torch==")]
    if torch:
        steps.append([str(python), "-m", "pip", "install", "--quiet", *torch])
    steps += [[str(python), "-m", "pip", "install", "--quiet", *wanted.split()],
              [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(root)]]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise PeerEnvironmentError(f"making the peers' environment failed ({' '.join(step[:4])} ...): "
                                       f"{output_tail(proc)}; "
                                    "leave the hf and optimum systems out with --systems")
    done.write_text(wanted, encoding="utf-8")
    return python


def run_module(python: str, module: str, args: Sequence[str], what: str, timeout: float | None = None) -> None:
    """`python -m module args` (a step run in the peers' interpreter); a failure raises RuntimeError naming `what`,
    the exit status and the last lines the step printed."""
    proc = subprocess.run([python, "-m", module, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {output_tail(proc)}")


def output_tail(proc: subprocess.CompletedProcess, lines: int = 3) -> str:
    """The last lines a finished command printed (stderr, else stdout), joined on one line."""
    return " / ".join((proc.stderr or proc.stdout).strip().splitlines()[-lines:])


def software() -> dict[str, str]:
    """This interpreter's versions of the packages a report names per system."""
    return {"python": ".".join(map(str, sys.version_info[:3])), **installed_versions(SOFTWARE)}
