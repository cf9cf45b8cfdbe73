"""`sparkasr serve --jobs-dir`: async jobs on the vendored real clips: submit (paths, upload), poll
progress, fetch JSON/SRT/VTT, paths outside the allowed directories refused, and a server killed
mid-job and started again (nothing lost, nothing transcribed twice)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from serve_support import CommandServer, ThreadServer, wer
from sparkasr.records import AudioItem, Transcript
from sparkasr.serve.app import HttpLimits, create_app
from sparkasr.serve.jobs import JobStore, ReadPolicy
from sparkasr.serve.scheduling import Job as LaneJob
from sparkasr.serve.scheduling import LongLane, TurnGate

TIMEOUT = 300.0  # generous bound (the machine may be busy): hangs fail, slowness does not
TOKEN = "t0ken"
DATA = Path(__file__).resolve().parent / "data"
LIBRIVOX = sorted((DATA / "librivox").glob("*.wav"))


def _ref(wav: Path) -> str:
    return wav.with_suffix(".txt").read_text().strip()


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """The directory jobs may read: two clips, and a link that leads out of it."""
    d = tmp_path_factory.mktemp("allowed")
    for wav in LIBRIVOX[:2]:
        shutil.copy(wav, d / wav.name)
    os.symlink(LIBRIVOX[2], d / "escape.wav")
    return d


@pytest.fixture(scope="module")
def jobs_server(service, audio_dir, tmp_path_factory):
    store = JobStore(str(tmp_path_factory.mktemp("jobs")), service, ReadPolicy([str(audio_dir)]))
    store.start()
    srv = ThreadServer(create_app(service, HttpLimits(max_body_bytes=2 << 20, token=TOKEN), jobs=store))
    yield srv, store
    srv.close()
    store.stop()


def _auth(token=TOKEN):
    return {"authorization": f"Bearer {token}"}


def _wait_done(url: str, job_id: str, timeout: float = TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        s = httpx.get(f"{url}/jobs/{job_id}", headers=_auth(), timeout=TIMEOUT).json()
        seen.append(s["progress"]["audio_seconds_done"])
        if s["status"] == "completed":
            assert seen == sorted(seen)  # progress never goes back
            return s
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not done in {timeout} s: {s}")


def test_paths_job_submit_poll_fetch(jobs_server, audio_dir):
    srv, _ = jobs_server
    paths = [str(audio_dir / w.name) for w in LIBRIVOX[:2]]
    r = httpx.post(f"{srv.url}/jobs", json={"paths": paths + paths[:1], "language": "en"}, headers=_auth())
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["id"].startswith("job_") and job["status"] in ("queued", "running") and job["inputs"] == 2
    assert r.headers["location"] == f"/jobs/{job['id']}"
    total = sum(float(sf.info(p).duration) for p in paths)
    assert job["progress"]["audio_seconds_total"] == pytest.approx(total, abs=0.01)
    done = _wait_done(srv.url, job["id"])
    assert done["progress"]["inputs_done"] == 2 and done["errors"] == 0
    assert done["progress"]["audio_seconds_done"] == pytest.approx(total, abs=0.01)
    res = httpx.get(f"{srv.url}/jobs/{job['id']}/results", headers=_auth(), timeout=TIMEOUT).json()
    recs = res["records"]
    assert [r["path"] for r in recs] == [os.path.realpath(p) for p in paths]
    assert wer([_ref(w) for w in LIBRIVOX[:2]], [r["text"] for r in recs]) < 0.3
    assert all(r["model"] == "tiny.en" and len(r["input_id"]) == 40 and r["chunks"] for r in recs)
    srt = httpx.get(f"{srv.url}/jobs/{job['id']}/results?format=srt&input=1", headers=_auth()).text
    assert srt.startswith("1\n00:00:0") and "-->" in srt
    assert httpx.get(f"{srv.url}/jobs/{job['id']}/results?format=vtt", headers=_auth()).status_code == 400
    listed = httpx.get(f"{srv.url}/jobs", headers=_auth()).json()["data"]
    assert job["id"] in [j["id"] for j in listed]


def test_upload_job(jobs_server):
    srv, store = jobs_server
    wav = LIBRIVOX[3]
    r = httpx.post(
        f"{srv.url}/jobs",
        files={"file": ("../../evil name.wav", wav.read_bytes(), "audio/wav")},
        data={"model": "tiny.en", "temperature": "0"},
        headers=_auth(),
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    _wait_done(srv.url, job_id)
    uploaded = list((store.root / job_id / "upload").iterdir())
    assert len(uploaded) == 1 and uploaded[0].name.startswith("evil_name-")  # no traversal
    vtt = httpx.get(f"{srv.url}/jobs/{job_id}/results?format=vtt", headers=_auth()).text
    assert vtt.startswith("WEBVTT\n\n")
    text = " ".join(line for line in vtt.splitlines()[2:] if line and "-->" not in line)
    assert wer([_ref(wav)], [text]) < 0.3


def test_paths_outside_the_allowed_directories_are_refused(jobs_server, audio_dir, service, tmp_path):
    srv, _ = jobs_server
    cases = {
        "/etc/passwd": 403,
        str(audio_dir / "escape.wav"): 403,  # a link out of the directory
        str(audio_dir / ".." / LIBRIVOX[2].name): 403,
        str(audio_dir / "missing.wav"): 404,
        "file:///etc/passwd": 400,
        "s3a://bucket/a.wav": 400,
    }
    for path, status in cases.items():
        r = httpx.post(f"{srv.url}/jobs", json={"paths": [path]}, headers=_auth())
        assert r.status_code == status, (path, r.text)
        assert set(r.json()) == {"error"}
    for body, status in [
        ({"paths": []}, 400),
        ({"paths": "a.wav"}, 400),
        ({"paths": [str(audio_dir / LIBRIVOX[0].name)], "model": "whisper-1"}, 404),
        ({"paths": [str(audio_dir / LIBRIVOX[0].name)], "beam": 3}, 400),
        ({"paths": [str(audio_dir / LIBRIVOX[0].name)], "language": "de"}, 400),
        ({"paths": [str(audio_dir / LIBRIVOX[0].name)], "temperature": 7}, 400),
    ]:
        assert httpx.post(f"{srv.url}/jobs", json=body, headers=_auth()).status_code == status, body
    assert httpx.post(f"{srv.url}/jobs", json={"paths": []}, headers=_auth("no")).status_code == 403
    assert httpx.get(f"{srv.url}/jobs/job_{'0' * 32}", headers=_auth()).status_code == 404
    assert httpx.get(f"{srv.url}/jobs/..%2F..%2Fetc", headers=_auth()).status_code == 404
    # a server without --allow-read reads no paths at all
    bare = JobStore(str(tmp_path / "jobs"), service, ReadPolicy([]))
    with pytest.raises(Exception, match="reads no paths"):
        bare.submit({}, [str(audio_dir / LIBRIVOX[0].name)])


def test_paths_job_runs_as_the_batch_job_on_spark(spark, service, audio_dir, tmp_path):
    """`--spark-remote local[1]`: a job of paths runs as the batch job (run_transcription) through
    the same job API; its records are the run's current view and its subtitles the batch job's, in
    the job's directory. (In the test process the shared session already exists, so the runner's
    builder, `.master("local[1]")`, gets it, as any Spark app in a process with a session does.)"""
    from sparkasr.job.subtitles import safe_name
    from sparkasr.serve.spark_jobs import SparkJobRunner, SparkTarget

    runner = SparkJobRunner(SparkTarget("local[1]"))
    store = JobStore(str(tmp_path / "jobs"), service, ReadPolicy([str(audio_dir)]), spark=runner)
    store.start()
    srv = ThreadServer(create_app(service, HttpLimits(token=TOKEN), jobs=store))
    try:
        paths = [os.path.realpath(audio_dir / w.name) for w in LIBRIVOX[:2]]
        r = httpx.post(f"{srv.url}/jobs", json={"paths": paths, "language": "en"}, headers=_auth(), timeout=TIMEOUT)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        done = _wait_done(srv.url, job_id)
        assert runner.session() is spark
        assert done["progress"]["inputs_done"] == 2 and done["errors"] == 0
        total = sum(float(sf.info(p).duration) for p in paths)
        assert done["progress"]["audio_seconds_done"] == pytest.approx(total, abs=0.05)
        recs = httpx.get(f"{srv.url}/jobs/{job_id}/results", headers=_auth(), timeout=TIMEOUT).json()["records"]
        assert [r["path"] for r in recs] == paths
        assert wer([_ref(w) for w in LIBRIVOX[:2]], [r["text"] for r in recs]) < 0.3
        assert all(r["model"] == "tiny.en" and len(r["config_id"]) > 8 and r["chunks"] for r in recs)
        out = store.root / job_id  # the batch job's output directory
        assert list(out.glob("transcripts/run=*/part-*")) and (out / "current").is_dir()
        srt = httpx.get(f"{srv.url}/jobs/{job_id}/results?format=srt&input=1", headers=_auth()).text
        assert srt == (out / "subtitles" / f"{safe_name(paths[1])}.srt").read_text() and "-->" in srt
    finally:
        srv.close()
        store.stop()


def test_killed_server_resumes_without_losing_or_repeating(tmp_path):
    """The real command, killed (SIGKILL) mid-job and started again on the same --jobs-dir. The
    job's second input is a 35-s file, so the kill lands while it is being transcribed."""
    audio = tmp_path / "audio"
    audio.mkdir()
    short = [LIBRIVOX[1], LIBRIVOX[4]]
    for wav in short:
        shutil.copy(wav, audio / wav.name)
    gap = np.zeros(8000, dtype=np.float32)
    long_audio = np.concatenate([np.concatenate([sf.read(w, dtype="float32")[0], gap]) for w in LIBRIVOX * 2])
    assert len(long_audio) / 16000 > 30
    sf.write(audio / "long.wav", long_audio, 16000)
    paths = [str(audio / short[0].name), str(audio / "long.wav"), str(audio / short[1].name)]
    jobs_dir = tmp_path / "jobs"
    args = ["--jobs-dir", str(jobs_dir), "--allow-read", str(audio), "--temperature", "0", "--no-demo"]
    args += ["--token", TOKEN]
    first = CommandServer(args, log=tmp_path / "first.log")
    try:
        job_id = httpx.post(f"{first.url}/jobs", json={"paths": paths}, headers=_auth()).json()["id"]
        deadline = time.monotonic() + TIMEOUT
        while httpx.get(f"{first.url}/jobs/{job_id}", headers=_auth()).json()["progress"]["inputs_done"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first.proc.kill()
        first.proc.wait(30)
    finally:
        first.close()
    records = jobs_dir / job_id / "records"
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in records.glob("*.json")}
    assert sorted(before) == ["0.json"]  # killed during the long input
    second = CommandServer(args, log=tmp_path / "second.log")
    try:
        done = _wait_done(second.url, job_id)
        assert done["progress"]["inputs_done"] == len(paths)
        health = httpx.get(f"{second.url}/health").json()
        assert health["jobs"]["inputs_transcribed"] == len(paths) - 1  # nothing twice
    finally:
        second.close()
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in records.glob("*.json")}
    assert sorted(after) == sorted(f"{k}.json" for k in range(len(paths)))  # nothing lost
    assert after["0.json"] == before["0.json"]  # what was done stays as it was
    texts = [json.loads(after[f"{k}.json"][1])["text"] for k in range(len(paths))]
    refs = [_ref(short[0]), " ".join(_ref(w) for w in LIBRIVOX * 2), _ref(short[1])]
    assert wer(refs, texts) < 0.3


class _StepEngine:
    """Logs each step (``<source>:<k>``) and yields a piece transcript per step."""

    def __init__(self, log, steps=3):
        self.log, self.steps = log, steps

    def transcribe_steps(self, item, around, group=None):
        for k in range(self.steps):
            with around():
                self.log.append(f"{item.source}:{k}")
            yield Transcript(text=f"{item.source}{k}", offset_s=float(k), duration_s=1.0)
        return Transcript(text=item.source, source=item.source)


def test_background_jobs_run_below_long_requests():
    """The long lane steps an async job's input only when no long request waits; each step's
    piece reaches the job's progress."""
    log, pieces = [], []
    lane = LongLane(TurnGate(), lambda *key: _StepEngine(log))
    job = LaneJob(("o", None), AudioItem(np.zeros(16000, np.float32), "job"), partial=lambda p: pieces.append(p.text))
    long_request = LaneJob(("o", None), AudioItem(np.zeros(16000, np.float32), "request"))
    lane.add_background(job)
    lane.add(long_request)
    assert len(lane) == 1 and lane.background == 1
    lane.start()
    try:
        assert long_request.future.result(TIMEOUT).text == "request"
        assert job.future.result(TIMEOUT).text == "job"
    finally:
        lane.stop()
    assert log == ["request:0", "request:1", "request:2", "job:0", "job:1", "job:2"]
    assert pieces == ["job0", "job1", "job2"] and lane.background == 0


def test_a_job_that_no_longer_applies_ends_with_error_records(service, tmp_path):
    """A job resumed by a server whose model cannot honour it (here: language de on tiny.en) gives
    each input an error record, and the jobs after it still run."""
    root = tmp_path / "jobs"
    bad = root / ("job_" + "a" * 32)
    (bad / "records").mkdir(parents=True)
    spec = {"inputs": [str(LIBRIVOX[1])], "values": {"language": "de"}, "created": 1.0, "durations": [None]}
    (bad / "job.json").write_text(json.dumps(spec))
    store = JobStore(str(root), service, ReadPolicy([str(DATA)]))
    assert store.get(bad.name).status == "queued"
    good = store.submit({"timestamps": "word"}, [str(LIBRIVOX[1])])
    store.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while store.get(good.id).status != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        store.stop()
    (failed,) = store.records(store.get(bad.name))
    assert "English-only" in failed["error"] and store.get(bad.name).errors == 1
    (ok,) = store.records(good)
    assert ok["error"] is None and wer([_ref(LIBRIVOX[1])], [ok["text"]]) < 0.3


def test_allow_read_and_spark_remote_need_a_jobs_dir():
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "python"))
    out = subprocess.run(
        [sys.executable, "-m", "sparkasr.cli", "serve", "--allow-read", str(DATA), "--no-demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
    )
    assert out.returncode == 2 and "--allow-read needs --jobs-dir" in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "sparkasr.cli", "serve", "--spark-remote", "local[1]", "--no-demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
    )
    assert out.returncode == 2 and "--spark-remote needs --jobs-dir" in out.stderr
