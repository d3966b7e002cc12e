"""Artifacts by repo id, offline: a hub cache laid out as huggingface_hub lays it out, and a stand-in of the hub
endpoint on 127.0.0.1 (HF_ENDPOINT) that `qa-engine push` uploads to and `from_pretrained` downloads from."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import unquote, urlparse

import pytest

pytest.importorskip("huggingface_hub")

from qa_engine import QAEngine  # noqa: E402
from qa_engine.artifacts import hub, loader, model_card
from qa_engine.artifacts.manifest import MANIFEST_NAME, Manifest  # noqa: E402

QUESTION, CONTEXT = "철수는 어디에 삽니까?", "철수는 서울에 삽니다."
REPO = "qa-org/tiny-ko"


class StandInHub:
    """An in-memory hub: model repos as {path: bytes} per commit, served with the routes, status codes and
    headers huggingface_hub's hf_hub_download (file_download.py: HEAD then GET of /{repo}/resolve/{rev}/{file},
    X-Repo-Commit, ETag, Content-Length, X-Error-Code) and create_repo/create_commit rely on. The engine fetches
    file by file, so snapshot_download's model-info route is not needed."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}  # the files at the head commit
        self.heads: dict[str, str] = {}
        self.commits: dict[str, dict[str, dict[str, bytes]]] = {}  # repo -> commit -> files
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.after_get: Callable[[str], None] | None = None  # called with each path whose content was sent
        handler = type("Handler", (_Handler,), {"hub": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def downloads(self, repo: str) -> list[str]:
        """Files of `repo` whose content was sent (GET), in order."""
        prefix = f"/{repo}/resolve/"
        return [path[len(prefix):].split("/", 1)[1] for method, path in self.requests
                if method == "GET" and path.startswith(prefix)]

    def commit(self, repo: str, files: dict[str, bytes]) -> str:
        self.repos[repo] = {**self.repos.get(repo, {}), **files}
        state = json.dumps({p: hashlib.sha256(c).hexdigest() for p, c in sorted(self.repos[repo].items())})
        self.heads[repo] = hashlib.sha1(state.encode()).hexdigest()
        self.commits.setdefault(repo, {})[self.heads[repo]] = self.repos[repo]
        return self.heads[repo]


class _Handler(BaseHTTPRequestHandler):
    hub: StandInHub

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value: Any, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode(), {"Content-Type": "application/json"})

    def _error(self, code: str) -> None:
        self._send(404, json.dumps({"error": code}).encode(), {"X-Error-Code": code, "X-Error-Message": code})

    def _repo(self, parts: list[str]) -> tuple[str, str, list[str]] | None:
        """(repo, revision, rest) of '<ns>/<name>/<verb>/<revision>/<rest...>', or None after a 404 reply."""
        repo, revision = "/".join(parts[:2]), unquote(parts[3]) if len(parts) > 3 else "main"
        if repo not in self.hub.repos:
            self._error("RepoNotFound")
            return None
        if revision != "main" and revision not in self.hub.commits[repo]:
            self._error("RevisionNotFound")
            return None
        return repo, self.hub.heads[repo] if revision == "main" else revision, parts[4:]

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = urlparse(self.path).path
        self.hub.requests.append((self.command, path))
        parts = path.strip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            found = self._repo(parts)
            if found:
                repo, sha, rest = found
                content = self.hub.commits[repo][sha].get("/".join(rest))
                if content is None:
                    self._error("EntryNotFound")
                    return
                self._send(200, content, {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(content).hexdigest()}"',
                                          "Content-Type": "application/octet-stream"})
                if self.command == "GET" and self.hub.after_get is not None:
                    self.hub.after_get("/".join(rest))
        else:
            self._error("EntryNotFound")

    def do_POST(self) -> None:
        path = urlparse(self.path).path
        self.hub.requests.append(("POST", path))
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        parts = path.strip("/").split("/")
        if path == "/api/repos/create":
            spec = json.loads(body)
            repo = f"{spec['organization']}/{spec['name']}"
            if repo not in self.hub.repos:
                self.hub.commit(repo, {".gitattributes": b"*.onnx filter=lfs diff=lfs merge=lfs -text\n"})
            self._json({"url": f"{self.hub.url}/{repo}"})
        elif path == "/api/validate-yaml":
            self._json({"errors": [], "warnings": []})
        elif parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "preupload":
            files = json.loads(body)["files"]  # everything as a regular (inline) file: no LFS server needed
            self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
        elif parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "commit":
            found = self._repo(parts[2:4] + ["commit"] + parts[5:6])
            if found:
                lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                files = {v["path"]: base64.b64decode(v["content"]) for v in
                         (line["value"] for line in lines if line["key"] == "file")}
                sha = self.hub.commit(found[0], files)
                self._json({"commitUrl": f"{self.hub.url}/{found[0]}/commit/{sha}", "commitOid": sha,
                            "pullRequestUrl": None})
        else:
            self._error("EntryNotFound")


@pytest.fixture()
def stand_in() -> Iterator[StandInHub]:
    server = StandInHub()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _cli(args: list[str], endpoint: str, cache: Path, offline: bool = False,
         prelude: str = "") -> subprocess.CompletedProcess:
    """`qa-engine ARGS` in a fresh process (after the Python `prelude`): huggingface_hub reads HF_ENDPOINT and
    HF_HUB_OFFLINE at import."""
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1" if offline else "0",
           "TRANSFORMERS_OFFLINE": "0", "HF_TOKEN": "hf_stand_in", "HF_HUB_DISABLE_XET": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    code = f"{prelude}\nimport sys\nfrom qa_engine.cli.main import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)


def _lay_out_cache(cache: Path, repo: str, files: dict[str, Path], commit: str = "a" * 40) -> Path:
    """The hub cache layout of huggingface_hub: blobs named by hash, snapshots/<commit>/ of symlinks, refs/main."""
    root = cache / f"models--{repo.replace('/', '--')}"
    for name, source in files.items():
        blob = root / "blobs" / hashlib.sha256(source.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, blob)
        link = root / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return root


@pytest.fixture()
def cached_int8(random_artifact: Path, tmp_path: Path) -> Path:
    """A hub cache holding the random artifact's manifest, tokenizer, model config and int8 file only (what a CPU
    load downloads)."""
    cache = tmp_path / "hub-cache"
    names = [MANIFEST_NAME, "tokenizer.json", "config.json", "model.int8.onnx"]
    _lay_out_cache(cache, REPO, {n: random_artifact / n for n in names})
    return cache


@pytest.mark.parametrize("value, expected", [
    ("org/name", True), ("name", True), ("klue/roberta-base", True), ("org/v1.0_final", True),
    ("/abs/path", False), ("./rel", False), ("a/b/c", False), ("org/na--me", False), ("a..b", False),
    ("org/name.", False), ("", False),
])
def test_repo_id_spelling(value: str, expected: bool) -> None:
    assert hub.is_repo_id(value) is expected


def test_importing_qa_engine_does_not_import_huggingface_hub() -> None:
    code = "import sys, qa_engine; print('huggingface_hub' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_local_files_only_loads_from_a_hub_cache_layout(random_artifact: Path, cached_int8: Path) -> None:
    engine = QAEngine.from_pretrained(REPO, provider="cpu", cache_dir=cached_int8, local_files_only=True)
    local = QAEngine.from_pretrained(random_artifact, provider="cpu")
    assert engine.settings.precision == "int8"
    assert engine.answer(QUESTION, CONTEXT) == local.answer(QUESTION, CONTEXT)
    with pytest.raises(FileNotFoundError, match=r"model\.fp32\.onnx is not in the Hugging Face cache.*offline"):
        QAEngine.from_pretrained(REPO, provider="cpu", precision="fp32", cache_dir=cached_int8, local_files_only=True)
    with pytest.raises(FileNotFoundError, match="qa-org/other: no such artifact folder.*not in the Hugging Face cache"):
        QAEngine.from_pretrained("qa-org/other", cache_dir=cached_int8, local_files_only=True)


def test_a_local_folder_wins_over_a_repo_id(random_artifact: Path, cached_int8: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    local = tmp_path / "work" / REPO
    shutil.copytree(random_artifact, local)
    manifest = Manifest.read(local)
    manifest.max_answer_length = 7
    manifest.write(local)
    monkeypatch.chdir(tmp_path / "work")
    engine = QAEngine.from_pretrained(REPO, provider="cpu", cache_dir=cached_int8, local_files_only=True)
    assert engine.settings.decode.max_answer_length == 7


def test_a_path_object_is_never_taken_for_a_repo_id(cached_int8: Path) -> None:
    with pytest.raises(FileNotFoundError, match="artifact folder not found"):
        QAEngine.from_pretrained(Path(REPO), cache_dir=cached_int8, local_files_only=True)


def test_a_hub_manifest_naming_a_file_outside_the_repo_is_refused(random_artifact: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(random_artifact, bad)
    manifest = Manifest.read(bad)
    manifest.tokenizer_file = "../../../tokenizer.json"
    manifest.write(bad)
    cache = tmp_path / "cache"
    _lay_out_cache(cache, REPO, {MANIFEST_NAME: bad / MANIFEST_NAME})
    with pytest.raises(ValueError, match="field 'tokenizer_file' names '../../../tokenizer.json', a file outside the artifact"):
        QAEngine.from_pretrained(REPO, cache_dir=cache, local_files_only=True)


def test_a_corrupt_cached_model_fails_its_checksum(cached_int8: Path) -> None:
    blob = next(cached_int8.rglob("snapshots/*/model.int8.onnx")).resolve()
    blob.write_bytes(blob.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match="checksum does not match the manifest"):
        QAEngine.from_pretrained(REPO, provider="cpu", cache_dir=cached_int8, local_files_only=True)


@pytest.mark.parametrize("name", ["tokenizer.json", "config.json"])
def test_a_changed_cached_tokenizer_or_config_fails_its_checksum(cached_int8: Path, name: str) -> None:
    blob = next(cached_int8.rglob(f"snapshots/*/{name}")).resolve()
    raw = json.loads(blob.read_text(encoding="utf-8"))
    if name == "tokenizer.json":
        vocab = raw["model"]["vocab"]
        vocab["서"], vocab["울"] = vocab["울"], vocab["서"]
    else:
        raw["max_position_embeddings"] = 128
    blob.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{name}: checksum does not match the manifest \({MANIFEST_NAME} field "
                                         rf"'files.{name}'\)"):
        QAEngine.from_pretrained(REPO, provider="cpu", cache_dir=cached_int8, local_files_only=True)


def test_without_huggingface_hub_the_error_says_what_to_install(random_artifact: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(FileNotFoundError, match=r"pip install 'qa-engine\[hub\]'"):
        QAEngine.from_pretrained(REPO)
    with pytest.raises(ImportError, match=r"pip install 'qa-engine\[hub\]'"):
        hub.push_artifact(random_artifact, REPO)
    assert QAEngine.from_pretrained(random_artifact, provider="cpu").settings.precision == "int8"  # folders still load


def test_push_then_load_by_repo_id_downloads_only_the_chosen_variant(
    tiny_bert_artifact: Path, tiny_bert_checkpoint: Path, stand_in: StandInHub, tmp_path: Path
) -> None:
    artifact = tmp_path / "artifact"
    shutil.copytree(tiny_bert_artifact, artifact)
    argv = ["export", "--model", str(tiny_bert_checkpoint), "--output", str(artifact)]
    model_card.record_provenance(artifact, argv, tiny_bert_checkpoint)
    pushed = _cli(["push", str(artifact), REPO], stand_in.url, tmp_path / "unused-cache")
    assert pushed.returncode == 0, pushed.stderr
    files = stand_in.repos[REPO]
    assert {p: files[p] for p in files if p not in ("README.md", ".gitattributes")} == {
        p.name: p.read_bytes() for p in artifact.iterdir()}
    card = files["README.md"].decode()
    assert "library_name: qa-engine" in card and f'QAEngine.from_pretrained("{REPO}")' in card
    assert f"qa-engine export --model {tiny_bert_checkpoint}" in card
    trained = json.loads((tiny_bert_checkpoint / "train_config.json").read_text(encoding="utf-8"))
    assert "base model: bert (trained from scratch" in card and f"training data: {trained['dataset']}" in card
    for precision, variant in Manifest.read(artifact).variants.items():
        row = next(line for line in card.splitlines() if line.startswith(f"| {precision} |"))
        assert f"exact match {variant.validation['exact_match']:.4g}" in row

    cache = tmp_path / "cache"
    answered = _cli(["answer", "--model", REPO, "--question", QUESTION, "--context", CONTEXT], stand_in.url, cache)
    assert answered.returncode == 0, answered.stderr
    chosen = "model.fp16.onnx" if loader.cuda_runs() else "model.int8.onnx"  # provider auto: what this machine runs
    read = [MANIFEST_NAME, "tokenizer.json", "config.json", chosen]  # what the engine reads, no other file
    assert sorted(stand_in.downloads(REPO)) == sorted(read)
    snapshot = cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / stand_in.heads[REPO]
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(read)
    local = QAEngine.from_pretrained(tiny_bert_artifact, precision=chosen.split(".")[1])
    assert json.loads(answered.stdout) == json.loads(json.dumps(local.answer(QUESTION, CONTEXT)))

    stand_in.requests.clear()
    again = _cli(["answer", "--model", REPO, "--question", QUESTION, "--context", CONTEXT], stand_in.url, cache,
                 offline=True)
    assert again.returncode == 0, again.stderr
    assert again.stdout == answered.stdout and stand_in.requests == []  # HF_HUB_OFFLINE: the cache, no request


def test_offline_missing_repo_revision_and_file_are_clear_errors(random_artifact: Path, stand_in: StandInHub,
                                                                 tmp_path: Path) -> None:
    ask = ["--question", QUESTION, "--context", CONTEXT]
    offline = _cli(["answer", "--model", REPO, *ask], stand_in.url, tmp_path / "cache", offline=True)
    assert offline.returncode == 2 and "offline mode is on" in offline.stderr and stand_in.requests == []
    missing = _cli(["answer", "--model", "qa-org/absent", *ask], stand_in.url, tmp_path / "cache")
    assert missing.returncode == 2 and "no such repo on the hub" in missing.stderr, missing.stderr
    # a repo whose manifest names a model file it lacks
    sha = stand_in.commit(REPO, {n: (random_artifact / n).read_bytes()
                                 for n in (MANIFEST_NAME, "tokenizer.json", "config.json")})
    lacking = _cli(["answer", "--model", REPO, "--provider", "cpu", *ask], stand_in.url, tmp_path / "cache")
    assert lacking.returncode == 2, lacking.stderr
    assert "model.int8.onnx, named by its manifest, is missing from the repo" in lacking.stderr
    unknown = _cli(["answer", "--model", REPO, "--revision", "v9", *ask], stand_in.url, tmp_path / "cache")
    assert unknown.returncode == 2 and "no revision 'v9'" in unknown.stderr, unknown.stderr
    stand_in.commit(REPO, {"model.int8.onnx": (random_artifact / "model.int8.onnx").read_bytes()})
    pinned = _cli(["answer", "--model", REPO, "--revision", sha, "--provider", "cpu", *ask], stand_in.url,
                  tmp_path / "cache")
    assert pinned.returncode == 2 and "is missing from the repo" in pinned.stderr  # the old commit still lacks it
    latest = _cli(["answer", "--model", REPO, "--provider", "cpu", *ask], stand_in.url, tmp_path / "cache")
    assert latest.returncode == 0, latest.stderr


def test_files_come_from_the_manifests_commit_while_the_repo_changes(random_artifact: Path, stand_in: StandInHub,
                                                                     tmp_path: Path) -> None:
    """A push between the manifest's download and the model's must not mix two commits' files."""
    first = {n: (random_artifact / n).read_bytes()
             for n in (MANIFEST_NAME, "tokenizer.json", "config.json", "model.int8.onnx")}
    stand_in.commit(REPO, first)
    retrained = {"model.int8.onnx": first["model.int8.onnx"] + b"\0", MANIFEST_NAME: first[MANIFEST_NAME] + b"\n"}

    def push_once(path: str) -> None:
        if path == MANIFEST_NAME and len(stand_in.commits[REPO]) == 1:
            stand_in.commit(REPO, retrained)

    stand_in.after_get = push_once
    answered = _cli(["answer", "--model", REPO, "--provider", "cpu", "--question", QUESTION, "--context", CONTEXT],
                    stand_in.url, tmp_path / "cache")
    assert len(stand_in.commits[REPO]) == 2  # the repo did change mid-load
    assert answered.returncode == 0, answered.stderr  # and the checksum still matched: one commit's files


def test_export_push_to_hub_records_the_command_and_uploads_with_the_card(
    tiny_bert_artifact: Path, tiny_bert_checkpoint: Path, stand_in: StandInHub, tmp_path: Path
) -> None:
    """The export CLI's hub steps; the export itself (tested in test_export.py, minutes) is the cached artifact."""
    out = tmp_path / "exported"
    prelude = ("import shutil, export.pipeline as pipeline\n"
               f"pipeline.export_artifact = lambda model, output, **kw: shutil.copytree({str(tiny_bert_artifact)!r}, output)")
    argv = ["export", "--model", str(tiny_bert_checkpoint), "--output", str(out), "--precision", "int8",
            "--push-to-hub", REPO, "--private"]
    exported = _cli(argv, stand_in.url, tmp_path / "cache", prelude=prelude)
    assert exported.returncode == 0, exported.stderr
    command = "qa-engine " + " ".join(argv)
    assert json.loads((out / model_card.PROVENANCE_NAME).read_text(encoding="utf-8"))["command"] == command
    assert ("POST", "/api/repos/create") in stand_in.requests
    assert stand_in.repos[REPO][model_card.PROVENANCE_NAME] == (out / model_card.PROVENANCE_NAME).read_bytes()
    assert f"```bash\n{command}\n```" in stand_in.repos[REPO]["README.md"].decode()


def test_export_refuses_a_bad_repo_id_before_exporting(tiny_bert_checkpoint: Path, tmp_path: Path) -> None:
    from qa_engine.cli.main import main

    out = tmp_path / "exported"
    assert main(["export", "--model", str(tiny_bert_checkpoint), "--output", str(out), "--push-to-hub", "no good"]) == 2
    assert not out.exists()


def _break(path: Path) -> None:
    """Change a file of the artifact, keeping a JSON file valid JSON."""
    if path.suffix != ".json":
        path.write_bytes(b"not a model")
        return
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["max_length" if path.name == MANIFEST_NAME else "version"] = 256
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")


@pytest.mark.parametrize("name", ["model.int8.onnx", "model.fp16.onnx", "tokenizer.json", "config.json", MANIFEST_NAME])
def test_push_refuses_a_corrupt_artifact_before_uploading(random_artifact: Path, stand_in: StandInHub,
                                                          tmp_path: Path, name: str) -> None:
    artifact = tmp_path / "artifact"
    shutil.copytree(random_artifact, artifact)
    _break(artifact / name)
    pushed = _cli(["push", str(artifact), REPO], stand_in.url, tmp_path / "cache")
    assert pushed.returncode == 2 and "nothing uploaded" in pushed.stderr, pushed.stderr
    named = f"{MANIFEST_NAME}: field 'checksum' does not match" if name == MANIFEST_NAME else f"{name}: checksum does not"
    assert named in pushed.stderr
    assert stand_in.requests == []


def _closed_port_url() -> str:
    """An endpoint on 127.0.0.1 where nothing listens: connections are refused at once."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_an_unreachable_hub_fails_at_once_with_one_message(cached_int8: Path, tmp_path: Path) -> None:
    """No retries, no warnings: one error line when the repo is not cached, the cache when it is."""
    ask = ["--question", QUESTION, "--context", CONTEXT]
    endpoint = _closed_port_url()
    missing = _cli(["answer", "--model", "qa-org/absent", *ask], endpoint, cached_int8)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"qa-engine answer: error: qa-org/absent: no such artifact folder, and as a hub repo it is not in the "
        f"Hugging Face cache; the hub at {endpoint} could not be reached"]
    cached = _cli(["answer", "--model", REPO, "--provider", "cpu", *ask], endpoint, cached_int8)
    assert cached.returncode == 0, cached.stderr
    assert "WARNING" not in cached.stderr and "Retry" not in cached.stderr
    assert json.loads(cached.stdout)["end"] >= 0


def test_endpoint_reachable_dials_the_host_unless_a_proxy_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from qa_engine.artifacts.network import endpoint_reachable

    with ThreadingHTTPServer(("127.0.0.1", 0), _Handler) as server:
        assert endpoint_reachable(f"http://127.0.0.1:{server.server_address[1]}")
    closed = _closed_port_url()
    assert not endpoint_reachable(closed)
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert endpoint_reachable(closed)
