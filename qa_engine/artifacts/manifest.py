"""The artifact manifest (`qa_engine.json`): what export writes and the engine reads.

It holds the SHA-256 of every other file of the artifact (the ONNX variants, the tokenizer and configs) and
`checksum`, the SHA-256 of its own other fields, so a file changed after export is refused at load instead of
changing answers silently (qa_engine.artifacts.loader checks them). Format 1 manifests had checksums of the ONNX
files only.
"""
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
FORMAT_VERSION = 2
CHECKSUMMED_VERSION = 2  # the first format whose manifest checksums every file and itself


@dataclass
class Variant:
    """One ONNX file of the artifact at one precision."""

    file: str
    sha256: str
    providers: list[str]  # where it is meant to run: "cpu", "cuda"
    validated: bool = False
    validation: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    # int8: the largest |weight| the U8S8 kernels multiply and whether int16 pair sums can saturate without VNNI
    weight_range: dict[str, Any] = field(default_factory=dict)
    # int8: {"file", "sha256", "validation"} of the 7-bit-weight graph for CPUs without VNNI, where one was needed
    no_vnni: dict[str, Any] = field(default_factory=dict)


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
    files: dict[str, str] = field(default_factory=dict)  # SHA-256 of each file besides the variants (tokenizer, configs)
    # OpenVINO IR per precision ({"file", "sha256", "weights", "weights_sha256", "validation"}), from export --openvino
    openvino: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""  # SHA-256 of the other fields (see `content_sha256`)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2)

    def content_sha256(self) -> str:
        """SHA-256 of every field but `checksum`, as canonical JSON: what `checksum` must hold."""
        fields = asdict(self)
        del fields["checksum"]
        text = json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def checksums_every_file(self) -> bool:
        """Whether this manifest's format checksums every file and itself (older ones: the ONNX files only)."""
        return self.format_version >= CHECKSUMMED_VERSION

    def write(self, folder: str | Path) -> Path:
        """Write atomically into `folder`, with `checksum` set to the contents."""
        self.checksum = self.content_sha256()
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
            manifest = cls(variants=variants, **raw)
        except (TypeError, KeyError, AttributeError) as e:
            raise ValueError(f"{path}: manifest has missing or unknown fields ({e})") from e
        _check_types(manifest, path)
        return manifest


def _is(value: Any, kind: str) -> bool:
    """Whether a JSON value is of the kind a manifest field declares (bool is not taken for an int)."""
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "int?":
        return value is None or _is(value, "int")
    if kind == "names":
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    if kind == "str->str":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return isinstance(value, {"str": str, "bool": bool, "dict": dict}[kind])


FIELD_KINDS = {"model_type": "str", "input_names": "names", "output_names": "names", "tokenizer_file": "str",
               "max_length": "int", "doc_stride": "int", "max_answer_length": "int", "opset": "int?",
               "files": "str->str", "checksum": "str", "versions": "dict", "fusion": "dict", "openvino": "dict"}
VARIANT_KINDS = {"file": "str", "sha256": "str", "providers": "names", "validated": "bool", "validation": "dict",
                 "note": "str", "weight_range": "dict", "no_vnni": "dict"}


def _check_types(manifest: Manifest, path: Path) -> None:
    """ValueError naming the field of the first value of the wrong JSON type."""
    where = [(name, getattr(manifest, name), kind) for name, kind in FIELD_KINDS.items()]
    for precision, variant in manifest.variants.items():
        where += [(f"variants.{precision}.{name}", getattr(variant, name), kind) for name, kind in VARIANT_KINDS.items()]
    for name, value, kind in where:
        if not _is(value, kind):
            raise ValueError(f"{path}: field '{name}' must be {KIND_WORDS[kind]}, got {json.dumps(value)}")
    named = [("tokenizer_file", manifest.tokenizer_file), *((f"files.{n}", n) for n in manifest.files),
             *((f"variants.{p}.file", v.file) for p, v in manifest.variants.items()),
             *((f"variants.{p}.no_vnni.file", str(v.no_vnni.get("file"))) for p, v in manifest.variants.items()
               if v.no_vnni),
             *((f"openvino.{p}.{key}", str(ir.get(key))) for p, ir in manifest.openvino.items()
               if isinstance(ir, dict) and "file" in ir for key in ("file", "weights"))]
    for name, file in named:
        if not file or Path(file).is_absolute() or ".." in Path(file).parts:
            raise ValueError(f"{path}: field '{name}' names {file!r}, a file outside the artifact")


KIND_WORDS = {"int": "an integer", "int?": "an integer or null", "names": "a list of non-empty strings",
              "str->str": "an object of strings", "str": "a string", "bool": "true or false", "dict": "an object"}


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
