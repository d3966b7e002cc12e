"""Which Python each benchmarked system runs in. qa-engine and the HF pipeline run in this interpreter; Optimum's
newest release (optimum-onnx 0.1.0) requires transformers<4.58, so where this interpreter has a newer stack the
Optimum peer gets an environment of its own, made once under the work dir with the transformers it accepts."""
from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from pathlib import Path

from qa_engine.manifest import installed_versions

log = logging.getLogger(__name__)

# the newest optimum-onnx and the transformers range it declares
OPTIMUM_PINS = ("optimum-onnx==0.1.0", "transformers>=4.45,<4.58")
# shared with this interpreter at the same versions, so that only the Optimum stack differs
SHARED = ("torch", "onnxruntime-gpu", "onnxruntime", "numpy", "tokenizers", "tqdm", "psutil")
# what a system's software line in the report names
SOFTWARE = ("torch", "transformers", "optimum-onnx", "onnxruntime-gpu", "onnxruntime")
ENV_DIR = "env-optimum"
DONE = "requirements.txt"  # written last: an environment without it is unfinished and made again


class PeerEnvironmentError(RuntimeError):
    """The Optimum peer's environment could not be made; the message says what to do instead."""


def optimum_importable() -> bool:
    """Whether this interpreter can run the Optimum peer itself."""
    try:
        return importlib.util.find_spec("optimum.onnxruntime") is not None
    except ImportError:  # optimum's namespace without optimum-onnx
        return False


def interpreter(family: str, workdir: Path) -> str:
    """The Python that runs a system of `family` ("hf", "optimum", "engine")."""
    if family != "optimum" or optimum_importable():
        return sys.executable
    return str(optimum_environment(workdir))


def requirements() -> list[str]:
    """The Optimum environment's packages: this interpreter's versions of SHARED, then OPTIMUM_PINS."""
    pinned = [f"{name}=={version.split('+')[0]}" for name, version in installed_versions(SHARED).items()]
    return [*pinned, *OPTIMUM_PINS]


def checkout_root() -> Path:
    """The qa-engine checkout these benchmarks run from (the Optimum environment installs it without its deps)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise PeerEnvironmentError(
            "the Optimum peer needs optimum-onnx, which requires transformers<4.58: install "
            f"{' '.join(repr(p) for p in OPTIMUM_PINS)} beside qa-engine, or run the benchmark from a checkout "
            "so it can make an environment of its own, or leave the optimum systems out with --systems"
        )
    return root


def optimum_environment(workdir: Path) -> Path:
    """The Python of `workdir`/env-optimum, made on first use (a few minutes: torch is installed at this
    interpreter's version first, so pip takes the same build); made again when the requirements change."""
    folder = (workdir / ENV_DIR).resolve()
    python = folder / "bin" / "python"
    wanted = "\n".join(requirements()) + "\n"
    done = folder / DONE
    if python.is_file() and done.is_file() and done.read_text(encoding="utf-8") == wanted:
        return python
    root = checkout_root()
    log.info("making the Optimum peer's environment in %s (%s)", folder, ", ".join(OPTIMUM_PINS))
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
            tail = " / ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise PeerEnvironmentError(f"making the Optimum environment failed ({' '.join(step[:4])} ...): {tail}; "
                                    "leave the optimum systems out with --systems")
    done.write_text(wanted, encoding="utf-8")
    return python


def software() -> dict[str, str]:
    """This interpreter's versions of the packages a report names per system."""
    return {"python": ".".join(map(str, sys.version_info[:3])), **installed_versions(SOFTWARE)}
