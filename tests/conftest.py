"""Fixtures (from tests/fixtures.py, shared with benchmarks/), the `slow` marking, and the runtime-only mode.

Tests live in folders by what they test: tests/runtime/ (mirroring qa_engine's subpackages) needs only the
runtime's dependencies; tests/train/, tests/export/ and tests/benchmarks/ test the stages. QA_ENGINE_RUNTIME_ONLY=1
(the base-package job, scripts/test_runtime.sh) leaves the stage folders out and refuses to import the training,
export and benchmark stacks, so a runtime test that reaches for them fails there at once
instead of passing because the working tree happens to be on sys.path.
"""
from __future__ import annotations

import importlib.abc
import os
import sys

import pytest

from tests.fixtures import (  # noqa: F401  (fixtures are found by their names in this module)
    TRAINED,
    engine,
    korquad_dev,
    quick_distilbert_checkpoint,
    random_artifact,
    tiny_bert_artifact,
    tiny_bert_checkpoint,
)

# the stages' test folders; everything else under tests/ tests the runtime and needs only its dependencies
STAGE_FOLDERS = ("train", "export", "benchmarks")
NOT_RUNTIME = ("torch", "transformers", "optimum", "qa_engine.train", "qa_engine.export", "qa_engine.benchmarks")


class _Refuse(importlib.abc.MetaPathFinder):
    """Makes `import x` fail as if x were not installed, for the packages in NOT_RUNTIME and their modules."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if any(fullname == name or fullname.startswith(name + ".") for name in NOT_RUNTIME):
            raise ModuleNotFoundError(f"{fullname} is not part of the runtime (QA_ENGINE_RUNTIME_ONLY)", name=fullname)
        return None


if os.environ.get("QA_ENGINE_RUNTIME_ONLY"):
    sys.meta_path.insert(0, _Refuse())
    collect_ignore = list(STAGE_FOLDERS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that trains or exports a model through a fixture is `slow`."""
    for item in items:
        if TRAINED & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
