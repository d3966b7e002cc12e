"""Argparse types for numeric options: an out-of-range value is refused at parse time, naming the option
("argument --batch-size: must be an integer >= 1, got -1"), instead of failing deep inside the run."""
from __future__ import annotations

import argparse
import math
from typing import Callable


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer option in [low, high] (no upper bound when high is None)."""
    bounds = f">= {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}, got {value}")
        return value

    return parse


def float_range(low: float, high: float | None = None, *, low_open: bool = False,
                high_open: bool = False) -> Callable[[str], float]:
    """A finite number between low and high, each bound included unless its *_open flag is set."""
    bounds = " and ".join(filter(None, [f"{'>' if low_open else '>='} {low:g}",
                                        None if high is None else f"{'<' if high_open else '<='} {high:g}"]))

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {bounds}, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        too_high = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be a number {bounds}, got {text}")
        return value

    return parse


positive_int = int_range(1)
non_negative_int = int_range(0)
port = int_range(1, 65535)
positive_float = float_range(0.0, low_open=True)
non_negative_float = float_range(0.0)
