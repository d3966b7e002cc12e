"""A live Triton Inference Server (nvidia-pytriton's tritonserver and python backend) serving the random artifact.

The engine model "qa" answers as QAEngine.answer_batch does whatever batches Triton forms; TritonQAClient answers
as the engine against the raw ONNX model served with export's signature; concurrent clients each get their own
answers; malformed requests get Triton errors, alone. Servers listen on 127.0.0.1 on free ports, are started by
the fixtures and always stopped. The live tests skip where no server can start (no nvidia-pytriton, no stub for
this Python, a binary that fails), unless QA_ENGINE_REQUIRE_TRITON=1 (scripts/test_triton.sh) makes that a failure.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest

from qa_engine import QAEngine
from qa_engine.artifacts.manifest import Manifest
from qa_engine.serving.triton.server import (
    ENGINE_MODEL,
    RAW_MODEL,
    Address,
    Bundle,
    ServeOptions,
    TritonServer,
    TritonUnavailable,
    server_environment,
    write_repository,
)
from tests.fixtures import free_ports, qa_pairs
from tests.runtime.serving.test_triton import parse_pbtxt

REQUIRE = os.environ.get("QA_ENGINE_REQUIRE_TRITON") == "1"
LONG = "세종대왕은 조선의 제4대 임금으로 1443년에 훈민정음을 창제하였다. " * 30  # several windows
PAIRS = [*qa_pairs(40, seed=18), ("누가 훈민정음을 창제하였나?", LONG, "")]
QUEUE_DELAY_US = 20_000  # long enough that concurrent requests share Triton batches


def _start(server_for: Callable[[Address], TritonServer]) -> TritonServer:
    """A started server (three tries on fresh ports: another process may take a free port first), or a skip."""
    error: TritonUnavailable | None = None
    for _ in range(3):
        http, grpc = free_ports(2)
        server = server_for(Address("127.0.0.1", http, grpc, 0))
        try:
            return server.start(timeout_s=180)
        except TritonUnavailable as e:
            error = e
            if "address" not in str(e).lower():
                break
    if REQUIRE:
        raise AssertionError(f"QA_ENGINE_REQUIRE_TRITON=1 but no Triton server started: {error}")
    pytest.skip(f"no live Triton server here: {error}")


@pytest.fixture(scope="module")
def live(random_artifact: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """live(precision) -> a started server of the engine model and the raw ONNX model, one per precision."""
    pytest.importorskip("tritonclient.http")
    servers: dict[str, TritonServer] = {}

    def get(precision: str) -> TritonServer:
        if precision not in servers:
            folder = tmp_path_factory.mktemp(f"triton-{precision}")

            def server_for(address: Address) -> TritonServer:
                server = TritonServer(
                    random_artifact, ServeOptions(precision=precision, raw_onnx=True, max_queue_delay_us=QUEUE_DELAY_US,
                                                  intra_op_threads=1),
                    address, workspace=folder / "workspace", log_file=folder / "server.log", exit_timeout_s=5,
                )
                request.addfinalizer(server.stop)
                return server

            servers[precision] = _start(server_for)
        return servers[precision]

    return get


@pytest.fixture(scope="module")
def engines(random_artifact: Path) -> Callable[[str], QAEngine]:
    made: dict[str, QAEngine] = {}

    def get(precision: str) -> QAEngine:
        if precision not in made:
            made[precision] = QAEngine.from_pretrained(random_artifact, provider="cpu", precision=precision)
        return made[precision]

    return get


def _client(server: TritonServer):
    import tritonclient.http as httpclient

    return httpclient.InferenceServerClient(server.address.http_url, network_timeout=120)


def _bytes_input(name: str, texts: Sequence[str | bytes]):
    import tritonclient.http as httpclient

    tensor = httpclient.InferInput(name, [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[t.encode() if isinstance(t, str) else t] for t in texts], dtype=np.object_))
    return tensor


def ask(client, questions: Sequence[str | bytes], contexts: Sequence[str | bytes]) -> list[dict]:
    """One request to model "qa" holding these rows; the answers as the engine's dicts."""
    result = client.infer(ENGINE_MODEL, [_bytes_input("question", questions), _bytes_input("context", contexts)])
    answers, starts, ends, scores = (result.as_numpy(n)[:, 0] for n in ("answer", "start", "end", "score"))
    return [{"answer": a.decode(), "start": int(s), "end": int(e), "score": float(p)}
            for a, s, e, p in zip(answers, starts, ends, scores)]


def _same(got: list[dict], want: list[dict]) -> None:
    """Same spans exactly; scores within float rounding (other batches pad to other widths)."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g["answer"], g["start"], g["end"]) == (w["answer"], w["start"], w["end"])
        assert g["score"] == pytest.approx(w["score"], rel=1e-4, abs=1e-7)


def _stats(client, model: str) -> tuple[int, int]:
    """(inferences, executions) the server counted for `model`: fewer executions means requests were batched."""
    stats = client.get_inference_statistics(model)["model_stats"][0]
    return stats["inference_count"], stats["execution_count"]


def _counted_since(client, model: str, before: tuple[int, int], inferences: int) -> tuple[int, int]:
    """(inferences, executions) since `before`, once the server has counted `inferences` (it counts a request a
    moment after answering it) or after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        now = _stats(client, model)
        since = (now[0] - before[0], now[1] - before[1])
        if since[0] >= inferences or time.monotonic() > deadline:
            return since
        time.sleep(0.05)


def _one_by_one_concurrently(server: TritonServer, pairs: Sequence[tuple[str, str, str]], threads: int) -> list[dict]:
    """Each pair in its own request, `threads` clients at a time, so Triton batches them in whatever mix arrives."""
    local = threading.local()

    def one(pair: tuple[str, str, str]) -> dict:
        if not hasattr(local, "client"):
            local.client = _client(server)
        return ask(local.client, [pair[0]], [pair[1]])[0]

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, pairs))


PRECISIONS = ["fp32", "int8"]  # int8 with static activation scales : its answers do not depend on the batch


# --- the repository and the server's surroundings: no server needed -------------------------------------------

def test_repository_declares_the_engine_and_raw_models(random_artifact: Path, tmp_path: Path) -> None:
    options = ServeOptions(precision="int8", raw_onnx=True, max_batch_size=16, max_queue_delay_us=500, instances=2,
                           intra_op_threads=1, model_batch_size=4, max_answer_length=20)
    assert write_repository(random_artifact, tmp_path, options) == [ENGINE_MODEL, RAW_MODEL]
    engine = parse_pbtxt((tmp_path / ENGINE_MODEL / "config.pbtxt").read_text(encoding="utf-8"))
    assert engine["backend"] == "python" and engine["max_batch_size"] == 16
    assert [(t["name"], t["data_type"], t["dims"]) for t in engine["input"]] == [
        ("question", "TYPE_STRING", [1]), ("context", "TYPE_STRING", [1])]
    assert [(t["name"], t["data_type"], t["dims"]) for t in engine["output"]] == [
        ("answer", "TYPE_STRING", [1]), ("start", "TYPE_INT64", [1]), ("end", "TYPE_INT64", [1]),
        ("score", "TYPE_FP32", [1])]
    assert engine["dynamic_batching"] == {"max_queue_delay_microseconds": 500}
    assert engine["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]
    parameters = {p["key"]: p["value"]["string_value"] for p in engine["parameters"]}
    assert parameters["artifact"] == str(random_artifact.resolve()) and parameters["precision"] == "int8"
    assert (parameters["intra_op_threads"], parameters["model_batch_size"], parameters["max_answer_length"]) == (
        "1", "4", "20")
    assert "import EngineModel as TritonPythonModel" in (tmp_path / ENGINE_MODEL / "1" / "model.py").read_text()
    raw = parse_pbtxt((tmp_path / RAW_MODEL / "config.pbtxt").read_text(encoding="utf-8"))
    assert [t["name"] for t in raw["input"]] == Manifest.read(random_artifact).input_names
    assert all(t["data_type"] == "TYPE_INT64" and t["dims"] == [-1] for t in raw["input"])
    assert [(t["name"], t["data_type"]) for t in raw["output"]] == [("start_logits", "TYPE_FP32"),
                                                                    ("end_logits", "TYPE_FP32")]
    assert "import OnnxModel as TritonPythonModel" in (tmp_path / RAW_MODEL / "1" / "model.py").read_text()


def test_default_precision_is_the_engines_and_bad_options_are_refused(random_artifact: Path, tmp_path: Path) -> None:
    write_repository(random_artifact, tmp_path, ServeOptions())
    config = parse_pbtxt((tmp_path / ENGINE_MODEL / "config.pbtxt").read_text(encoding="utf-8"))
    assert {p["key"]: p["value"]["string_value"] for p in config["parameters"]}["precision"] == "int8"
    with pytest.raises(ValueError, match="precision 'bf16'"):
        write_repository(random_artifact, tmp_path, ServeOptions(precision="bf16"))
    for bad in ({"max_batch_size": 0}, {"instances": 0}, {"max_queue_delay_us": -1}, {"provider": "tpu"}):
        with pytest.raises(ValueError):
            ServeOptions(**bad)


def test_stub_finds_this_interpreters_libpython_first(tmp_path: Path) -> None:
    """The python-backend stub links libpython3.X.so.1.0 by name: without this interpreter's LIBDIR first on
    LD_LIBRARY_PATH, the system's libpython (another patch release) runs this standard library and fails."""
    import sysconfig

    env = server_environment(Bundle(tmp_path / "tritonserver", tmp_path, (tmp_path / "libs",)),
                             {"LD_LIBRARY_PATH": "/opt/x", "PATH": "/usr/bin"})
    libdir = sysconfig.get_config_var("LIBDIR")
    has_shared = (Path(libdir) / str(sysconfig.get_config_var("INSTSONAME"))).is_file()
    expected = [libdir] * has_shared + [str(tmp_path / "libs"), "/opt/x"]
    assert env["LD_LIBRARY_PATH"].split(os.pathsep) == expected
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_stubs_run_this_interpreters_libpython(live) -> None:
    """The live python-backend stubs mapped this interpreter's libpython, not the system's (whose C objects differ:
    a system 3.11.2 under a 3.11.7 standard library lacks RLock._recursion_count, which multiprocessing uses)."""
    import sysconfig

    server = live("fp32")
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if not (Path(libdir) / soname).is_file():
        pytest.skip(f"this interpreter has no shared {soname}: the stub can only use the system's")
    stubs = [pid for pid in _children(server.process.pid) if "python_backend_stub" in _cmdline(pid)]
    assert stubs  # one per model instance
    for pid in stubs:
        mapped = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if soname in line}
        assert mapped == {str(Path(libdir, soname).resolve())}


def test_a_server_that_exits_is_reported_with_its_log(random_artifact: Path, tmp_path: Path) -> None:
    (tmp_path / "backends" / "python").mkdir(parents=True)
    server = TritonServer(random_artifact, ServeOptions(precision="fp32"), Address("127.0.0.1", *free_ports(2), 0),
                          workspace=tmp_path / "ws", log_file=tmp_path / "server.log", binary="/bin/false",
                          backends=tmp_path / "backends")
    with pytest.raises(TritonUnavailable, match="exited with status 1"):
        server.start(timeout_s=30)
    assert server.process is not None and server.process.poll() == 1
    with pytest.raises(TritonUnavailable, match="python backend"):
        TritonServer(random_artifact, binary="/nonexistent/tritonserver", backends=tmp_path).start()


# --- live -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("precision", PRECISIONS)
def test_engine_through_triton_answers_as_the_engine(live, engines, precision: str) -> None:
    """Answers one by one from 8 concurrent clients (batched by Triton in whatever mix arrives) and in one request
    of many rows are the engine's answer_batch answers."""
    server, engine = live(precision), engines(precision)
    want = engine.answer_batch([p[0] for p in PAIRS], [p[1] for p in PAIRS])
    client = _client(server)
    before = _stats(client, ENGINE_MODEL)
    _same(_one_by_one_concurrently(server, PAIRS, threads=8), want)
    inferences, executions = _counted_since(client, ENGINE_MODEL, before, len(PAIRS))
    assert (inferences, executions < inferences) == (len(PAIRS), True), (inferences, executions)  # Triton batched
    _same(ask(client, [p[0] for p in PAIRS[:32]], [p[1] for p in PAIRS[:32]]), want[:32])
    client.close()


@pytest.mark.parametrize("precision", PRECISIONS)
def test_triton_client_on_the_raw_onnx_model_answers_as_the_engine(live, engines, random_artifact: Path,
                                                                   precision: str) -> None:
    from qa_engine.serving.triton.client import TritonQAClient

    server, engine = live(precision), engines(precision)
    questions, contexts = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    client = TritonQAClient.connect(random_artifact, url=server.address.http_url, model_name=RAW_MODEL,
                                    max_batch_size=8)
    for kw in ({}, {"top_k": 3}):
        got, want = client.answer_batch(questions, contexts, **kw), engine.answer_batch(questions, contexts, **kw)
        for g, w in zip(got, want):
            _same(g if isinstance(g, list) else [g], w if isinstance(w, list) else [w])
    # clients on 8 threads: windows of different callers share Triton batches
    local = threading.local()

    def one(pair: tuple[str, str, str]) -> dict:
        if not hasattr(local, "client"):
            local.client = TritonQAClient.connect(random_artifact, url=server.address.http_url, model_name=RAW_MODEL)
        return local.client.answer(pair[0], pair[1])

    with ThreadPoolExecutor(8) as pool:
        _same(list(pool.map(one, PAIRS)), engine.answer_batch(questions, contexts))


def test_raw_onnx_model_has_the_signature_export_writes(live, random_artifact: Path, tmp_path: Path) -> None:
    """The live raw model's inputs and outputs (names, types, dims) and batch size are those of the config.pbtxt that
    export/triton.py writes for the onnxruntime backend, so a client of one is a client of the other."""
    write_triton_repo = pytest.importorskip("qa_engine.export.triton").write_triton_repo
    declared = parse_pbtxt((write_triton_repo(random_artifact, tmp_path, precision="fp32") / "config.pbtxt")
                           .read_text(encoding="utf-8"))
    served = _client(live("fp32")).get_model_config(RAW_MODEL)
    for block in ("input", "output"):
        assert [(t["name"], t["data_type"], t["dims"]) for t in served[block]] == [
            (t["name"], t["data_type"], t["dims"]) for t in declared[block]]
    assert served["max_batch_size"] == declared["max_batch_size"]
    assert served["name"] == declared["name"] == RAW_MODEL


def test_concurrent_clients_each_get_their_own_answers(live, engines) -> None:
    """32 threads x 20 requests, each a question whose answer differs from most others on its context: every
    request is answered, with its own answer."""
    server, engine = live("fp32"), engines("fp32")
    pairs = qa_pairs(640, seed=7)
    want = engine.answer_batch([p[0] for p in pairs], [p[1] for p in pairs])
    assert len({(p[1], w["start"], w["end"]) for p, w in zip(pairs, want)}) > 0.5 * len({p[1] for p in pairs})
    client = _client(server)
    before = _stats(client, ENGINE_MODEL)
    got: dict[int, dict] = {}
    lock = threading.Lock()

    def run(thread: int) -> None:
        mine = _client(server)
        for i in range(thread * 20, thread * 20 + 20):
            answer = ask(mine, [pairs[i][0]], [pairs[i][1]])[0]
            with lock:
                got[i] = answer
        mine.close()

    threads = [threading.Thread(target=run, args=(t,)) for t in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(got) == list(range(640))
    _same([got[i] for i in range(640)], want)
    inferences, executions = _counted_since(client, ENGINE_MODEL, before, 640)
    assert (inferences, executions < 640) == (640, True), (inferences, executions)
    client.close()


def test_malformed_requests_get_triton_errors_alone(live, engines) -> None:
    """Empty or non-UTF-8 text and missing inputs get 400 errors naming the problem; a malformed request batched with
    good ones fails alone (the good ones are answered)."""
    from tritonclient.utils import InferenceServerException

    server, engine = live("fp32"), engines("fp32")
    client = _client(server)
    context = PAIRS[0][1]
    for question, message in (("   ", "question 0 is empty"), (b"\xff\xfe", "question 0 is not UTF-8")):
        with pytest.raises(InferenceServerException, match=message) as e:
            ask(client, [question], [context])
        assert e.value.status() == "400"
    with pytest.raises(InferenceServerException, match="missing required input") as e:
        client.infer(ENGINE_MODEL, [_bytes_input("question", ["누가?"])])
    assert e.value.status() == "400"
    with pytest.raises(InferenceServerException, match="context 1 is empty"):
        ask(client, ["a?", "b?"], [context, ""])

    good = [p for p in PAIRS[:6]]
    want = engine.answer_batch([p[0] for p in good], [p[1] for p in good])
    mixed_batches = 0
    for _ in range(5):  # until all 12 requests of a round ran as one Triton batch
        barrier = threading.Barrier(12)

        def one(i: int) -> dict | str:
            mine = _client(server)
            barrier.wait()
            try:
                return ask(mine, [good[i // 2][0] if i % 2 == 0 else ""], [good[i // 2][1]])[0]
            except InferenceServerException as error:
                return str(error)
            finally:
                mine.close()

        before = _stats(client, ENGINE_MODEL)
        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(one, range(12)))
        _same([results[i] for i in range(0, 12, 2)], want)
        assert all("question 0 is empty" in results[i] for i in range(1, 12, 2))
        executions = _counted_since(client, ENGINE_MODEL, before, 6)[1]  # the 6 good ones are counted
        mixed_batches += executions == 1
        if mixed_batches:
            break
    assert mixed_batches, "no round ran its good and malformed requests in one Triton batch"
    client.close()


def test_stop_leaves_no_shared_memory_even_when_triton_gives_up(random_artifact: Path, tmp_path: Path) -> None:
    """An HTTP connection left open makes Triton wait out its exit timeout and exit without unloading the models; the
    python-backend stubs are then killed, and stop() removes the shared-memory regions they held in /dev/shm."""
    pytest.importorskip("tritonclient.http")
    server = _start(lambda address: TritonServer(
        random_artifact, ServeOptions(precision="fp32", raw_onnx=True), address, workspace=tmp_path / "ws",
        log_file=tmp_path / "server.log", exit_timeout_s=1))
    try:
        regions = list(Path("/dev/shm").glob(f"{server.shm_prefix}*"))
        assert len(regions) == 2  # one per model instance
        client = _client(server)
        assert client.is_server_live()  # and left open
    finally:
        server.stop()
    assert "Exit timeout expired" in (tmp_path / "server.log").read_text(errors="replace")
    assert not [r for r in regions if r.exists()]
    assert _session_processes(server.process.pid) == []
    client.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_triton_command_serves_until_signalled(random_artifact: Path, tmp_path: Path, engines, sig) -> None:
    """`qa-engine serve-triton` prints where it listens once ready, answers, and on SIGTERM or SIGINT stops Triton
    and exits 0, leaving no process of its session and no workspace behind."""
    pytest.importorskip("tritonclient.http")
    import tritonclient.http as httpclient

    http, grpc = free_ports(2)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    command = [sys.executable, "-m", "qa_engine.cli", "serve-triton", "--model", str(random_artifact),
               "--precision", "fp32", "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", "0",
               "--exit-timeout-secs", "5"]
    with open(tmp_path / "stderr.log", "wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env, start_new_session=True,
                                   text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = process.stdout.readline()  # the command's one line of output, once every model is ready
        if not line:
            process.wait(60)
            log = (tmp_path / "stderr.log").read_text(errors="replace")
            refusal = [x for x in log.splitlines() if x.startswith("qa-engine serve-triton: error:")]
            if REQUIRE or process.returncode != 1 or not refusal:
                raise AssertionError(f"serve-triton exited with status {process.returncode}:\n{log[-3000:]}")
            pytest.skip(f"no live Triton server here: {refusal[0]}")
        ready = json.loads(line)
        assert ready["http"] == f"http://127.0.0.1:{http}" and ready["models"] == [ENGINE_MODEL]
        client = httpclient.InferenceServerClient(f"127.0.0.1:{http}")
        _same(ask(client, [PAIRS[1][0]], [PAIRS[1][1]]), [engines("fp32").answer(PAIRS[1][0], PAIRS[1][1])])
        client.close()
        workspaces = list(tmp_path.glob("qa-engine-triton-*"))
        assert len(workspaces) == 1
        process.send_signal(sig)
        assert process.wait(60) == 0
        assert not workspaces[0].exists()
        assert _session_processes(process.pid) == []
        assert not list(Path("/dev/shm").glob(f"qa-engine-{process.pid}-*"))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()


def _children(pid: int) -> list[int]:
    return [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/stat")
            if _stat_fields(p) and int(_stat_fields(p)[1]) == pid]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _stat_fields(stat: Path) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, ... (empty once gone)."""
    try:
        return stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _session_processes(sid: int, wait_s: float = 10.0) -> list[int]:
    """Live processes of session `sid` (the command's and every child's: tritonserver, stubs), after up to `wait_s`
    for those SIGKILLed to be gone (a killed process takes a moment to exit)."""
    deadline = time.monotonic() + wait_s
    while True:
        left = [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat")
                if (fields := _stat_fields(stat)) and int(fields[3]) == sid and fields[0] not in ("Z", "X")]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)
