"""Every public entry point on a Spark Connect session, with the results of a classic one (issue 32).

One real Connect server for the module (:class:`connect_support.ConnectServer`: pyspark's own
``start-connect-server.sh`` on a free port of 127.0.0.1, ``local[2]``), reached through gRPC; the
same process holds the shared classic session for the comparisons and for the save/load round
trips across session kinds (both see this machine's files).

pyspark decides between its classic and Connect code (``pyspark.ml`` writers, ``functions``) by a
process-wide environment flag, as in a real Connect client's process; each test here runs with it
set, and the classic steps inside a test run with it cleared (:func:`classic`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import CARDS
from connect_support import ConnectServer, connect_available

pytestmark = [pytest.mark.spark, pytest.mark.connect]

if connect_available():
    if os.environ.get("CI") == "true":  # CI runs this leg: a missing prerequisite is a failure there
        raise RuntimeError(connect_available())
    pytest.skip(connect_available(), allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
FLAG = "SPARK_CONNECT_MODE_ENABLED"  # pyspark.sql.utils.is_remote() reads it
WAIT_S = 600  # upper bound for a state to be reached on a loaded machine (never a pacing sleep)
SHORT = [p for p, _ in CARDS[:3]]  # the shortest real clips (1.1-2.0 s)


@contextlib.contextmanager
def _flag(on: bool):
    old = os.environ.get(FLAG)
    if on:
        os.environ[FLAG] = "1"
    else:
        os.environ.pop(FLAG, None)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(FLAG, None)
        else:
            os.environ[FLAG] = old


def classic():
    """Run a block as a classic pyspark process would (the flag cleared)."""
    return _flag(False)


@pytest.fixture(autouse=True)
def _connect_process():
    with _flag(True):
        yield


@pytest.fixture(scope="module")
def connect_url():
    """``sc://127.0.0.1:PORT`` of the module's Spark Connect server (stopped after the module)."""
    server = ConnectServer()
    with server as server_url:
        print(f"\n[connect] server listening after {server.started_s:.1f} s")
        yield server_url


@pytest.fixture(scope="module")
def cs(connect_url):
    """A Spark Connect session on the shared server (what a notebook's ``spark`` is on Databricks)."""
    from pyspark.sql.connect.session import SparkSession as RemoteSession

    with _flag(True):
        session = RemoteSession.builder.remote(connect_url).create()
    yield session
    with _flag(True):
        session.stop()  # before the server goes: a client left open retries a gone server at exit


def _names(rows, col):
    return {Path(r["path"]).name: r[col][0]["result"] for r in rows}


def test_whisper_embedded_and_from_a_directory_as_on_classic(spark, cs, tmp_path, monkeypatch):
    """read_audio -> AudioAssembler -> WhisperForCTC on Connect: the embedded model, the same weights
    as a directory shipped as a session artifact, and as a path every node sees (shipModel=false)
    give the classic session's transcripts; LightPipeline runs the Connect-fitted model; the
    engines' in-file progress reaches this client through the session's conf."""
    monkeypatch.setenv("SPARKASR_CACHE", str(tmp_path / "cache"))  # the model's archive is staged there
    from pyspark.ml import Pipeline, PipelineModel

    from sparkasr import AudioAssembler, LightPipeline, WhisperForCTC, read_audio
    from sparkasr.job.progress import PROPERTY, Progress
    from sparkasr.spark.session import job_property, session_key
    from sparkasr.spark.shipping import _SHIPPED_CONNECT
    from sparkasr.whisper.models import resolve_whisper_model

    paths = [str(p) for p in SHORT]
    tiny_dir = resolve_whisper_model(None).path

    def whisper(col, **kw):
        return WhisperForCTC(inputCols=["audio_assembler"], outputCol=col, beamSize=1, timestamps="none", **kw)

    with classic():
        df = read_audio(spark, paths)
        stages = [AudioAssembler(inputCol="audio", outputCol="audio_assembler"), whisper("emb")]
        want = _names(Pipeline(stages=stages).fit(df).transform(df).select("path", "emb").collect(), "emb")

    df = read_audio(cs, paths)
    shipped = WhisperForCTC.loadSavedModel(tiny_dir)
    shipped.setParams(inputCols=["audio_assembler"], outputCol="dir", beamSize=1, timestamps="none")
    stages = [
        AudioAssembler(inputCol="audio", outputCol="audio_assembler"),
        whisper("emb"),
        shipped,
        whisper("shared", modelSource=tiny_dir, shipModel=False),
    ]
    model = Pipeline(stages=stages).fit(df)
    progress = Progress(cs, len(paths), quiet=True)
    with progress, job_property(cs, PROPERTY, progress.address):
        rows = model.transform(df).select("path", "emb", "dir", "shared").collect()
    for col in ("emb", "dir", "shared"):
        assert _names(rows, col) == want, col
    assert all(want.values())
    # the directory travelled as this session's artifact; the workers' reports came back
    assert any(key[0] == session_key(cs) for key in _SHIPPED_CONNECT)
    assert shipped._model_ref_for(cs).path == ""  # no fallback to this client's path
    assert {Path(s).name for s in progress.done} == {Path(p).name for p in paths}
    light = LightPipeline(PipelineModel(model.stages[:2])).annotate(paths[0])  # the Connect-fitted stages
    assert light["emb"] == [want[Path(paths[0]).name]]

    # `base`, the other embedded model: executors find it by name (nothing shipped)
    one = read_audio(cs, paths[:1])
    base = Pipeline(
        stages=[stages[0], WhisperForCTC.pretrained("base").setParams(inputCols=["audio_assembler"], outputCol="b")]
    ).fit(one)
    base.stages[1].setParams(beamSize=1, timestamps="none", language="en")
    assert base.stages[1]._model_ref_for(cs).kind == "embedded"
    (row,) = base.transform(one).select("path", "b").collect()
    assert [row["b"][0]["result"]] == LightPipeline(base).annotate(paths[0])["b"] != [""]
    print(f"\n[connect] whisper on Connect = classic: {want}")


@pytest.fixture(scope="module")
def ctc():
    from ctc_support import tiny_models

    return tiny_models()


def _ctc_texts(onnx_dir, paths):
    from sparkasr.audio import decode_audio
    from sparkasr.ctc.engine import CTCEngine, CTCOptions

    eng = CTCEngine(onnx_dir, CTCOptions(num_threads=1))
    return {Path(p).name: eng.transcribe(decode_audio(str(p))).text for p in paths}


def _ctc_pipeline(cls, onnx_dir, col):
    from pyspark.ml import Pipeline

    from sparkasr import AudioAssembler

    asr = cls.loadSavedModel(str(onnx_dir)).setInputCols(["audio_assembler"]).setOutputCol(col)
    return Pipeline(stages=[AudioAssembler(inputCol="content", outputCol="audio_assembler"), asr])


def test_ctc_directory_bad_input_and_the_evaluator(spark, cs, ctc, tmp_path, monkeypatch):
    """Wav2Vec2ForCTC from a `sparkasr convert` directory on Connect: one record per input, the
    plain engine's text, an error row naming a broken file; WerEvaluator and evaluate_wer give the
    classic session's counts."""
    monkeypatch.setenv("SPARKASR_CACHE", str(tmp_path / "cache"))
    from sparkasr import Wav2Vec2ForCTC, WerEvaluator, evaluate_wer, read_binary

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio")
    paths = [str(p) for p in SHORT] + [str(bad)]
    df = read_binary(cs, paths)
    rows = _ctc_pipeline(Wav2Vec2ForCTC, ctc["wav2vec2"]["onnx"], "w2v").fit(df).transform(df).select("path", "w2v")
    got = {Path(r["path"]).name: r["w2v"] for r in rows.collect()}
    assert sorted(got) == sorted(Path(p).name for p in paths)  # one record per input
    assert {k: v[0]["result"] for k, v in got.items() if k != bad.name} == _ctc_texts(ctc["wav2vec2"]["onnx"], SHORT)
    (err,) = got[bad.name]
    assert err["result"] == "" and bad.name in err["metadata"]["error"]

    pairs = [(ref, ref.replace("of", "and", 1)) for _, ref in CARDS] + [("go forward ten meters", None)]
    schema = "reference string, prediction string"
    ev = WerEvaluator(predictionCol="prediction", referenceCol="reference", normalizer="whisper_en")
    on_connect = cs.createDataFrame(pairs, schema)
    got_wer = ev.evaluate(on_connect)
    got_counts = evaluate_wer(on_connect, "prediction", "reference", normalizer="whisper_en").overall
    with classic():
        on_classic = spark.createDataFrame(pairs, schema)
        want_wer = ev.evaluate(on_classic)
        want_counts = evaluate_wer(on_classic, "prediction", "reference", normalizer="whisper_en").overall
    assert got_counts == want_counts and got_wer == want_wer > 0
    print(f"\n[connect] CTC texts = engine's; WER {got_wer:.4f} on both kinds")


def test_saved_on_one_session_kind_loads_on_the_other(spark, cs, ctc, tmp_path, monkeypatch):
    """A fitted pipeline with a model directory saved on Connect loads on classic, and the reverse,
    weights included (the same transcripts); stages save with overwrite() on Connect; a saved
    stage's weights come through the session when the client cannot open them."""
    monkeypatch.setenv("SPARKASR_CACHE", str(tmp_path / "cache"))
    from pyspark.ml import PipelineModel

    from sparkasr import AudioAssembler, WerEvaluator, WhisperForCTC, read_binary
    from sparkasr.spark.shipping import fetch_dir

    onnx = ctc["wav2vec2"]["onnx"]
    want = _ctc_texts(onnx, SHORT[:2])
    paths = [str(p) for p in SHORT[:2]]

    def texts(model, df):
        return {
            Path(r["path"]).name: r["w2v"][0]["result"] for r in model.transform(df).select("path", "w2v").collect()
        }

    from sparkasr import Wav2Vec2ForCTC

    on_connect = str(tmp_path / "saved-on-connect")
    df = read_binary(cs, paths)
    model = _ctc_pipeline(Wav2Vec2ForCTC, onnx, "w2v").fit(df)
    model.write().overwrite().save(on_connect)
    model.write().overwrite().save(on_connect)  # overwrite on Connect
    uid = model.stages[1].uid
    weights = Path(on_connect) / "stages" / f"1_{uid}" / "weights" / uid
    assert sorted(p.name for p in weights.iterdir()) == sorted(p.name for p in Path(onnx).iterdir())
    with classic():
        loaded = PipelineModel.load(on_connect)
        assert loaded.stages[1].getModelSource() == str(weights)
        assert texts(loaded, read_binary(spark, paths)) == want

    on_classic = str(tmp_path / "saved-on-classic")
    with classic():
        cdf = read_binary(spark, paths)
        _ctc_pipeline(Wav2Vec2ForCTC, onnx, "w2v").fit(cdf).write().overwrite().save(on_classic)
    loaded = PipelineModel.load(on_classic)
    assert texts(loaded, df) == want

    # single stages with overwrite() on Connect, loaded on classic
    asr = WhisperForCTC.pretrained().setBeamSize(2)
    for stage, name in (
        (asr, "whisper"),
        (AudioAssembler(sampleRate=8000), "asm"),
        (WerEvaluator(metricName="cer"), "ev"),
    ):
        stage.write().overwrite().save(str(tmp_path / name))
        stage.write().overwrite().save(str(tmp_path / name))
        with classic():
            back = type(stage).load(str(tmp_path / name))
        assert back.extractParamMap() == stage.extractParamMap() or {
            p.name: v for p, v in back.extractParamMap().items()
        } == {p.name: v for p, v in stage.extractParamMap().items()}

    # weights a client cannot open itself come through the session, in slices
    fetched = fetch_dir(cs, "file:" + str(weights), chunk=4096)
    assert sorted(p.name for p in Path(fetched).iterdir()) == sorted(p.name for p in weights.iterdir())
    for f in weights.iterdir():
        assert (Path(fetched) / f.name).read_bytes() == f.read_bytes(), f.name
    assert max(f.stat().st_size for f in weights.iterdir()) > 3 * 4096  # several slices


def test_two_sessions_on_one_server_keep_their_model_files_apart(cs, connect_url, ctc, tmp_path, monkeypatch):
    """Two Connect sessions transcribing at the same time with different model directories: each
    gets its own model's text, and neither session's tasks can see the other's model files."""
    monkeypatch.setenv("SPARKASR_CACHE", str(tmp_path / "cache"))
    from pyspark.sql.connect.session import SparkSession as RemoteSession

    from sparkasr import HubertForCTC, Wav2Vec2ForCTC, read_binary
    from sparkasr.spark.shipping import local_model_dir

    other = RemoteSession.builder.remote(connect_url).create()
    try:
        assert other.session_id != cs.session_id
        jobs = {
            "a": (cs, Wav2Vec2ForCTC, ctc["wav2vec2"]["onnx"]),
            "b": (other, HubertForCTC, ctc["hubert"]["onnx"]),
        }
        results, errors, refs = {}, [], {}

        def run(key):
            session, cls, onnx = jobs[key]
            try:
                df = read_binary(session, [str(p) for p in SHORT[:2]])
                model = _ctc_pipeline(cls, onnx, "t").fit(df)
                refs[key] = model.stages[1]._model_ref_for(session)
                rows = model.transform(df).select("path", "t").collect()
                results[key] = {Path(r["path"]).name: r["t"][0]["result"] for r in rows}
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(k,)) for k in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT_S)
        assert not errors, errors
        for key, (_, _, onnx) in jobs.items():
            assert results[key] == _ctc_texts(onnx, SHORT[:2]), key
        assert refs["a"].name != refs["b"].name

        def looks_for(ref):
            def probe(batches):
                from pyspark import SparkFiles

                for pdf in batches:
                    try:
                        found = local_model_dir(ref)
                    except FileNotFoundError as exc:
                        found = f"not found: {exc}"
                    pdf["seen"] = [",".join(sorted(os.listdir(SparkFiles.getRootDirectory())))] * len(pdf)
                    pdf["found"] = [found] * len(pdf)
                    yield pdf

            return probe

        schema = "id long, seen string, found string"
        (own,) = other.range(1).mapInPandas(looks_for(refs["b"]), schema).collect()
        (foreign,) = other.range(1).mapInPandas(looks_for(refs["a"]), schema).collect()
        assert refs["b"].name in own["seen"] and refs["a"].name not in own["seen"]
        assert os.path.isdir(own["found"])
        assert foreign["found"].startswith("not found:") and refs["a"].name in foreign["found"]
        (mine,) = cs.range(1).mapInPandas(looks_for(refs["b"]), schema).collect()
        assert refs["b"].name not in mine["seen"] and mine["found"].startswith("not found:")
    finally:
        other.stop()


def test_the_job_on_a_connect_server(connect_url, tmp_path):
    """`sparkasr transcribe --remote sc://...`: SIGINT with 3 of 4 files done keeps them and says so
    in one line; the same command again (the server from SPARK_REMOTE this time) transcribes only
    the fourth; one record per input, the broken file's an error row naming it."""
    from test_output import _current, _env, _history, _kill_group, _manifest, _tail, _wait_for

    fifo = tmp_path / "held.wav"
    os.mkfifo(fifo)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio")
    out = tmp_path / "out"
    manifest = _manifest(tmp_path / "m.csv", [*SHORT[:2], bad, fifo])
    args = [str(manifest), "--output", str(out), "--partitions", "4", "--beam-size", "1"]  # one task per file
    env = {k: v for k, v in _env().items() if k not in (FLAG, "SPARK_REMOTE")}
    log = tmp_path / "run"
    t0 = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparkasr.cli", "transcribe", *args, "--remote", connect_url],
        cwd=REPO,
        env=env,
        stdout=open(log.with_suffix(".out"), "w"),
        stderr=open(log.with_suffix(".err"), "w"),
        start_new_session=True,
    )
    try:
        _wait_for(lambda: len(_history(out)) == 3, proc, "three committed records", log)
        assert proc.poll() is None  # the fourth task still waits on the pipe
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=WAIT_S)
    finally:
        _kill_group(proc)
    err = log.with_suffix(".err").read_text()
    assert rc == 128 + signal.SIGINT, _tail(log)
    assert "Traceback" not in err and "\tat " not in err, err[-4000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("sparkasr: interrupted by SIGINT: kept 3 of the 4 files"), last
    first_s = time.time() - t0

    with contextlib.suppress(OSError):  # release a reader still blocked on the pipe (its task was cancelled)
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    fifo.unlink()
    shutil.copy(SHORT[2], fifo)  # the pipe becomes a real file: the re-run transcribes it alone
    res = subprocess.run(
        [sys.executable, "-m", "sparkasr.cli", "transcribe", *args, "--quiet"],
        cwd=REPO,
        env={**env, "SPARK_REMOTE": connect_url},
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "4 files" in res.stdout and "(1 transcribed now, 3 already done)" in res.stdout, res.stdout
    assert "1 errors" in res.stdout, res.stdout
    history, current = _history(out), _current(out)
    assert len(history) == 4 and sorted(Path(r["path"]).name for r in current) == sorted(
        Path(p).name for p in manifest.read_text().split()[1:]
    )
    (broken,) = [r for r in current if Path(r["path"]).name == bad.name]
    assert broken["text"] == "" and bad.name in broken["error"]
    assert all(r["text"] and r["error"] is None for r in current if r is not broken)
    summary = next(line for line in res.stdout.splitlines() if line.startswith("sparkasr: 4 files"))
    print(f"\n[connect] job: interrupted after {first_s:.1f} s; the re-run: {summary}")


def test_the_job_refuses_what_cannot_work_remotely(connect_url, tmp_path, capsys, monkeypatch):
    """Before any Spark session: a Hadoop URI output and --master with a Connect server are refused
    in one line each (exit 2)."""
    from sparkasr.cli import main

    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    clip = str(SHORT[0])
    for args, says in (
        ([clip, "--output", "s3a://bucket/out", "--remote", connect_url], "cannot lock, list or rename"),
        ([clip, "--output", str(tmp_path / "o"), "--master", "local[1]", "--remote", connect_url], "--master"),
    ):
        assert main(["transcribe", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    monkeypatch.setenv("SPARK_REMOTE", connect_url)
    assert main(["transcribe", clip, "--output", "s3a://bucket/out"]) == 2
    assert "Spark Connect" in capsys.readouterr().err


def test_an_output_the_server_cannot_see_is_refused_before_any_work(cs, tmp_path, monkeypatch):
    """The server reads back a token the client writes in the output directory; when what it reads
    is not the token (another machine's directory of the same name), the run is refused."""
    from sparkasr.job import run

    run.check_output_shared(cs, str(tmp_path))  # the same machine: the server sees it
    real_open = open

    def elsewhere(path, mode="r", *a, **kw):  # the token lands where the server does not look
        if "sparkasr-visible-" in str(path) and "w" in mode:
            path = str(path).replace("sparkasr-visible-", "client-only-")
        return real_open(path, mode, *a, **kw)

    monkeypatch.setattr("builtins.open", elsewhere)
    monkeypatch.setattr(run.os, "remove", lambda p: None)
    with pytest.raises(run.SetupError, match="Spark Connect server does not see"):
        run.check_output_shared(cs, str(tmp_path))


def test_progress_counts_committed_records_on_connect(cs, tmp_path):
    """No accumulators on Connect: the line's files, errors and audio come from the records the
    run's finished tasks committed."""
    import json

    from sparkasr.job.progress import Progress

    run_dir = tmp_path / "run=1"
    run_dir.mkdir()
    rows = [{"path": "a.wav", "duration_s": 1800.0, "error": None}, {"path": "b.wav", "duration_s": 0.0, "error": "x"}]
    (run_dir / "part-00000.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / ".part-00001.json.crc").write_text("not a part file")
    p = Progress(cs, 4, quiet=True, run_dir=str(run_dir))
    assert p.line().startswith("sparkasr: 2/4 files, 0.500 h audio, 1 errors"), p.line()
    df = cs.range(2)
    assert p.counting(df) is df
    p._sock.close()


def test_quickstart_notebook_on_connect(connect_url, monkeypatch):
    """notebooks/01 as a Spark Connect user runs it (SPARK_REMOTE set; tests/test_notebooks.py runs
    it on a classic session)."""
    import nbformat
    from nbclient import NotebookClient

    from test_notebooks import _kernel_name

    monkeypatch.setenv("SPARK_REMOTE", connect_url)
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.delenv(FLAG)  # as a fresh kernel: pyspark sets it itself for SPARK_REMOTE
    path = REPO / "notebooks" / "01_quickstart_transcription.ipynb"
    nb = nbformat.read(path, as_version=4)
    t0 = time.time()
    NotebookClient(
        nb, kernel_name=_kernel_name(), timeout=300, startup_timeout=120, resources={"metadata": {"path": str(REPO)}}
    ).execute()
    outputs = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("Spark Connect" in str(o) for o in outputs), "the notebook says it runs on Spark Connect"
    print(f"\n[connect] {path.name} on Spark Connect: {time.time() - t0:.1f} s")
