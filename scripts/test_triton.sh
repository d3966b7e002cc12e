#!/usr/bin/env bash
# The Triton tests against a live server (tests/runtime/serving/test_triton_live.py, with tests/runtime/serving/test_triton.py) in their own
# .venv-triton: `pip install -e '.[triton]'` brings nvidia-pytriton's tritonserver binary and python backend, and
# its numpy<2 pin, which the dev environment does not take (editable, as in .venv, so qa_engine.export maps to
# export/). QA_ENGINE_REQUIRE_TRITON=1 turns "no server could start" from a skip into a failure here.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv-triton/bin/python ] || "$PYTHON" -m venv .venv-triton
.venv-triton/bin/python -m pip install --quiet -e ".[triton]" "pytest>=8.0"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=true QA_ENGINE_REQUIRE_TRITON=1
exec .venv-triton/bin/python -m pytest tests/runtime/serving/test_triton_live.py tests/runtime/serving/test_triton.py -q -p no:cacheprovider "$@"
