"""Checks of the texts people hand the engine, one rule for every entry point (engine, micro-batcher, data files)."""
from __future__ import annotations

from typing import Iterable


def check_text(value: object, what: str) -> str:
    """`value` when it is a string with something besides whitespace, else ValueError naming `what`."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what} is empty")
    return value


def check_texts(name: str, values: Iterable[object], first: int = 0) -> None:
    """check_text on each value, named `name` and its position counted from `first` ('question 3')."""
    for i, value in enumerate(values, first):
        check_text(value, f"{name} {i}")


def check_context_length(context: str, limit: int, what: str) -> None:
    """ValueError naming `what` when the context is longer than `limit` characters, and the setting that sets it."""
    if len(context) > limit:
        raise ValueError(f"{what} has {len(context):,} characters, more than max_context_chars={limit:,} "
                         "(EngineSettings.max_context_chars, --max-context-chars)")


def check_context_lengths(contexts: Iterable[str], limit: int, first: int = 0) -> None:
    """check_context_length on each context, named by its position counted from `first` ('context 3')."""
    for i, context in enumerate(contexts, first):
        check_context_length(context, limit, f"context {i}")
