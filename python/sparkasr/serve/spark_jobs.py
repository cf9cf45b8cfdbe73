"""The server's async jobs of paths run as the batch job on Spark (``sparkasr serve --spark-remote URL``).

:class:`SparkJobRunner` runs a job's files through :func:`sparkasr.job.run.run_transcription`, the
machinery of ``sparkasr transcribe``, on a session built once, in the jobs' runner thread: Spark
Connect for an ``sc://`` URL (``SparkSession.builder.remote``), else a master URL
(``.master``: ``local[4]``, ``spark://host:7077``, ``yarn``...). The job's directory is the batch
job's output directory (its ``transcripts/``, ``current/`` and ``subtitles/``, beside the server's
``job.json`` and ``records/``), so a job stopped with the server resumes there as the batch job
does: the inputs with a record for the same model and options are not transcribed again. The
records come from the run's current view; progress (audio seconds per input) from the records each
Spark task has committed, read as the tasks finish.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..job.run import RECORD_COLUMNS

log = logging.getLogger(__name__)

#: how often the committed records are read for progress (seconds)
POLL_S = 0.5
#: the record fields the jobs keep: the batch job's record shape without its speakers and ``run``
RECORD_FIELDS = tuple(c for c in RECORD_COLUMNS if c not in ("speakers", "speaker_embeddings", "run"))


def is_connect_url(url: str) -> bool:
    return url.startswith("sc://")


@dataclass(frozen=True)
class SparkTarget:
    """Where the jobs run: ``url`` (``sc://...`` or a master URL) and the model as
    ``sparkasr transcribe --model`` names it (None: the embedded default), so the executors
    resolve it themselves."""

    url: str
    model: Optional[str] = None

    def __post_init__(self):
        if not self.url or not self.url.strip():
            raise ValueError("--spark-remote needs a URL: sc://host:15002 or a master URL such as local[4]")


class Stopped(Exception):
    """The server stopped while the Spark job ran: nothing is recorded, the job resumes at the next start."""


class SparkJobRunner:
    """Runs jobs' files as the batch job on :attr:`target`'s cluster (one at a time: the jobs'
    runner thread calls :meth:`run`)."""

    def __init__(self, target: SparkTarget):
        self.target = target
        self._spark = None
        self._lock = threading.Lock()

    def session(self):
        """The Spark session, built at the first job (Spark's start is not the server's)."""
        with self._lock:
            if self._spark is None:
                from ..cli import _spark_session

                url = self.target.url
                if is_connect_url(url):
                    self._spark = _spark_session(None, app="sparkasr-serve-jobs", remote=url)
                else:
                    self._spark = _spark_session(url, app="sparkasr-serve-jobs")
            return self._spark

    def cancel(self) -> None:
        """Cancel the session's running Spark jobs (the server is stopping)."""
        if self._spark is not None:
            from ..spark.session import cancel_all

            try:
                cancel_all(self._spark)
            except Exception:  # the session is going away anyway
                log.debug("cancelling the Spark jobs failed", exc_info=True)

    def run(
        self,
        inputs: Sequence[str],
        output: str,
        params: Dict[str, Any],
        stop: threading.Event,
        progress: Callable[[Dict[str, float]], None],
    ) -> Dict[str, Dict[str, Any]]:
        """Transcribe ``inputs`` (local paths the cluster sees) into ``output`` with the stage
        ``params``; the records of the current view by path. ``progress(seconds by path)`` is
        called as Spark tasks commit; :class:`Stopped` when ``stop`` is set meanwhile."""
        from ..job.progress import CommittedRecords
        from ..job.run import run_transcription

        spark = self.session()
        done = threading.Event()
        committed = CommittedRecords.of_output(output)

        def poll() -> None:
            while not done.wait(POLL_S):
                if stop.is_set():
                    self.cancel()
                    return
                progress(committed.seconds())

        poller = threading.Thread(target=poll, name="sparkasr-serve-spark-progress", daemon=True)
        poller.start()
        try:
            res = run_transcription(
                spark,
                list(inputs),
                output,
                model=self.target.model,
                fmt="jsonl",
                whisper_params=params,
                report=False,
                subtitles=("srt", "vtt"),
            )
            rows: List[Any] = res.records.select(*RECORD_FIELDS).collect()
        except Exception:
            if stop.is_set():
                raise Stopped() from None
            raise
        finally:
            done.set()
            poller.join()
        plain = [r.asDict(recursive=True) for r in rows]  # nested Rows as dicts: JSON-ready
        return {d["path"]: {k: d[k] for k in RECORD_FIELDS} for d in plain}
