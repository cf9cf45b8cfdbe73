"""Live progress of the batch job, from inside long files.

Spark's accumulators reach the driver only when a task ends, so a task transcribing one 2-hour file
would show nothing for its whole run. Engines therefore report, as each piece, window or segment
finishes, how far into its file they are, to a progress callback the Spark stage gives them
(:func:`advance`; the engines import nothing from here); the Spark stage sends those reports
from the Python workers to the driver as UDP datagrams (a few bytes each, fire and forget: a lost
or refused datagram only makes the progress line lag, never fails a task), to the address the
driver put in the job's ``sparkasr.progress`` local property. :class:`Progress`, on the driver,
listens there and prints a line every ``interval`` seconds: files done (as tasks end), audio hours done (from the reports, per file the furthest point reached), errors, speed and
an ETA from the audio still to do.

Files, errors and finished audio are counted from the records the job's tasks have committed
(each finished task's part file, read by the driver from the run's directory,
:class:`CommittedRecords`) wherever the driver can read that directory (a local or mounted
output, and always on Spark Connect, which has no accumulators); for a remote output on a
classic session, by accumulators fed by a pass over the records. On Connect the address goes to the tasks as a
session conf (:func:`sparkasr.spark.session.job_property`), and the in-file reports arrive where
the executors can reach this client (a server on this machine or its network), else the line
counts finished files only.

The same datagrams carry the workers' side of the job's profile (:func:`report_span`: reading
and decoding, model load, inference, per task); :class:`Phases` holds it with the driver's own
spans (listing, counts, the write, the current view...), each logged at INFO on the
``sparkasr.job`` logger as it ends.

Outside a Spark job (engines used directly, ``LightPipeline``) :func:`advance` does nothing.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

log = logging.getLogger("sparkasr.job")

PROPERTY = "sparkasr.progress"  # Spark local property: "host:port" of the driver's listener

_target: Optional[Tuple[str, int]] = None
_sock: Optional[socket.socket] = None


def advance(source: str, done_s: float, total_s: Optional[float] = None) -> None:
    """``source`` (a file) is transcribed up to ``done_s`` seconds from its start; ``total_s``: its
    length, when known. No-op unless a Spark task of the job is reporting (:func:`reporting`)."""
    if _target is None or _sock is None:
        return
    try:
        msg = json.dumps([source, round(float(done_s), 3), None if total_s is None else round(float(total_s), 3)])
        _sock.sendto(msg.encode("utf-8", "surrogatepass"), _target)
    except (OSError, ValueError, TypeError):
        pass  # progress is best effort


def report_span(name: str, seconds: float, count: int = 1) -> None:
    """A worker spent ``seconds`` on ``name`` (``count`` times): one datagram to the job's
    :class:`Phases`. No-op outside a reporting Spark task; best effort like :func:`advance`."""
    if _target is None or _sock is None:
        return
    try:
        msg = json.dumps({"span": name, "s": round(float(seconds), 4), "n": int(count)})
        _sock.sendto(msg.encode("utf-8"), _target)
    except (OSError, ValueError, TypeError):
        pass


class Phases:
    """Where a run's time goes: the driver's spans (wall seconds, summed per name, in the order
    first seen) and the workers' reports (:func:`report_span`: total seconds, count, longest).
    Cheap enough to be always on; each driver span is logged at INFO as it ends."""

    def __init__(self):
        self.driver: Dict[str, float] = {}
        self.workers: Dict[str, List[float]] = {}  # name -> [total_s, count, max_s]
        self._lock = threading.Lock()

    @contextmanager
    def span(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.driver[name] = self.driver.get(name, 0.0) + seconds
        log.info("phase %s: %.3f s", name, seconds)

    def add_worker(self, name: str, seconds: float, count: int = 1) -> None:
        with self._lock:
            v = self.workers.setdefault(name, [0.0, 0, 0.0])
            v[0] += seconds
            v[1] += count
            v[2] = max(v[2], seconds)

    def as_dict(self) -> Dict[str, Dict]:
        with self._lock:
            return {
                "driver_s": {k: round(v, 3) for k, v in self.driver.items()},
                "workers": {
                    k: {"total_s": round(v[0], 3), "count": v[1], "max_s": round(v[2], 3)}
                    for k, v in self.workers.items()
                },
            }

    def log_summary(self) -> None:
        log.info("phases %s", json.dumps(self.as_dict(), sort_keys=False))


@contextmanager
def reporting(address: Optional[str]) -> Iterator[None]:
    """Within the block, :func:`advance` sends to ``address`` (``host:port``; None: nothing)."""
    global _target, _sock
    if not address:
        yield
        return
    host, _, port = address.rpartition(":")
    try:
        target = (host, int(port))
        sock = _sock or socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    except (OSError, ValueError):
        yield
        return
    previous, _target, _sock = _target, target, sock
    try:
        yield
    finally:
        _target = previous


def task_address() -> Optional[str]:
    """The listener's address for the running Spark task (its job's local property), or None."""
    try:
        from pyspark import TaskContext

        tc = TaskContext.get()
        if tc is None:
            return None
        # classic: the job's local property; Spark Connect: the session conf of the same name
        return tc.getLocalProperty(PROPERTY) or tc.getLocalProperty("spark." + PROPERTY)
    except Exception:
        return None


class CommittedRecords:
    """The records the tasks have committed so far under ``pattern`` (a glob of ``part-*`` files:
    one run's, or every run's of an output), each file read once: a committed file never changes.
    :meth:`totals` for a run's progress line, :meth:`seconds` for a server's per-file progress."""

    def __init__(self, pattern: str, fmt: str):
        self.pattern = pattern
        self.fmt = fmt
        self._seen: Dict[str, List[Tuple[str, float, bool]]] = {}  # file: (input path, seconds, error)

    @classmethod
    def of_run(cls, run_dir: str, fmt: str) -> CommittedRecords:
        return cls(os.path.join(glob.escape(run_dir), "part-*") if run_dir else "", fmt)

    @classmethod
    def of_output(cls, output: str, fmt: str = "jsonl") -> CommittedRecords:
        return cls(os.path.join(glob.escape(output), "transcripts", "run=*", "part-*"), fmt)

    def _read(self, path: str) -> List[Tuple[str, float, bool]]:
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            t = pq.read_table(path, columns=["path", "duration_s", "error"]).to_pydict()
            return [(p, float(d or 0.0), e is not None) for p, d, e in zip(t["path"], t["duration_s"], t["error"])]
        with open(path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
        return [(r["path"], float(r.get("duration_s") or 0.0), r.get("error") is not None) for r in records]

    def _records(self) -> List[Tuple[str, float, bool]]:
        if self.pattern:
            for path in glob.glob(self.pattern):
                if path not in self._seen:
                    try:
                        self._seen[path] = self._read(path)
                    except (OSError, ValueError, KeyError):
                        pass  # being committed: read next time
        return [r for records in self._seen.values() for r in records]

    def totals(self) -> Tuple[int, float, int]:
        """Records, audio seconds and errors."""
        records = self._records()
        return len(records), sum(r[1] for r in records), sum(r[2] for r in records)

    def seconds(self) -> Dict[str, float]:
        """Audio seconds of each input path with a committed record."""
        return {path: secs for path, secs, _ in self._records()}


class _Counter:
    """A read-only stand-in for an accumulator (``.value``) backed by :class:`CommittedRecords`."""

    def __init__(self, records: CommittedRecords, index: int):
        self.records, self.index = records, index

    @property
    def value(self):
        return self.records.totals()[self.index]


class Progress:
    """The driver's side: files and errors counted as tasks end, a UDP listener for audio done inside
    files, and (unless ``quiet``) a line every ``interval`` seconds. Use as a context manager
    around the job's Spark action, with :meth:`counting` on its records and :attr:`address` set as
    the jobs' ``sparkasr.progress`` local property."""

    def __init__(
        self,
        spark,
        total: int,
        quiet: bool,
        interval: float = 10.0,
        run_dir: str = "",
        fmt: str = "jsonl",
        phases: Optional[Phases] = None,
    ):
        from ..paths import is_remote_uri, local_path
        from ..spark.session import is_connect, listener_host

        self.connect = is_connect(spark)
        # Counted from the run's committed records where this process can read them (Connect has no
        # accumulators; a local or mounted output needs no counting pass through Python workers:
        # accumulators and committed files both move when a task ends); else by accumulators.
        self.committed = self.connect or bool(run_dir and not is_remote_uri(run_dir))
        if self.committed:
            records = CommittedRecords.of_run(local_path(run_dir), fmt)
            self.files, self.audio, self.errors = (_Counter(records, i) for i in range(3))
        else:
            sc = spark.sparkContext
            self.files = sc.accumulator(0)
            self.audio = sc.accumulator(0.0)
            self.errors = sc.accumulator(0)
        self.total = total
        self.quiet = quiet
        self.interval = interval
        self.t0 = time.time()
        self.done: Dict[str, float] = {}  # file -> furthest point reported (s)
        self.lengths: Dict[str, float] = {}  # file -> its length (s), once a worker has decoded it
        self.reports = 0
        self.phases = phases
        self._lock = threading.Lock()
        self._stop = threading.Event()
        host = listener_host(spark)
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, 0))
        self._sock.settimeout(0.5)
        self.address = f"{host}:{self._sock.getsockname()[1]}"
        self._listener = threading.Thread(target=self._listen, name="sparkasr-progress", daemon=True)
        self._printer = threading.Thread(target=self._print_loop, name="sparkasr-progress-line", daemon=True)

    # -- reports from the workers ---------------------------------------------------------------
    def _listen(self) -> None:
        while True:  # once stopped, what already arrived is still read, up to the end marker
            try:
                data, _ = self._sock.recvfrom(65536)
                if not data:  # __exit__'s end marker: every report sent before the job ended is in
                    return
                msg = json.loads(data.decode("utf-8", "surrogatepass"))
                if isinstance(msg, dict):  # a worker's span (report_span)
                    if self.phases is not None:
                        self.phases.add_worker(str(msg["span"]), float(msg["s"]), int(msg.get("n", 1)))
                    continue
                source, done, total = msg
            except TimeoutError:
                if self._stop.is_set():
                    return
                continue
            except (OSError, ValueError, TypeError, KeyError):
                if self._stop.is_set():
                    return
                continue
            with self._lock:
                self.reports += 1
                if done is not None and done > self.done.get(source, 0.0):
                    self.done[source] = float(done)
                if total is not None and total > self.lengths.get(source, 0.0):
                    self.lengths[source] = float(total)

    def audio_done(self) -> float:
        """Seconds of audio transcribed so far: per file the furthest point reported (at most its
        length), or the finished records' durations when no report arrived."""
        with self._lock:
            live = sum(min(d, self.lengths.get(s, d)) for s, d in self.done.items())
        return max(live, self.audio.value)

    def line(self) -> str:
        done, errs = self.files.value, self.errors.value
        audio = self.audio_done()
        el = time.time() - self.t0
        rate = audio / el if el > 0 else 0.0
        with self._lock:
            known = dict(self.lengths)
        of = ""
        eta = float("nan")
        if known:
            seen = max(len(known), done)
            est = sum(known.values()) + max(self.total - seen, 0) * (sum(known.values()) / len(known))
            of = f" of {est / 3600:.3f}" if seen >= self.total else f" of ~{est / 3600:.3f}"
            if rate > 0:
                eta = max(est - audio, 0.0) / rate
        elif done:
            eta = el / done * (self.total - done)
        eta_s = "?" if eta != eta else f"{eta / 60:.1f} min"
        return (
            f"sparkasr: {done}/{self.total} files, {audio / 3600:.3f}{of} h audio, {errs} errors, "
            f"{rate:.1f}x real time, ETA {eta_s}"
        )

    def _print_loop(self) -> None:
        while not self._stop.wait(self.interval):
            print(self.line(), flush=True)

    def __enter__(self):
        self._listener.start()
        if not self.quiet:
            self._printer.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        # An empty datagram queued after the workers' reports ends the listener at once (else its
        # first quiet 0.5 s does).
        try:
            self._sock.sendto(b"", self._sock.getsockname()[:2])
        except OSError:
            pass
        self._listener.join(timeout=5)
        self._sock.close()

    def stop_printing(self) -> None:
        self._stop.set()  # the printer stops; the listener drains and stops too

    def counting(self, df):
        """Pass records through unchanged while counting them into the accumulators (a remote
        output on a classic session; otherwise the committed records are counted, and ``df`` is
        returned as it is)."""
        if self.committed:
            return df
        files, audio, errors = self.files, self.audio, self.errors

        def run(batches):
            for pdf in batches:
                files.add(len(pdf))
                audio.add(float(pdf["duration_s"].fillna(0).sum()))
                errors.add(int(pdf["error"].notna().sum()))
                yield pdf

        return df.mapInPandas(run, schema=df.schema)
