"""Artifacts by Hugging Face repo id: download into the hub cache file by file, and upload with a model card.

A local folder always wins over a repo id of the same spelling. huggingface_hub is imported only here,
and only for repo ids: `pip install 'qa-engine[hub]'`. The manifest is fetched first, then only the
files the chosen variant needs (its one ONNX file, the tokenizer and configs), pinned to the manifest's commit;
qa_engine.artifacts.loader checks each against the manifest as for a local folder.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from types import ModuleType
from typing import Iterator

from qa_engine.artifacts.loader import Artifact, local_artifact, verify_artifact
from qa_engine.artifacts.manifest import MANIFEST_NAME, Manifest
from qa_engine.artifacts.network import endpoint_reachable

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'qa-engine[hub]'"
# the hub's repo names: letters, digits, '-', '_', '.'; an optional namespace; no '--' or '..'
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")


def is_repo_id(value: str | Path) -> bool:
    """Whether `value` is spelled like a hub repo id ('name' or 'namespace/name')."""
    text = str(value)
    return bool(_REPO_ID.match(text)) and "--" not in text and ".." not in text and not text.endswith(".")


def import_hub(what: str) -> ModuleType:
    """huggingface_hub, or an ImportError saying that `what` needs the `hub` extra."""
    try:
        import huggingface_hub
    except ImportError as e:
        raise ImportError(f"{what} needs huggingface_hub: {INSTALL_HINT}") from e
    return huggingface_hub


def open_artifact(
    path_or_repo_id: str | Path,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Artifact:
    """A local artifact folder (always, for a Path), or else a hub repo whose manifest is fetched now and whose
    other files on demand."""
    path = Path(path_or_repo_id)
    if isinstance(path_or_repo_id, Path) or path.is_dir() or not is_repo_id(path_or_repo_id):
        return local_artifact(path)
    repo_id = str(path_or_repo_id)
    try:
        hf = import_hub(f"{repo_id!r} is not a local folder; loading it from the Hugging Face hub")
    except ImportError as e:
        raise FileNotFoundError(f"artifact folder not found: {repo_id} ({e})") from e
    offline = _offline_reason(local_files_only)
    manifest_path = _download(hf, repo_id, MANIFEST_NAME, revision, cache_dir, offline, token)
    folder = manifest_path.parent  # snapshots/<commit>/: later files come from the same commit
    commit = folder.name
    if offline is not None:
        log.info("%s: loading from the Hugging Face cache (%s)", repo_id, offline)

    def fetch(name: str) -> Path:
        return _download(hf, repo_id, name, commit, cache_dir, offline, token)

    return Artifact(Manifest.read(folder), fetch, repo_id)


def _offline_reason(local_files_only: bool) -> str | None:
    """Why files must come from the cache alone (offline mode, or a hub that cannot be reached), or None."""
    from huggingface_hub import constants

    if local_files_only or constants.HF_HUB_OFFLINE:
        return "offline mode is on (HF_HUB_OFFLINE=1 or local_files_only=True)"
    if not endpoint_reachable(constants.ENDPOINT):
        return f"the hub at {constants.ENDPOINT} could not be reached"
    return None


def _download(
    hf: ModuleType, repo_id: str, filename: str, revision: str | None, cache_dir: str | Path | None,
    offline: str | None, token: str | bool | None,
) -> Path:
    """hf_hub_download (from the cache alone when `offline` says why) with the hub's errors turned into ones that
    say what to do."""
    from huggingface_hub import constants
    from huggingface_hub.utils import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        return Path(hf.hf_hub_download(
            repo_id, filename, revision=revision, cache_dir=cache_dir, local_files_only=offline is not None, token=token
        ))
    except LocalEntryNotFoundError as e:
        why = offline or f"the hub at {constants.ENDPOINT} could not be reached"
        if filename == MANIFEST_NAME:
            raise FileNotFoundError(f"{where}: no such artifact folder, and as a hub repo it is not in the Hugging "
                                    f"Face cache; {why}") from e
        raise FileNotFoundError(f"{where}: {filename} is not in the Hugging Face cache and {why}") from e
    except GatedRepoError as e:
        raise PermissionError(f"{where}: access is restricted; accept its terms on the hub and pass token= "
                              "(or log in with `hf auth login`)") from e
    except RepositoryNotFoundError as e:
        raise FileNotFoundError(f"{repo_id}: no such artifact folder, and no such repo on the hub (or it is "
                                "private: pass token= or log in)") from e
    except RevisionNotFoundError as e:
        raise FileNotFoundError(f"{repo_id}: no revision {revision!r} on the hub") from e
    except EntryNotFoundError as e:
        if filename == MANIFEST_NAME:
            raise FileNotFoundError(f"{where} has no {MANIFEST_NAME}: not a qa-engine artifact (make one with "
                                    "`qa-engine export` and upload it with `qa-engine push`)") from e
        raise FileNotFoundError(f"{where}: {filename}, named by its manifest, is missing from the repo") from e
    except HfHubHTTPError as e:
        raise ConnectionError(f"{where}: downloading {filename} failed ({e})") from e


def _artifact_files(folder: Path) -> Iterator[Path]:
    """Every file of the artifact folder to upload, hidden ones (.cache, .git) excepted."""
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            yield path


def push_artifact(
    folder: str | Path,
    repo_id: str,
    card: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | bool | None = None,
) -> str:
    """Upload an artifact folder to a hub model repo (created if needed) with `card` as its README.md,
    unless the folder has its own; checksums are verified first, so a corrupt artifact is never published.
    Returns the commit's URL."""
    hf = import_hub("qa-engine push")
    folder = Path(folder)
    artifact = local_artifact(folder)
    try:
        verify_artifact(artifact)
    except (FileNotFoundError, ValueError) as e:
        raise type(e)(f"{e}; nothing uploaded") from e
    manifest = artifact.manifest
    operations = [hf.CommitOperationAdd(path.relative_to(folder).as_posix(), str(path))
                  for path in _artifact_files(folder)]
    if card is not None and not (folder / "README.md").is_file():
        operations.append(hf.CommitOperationAdd("README.md", card.encode("utf-8")))
    api = hf.HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    info = api.create_commit(
        repo_id, operations, revision=revision,
        commit_message=commit_message or f"Upload qa-engine artifact ({', '.join(manifest.variants)})",
    )
    log.info("uploaded %s to %s: %s", folder, repo_id, info.commit_url)
    return str(info.commit_url)
