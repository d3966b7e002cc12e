"""Fixtures (from tests/fixtures.py, shared with benchmarks/), the `slow` marking, and the runtime-only mode.

QA_ENGINE_RUNTIME_ONLY=1 (the base-package job in scripts/test.sh) collects only RUNTIME_TESTS and refuses to
import the training, export and benchmark stacks, so a runtime test that reaches for them fails there at once
instead of passing because the working tree happens to be on sys.path.
"""
from __future__ import annotations

import importlib.abc
import os
import sys
from pathlib import Path

import pytest

from tests.fixtures import (  # noqa: F401  (fixtures are found by their names in this module)
    TRAINED,
    korquad_dev,
    quick_distilbert_checkpoint,
    random_artifact,
    tiny_bert_artifact,
    tiny_bert_checkpoint,
)

# test files whose tests not marked slow need only the runtime's dependencies
RUNTIME_TESTS = frozenset({
    "test_atomic.py", "test_batch_independence.py", "test_batch_print.py", "test_batcher.py", "test_cli.py",
    "test_engine.py", "test_engine_cuda_path.py", "test_features.py", "test_features_korquad.py", "test_hub.py",
    "test_metrics.py", "test_overlap.py", "test_random_model.py", "test_ray_batch.py", "test_runtime.py", "test_service.py",
    "test_spans.py", "test_squad.py", "test_stream.py", "test_triton.py", "test_triton_live.py",
    "test_windows_vectorized.py",
})
NOT_RUNTIME = ("torch", "transformers", "optimum", "qa_engine.train", "qa_engine.export", "qa_engine.benchmarks")


class _Refuse(importlib.abc.MetaPathFinder):
    """Makes `import x` fail as if x were not installed, for the packages in NOT_RUNTIME and their modules."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if any(fullname == name or fullname.startswith(name + ".") for name in NOT_RUNTIME):
            raise ModuleNotFoundError(f"{fullname} is not part of the runtime (QA_ENGINE_RUNTIME_ONLY)", name=fullname)
        return None


if os.environ.get("QA_ENGINE_RUNTIME_ONLY"):
    sys.meta_path.insert(0, _Refuse())
    collect_ignore = sorted(p.name for p in Path(__file__).parent.glob("test_*.py") if p.name not in RUNTIME_TESTS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that trains or exports a model through a fixture is `slow`."""
    for item in items:
        if TRAINED & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
