"""Opening an artifact, one way for the engine, the Triton models, push and export's Triton repository: the variant
for the device, the checksum of every file (and of the manifest itself), the settings against the model graph, and
an onnxruntime session (CUDA only where it really runs)."""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Sequence

import onnxruntime as ort

from qa_engine.artifacts.manifest import MANIFEST_NAME, Manifest, sha256_file
from qa_engine.core.config import DecodeConfig, WindowConfig, max_window_length
from qa_engine.core.constants import OPENVINO, PROBE_MODEL, PROVIDERS
from qa_engine.core.runner import ModelRunner
from qa_engine.runners import int8_kernels, openvino, sessions
from qa_engine.runners.onnx import OnnxRunner

log = logging.getLogger(__name__)

PREFERRED = {"cuda": ("fp16", "fp32"), "cpu": ("int8", "fp32")}  # variants by device, best first
ENGINE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # the model inputs the engine builds
MODEL_CONFIG = "config.json"  # the model's transformers config, copied by export: its position embeddings
REEXPORT = "`qa-engine export --model CHECKPOINT --output FOLDER --force`"
Provider = str | Sequence[str | tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class Artifact:
    """An artifact's manifest and a way to get each of its files as a local path."""

    manifest: Manifest
    fetch: Callable[[str], Path]  # file name -> local path; downloads it first for a hub repo
    repo_id: str | None = None  # None for a local folder

    @property
    def is_local(self) -> bool:
        return self.repo_id is None

    @property
    def manifest_path(self) -> str:
        """Where the manifest came from, for messages."""
        return f"{self.repo_id}:{MANIFEST_NAME}" if self.repo_id else str(self.fetch(MANIFEST_NAME))


def local_artifact(folder: str | Path) -> Artifact:
    """The artifact in a local folder (its manifest read and type-checked now)."""
    folder = Path(folder)
    return Artifact(Manifest.read(folder), lambda name: folder / name)


@dataclass(frozen=True)
class Loaded:
    """An artifact's model opened for the engine: its session, where it runs, and its checked files."""

    session: ort.InferenceSession
    precision: str
    device: str
    tokenizer: Path
    positions: int | None  # the most tokens a window may hold (None: the model has no position table)


def pick_variant(variants: Iterable[str], device: str, precision: str | None) -> str:
    """The variant asked for (it must exist), else the best one the artifact has for the device."""
    variants = list(variants)
    if precision is not None:
        if precision not in variants:
            raise ValueError(f"precision {precision!r} not in the artifact (has: {', '.join(variants)})")
        return precision
    for p in PREFERRED[device]:
        if p in variants:
            return p
    raise ValueError(f"the artifact has no variant usable on {device} (has: {', '.join(variants)})")


def check_manifest(artifact: Artifact) -> None:
    """The manifest's own checksum; an artifact from before every file was checksummed loads with a warning."""
    m, where = artifact.manifest, artifact.manifest_path
    if not m.checksums_every_file:
        log.warning("%s: an artifact of format %d, whose manifest checksums only its ONNX files, not its tokenizer, "
                    "configs or settings; re-export it with %s to have every file checked", where,
                    m.format_version, REEXPORT)
        return
    if m.checksum != m.content_sha256():
        raise ValueError(f"{where}: field 'checksum' does not match the manifest's contents: it was changed after "
                         f"export; re-export with {REEXPORT} (window and decode settings can be passed at load "
                         "instead of edited in)")
    if m.tokenizer_file not in m.files:
        raise ValueError(f"{where}: field 'files' has no checksum for the tokenizer {m.tokenizer_file!r}")


def checked_file(artifact: Artifact, name: str, sha256: str | None, field: str) -> Path:
    """The local path of one file of the artifact, its SHA-256 checked against the manifest's `field` (unless
    `sha256` is None)."""
    path = artifact.fetch(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the artifact (named by {MANIFEST_NAME} field '{field}')")
    if sha256 is not None and sha256_file(path) != sha256:
        raise ValueError(f"{path}: checksum does not match the manifest ({MANIFEST_NAME} field '{field}'): changed "
                         "after export, corrupt or replaced")
    return path


def support_files(artifact: Artifact, names: Iterable[str] | None = None, verify: bool = True) -> dict[str, Path]:
    """Local paths of the artifact's files besides the variants (every one, or those of `names` it lists), each
    checked against its checksum; a legacy manifest lists none but the tokenizer, unchecked."""
    m = artifact.manifest
    listed: dict[str, str | None] = dict(m.files) if m.checksums_every_file else {m.tokenizer_file: None}
    wanted = listed if names is None else {name: listed[name] for name in names if name in listed}
    return {name: checked_file(artifact, name, sha if verify else None, f"files.{name}") for name, sha in wanted.items()}


def variant_file(artifact: Artifact, precision: str, verify: bool = True) -> Path:
    """The ONNX file of one variant, checked against its checksum; for int8 the file whose kernel path is right for
    this CPU's flags (int8_kernels), which is logged."""
    variant = artifact.manifest.variants[precision]
    if precision != "int8":
        return checked_file(artifact, variant.file, variant.sha256 if verify else None, f"variants.{precision}.sha256")
    chosen = int8_kernels.choose_int8_file(variant, int8_kernels.cpu_flags())
    log.log(logging.WARNING if chosen.warn else logging.INFO, "%s", chosen.reason)
    field = "variants.int8.sha256" if chosen.file == variant.file else "variants.int8.no_vnni.sha256"
    return checked_file(artifact, chosen.file, chosen.sha256 if verify else None, field)


def verify_artifact(artifact: Artifact) -> None:
    """Check the manifest and every file of the artifact against their checksums (before an upload)."""
    check_manifest(artifact)
    support_files(artifact)
    for precision, variant in artifact.manifest.variants.items():
        checked_file(artifact, variant.file, variant.sha256, f"variants.{precision}.sha256")
        if variant.no_vnni:
            checked_file(artifact, variant.no_vnni["file"], variant.no_vnni["sha256"],
                         f"variants.{precision}.no_vnni.sha256")
    for precision, ir in artifact.manifest.openvino.items():
        if isinstance(ir, dict) and "file" in ir:
            checked_file(artifact, ir["file"], ir["sha256"], f"openvino.{precision}.sha256")
            checked_file(artifact, ir["weights"], ir["weights_sha256"], f"openvino.{precision}.weights_sha256")


def model_positions(config: Path | None) -> int | None:
    """The most tokens a window may hold by the model's config.json (None: no config, or no position table)."""
    if config is None:
        return None
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{config}: malformed model config ({e})") from e
    if not isinstance(raw, dict):
        raise ValueError(f"{config}: the model config must be a JSON object")
    positions = max_window_length(SimpleNamespace(**raw))
    if positions is not None and (not isinstance(positions, int) or isinstance(positions, bool) or positions < 1):
        raise ValueError(f"{config}: field 'max_position_embeddings' must be a positive integer, got {positions!r}")
    return positions


def check_window(window: WindowConfig, positions: int | None, source: str) -> None:
    """ValueError when a window would hold more tokens than the model has positions for."""
    if positions is not None and window.max_length > positions:
        raise ValueError(f"{source}: max_length {window.max_length} exceeds the {positions} tokens the model's "
                         f"position embeddings hold ({MODEL_CONFIG} 'max_position_embeddings')")


def check_settings(manifest: Manifest, where: str, session: ort.InferenceSession, model: str,
                   positions: int | None) -> None:
    """The manifest's settings against the model: input and output names as in the graph, windows within its
    positions, decode settings in range; errors name the manifest and the field."""
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    for name in manifest.input_names:
        if name not in inputs:
            raise ValueError(f"{where}: field 'input_names' names {name!r}, which {model} does not take "
                             f"(its inputs: {', '.join(inputs)})")
        if name not in ENGINE_INPUTS:
            raise ValueError(f"{where}: field 'input_names' names {name!r}; the engine feeds only "
                             f"{', '.join(ENGINE_INPUTS)}")
    missing = [name for name in inputs if name not in manifest.input_names]
    if missing:
        raise ValueError(f"{where}: field 'input_names' leaves out {', '.join(map(repr, missing))}, "
                         f"which {model} needs")
    if manifest.output_names != outputs[: len(manifest.output_names)] or len(manifest.output_names) < 2:
        raise ValueError(f"{where}: field 'output_names' is {manifest.output_names}, but {model} gives "
                         f"{outputs} (start and end logits first)")
    checks = (("max_length", lambda: WindowConfig(manifest.max_length, 0)),
              ("doc_stride", lambda: WindowConfig(manifest.max_length, manifest.doc_stride)),
              ("max_answer_length", lambda: DecodeConfig(manifest.max_answer_length)))
    for field, build in checks:
        try:
            build()
        except ValueError as e:
            raise ValueError(f"{where}: field '{field}': {e}") from e
    check_window(WindowConfig(manifest.max_length, manifest.doc_stride), positions, f"{where}: field 'max_length'")


def load(artifact: Artifact, provider: Provider = "auto", precision: str | None = None,
         threads: int | None = None, verify: bool = True) -> Loaded:
    """Check the artifact, choose its variant for the provider and open it; raises naming the file and field."""
    if verify:
        check_manifest(artifact)
    paths = support_files(artifact, (artifact.manifest.tokenizer_file, MODEL_CONFIG), verify)
    positions = model_positions(paths.get(MODEL_CONFIG))
    session, chosen, device = _open_session(artifact, provider, precision, threads, verify)
    model = artifact.manifest.variants[chosen].file
    check_settings(artifact.manifest, artifact.manifest_path, session, model, positions)
    return Loaded(session, chosen, device, paths[artifact.manifest.tokenizer_file], positions)


@dataclass(frozen=True)
class LoadedRunner:
    """An artifact's model opened behind the runner seam, with its checked tokenizer and position limit."""

    runner: ModelRunner
    tokenizer: Path
    positions: int | None


def load_runner(artifact: Artifact, provider: Provider = "auto", precision: str | None = None,
                threads: int | None = None, verify: bool = True) -> LoadedRunner:
    """The runner a provider request asks for: the artifact's OpenVINO IR for "openvino", else an onnxruntime
    session of the chosen variant (`load`)."""
    if provider != OPENVINO:
        model = load(artifact, provider, precision, threads, verify)
        session = OnnxRunner(model.session, model.device, model.precision, tuple(artifact.manifest.input_names))
        return LoadedRunner(session, model.tokenizer, model.positions)
    if verify:
        check_manifest(artifact)
    paths = support_files(artifact, (artifact.manifest.tokenizer_file, MODEL_CONFIG), verify)
    ir = openvino_ir(artifact, precision, verify)
    runner = openvino.load_runner(ir.xml, ir.precision, tuple(artifact.manifest.input_names),
                                  threads or sessions.physical_cores())
    return LoadedRunner(runner, paths[artifact.manifest.tokenizer_file], model_positions(paths.get(MODEL_CONFIG)))


@dataclass(frozen=True)
class OpenVinoIR:
    precision: str
    xml: Path  # its weights (.bin) checked beside it


def openvino_ir(artifact: Artifact, precision: str | None, verify: bool) -> OpenVinoIR:
    """The checked IR files of the OpenVINO precision asked for (default: the best the artifact has)."""
    irs = artifact.manifest.openvino
    if not irs:
        raise ValueError(f"{artifact.manifest_path}: provider 'openvino' needs an artifact exported with --openvino "
                         "(field 'openvino' is empty)")
    have = [p for p in openvino.PRECISIONS if openvino.IR_OF[p] in irs]
    chosen = precision or have[0]
    if chosen not in have:
        raise ValueError(f"precision {chosen!r} not in the artifact's OpenVINO IR (has: {', '.join(have)})")
    source = openvino.IR_OF[chosen]
    record = irs[source]
    xml = checked_file(artifact, record["file"], record["sha256"] if verify else None, f"openvino.{source}.sha256")
    checked_file(artifact, record["weights"], record["weights_sha256"] if verify else None,
                 f"openvino.{source}.weights_sha256")
    return OpenVinoIR(chosen, xml)


@functools.lru_cache(maxsize=1)
def cuda_runs() -> bool:
    """Whether onnxruntime really runs CUDA here, tried on the packaged probe model so that a hub artifact's
    CUDA variant is downloaded only where it can run (onnxruntime-gpu lists CUDA on machines without a GPU)."""
    with as_file(files("qa_engine") / "data" / PROBE_MODEL) as probe:
        return sessions.cuda_session(probe, "fp32", 1) is not None


def _open_session(artifact: Artifact, provider: Provider, precision: str | None, threads: int | None,
                  verify: bool) -> tuple[ort.InferenceSession, str, str]:
    """(session, precision, device) for the provider request; 'auto' falls back to CPU with one log line."""
    manifest = artifact.manifest
    if not isinstance(provider, str):
        names = [sessions.PROVIDER_NAMES.get(p, p) if isinstance(p, str) else p[0] for p in provider]
        device = "cuda" if sessions.CUDA in names else "cpu"
        chosen = pick_variant(manifest.variants, device, precision)
        session = sessions.explicit_session(variant_file(artifact, chosen, verify), provider, threads, chosen)
        return session, chosen, device
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be 'auto', 'cpu', 'cuda', '{OPENVINO}' or a list of onnxruntime providers, "
                         f"got {provider!r}")
    cuda_variant = precision in manifest.variants if precision else any(p in manifest.variants for p in PREFERRED["cuda"])
    if provider == "cuda" or (provider == "auto" and cuda_variant):
        chosen = pick_variant(manifest.variants, "cuda", precision)
        # a hub repo's CUDA variant is downloaded only where CUDA runs
        runs = provider == "cuda" or artifact.is_local or cuda_runs()
        session = sessions.cuda_session(variant_file(artifact, chosen, verify), chosen, threads) if runs else None
        if session is not None:
            return session, chosen, "cuda"
        if provider == "cuda":
            raise RuntimeError("provider 'cuda' was requested but onnxruntime cannot run CUDA on this machine")
        log.info("CUDA is not usable here; running on CPU")
    chosen = pick_variant(manifest.variants, "cpu", precision)
    if "cpu" not in manifest.variants[chosen].providers:
        log.warning("the %s variant is meant for %s; running it on CPU", chosen, "/".join(manifest.variants[chosen].providers))
    return sessions.cpu_session(variant_file(artifact, chosen, verify), threads), chosen, "cpu"
