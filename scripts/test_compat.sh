#!/usr/bin/env bash
# Training and export on the oldest supported transformers line (4.57), into .venv-457: the tests of train/ and
# export/ (the tiny model is trained again, on 4.57, and cached apart from the default environment's), and the
# comparisons with the transformers question-answering pipeline, which transformers removed in 5.3.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-457
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0"  # pinned first, as scripts/install.sh does
"$VENV/bin/python" -m pip install --quiet -e ".[train,export]" "transformers==4.57.*" "pytest>=8.0" "hypothesis>=6.100"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=true
exec "$VENV/bin/python" -m pytest -q -o cache_dir=.pytest_cache_457 "$@" \
  tests/train/test_train.py tests/train/test_relbert.py tests/export/test_export.py tests/export/test_export_parity.py tests/export/test_families.py \
  tests/runtime/test_engine.py tests/runtime/core/test_spans.py
