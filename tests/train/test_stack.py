"""qa_engine.train.stack: an unsupported or missing torch or transformers is refused before any work, naming what was found."""
from __future__ import annotations

import subprocess
import sys

import pytest
from qa_engine.train import stack


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch):
    """Pretend these versions are installed (None: not installed)."""
    def pretend(**versions: str | None) -> None:
        monkeypatch.setattr(stack, "_installed", lambda name: versions[name])
    return pretend


def test_supported_versions_pass(installed) -> None:
    installed(torch="2.13.0+cpu", transformers="5.24.0")
    assert stack.check("export") == {"torch": "2.13.0+cpu", "transformers": "5.24.0"}
    installed(torch="2.6.0", transformers="4.57.6")
    assert stack.check("train") == {"torch": "2.6.0", "transformers": "4.57.6"}


@pytest.mark.parametrize("torch, transformers, refused", [
    ("2.13.0", "4.56.2", "transformers>=4.57,<6"),
    ("2.13.0", "6.0.0", "transformers>=4.57,<6"),
    ("2.13.0", "6.0.0rc1", "transformers>=4.57,<6"),
    ("2.5.1", "5.24.0", "torch>=2.6,<3"),
    (None, "5.24.0", "torch>=2.6,<3"),
])
def test_unsupported_versions_are_refused_with_what_was_found(installed, torch, transformers, refused) -> None:
    installed(torch=torch, transformers=transformers)
    with pytest.raises(stack.UnsupportedStack) as caught:
        stack.check("export")
    message = str(caught.value)
    assert f"`qa-engine export` supports {refused}" in message
    assert f"torch {torch or 'not installed'}" in message and f"transformers {transformers}" in message
    assert f"pip install '{refused}'" in message


def test_both_unsupported_are_named_together(installed) -> None:
    installed(torch="2.4.0", transformers="4.45.0")
    with pytest.raises(stack.UnsupportedStack, match=r"supports torch>=2\.6,<3, transformers>=4\.57,<6; found"):
        stack.check("train")


def test_the_check_is_an_import_error_the_cli_reports() -> None:
    assert issubclass(stack.UnsupportedStack, ImportError)  # the qa-engine CLI prints these and exits 2


def test_importing_stack_imports_neither_torch_nor_transformers() -> None:
    code = "import sys, qa_engine.train.stack; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


@pytest.mark.parametrize("command", [["export", "--model", "m", "--output", "o"], ["train", "--output", "o"]])
def test_cli_refuses_before_any_work(command, monkeypatch, capsys, tmp_path) -> None:
    pytest.importorskip("torch")
    from qa_engine.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(stack, "_installed", {"torch": "2.13.0", "transformers": "4.46.3"}.get)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"qa-engine {command[0]}: error: `qa-engine {command[0]}` supports transformers>=4.57,<6" in err
    assert "found torch 2.13.0, transformers 4.46.3" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
