"""The artifact manifest (`qa_engine.json`): what export writes and the engine reads."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from qa_engine.artifacts.atomic import atomic_write_text
from qa_engine.core.constants import (
    DOC_STRIDE,
    MAX_ANSWER_LENGTH,
    MAX_LENGTH,
)

MANIFEST_NAME = "qa_engine.json"
FORMAT = "qa-engine-artifact"
FORMAT_VERSION = 1


@dataclass
class Variant:
    """One ONNX file of the artifact at one precision."""

    file: str
    sha256: str
    providers: list[str]  # where it is meant to run: "cpu", "cuda"
    validated: bool = False
    validation: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass
class Manifest:
    model_type: str
    input_names: list[str]
    output_names: list[str]
    variants: dict[str, Variant]
    tokenizer_file: str = "tokenizer.json"
    max_length: int = MAX_LENGTH
    doc_stride: int = DOC_STRIDE
    max_answer_length: int = MAX_ANSWER_LENGTH
    opset: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    fusion: dict[str, int] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2)

    def write(self, folder: str | Path) -> Path:
        """Write atomically into `folder`."""
        path = Path(folder) / MANIFEST_NAME
        atomic_write_text(path, self.to_json() + "\n")
        return path

    @classmethod
    def read(cls, folder: str | Path) -> "Manifest":
        """Read and check a manifest; errors name the file and the problem."""
        path = Path(folder) / MANIFEST_NAME
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"artifact folder not found: {folder}")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no manifest; is this a qa-engine artifact folder (made by `qa-engine export`)?")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: malformed manifest ({e})") from e
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError(f"{path}: not a qa-engine manifest")
        version = raw.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"{path}: manifest format_version {version!r} is newer than this qa-engine supports "
                f"({FORMAT_VERSION}); upgrade qa-engine"
            )
        try:
            variants = {k: Variant(**v) for k, v in raw.pop("variants").items()}
            return cls(variants=variants, **raw)
        except (TypeError, KeyError, AttributeError) as e:
            raise ValueError(f"{path}: manifest has missing or unknown fields ({e})") from e


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def installed_versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed distribution versions of `packages` (those not installed are left out): what an artifact or a
    report records about the software that made it."""
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
