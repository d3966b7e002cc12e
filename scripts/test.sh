#!/usr/bin/env bash
# The runtime's tests on the base package alone (scripts/test_runtime.sh, about a minute), the Triton tests against a
# live server in .venv-triton (scripts/test_triton.sh, about two minutes), then: install everything into .venv
# (transformers 5), type-check qa_engine/ and run the whole test suite (the tiny model is trained once, offline),
# then train/ and export/ again on transformers 4.57 in .venv-457 (scripts/test_compat.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test_runtime.sh
bash scripts/test_triton.sh
bash scripts/install.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=true
.venv/bin/python -m mypy  # type-checks qa_engine/ as configured in pyproject.toml [tool.mypy]
.venv/bin/python -m pytest tests -q "$@"
bash scripts/test_compat.sh
