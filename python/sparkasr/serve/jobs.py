"""The server's async jobs: long audio submitted now and fetched later, kept on disk across restarts.

A job is an upload or a list of paths the server may read (:class:`ReadPolicy`: only files under
the directories the operator allows), transcribed at the lowest priority (the long lane's
background line, :meth:`~.scheduling.LongLane.add_background`: below every request). Its state
lives under ``DIR/<job id>/``:

* ``job.json``: what was asked (inputs, option values, model), written once at submission;
* ``upload/``: an uploaded file;
* ``records/<k>.json``: input ``k``'s record, in the batch job's record shape (``path``, ``text``,
  ``language``, ``language_probability``, ``duration_s``, ``chunks``, ``error``, ``model``,
  ``input_id``, ``config_id``), written atomically when the input is done;
* ``subtitles/<safe name>.srt|.vtt``: its subtitles by the batch job's cue rules and file names
  (:mod:`sparkasr.job.subtitles`).

An input with a record is done and never transcribed again; a server that stops (however it stops)
resumes each unfinished job at its first input without a record, so every input is transcribed
once and kept once. Progress (audio seconds done of the total, inputs done) is kept in memory,
within a long input too (the long lane's pieces).

With a :class:`~.spark_jobs.SparkJobRunner` (``--spark-remote URL``) a job of paths runs as the
batch job on that cluster instead (:mod:`.spark_jobs`): the job's directory is then also the batch
job's output directory, its records are the run's current view and its subtitles the batch job's.
An upload is still transcribed here (the cluster does not see this server's files).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..job.listing import input_id
from ..job.subtitles import cues_from_chunks, safe_name, to_srt, to_vtt
from ..records import AudioItem, Transcript
from .protocol import RequestError
from .scheduling import Job

log = logging.getLogger(__name__)

QUEUED, RUNNING, COMPLETED = "queued", "running", "completed"
JOB_ID = re.compile(r"^job_[0-9a-f]{32}$")
#: at most this many paths in one job
MAX_PATHS = 10_000


class ReadPolicy:
    """The files a job may name: regular files under one of ``allowed`` directories (symbolic
    links resolved first, so a link cannot lead out), given as local paths (no URI)."""

    def __init__(self, allowed: Sequence[str]):
        self.allowed = [os.path.realpath(os.path.expanduser(d)) for d in allowed]

    def check(self, path: Any) -> str:
        """``path`` resolved, or :class:`RequestError` (400 not a path, 403 outside, 404 missing)."""
        if not isinstance(path, str) or not path or "\x00" in path:
            raise RequestError(400, f"a path must be a non-empty string (got {json.dumps(path)[:80]})")
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path):
            raise RequestError(400, f"{path[:200]}: only local paths are read (no URI)")
        if not self.allowed:
            raise RequestError(403, "this server reads no paths: start it with --allow-read DIR")
        real = os.path.realpath(os.path.expanduser(path))
        if not any(os.path.commonpath([real, d]) == d for d in self.allowed):
            raise RequestError(403, f"{path[:200]}: outside the directories this server may read")
        if not os.path.isfile(real):
            raise RequestError(404, f"{path[:200]}: no such file")
        return real


def _duration(path: str) -> Optional[float]:
    """The file's length in seconds when its header says it (libsndfile formats), else None."""
    try:
        import soundfile as sf

        return float(sf.info(path).duration)
    except Exception:
        return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class JobState:
    """A job as the server keeps it: what was asked (``job.json``) and how far it got."""

    id: str
    dir: Path
    inputs: List[str]  # the files, resolved
    values: Dict[str, Any]  # the request's option values (by param name), over the server's
    created: float
    durations: List[Optional[float]] = field(default_factory=list)
    done: Dict[int, float] = field(default_factory=dict)  # input -> seconds done (in progress or finished)
    errors: int = 0
    started: Optional[float] = None
    finished: Optional[float] = None

    def record_path(self, k: int) -> Path:
        return self.dir / "records" / f"{k}.json"

    def has_record(self, k: int) -> bool:
        return self.record_path(k).is_file()

    @property
    def inputs_done(self) -> int:
        return sum(1 for k in range(len(self.inputs)) if self.has_record(k))

    @property
    def status(self) -> str:
        if self.inputs_done == len(self.inputs):
            return COMPLETED
        return RUNNING if self.started is not None else QUEUED

    def summary(self) -> Dict[str, Any]:
        known = [d for d in self.durations if d is not None]
        return {
            "id": self.id,
            "object": "transcription.job",
            "status": self.status,
            "created_at": int(self.created),
            "inputs": len(self.inputs),
            "progress": {
                "inputs_done": self.inputs_done,
                "inputs_total": len(self.inputs),
                "audio_seconds_done": round(sum(self.done.values()), 3),
                "audio_seconds_total": round(sum(known), 3),
                "audio_seconds_total_known": len(known) == len(self.inputs),
            },
            "errors": self.errors,
        }


class JobStore:
    """The jobs under ``root``: submission, the runner thread, status and results.

    ``service``: the :class:`~.service.ModelService` (its long lane runs the inputs);
    ``policy``: the files a job may name; ``spark``: a :class:`~.spark_jobs.SparkJobRunner` that
    runs the jobs of paths as the batch job (None: the long lane runs them)."""

    def __init__(self, root: str, service, policy: ReadPolicy, spark=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.service = service
        self.policy = policy
        self.spark = spark
        self.jobs: Dict[str, JobState] = {}
        self._pending: List[str] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.transcribed = 0  # inputs transcribed by this process (not those found done)
        self._load()

    # -- state on disk --------------------------------------------------------------------------

    def _load(self) -> None:
        for d in sorted(self.root.iterdir()):
            spec = d / "job.json"
            if not (JOB_ID.match(d.name) and spec.is_file()):
                continue
            try:
                doc = json.loads(spec.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.warning("job %s: unreadable job.json (%s): skipped", d.name, exc)
                continue
            job = JobState(d.name, d, doc["inputs"], doc["values"], doc["created"], list(doc["durations"]))
            for k in range(len(job.inputs)):
                if job.has_record(k):
                    rec = json.loads(job.record_path(k).read_text(encoding="utf-8"))
                    job.done[k] = float(rec.get("duration_s") or 0.0)
                    job.errors += bool(rec.get("error"))
            self.jobs[job.id] = job
            if job.status != COMPLETED:
                self._pending.append(job.id)
        self._pending.sort(key=lambda i: self.jobs[i].created)
        if self._pending:
            log.info("resuming %d unfinished job(s) from %s", len(self._pending), self.root)

    def submit(self, values: Dict[str, Any], paths: Sequence[Any] = (), upload: Optional[tuple] = None) -> JobState:
        """A new job over ``paths`` (checked by the policy) or ``upload`` (``(file name, bytes)``);
        ``values``: the request's option values. Written to disk before it is queued."""
        if upload is None:
            if not isinstance(paths, (list, tuple)) or not paths:
                raise RequestError(400, "'paths' must be a non-empty list of file paths")
            if len(paths) > MAX_PATHS:
                raise RequestError(400, f"at most {MAX_PATHS} paths in one job (got {len(paths)})")
            resolved = list(dict.fromkeys(self.policy.check(p) for p in paths))  # each file once
        job_id = "job_" + uuid.uuid4().hex
        d = self.root / job_id
        (d / "records").mkdir(parents=True)
        if upload is not None:
            (d / "upload").mkdir()
            ext = re.sub(r"[^A-Za-z0-9]", "", os.path.splitext(upload[0] or "")[1])[:10]
            name = safe_name(upload[0] or "upload") + (f".{ext}" if ext else "")
            target = d / "upload" / name
            target.write_bytes(upload[1])
            resolved = [str(target)]
        job = JobState(job_id, d, resolved, dict(values), time.time(), [_duration(p) for p in resolved])
        doc = {"inputs": job.inputs, "values": job.values, "created": job.created, "durations": job.durations}
        doc["model"] = self.service.model.name
        _write_atomic(d / "job.json", json.dumps(doc, indent=1))
        with self._cond:
            self.jobs[job_id] = job
            self._pending.append(job_id)
            self._cond.notify_all()
        return job

    def get(self, job_id: str) -> JobState:
        job = self.jobs.get(job_id) if JOB_ID.match(job_id or "") else None
        if job is None:
            raise RequestError(404, f"no job {job_id[:80]!r}")
        return job

    def records(self, job: JobState) -> List[Optional[Dict[str, Any]]]:
        return [
            json.loads(job.record_path(k).read_text(encoding="utf-8")) if job.has_record(k) else None
            for k in range(len(job.inputs))
        ]

    def subtitles(self, job: JobState, k: int, kind: str) -> str:
        if not 0 <= k < len(job.inputs):
            raise RequestError(400, f"input must be in 0..{len(job.inputs) - 1} (got {k})")
        if not job.has_record(k):
            raise RequestError(409, f"input {k} of {job.id} is not transcribed yet")
        path = job.dir / "subtitles" / f"{safe_name(job.inputs[k])}.{kind}"
        if not path.is_file():  # an input that failed, or had no speech
            return to_srt([]) if kind == "srt" else to_vtt([])
        return path.read_text(encoding="utf-8")

    # -- the runner -----------------------------------------------------------------------------

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._run, name="sparkasr-serve-jobs", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            self.service.ready.result()
        except Exception:
            return  # the model failed to load: /health says so; jobs stay on disk
        while not self._stop.is_set():
            with self._cond:
                while not self._pending and not self._stop.is_set():
                    self._cond.wait(0.5)
                if self._stop.is_set():
                    return
                job = self.jobs[self._pending[0]]
            try:
                if self.spark is not None and not (job.dir / "upload").is_dir():
                    self._run_spark_job(job)
                else:
                    self._run_job(job)
            except Exception as exc:  # its options no longer apply (another model), say: each input says so
                if self._stop.is_set():
                    return  # not recorded: resumed at the next start
                log.exception("job %s failed", job.id)
                for k, path in enumerate(job.inputs):
                    if not job.has_record(k):
                        item = AudioItem(None, source=path, error=f"{path}: job failed: {type(exc).__name__}: {exc}")
                        self._record(job, k, path, item, None, "")
            with self._cond:
                if self._pending and self._pending[0] == job.id and job.status == COMPLETED:
                    self._pending.pop(0)

    def _options(self, job: JobState):
        return self.service.options({**self.service.base, **job.values})

    def _run_job(self, job: JobState) -> None:
        from ..cells import INPUT_PATH, cell_items
        from ..job.run import config_id

        job.started = job.started or time.time()
        options = self._options(job)
        cfg = config_id(self.service.model.name, {**self.service.base, **job.values})
        for k, path in enumerate(job.inputs):
            if self._stop.is_set():
                return
            if job.has_record(k):
                continue
            (item,) = cell_items(path, INPUT_PATH, path)
            if item.error is None:
                job.durations[k] = item.duration_s
            t = self._transcribe(job, k, item, options) if item.error is None else None
            if self._stop.is_set():
                return  # not recorded: done again at the next start
            self._record(job, k, path, item, t, cfg)
        job.finished = time.time()

    def _run_spark_job(self, job: JobState) -> None:
        from .spark_jobs import RECORD_FIELDS, Stopped

        job.started = job.started or time.time()
        todo = [k for k in range(len(job.inputs)) if not job.has_record(k)]
        index = {path: k for k, path in enumerate(job.inputs)}

        def progress(seconds: Dict[str, float]) -> None:
            for path, s in seconds.items():
                k = index.get(path)
                if k is not None and not job.has_record(k):
                    job.done[k] = max(job.done.get(k, 0.0), s)

        params = {**self.service.base, **job.values}
        try:
            records = self.spark.run([job.inputs[k] for k in todo], str(job.dir), params, self._stop, progress)
        except Stopped:
            return
        for k in todo:
            path = job.inputs[k]
            record = records.get(path)
            if record is None:
                record = dict.fromkeys(RECORD_FIELDS)
                record.update(path=path, text="", chunks=[], duration_s=job.durations[k], input_id=input_id(path))
                record.update(
                    error=f"{path}: the Spark job gave no record for this input", model=self.spark.target.model
                )
            self._keep(job, k, record, subtitles=False)  # the batch job wrote them
        job.finished = time.time()

    def _transcribe(self, job: JobState, k: int, item, options) -> Transcript:
        def partial(piece: Transcript) -> None:
            job.done[k] = max(job.done.get(k, 0.0), piece.offset_s + piece.duration_s - item.offset_s)

        lane_job = Job((options, None), item, partial=partial)
        self.service.long_lane.add_background(lane_job)
        while True:
            try:
                return lane_job.future.result(timeout=0.5)
            except cf.TimeoutError:
                if self._stop.is_set():
                    lane_job.future.cancel()
                    return Transcript(error="stopped")
            except Exception as exc:
                return Transcript(error=f"model failed: {type(exc).__name__}: {exc}", duration_s=item.duration_s)

    def _record(self, job: JobState, k: int, path: str, item, t: Optional[Transcript], cfg: str) -> None:
        error = item.error if t is None else t.error
        chunks = [] if t is None else [c.as_dict() for c in t.chunks]
        record = {
            "path": path,
            "text": "" if t is None else t.text,
            "language": None if t is None else t.language,
            "language_probability": None if t is None else t.language_probability,
            "duration_s": item.duration_s if t is None else t.duration_s,
            "chunks": chunks,
            "error": error,
            "model": self.service.model.name,
            "input_id": input_id(path),
            "config_id": cfg,
        }
        self._keep(job, k, record)

    def _keep(self, job: JobState, k: int, record: Dict[str, Any], subtitles: bool = True) -> None:
        """Input ``k``'s record (and its subtitles) written: the input is done."""
        path, chunks, error = record["path"], record["chunks"], record.get("error")
        if subtitles and chunks and not error:
            cues = cues_from_chunks(chunks)
            sub = job.dir / "subtitles"
            sub.mkdir(exist_ok=True)
            name = safe_name(path)
            _write_atomic(sub / f"{name}.srt", to_srt(cues))
            _write_atomic(sub / f"{name}.vtt", to_vtt(cues))
        _write_atomic(job.record_path(k), json.dumps(record, ensure_ascii=False))  # last: the input is done
        job.done[k] = float(record.get("duration_s") or 0.0)
        job.errors += bool(error)
        self.transcribed += 1

    def info(self) -> Dict[str, Any]:
        return {"jobs": len(self.jobs), "pending": len(self._pending), "inputs_transcribed": self.transcribed}
