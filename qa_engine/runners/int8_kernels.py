"""Which int8 kernel onnxruntime's CPU provider takes on this CPU, and which int8 file of an artifact is right for it.

The int8 graph multiplies uint8 activations by int8 weights (U8S8). With VNNI or AMX the products accumulate in int32.
Without them (AVX2, AVX-512BW) MLAS uses vpmaddubsw, which adds two u8 x s8 products into a saturating int16: with
full-range weights (|w| up to 127) a pair can reach 2 * 255 * 127 = 64,770 and is clipped at 32,767. An export whose
weights fail that bound also writes a 7-bit-weight file (`Variant.no_vnni`), chosen here where the CPU lacks VNNI.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from qa_engine.artifacts.manifest import Variant

log = logging.getLogger(__name__)

UINT8_MAX = 255
INT16_MAX = 32767
CPUINFO = Path("/proc/cpuinfo")
# flag -> the U8S8 kernel MLAS dispatches to, best first; True where int16 pair sums saturate
KERNELS = (
    ("amx_int8", "AMX tiles (int32 accumulation)", False),
    ("avx512_vnni", "AVX512-VNNI vpdpbusd (int32 accumulation)", False),
    ("avx_vnni", "AVX-VNNI vpdpbusd (int32 accumulation)", False),
    ("avx512bw", "AVX-512BW vpmaddubsw (int16 pair sums that saturate)", True),
    ("avx2", "AVX2 vpmaddubsw (int16 pair sums that saturate)", True),
)


def pair_sum_bound(max_abs_weight: int) -> int:
    """The largest |u8 * w + u8 * w| a vpmaddubsw pair can take with weights up to `max_abs_weight` in magnitude."""
    return 2 * UINT8_MAX * max_abs_weight


def saturates(max_abs_weight: int) -> bool:
    """Whether int16 pair sums can overflow with these weights (the check: 2 * 255 * max|w| <= 32767 is safe)."""
    return pair_sum_bound(max_abs_weight) > INT16_MAX


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The instruction-set flags of the first CPU in /proc/cpuinfo (empty where there is none: not Linux x86)."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags":
                return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


@dataclass(frozen=True)
class Int8Kernel:
    """The U8S8 kernel family a CPU runs: its name and whether its int16 pair sums saturate."""

    name: str
    saturating: bool


def int8_kernel(flags: Iterable[str]) -> Int8Kernel:
    """The U8S8 kernel onnxruntime's MLAS takes on a CPU with these flags (unknown CPUs: no saturating path known)."""
    present = set(flags)
    for flag, name, saturating in KERNELS:
        if flag in present:
            return Int8Kernel(name, saturating)
    return Int8Kernel("no AVX2 / VNNI flags seen (not x86, or unknown): no vpmaddubsw path", False)


@dataclass(frozen=True)
class Int8File:
    """The int8 model file to load, its checksum, and why it was chosen (logged at load)."""

    file: str
    sha256: str
    reason: str
    warn: bool = False  # the file may give wrong products on this CPU


def choose_int8_file(variant: Variant, flags: Iterable[str]) -> Int8File:
    """The variant's own file, or its 7-bit-weight `no_vnni` file where the CPU's kernel saturates and the export
    wrote one; the reason says which kernel runs and whether its pair sums can overflow."""
    kernel = int8_kernel(flags)
    if not kernel.saturating:
        return Int8File(variant.file, variant.sha256, f"int8 kernel: {kernel.name}; full-range weights")
    if variant.no_vnni:
        return Int8File(variant.no_vnni["file"], variant.no_vnni["sha256"],
                        f"int8 kernel: {kernel.name}; 7-bit weights ({variant.no_vnni['file']}) keep 2 * 255 * "
                        f"max|w| within int16")
    max_w = variant.weight_range.get("max_abs_weight")
    if max_w is not None and not saturates(int(max_w)):
        return Int8File(variant.file, variant.sha256,
                        f"int8 kernel: {kernel.name}; weights up to {max_w} keep pair sums within int16")
    return Int8File(variant.file, variant.sha256,
                    f"int8 kernel: {kernel.name}; this artifact has full-range weights and no 7-bit file, so some "
                    "products may saturate (re-export it for CPUs without VNNI)", warn=True)
