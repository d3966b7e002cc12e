#!/usr/bin/env bash
# The runtime's tests on the base package alone: `pip install .` (numpy, tokenizers, onnxruntime, tqdm) and pytest
# into .venv-base, no torch, transformers, optimum or onnx. It runs tests/runtime/; QA_ENGINE_RUNTIME_ONLY=1 makes
# tests/conftest.py refuse imports of torch, transformers, optimum, train, export and benchmarks (which
# `pip install .` does put into site-packages), so a runtime test that needs them fails here instead of passing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv-base/bin/python ] || "$PYTHON" -m venv .venv-base
.venv-base/bin/python -m pip install --quiet . "pytest>=8.0" "hypothesis>=6.100"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=true
QA_ENGINE_RUNTIME_ONLY=1 exec .venv-base/bin/python -m pytest tests/runtime -q -m "not slow" -p no:cacheprovider "$@"
