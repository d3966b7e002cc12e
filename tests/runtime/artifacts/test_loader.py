"""Artifact loading: every file of an artifact changed after export (each kept valid JSON) is refused at load by the
engine, the Triton models and export's Triton writer, naming the file; settings the model cannot take are refused
naming the manifest field; a format-1 artifact still loads, with a warning saying how to re-export."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Callable

import pytest

from qa_engine import QAEngine
from qa_engine.artifacts import loader
from qa_engine.artifacts.manifest import MANIFEST_NAME, Manifest, sha256_file
from qa_engine.serving.triton import models as tm

QUESTION, CONTEXT = "철수는 어디에 삽니까?", "철수는 서울에 삽니다. 영희는 부산에 삽니다."


@pytest.fixture
def artifact(random_artifact: Path, tmp_path: Path) -> Path:
    """A copy of the random artifact that a test may damage."""
    return Path(shutil.copytree(random_artifact, tmp_path / "artifact"))


def _edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    edit(raw)
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")


def _swap_vocab_ids(raw: dict) -> None:
    """Two vocabulary entries trade ids: every text still tokenizes, into other ids."""
    vocab = raw["model"]["vocab"]
    vocab["서"], vocab["울"] = vocab["울"], vocab["서"]


def _rename_vocab_key(raw: dict) -> None:
    vocab = raw["model"]["vocab"]
    vocab["鬱"] = vocab.pop("울")


def _shift_sep_id(raw: dict) -> None:
    raw["post_processor"]["special_tokens"]["[SEP]"]["ids"] = [4]


def _set(field: str, value: object) -> Callable[[dict], None]:
    return lambda raw: raw.__setitem__(field, value)


# every file the engine reads, each changed in a way that keeps it valid JSON (or a valid-looking ONNX file)
DAMAGE = {
    "tokenizer vocabulary id": ("tokenizer.json", _swap_vocab_ids, "files.tokenizer.json"),
    "tokenizer vocabulary key": ("tokenizer.json", _rename_vocab_key, "files.tokenizer.json"),
    "tokenizer [SEP] id": ("tokenizer.json", _shift_sep_id, "files.tokenizer.json"),
    "model positions": ("config.json", _set("max_position_embeddings", 128), "files.config.json"),
    "manifest max_length": (MANIFEST_NAME, _set("max_length", 256), "checksum"),
    "manifest doc_stride": (MANIFEST_NAME, _set("doc_stride", 64), "checksum"),
    "manifest max_answer_length": (MANIFEST_NAME, _set("max_answer_length", 5), "checksum"),
    "manifest input name": (MANIFEST_NAME, _set("input_names", ["input_ids", "attention_mask", "token_type_idz"]),
                            "checksum"),
    "manifest tokenizer checksum": (MANIFEST_NAME, lambda raw: raw["files"].__setitem__("tokenizer.json", "0" * 64),
                                    "checksum"),
}


def _damage(artifact: Path, what: str) -> str:
    name, edit, field = DAMAGE[what]
    _edit_json(artifact / name, edit)
    return field


def _triton_model(model: type, artifact: Path, precision: str = "fp32") -> object:
    parameters = {tm.ARTIFACT: str(artifact), tm.PRECISION: precision, tm.PROVIDER: "cpu"}
    instance = model()
    instance.initialize({"model_config": json.dumps({"parameters": {k: {"string_value": v}
                                                                     for k, v in parameters.items()}})})
    return instance


LOADERS = {
    "engine": lambda a: QAEngine.from_pretrained(a, provider="cpu"),
    "triton engine model": lambda a: _triton_model(tm.EngineModel, a),
    "triton onnx model": lambda a: _triton_model(tm.OnnxModel, a),
}


@pytest.mark.parametrize("what", DAMAGE)
@pytest.mark.parametrize("load", LOADERS)
def test_every_file_changed_after_export_is_refused_naming_it(artifact: Path, what: str, load: str) -> None:
    name = DAMAGE[what][0]
    field = _damage(artifact, what)
    before = {p.name: p.read_bytes() for p in artifact.iterdir()}
    if field == "checksum":
        match = rf"{MANIFEST_NAME}: field 'checksum' does not match the manifest's contents.*qa-engine export"
    else:
        match = rf"{name}: checksum does not match the manifest \({MANIFEST_NAME} field '{field}'\)"
    with pytest.raises(ValueError, match=match):
        LOADERS[load](artifact)
    assert {p.name: p.read_bytes() for p in artifact.iterdir()} == before  # loading changes nothing


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_changed_model_file_is_refused(artifact: Path, precision: str) -> None:
    model = artifact / f"model.{precision}.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 1
    model.write_bytes(bytes(data))
    field = rf"{model.name}: checksum does not match the manifest \({MANIFEST_NAME} field 'variants.{precision}.sha256'\)"
    with pytest.raises(ValueError, match=field):
        QAEngine.from_pretrained(artifact, provider="cpu", precision=precision)
    with pytest.raises(ValueError, match=field):
        _triton_model(tm.OnnxModel, artifact, precision)


def test_the_triton_repository_writer_refuses_a_changed_artifact(artifact: Path, tmp_path: Path) -> None:
    triton = pytest.importorskip("qa_engine.export.triton")
    _damage(artifact, "manifest max_length")
    with pytest.raises(ValueError, match="field 'checksum' does not match"):
        triton.write_triton_repo(artifact, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_verify_false_skips_the_checksums(artifact: Path) -> None:
    _damage(artifact, "tokenizer vocabulary key")
    _damage(artifact, "manifest max_answer_length")
    engine = QAEngine.from_pretrained(artifact, provider="cpu", verify=False)
    assert engine.settings.decode.max_answer_length == 5


def test_a_missing_file_is_named(artifact: Path) -> None:
    (artifact / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=rf"config.json: missing from the artifact \(named by {MANIFEST_NAME} "
                                                r"field 'files.config.json'\)"):
        QAEngine.from_pretrained(artifact, provider="cpu")


# --- settings against the model: manifests re-signed after the edit, so only the settings check can catch them ---

def _resign(artifact: Path, **fields: object) -> None:
    manifest = Manifest.read(artifact)
    for name, value in fields.items():
        setattr(manifest, name, value)
    manifest.write(artifact)


@pytest.mark.parametrize("fields, match", [
    ({"input_names": ["input_ids", "attention_mask", "token_type_idz"]},
     r"field 'input_names' names 'token_type_idz', which model.int8.onnx does not take \(its inputs: input_ids, "),
    ({"input_names": ["input_ids", "attention_mask"]}, r"field 'input_names' leaves out 'token_type_ids'"),
    ({"output_names": ["end_logits", "start_logits"]}, r"field 'output_names' is \['end_logits', 'start_logits'\]"),
    ({"max_length": 1024, "doc_stride": 128},
     r"field 'max_length': max_length 1024 exceeds the 512 tokens the model's position embeddings hold"),
    ({"doc_stride": 384}, r"field 'doc_stride': doc_stride must be in \[0, max_length\)"),
    ({"max_length": 4, "doc_stride": 0}, r"field 'max_length': max_length must be at least 8"),
    ({"max_answer_length": 0}, r"field 'max_answer_length': max_answer_length must be >= 1"),
])
def test_settings_the_model_cannot_take_are_refused_naming_the_field(artifact: Path, fields: dict, match: str) -> None:
    _resign(artifact, **fields)
    with pytest.raises(ValueError, match=rf"{MANIFEST_NAME}: {match}"):
        QAEngine.from_pretrained(artifact, provider="cpu")


@pytest.mark.parametrize("field, value, words", [
    ("max_length", "384", "an integer"), ("doc_stride", True, "an integer"), ("input_names", "input_ids", "a list"),
    ("files", {"tokenizer.json": 1}, "an object of strings"), ("opset", 17.5, "an integer or null"),
])
def test_a_field_of_the_wrong_type_is_named(artifact: Path, field: str, value: object, words: str) -> None:
    _edit_json(artifact / MANIFEST_NAME, _set(field, value))
    with pytest.raises(ValueError, match=rf"{MANIFEST_NAME}: field '{field}' must be {words}"):
        QAEngine.from_pretrained(artifact, provider="cpu")


def test_a_window_override_beyond_the_models_positions_is_refused(artifact: Path) -> None:
    with pytest.raises(ValueError, match="from_pretrained: max_length 600 exceeds the 512 tokens"):
        QAEngine.from_pretrained(artifact, provider="cpu", max_length=600)
    assert QAEngine.from_pretrained(artifact, provider="cpu", max_length=512).settings.window.max_length == 512


def test_a_resigned_manifest_with_good_settings_loads(artifact: Path) -> None:
    _resign(artifact, max_answer_length=5)
    assert QAEngine.from_pretrained(artifact, provider="cpu").settings.decode.max_answer_length == 5


# --- artifacts from before every file was checksummed ----------------------------------------------------------

def _make_format_1(artifact: Path) -> None:
    def downgrade(raw: dict) -> None:
        raw["format_version"] = 1
        del raw["files"], raw["checksum"]

    _edit_json(artifact / MANIFEST_NAME, downgrade)


def test_a_format_1_artifact_loads_with_a_warning_saying_how_to_re_export(artifact: Path, random_artifact: Path,
                                                                          caplog) -> None:
    _make_format_1(artifact)
    with caplog.at_level(logging.WARNING, logger="qa_engine.artifacts.loader"):
        engine = QAEngine.from_pretrained(artifact, provider="cpu", precision="fp32")
    warning, = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"{artifact / MANIFEST_NAME}: an artifact of format 1")
    assert "re-export it with `qa-engine export --model CHECKPOINT --output FOLDER --force`" in warning
    current = QAEngine.from_pretrained(random_artifact, provider="cpu", precision="fp32")
    assert engine.answer(QUESTION, CONTEXT) == current.answer(QUESTION, CONTEXT)


def test_a_format_1_artifact_still_has_its_model_checked(artifact: Path) -> None:
    _make_format_1(artifact)
    (artifact / "model.int8.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="model.int8.onnx: checksum does not match the manifest"):
        QAEngine.from_pretrained(artifact, provider="cpu")


def test_a_format_2_manifest_without_its_checksums_is_refused(artifact: Path) -> None:
    _edit_json(artifact / MANIFEST_NAME, lambda raw: raw.pop("checksum"))
    with pytest.raises(ValueError, match="field 'checksum' does not match"):
        QAEngine.from_pretrained(artifact, provider="cpu")


def test_verify_artifact_checks_every_variant_and_file(artifact: Path) -> None:
    loader.verify_artifact(loader.local_artifact(artifact))
    (artifact / "model.fp16.onnx").write_bytes(b"x")  # a variant no CPU load opens
    with pytest.raises(ValueError, match="model.fp16.onnx: checksum does not match"):
        loader.verify_artifact(loader.local_artifact(artifact))


def test_the_test_artifact_checksums_every_file_it_holds(random_artifact: Path) -> None:
    manifest = Manifest.read(random_artifact)
    listed = set(manifest.files) | {v.file for v in manifest.variants.values()} | {MANIFEST_NAME}
    assert listed == {p.name for p in random_artifact.iterdir()}
    assert all(sha256_file(random_artifact / name) == sha for name, sha in manifest.files.items())
    assert manifest.checksum == manifest.content_sha256()
