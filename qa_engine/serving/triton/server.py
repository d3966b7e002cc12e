"""Serve an artifact from a live Triton Inference Server: the engine as model "qa", optionally the raw ONNX model.

    qa-engine serve-triton --model ART [--raw-onnx] --http-port 8000 --grpc-port 8001

The server is the tritonserver binary and python backend that nvidia-pytriton ships (`pip install
'qa-engine[triton]'`, Linux), or any Triton installation (`--tritonserver`, `--backend-directory`, e.g. NVIDIA's
container). A model repository of python-backend models (qa_engine.serving.triton.models) is written into a workspace
folder, tritonserver is started on it with Triton's dynamic batching, and stopped (SIGTERM, then SIGKILL) on exit.
"""
from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

from qa_engine.artifacts.loader import pick_variant
from qa_engine.artifacts.manifest import Manifest
from qa_engine.cli.numbers import int_range, non_negative_int, port, positive_float, positive_int
from qa_engine.core.constants import (
    PRECISIONS,
    TRITON_MAX_BATCH_SIZE,
    TRITON_MAX_QUEUE_DELAY_US,
)
from qa_engine.serving.triton import models as tm
from qa_engine.serving.triton.config import (
    TensorSpec,
    batching_block,
    parameters_block,
    tensor_specs,
    tensors_block,
)

log = logging.getLogger(__name__)

ENGINE_MODEL = "qa"
RAW_MODEL = "qa_engine"  # export/triton.py's model name: TritonQAClient.connect's default
ENGINE_INPUTS = [TensorSpec("question", "TYPE_STRING", (1,)), TensorSpec("context", "TYPE_STRING", (1,))]
ENGINE_OUTPUTS = [TensorSpec("answer", "TYPE_STRING", (1,)), TensorSpec("start", "TYPE_INT64", (1,)),
                  TensorSpec("end", "TYPE_INT64", (1,)), TensorSpec("score", "TYPE_FP32", (1,))]
MODEL_PY = {ENGINE_MODEL: "EngineModel", RAW_MODEL: "OnnxModel"}
INSTALL = "pip install 'qa-engine[triton]'"


class TritonUnavailable(RuntimeError):
    """No Triton server can be started here (nothing installed, no stub for this Python, the binary fails)."""


@dataclass(frozen=True)
class ServeOptions:
    """What the Triton models serve and how the server batches."""

    precision: str | None = None  # the artifact variant (None: int8 on CPU where the artifact has it, else fp32)
    provider: str = "cpu"  # the engine's onnxruntime provider: cpu, cuda, auto
    raw_onnx: bool = False  # also serve the raw ONNX model as RAW_MODEL, for TritonQAClient
    max_batch_size: int = TRITON_MAX_BATCH_SIZE  # requests' rows per Triton batch (config.pbtxt max_batch_size)
    max_queue_delay_us: int = TRITON_MAX_QUEUE_DELAY_US  # dynamic batching: longest wait for a fuller batch
    instances: int = 1  # model instances (stub processes, one engine each)
    intra_op_threads: int | None = None  # onnxruntime threads per instance (None: the physical cores)
    model_batch_size: int | None = None  # windows per engine model call (None: the engine's default)
    max_answer_length: int | None = None
    handle_impossible_answer: bool = False
    batch_timeout_s: float | None = None  # the engine model's bound on one batch (None: none)

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "instances"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_timeout_s is not None and not self.batch_timeout_s > 0:
            raise ValueError(f"batch_timeout_s must be > 0, got {self.batch_timeout_s}")
        if self.max_queue_delay_us < 0:
            raise ValueError(f"max_queue_delay_us must be >= 0, got {self.max_queue_delay_us}")
        if self.provider not in ("cpu", "cuda", "auto"):
            raise ValueError(f"provider must be cpu, cuda or auto, got {self.provider!r}")


@dataclass(frozen=True)
class Address:
    """Where the server listens; port 0 for metrics turns metrics off."""

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"


@dataclass(frozen=True)
class Bundle:
    """A tritonserver binary and a backend folder holding the python backend and its stub for this Python."""

    binary: Path
    backends: Path
    libraries: tuple[Path, ...] = ()  # put on LD_LIBRARY_PATH

    @classmethod
    def from_pytriton(cls, workspace: Path) -> "Bundle":
        """nvidia-pytriton's server, with a python backend folder in `workspace` linking the stub for this Python."""
        spec = importlib.util.find_spec("pytriton")
        if spec is None or not spec.submodule_search_locations:
            raise TritonUnavailable(f"no Triton server: nvidia-pytriton is not installed ({INSTALL}; Linux only)")
        root = Path(list(spec.submodule_search_locations)[0]) / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
        python = root / "backends" / "python"
        for path in (root / "bin" / "tritonserver", python / "libtriton_python.so", stub):
            if not path.is_file():
                raise TritonUnavailable(f"{path} is missing: this nvidia-pytriton has no server for Python {version}")
        backends = workspace / "backends"
        (backends / "python").mkdir(parents=True, exist_ok=True)
        for source in (python / "libtriton_python.so", python / "triton_python_backend_utils.py", stub):
            link = backends / "python" / source.name
            if not link.exists():
                link.symlink_to(source)
        return cls(root / "bin" / "tritonserver", backends, (root.parent.parent / "nvidia_pytriton.libs",))

    @classmethod
    def find(cls, workspace: Path, binary: str | Path | None = None, backends: str | Path | None = None) -> "Bundle":
        """The given Triton installation (binary and backend folder), else nvidia-pytriton's."""
        if binary is None and backends is None:
            return cls.from_pytriton(workspace)
        if binary is None or backends is None:
            raise ValueError("give both the tritonserver binary and its backend folder, or neither")
        if not Path(binary).is_file() or not (Path(backends) / "python").is_dir():
            raise TritonUnavailable(f"{binary} or {backends}/python (the python backend) does not exist")
        return cls(Path(binary), Path(backends))


def server_environment(bundle: Bundle, base: dict[str, str] | None = None) -> dict[str, str]:
    """tritonserver's environment: the python-backend stub links libpython3.X.so.1.0 by name, so this interpreter's
    library folder goes first on LD_LIBRARY_PATH (else the system's libpython, of another patch release, runs this
    interpreter's standard library and fails), and this interpreter's folder first on PATH (the stub finds its
    Python, and so this environment's packages, through `python3` on PATH)."""
    env = dict(os.environ if base is None else base)
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    libraries = [str(p) for p in bundle.libraries]
    if libdir and soname and (Path(libdir) / soname).is_file():
        libraries.insert(0, libdir)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*libraries, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _config(name: str, inputs: list[TensorSpec], outputs: list[TensorSpec], options: ServeOptions,
            parameters: dict[str, str]) -> str:
    kind = "KIND_GPU" if options.provider == "cuda" else "KIND_CPU"
    return (
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: {options.max_batch_size}\n'
        + tensors_block("input", inputs) + tensors_block("output", outputs)
        + batching_block(options.max_queue_delay_us, kind, options.instances)
        + parameters_block(parameters)
    )


def resolve_precision(artifact: Path, options: ServeOptions) -> str:
    """The variant to serve: the one asked for, else the engine's choice for the provider (int8 on CPU)."""
    device = "cuda" if options.provider == "cuda" else "cpu"
    return pick_variant(Manifest.read(artifact).variants, device, options.precision)


def write_repository(artifact: str | Path, repo: str | Path, options: ServeOptions) -> list[str]:
    """Write the python-backend models (config.pbtxt and 1/model.py each) into `repo`; returns their names."""
    artifact = Path(artifact).resolve()
    precision = resolve_precision(artifact, options)
    parameters = {tm.ARTIFACT: str(artifact), tm.PRECISION: precision, tm.PROVIDER: options.provider,
                  tm.THREADS: str(options.intra_op_threads or ""), tm.MODEL_BATCH: str(options.model_batch_size or ""),
                  tm.MAX_ANSWER: str(options.max_answer_length or ""),
                  tm.IMPOSSIBLE: "true" if options.handle_impossible_answer else "false",
                  tm.BATCH_TIMEOUT: str(options.batch_timeout_s or "")}
    configs = {ENGINE_MODEL: _config(ENGINE_MODEL, ENGINE_INPUTS, ENGINE_OUTPUTS, options, parameters)}
    if options.raw_onnx:
        inputs, outputs = tensor_specs(artifact / Manifest.read(artifact).variants[precision].file)
        configs[RAW_MODEL] = _config(RAW_MODEL, inputs, outputs, options, parameters)
    for name, text in configs.items():
        folder = Path(repo) / name
        (folder / "1").mkdir(parents=True, exist_ok=True)
        (folder / "config.pbtxt").write_text(text, encoding="utf-8")
        (folder / "1" / "model.py").write_text(
            f'"""Triton python-backend model {name}: qa-engine\'s {MODEL_PY[name]}."""\n'
            f"from qa_engine.serving.triton.models import {MODEL_PY[name]} as TritonPythonModel  # noqa: F401\n",
            encoding="utf-8",
        )
    log.info("Triton models %s (%s) written to %s", ", ".join(configs), precision, repo)
    return list(configs)


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when the thread that started it ends (PR_SET_PDEATHSIG),
    so a killed `serve-triton` or test run leaves no tritonserver behind; None where prctl does not exist."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)


@dataclass
class TritonServer:
    """tritonserver over an artifact's models, as a context manager: started and ready on entry, stopped on exit.

    `workspace` (default: a new temp folder, removed on stop) holds the model repository, the python-backend
    folder and, when `log_file` is not given, nothing else: the server's log then goes to this process's output.
    """

    artifact: str | Path
    options: ServeOptions = field(default_factory=ServeOptions)
    address: Address = field(default_factory=Address)
    workspace: Path | None = None
    log_file: Path | None = None
    binary: str | Path | None = None
    backends: str | Path | None = None
    exit_timeout_s: int = 30
    models: list[str] = field(default_factory=list, init=False)
    process: subprocess.Popen | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._own_workspace = self.workspace is None
        self._log: IO[bytes] | None = None
        # python-backend shared-memory regions are named after this prefix: unique, so two servers on one machine
        # never share one, and known, so stop() can remove what stubs killed mid-way leave in /dev/shm
        self.shm_prefix = f"qa-engine-{os.getpid()}-{secrets.token_hex(4)}"

    def command(self, repo: Path, bundle: Bundle) -> list[str]:
        """The tritonserver command line: explicit model control, every model loaded, a unique shm prefix."""
        a = self.address
        args = [str(bundle.binary), f"--model-repository={repo}", f"--backend-directory={bundle.backends}",
                "--model-control-mode=explicit", *(f"--load-model={m}" for m in self.models),
                f"--http-address={a.host}", f"--http-port={a.http_port}",
                f"--grpc-address={a.host}", f"--grpc-port={a.grpc_port}",
                f"--exit-timeout-secs={self.exit_timeout_s}", "--strict-readiness=true",
                f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}"]
        if a.metrics_port:
            args += [f"--metrics-address={a.host}", f"--metrics-port={a.metrics_port}"]
        else:
            args.append("--allow-metrics=false")
        return args

    def start(self, timeout_s: float = 120.0) -> "TritonServer":
        """Write the models, start tritonserver and wait until it and every model are ready.

        TritonUnavailable when no server can be started here or it exits or is not ready within `timeout_s`.
        """
        if self.workspace is None:
            self.workspace = Path(tempfile.mkdtemp(prefix="qa-engine-triton-"))
        self.workspace.mkdir(parents=True, exist_ok=True)
        try:
            bundle = Bundle.find(self.workspace, self.binary, self.backends)
            repo = self.workspace / "models"
            self.models = write_repository(self.artifact, repo, self.options)
            if self.log_file is not None:
                self._log = open(self.log_file, "ab")
            self.process = subprocess.Popen(
                self.command(repo, bundle), env=server_environment(bundle), stdin=subprocess.DEVNULL,
                stdout=self._log, stderr=subprocess.STDOUT if self._log else None,
                start_new_session=True, preexec_fn=_die_with_parent(),
            )
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        log.info("Triton serving %s at http://%s (gRPC %s:%d)", ", ".join(self.models), self.address.http_url,
                 self.address.host, self.address.grpc_port)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        paths = ["/v2/health/ready", *(f"/v2/models/{m}/ready" for m in self.models)]
        while True:
            code = self.process.poll() if self.process else None
            if code is not None:
                raise TritonUnavailable(f"tritonserver exited with status {code} before it was ready{self._log_tail()}")
            if all(_http_ok(f"http://{self.address.http_url}{path}") for path in paths):
                return
            if time.monotonic() > deadline:
                raise TritonUnavailable(f"tritonserver not ready after {timeout_s:.0f} s{self._log_tail()}")
            time.sleep(0.2)

    def _log_tail(self, lines: int = 30) -> str:
        if self.log_file is None or not Path(self.log_file).is_file():
            return " (its log is in this process's output)"
        tail = Path(self.log_file).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return f"; the end of {self.log_file}:\n" + "\n".join(tail)

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM tritonserver (it finishes in-flight requests), SIGKILL its process group if it is still there
        after `timeout_s` (default: the exit timeout and 10 s), remove its shared-memory regions and an own
        workspace. Its exit status. (Triton waits up to the exit timeout for open HTTP connections, then exits
        without unloading the models: close clients first for a quick, clean stop.)"""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
            try:
                code = self.process.wait(self.exit_timeout_s + 10 if timeout_s is None else timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver did not stop in time; killing it")
            _kill_group(self.process.pid)
            code = self.process.wait() if code is None else code
            for region in Path("/dev/shm").glob(f"{self.shm_prefix}*"):  # left by stubs killed before they unloaded
                region.unlink(missing_ok=True)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_workspace and self.workspace is not None:
            shutil.rmtree(self.workspace, ignore_errors=True)
            self.workspace = None
        return code

    def __enter__(self) -> "TritonServer":
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of tritonserver's process group (python-backend stubs and their helpers)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    """ServeOptions from `qa-engine serve-triton`'s arguments."""
    return ServeOptions(
        precision=args.precision, provider=args.provider, raw_onnx=args.raw_onnx, max_batch_size=args.max_batch_size,
        max_queue_delay_us=args.max_queue_delay_us, instances=args.instances, intra_op_threads=args.intra_op_threads,
        model_batch_size=args.model_batch_size, max_answer_length=args.max_answer_length,
        handle_impossible_answer=args.handle_impossible_answer, batch_timeout_s=args.batch_timeout_s,
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    server = TritonServer(
        args.model, options_from_args(args), Address(args.host, args.http_port, args.grpc_port, args.metrics_port),
        workspace=Path(args.workspace) if args.workspace else None, binary=args.tritonserver,
        backends=args.backend_directory, exit_timeout_s=args.exit_timeout_secs,
    )
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("%s received: stopping Triton", signal.Signals(signum).name)
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        server.start(args.startup_timeout)
    except TritonUnavailable as e:
        print(f"qa-engine serve-triton: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"http": f"http://{server.address.http_url}", "grpc": f"{args.host}:{args.grpc_port}",
                      "models": server.models}), flush=True)
    try:
        while not stopping.wait(0.5):
            if server.process is not None and server.process.poll() is not None:
                log.error("tritonserver exited with status %s", server.process.returncode)
                return 1
    finally:
        code = server.stop()
    return 0 if code in (0, None) else 1


def register(sub: argparse._SubParsersAction) -> None:
    """`qa-engine serve-triton`."""
    p = sub.add_parser(
        "serve-triton", help="serve an artifact from a Triton Inference Server (needs qa-engine[triton])",
        description="Model 'qa' answers: question and context (BYTES) in; answer (BYTES), start, end (INT64) and "
                    "score (FP32) out, Triton batching requests dynamically. --raw-onnx also serves the ONNX model "
                    "as 'qa_engine' with export's signature, for qa_engine.serving.triton.client.TritonQAClient. "
                    "Stops on SIGINT or SIGTERM.",
    )
    p.add_argument("--model", required=True, help="artifact folder written by `qa-engine export`")
    p.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="variant served (default: int8 on CPU, fp16 with --provider cuda, else fp32)")
    p.add_argument("--provider", default="cpu", choices=["cpu", "cuda", "auto"], help="the engine's provider")
    p.add_argument("--raw-onnx", action="store_true", help="also serve the raw ONNX model as 'qa_engine'")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    p.add_argument("--http-port", type=port, default=8000)
    p.add_argument("--grpc-port", type=port, default=8001)
    p.add_argument("--metrics-port", type=int_range(0, 65535), default=8002, help="Prometheus metrics port; 0 turns metrics off")
    p.add_argument("--max-batch-size", type=positive_int, default=TRITON_MAX_BATCH_SIZE, help="question rows per Triton batch")
    p.add_argument("--max-queue-delay-us", type=non_negative_int, default=TRITON_MAX_QUEUE_DELAY_US,
                   help="dynamic batching: longest wait for a fuller batch, in microseconds")
    p.add_argument("--instances", type=positive_int, default=1, help="model instances, one engine (stub process) each")
    p.add_argument("--intra-op-threads", type=positive_int, default=None, help="onnxruntime threads per instance")
    p.add_argument("--model-batch-size", type=positive_int, default=None, help="windows per engine model call")
    p.add_argument("--max-answer-length", type=positive_int, default=None, help="tokens (default: the artifact's)")
    p.add_argument("--handle-impossible-answer", action="store_true")
    p.add_argument("--batch-timeout-s", type=positive_float, default=None,
                   help="fail a batch the model has not answered within this many seconds (default: no limit)")
    p.add_argument("--workspace", default=None, help="folder for the model repository (default: a temp folder)")
    p.add_argument("--tritonserver", default=None, help="a tritonserver binary (default: nvidia-pytriton's)")
    p.add_argument("--backend-directory", default=None, help="its backend folder, holding python/")
    p.add_argument("--exit-timeout-secs", type=non_negative_int, default=30, help="how long in-flight requests may take at stop")
    p.add_argument("--startup-timeout", type=positive_float, default=120.0, help="seconds to wait for the models to load")
    p.set_defaults(func=_cmd_serve)

