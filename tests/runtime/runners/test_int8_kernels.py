"""The int8 kernel path and file chosen from CPU flags (fake flags: no timing, any CPU runs these)."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from qa_engine import QAEngine
from qa_engine.artifacts.manifest import Manifest, Variant, sha256_file
from qa_engine.runners import int8_kernels
from qa_engine.runners.int8_kernels import choose_int8_file, cpu_flags, int8_kernel, pair_sum_bound, saturates
from tests.fixtures import build_random_artifact

MILAN = {"sse4_1", "avx", "avx2", "fma"}  # AVX2, no VNNI
GENOA = MILAN | {"avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"}
SAPPHIRE_RAPIDS = GENOA | {"amx_tile", "amx_int8", "amx_bf16"}
SKYLAKE_X = MILAN | {"avx512f", "avx512bw"}  # AVX-512 without VNNI
ALDER_LAKE = MILAN | {"avx_vnni"}

INT8 = Variant("model.int8.onnx", "full", ["cpu"], weight_range={"max_abs_weight": 127},
               no_vnni={"file": "model.int8.no-vnni.onnx", "sha256": "seven"})


@pytest.mark.parametrize("max_w, safe", [(0, True), (64, True), (65, False), (127, False)])
def test_the_saturation_check_is_2_times_255_times_max_w_against_int16(max_w, safe):
    assert pair_sum_bound(max_w) == 2 * 255 * max_w
    assert saturates(max_w) is not safe


@pytest.mark.parametrize("flags, saturating", [(MILAN, True), (SKYLAKE_X, True), (GENOA, False),
                                               (SAPPHIRE_RAPIDS, False), (ALDER_LAKE, False), (set(), False)])
def test_the_kernel_path_follows_the_vnni_flags(flags, saturating):
    assert int8_kernel(flags).saturating is saturating


def test_amx_and_vnni_are_named_before_the_avx2_path():
    assert "AMX" in int8_kernel(SAPPHIRE_RAPIDS).name
    assert "AVX512-VNNI" in int8_kernel(GENOA).name
    assert "vpmaddubsw" in int8_kernel(MILAN).name


@pytest.mark.parametrize("flags", [GENOA, SAPPHIRE_RAPIDS, ALDER_LAKE])
def test_vnni_cpus_keep_the_full_range_file(flags):
    chosen = choose_int8_file(INT8, flags)
    assert (chosen.file, chosen.sha256, chosen.warn) == ("model.int8.onnx", "full", False)


@pytest.mark.parametrize("flags", [MILAN, SKYLAKE_X])
def test_cpus_without_vnni_take_the_7_bit_file(flags):
    chosen = choose_int8_file(INT8, flags)
    assert (chosen.file, chosen.sha256, chosen.warn) == ("model.int8.no-vnni.onnx", "seven", False)


def test_weights_within_the_bound_need_no_second_file():
    variant = Variant("model.int8.onnx", "full", ["cpu"], weight_range={"max_abs_weight": 64})
    chosen = choose_int8_file(variant, MILAN)
    assert chosen.file == "model.int8.onnx" and not chosen.warn


def test_an_old_artifact_without_the_7_bit_file_warns_without_vnni():
    old = Variant("model.int8.onnx", "full", ["cpu"])
    assert choose_int8_file(old, MILAN).warn
    assert not choose_int8_file(old, GENOA).warn


def test_cpu_flags_reads_the_flags_line(tmp_path: Path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 avx512_vnni\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_vnni"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def _with_no_vnni_file(folder: Path, sha256: str | None = None) -> Path:
    """The random artifact with a copy of its int8 graph registered as the 7-bit file (checksum as given)."""
    manifest = Manifest.read(folder)
    shutil.copyfile(folder / "model.int8.onnx", folder / "model.int8.no-vnni.onnx")
    manifest.variants["int8"].weight_range = {"max_abs_weight": 127}
    manifest.variants["int8"].no_vnni = {"file": "model.int8.no-vnni.onnx",
                                         "sha256": sha256 or sha256_file(folder / "model.int8.no-vnni.onnx")}
    manifest.write(folder)
    return folder


def test_the_engine_loads_and_logs_the_file_the_cpu_flags_choose(monkeypatch, caplog, tmp_path):
    artifact = _with_no_vnni_file(build_random_artifact(tmp_path / "art"))
    monkeypatch.setattr(int8_kernels, "cpu_flags", lambda: frozenset(MILAN))
    with caplog.at_level(logging.INFO, logger="qa_engine.artifacts.loader"):
        QAEngine.from_pretrained(artifact, provider="cpu", precision="int8")
    assert any("vpmaddubsw" in r.getMessage() and "model.int8.no-vnni.onnx" in r.getMessage() for r in caplog.records)


def test_the_engine_opens_the_7_bit_file_only_without_vnni(monkeypatch, tmp_path):
    artifact = _with_no_vnni_file(build_random_artifact(tmp_path / "art"), sha256="0" * 64)  # a wrong checksum
    monkeypatch.setattr(int8_kernels, "cpu_flags", lambda: frozenset(GENOA))
    QAEngine.from_pretrained(artifact, provider="cpu", precision="int8")
    monkeypatch.setattr(int8_kernels, "cpu_flags", lambda: frozenset(MILAN))
    with pytest.raises(ValueError, match="no-vnni.onnx: checksum"):
        QAEngine.from_pretrained(artifact, provider="cpu", precision="int8")


def test_a_push_checks_the_7_bit_file_too(tmp_path):
    from qa_engine.artifacts import loader

    artifact = _with_no_vnni_file(build_random_artifact(tmp_path / "art"), sha256="0" * 64)
    with pytest.raises(ValueError, match="no_vnni.sha256"):
        loader.verify_artifact(loader.local_artifact(artifact))
