"""Numeric options refuse out-of-range values at parse time, naming the option; none is a bare int or float."""
from __future__ import annotations

import argparse

import pytest

from qa_engine.cli.main import build_parser, main
from qa_engine.cli.numbers import float_range, int_range, non_negative_int, port, positive_float, positive_int


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def test_no_numeric_option_takes_any_number() -> None:
    commands = _subparsers(build_parser())
    assert {"answer", "batch", "serve-triton"} <= set(commands)
    bare = [f"{name} {'/'.join(a.option_strings)}" for name, p in commands.items() for a in p._actions
            if a.type in (int, float)]
    assert bare == []


@pytest.mark.parametrize("value", ["-1", "0", "1.5", "x"])
def test_batch_size_out_of_range_is_refused_by_name(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["batch", "--model", "m", "--input", "i", "--output", "o", "--batch-size", value])
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert "argument --batch-size: must be an integer >= 1" in err and "Traceback" not in err


def test_bounds() -> None:
    assert positive_int("1") == 1 and non_negative_int("0") == 0 and port("65535") == 65535
    assert positive_float("1e-3") == 0.001 and float_range(0.0, 1.0, high_open=True)("0") == 0.0
    assert int_range(0, 65535)("0") == 0
    for parse, text in ((positive_int, "0"), (non_negative_int, "-1"), (port, "0"), (port, "65536"),
                        (positive_float, "0"), (positive_float, "inf"), (positive_float, "nan"),
                        (float_range(0.0, 1.0, high_open=True), "1"), (float_range(0.0, 1.0), "-0.1")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
