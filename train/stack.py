"""The torch and transformers versions that `qa-engine train` and `qa-engine export` support, checked before any
work so that an unsupported stack is refused with what was found, not a stack trace from inside the exporter.

Reads installed versions with importlib.metadata only: importing this module imports neither torch nor
transformers (the runtime package never does).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from typing import Iterable


@dataclass(frozen=True)
class VersionRange:
    """minimum <= version < below, compared on the numeric release (2.13.0+cpu -> 2.13.0)."""

    minimum: str
    below: str

    def contains(self, version: str) -> bool:
        return _release(self.minimum) <= _release(version) < _release(self.below)

    def __str__(self) -> str:
        return f">={self.minimum},<{self.below}"


# Measured (export/VALIDATION.md): transformers 4.57.6 and 5.24 with torch 2.13. torch 2.6 is transformers 5's own
# floor and the first with the dynamo exporter's current interface. Kept in step with pyproject.toml's train extra.
SUPPORTED = {
    "torch": VersionRange("2.6", "3"),
    "transformers": VersionRange("4.57", "6"),
}


class UnsupportedStack(ImportError):
    """torch or transformers is missing or of a version outside SUPPORTED; the message names both and the fix."""


def check(stage: str, packages: Iterable[str] = ("torch", "transformers")) -> dict[str, str]:
    """The installed versions of `packages`; raises UnsupportedStack for a missing or unsupported one, naming
    every version found, the supported ranges and the pip command that installs them (`stage`: train, export)."""
    found = {name: _installed(name) for name in packages}
    bad = [name for name, version in found.items() if version is None or not SUPPORTED[name].contains(version)]
    if not bad:
        return {name: version for name, version in found.items() if version is not None}
    seen = ", ".join(f"{name} {version or 'not installed'}" for name, version in found.items())
    wanted = ", ".join(f"{name}{SUPPORTED[name]}" for name in bad)
    fix = " ".join(f"'{name}{SUPPORTED[name]}'" for name in bad)
    raise UnsupportedStack(
        f"`qa-engine {stage}` supports {wanted}; found {seen}. "
        f"Install a supported version: pip install {fix} (or pip install 'qa-engine[train,export]')"
    )


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    """The leading numeric release of a version string: '2.13.0+cpu' -> (2, 13, 0), '5.0.0rc1' -> (5, 0, 0)."""
    match = re.match(r"\d+(\.\d+)*", version.strip())
    if match is None:
        raise ValueError(f"unreadable version {version!r}")
    parts = [int(p) for p in match.group(0).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)
