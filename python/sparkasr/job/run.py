"""The batch transcription job behind ``sparkasr transcribe`` (and the spark-submit entry point).

Inputs: audio files, directories (recursive), globs, any Hadoop URI, or manifests
(``.csv``/``.tsv``/``.jsonl``/``.json``/``.parquet`` with a ``path`` column; other columns, e.g.
``reference`` or ``speaker``, are carried through). Output: one record per input file::

    path, text, language, language_probability, duration_s,
    chunks: array<struct<text: string, timestamp: array<double>>>, error, model, <carried columns>,
    input_id, config_id

With ``diarize`` (:mod:`sparkasr.diarize`): ``speakers: array<struct<start, end, speaker>>`` after
``chunks``, each chunk a ``speaker``, and labels shared by one person across the run's files
(``speakers_across_files``: the stages' output is persisted, SpeakerIdentity fits on it, and the
records are written from it; an interrupted diarized run keeps nothing). ``speaker_embeddings``
(each speaker's voiceprint) only when asked.

Local inputs are listed by the driver (:mod:`sparkasr.job.listing`) and read by the Python workers
themselves (path mode: bounded memory, no audio bytes through the JVM); other URIs go through
Spark's ``binaryFile`` source. Record paths have one plain form (:func:`~sparkasr.job.listing.plain_path`).
The output directory's layout, lock and current view: :mod:`sparkasr.job.output`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..audio import AUDIO_EXTENSIONS
from ..paths import is_remote_uri, local_path
from .listing import Listing, file_id, has_glob, input_id, list_local, plain_path
from .output import (
    RUNS,
    OutputLock,
    hadoop_uri,
    new_run_id,
    newest_per_input,
    read_records,
    run_files,
    write_current,
)
from .progress import Phases
from .tasks import DriverRows, frame_in_tasks, spread_rows

MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
# Columns of a record that are not carried input columns
RECORD_COLUMNS = (
    "path",
    "text",
    "language",
    "language_probability",
    "duration_s",
    "chunks",
    "speakers",
    "speaker_embeddings",
    "error",
    "model",
    "input_id",
    "config_id",
    "run",
)


class SetupError(Exception):
    """A problem that stops the job before any work starts (bad input set, model, output dir)."""


class Interrupted(Exception):
    """The run was stopped by a signal; what finished before it is kept (``kept`` records under
    ``run_dir``), and a re-run transcribes the rest."""

    def __init__(self, signame: str, kept: int, total: int, run_dir: str):
        super().__init__(signame)
        self.signame, self.kept, self.total, self.run_dir = signame, kept, total, run_dir

    def line(self) -> str:
        if not self.total:
            return f"sparkasr: interrupted by {self.signame} before any file was transcribed; nothing was written"
        left = self.total - self.kept
        return (
            f"sparkasr: interrupted by {self.signame}: kept {self.kept} of the {self.total} files this run was "
            f"transcribing ({self.run_dir}); run the same command again to transcribe the other {left}"
        )


@dataclass
class JobResult:
    output_dir: str
    n_inputs: int
    n_errors: int
    audio_s: float
    wall_s: float
    records_path: str
    metrics: Optional[Dict[str, Any]] = None
    records: Any = None  # the current view: one record per input of this run (DataFrame)
    processed: int = 0  # inputs transcribed by this run
    skipped: int = 0  # inputs already done by earlier runs (resume)
    kept_errors: int = 0  # error records of earlier runs kept (not retried) in the current view
    current_path: str = ""  # DIR/current
    hidden_note: str = ""  # what the listing left out, and why ('' when nothing)
    phases: Dict[str, Any] = dataclasses.field(default_factory=dict)  # Phases.as_dict(): where the time went


def is_manifest(p: str) -> bool:
    return p.lower().endswith(MANIFEST_SUFFIXES) and not has_glob(p)


def check_manifest_columns(path: str) -> None:
    """For a local manifest, check the ``path`` column before Spark starts."""
    if is_remote_uri(path):
        return
    path = local_path(path)
    low = path.lower()
    try:
        if low.endswith(".parquet"):
            import pyarrow.parquet as pq

            cols = pq.read_schema(path).names
        elif low.endswith((".jsonl", ".json")):
            with open(path, encoding="utf-8") as f:
                first = next((line for line in f if line.strip()), "{}")
            cols = list(json.loads(first).keys())
        else:
            with open(path, encoding="utf-8") as f:
                header = f.readline().rstrip("\r\n")
            cols = [c.strip().strip('"') for c in header.split("\t" if low.endswith(".tsv") else ",")]
    except (OSError, ValueError) as exc:
        raise SetupError(f"manifest {path} cannot be read: {exc}") from None
    if "path" not in cols:
        raise SetupError(f"manifest {path} has no 'path' column (columns: {', '.join(cols) or 'none'})")


def check_inputs(inputs: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Split inputs into (audio paths/globs/dirs, manifests); fail early on missing local inputs."""
    if not inputs:
        raise SetupError("no INPUT given")
    audio, manifests = [], []
    for p in inputs:
        if is_manifest(p):
            if not is_remote_uri(p) and not os.path.isfile(local_path(p)):
                raise SetupError(f"manifest {p} does not exist")
            check_manifest_columns(p)
            manifests.append(p)
            continue
        if not is_remote_uri(p):
            local = local_path(p)
            if has_glob(local) and not os.path.exists(os.path.expanduser(local)):
                import glob

                if not glob.glob(os.path.expanduser(local), recursive=True):
                    raise SetupError(f"glob {p} matches nothing")
            elif not os.path.exists(os.path.expanduser(local)):
                raise SetupError(f"input {p} does not exist")
        audio.append(p)
    return audio, manifests


def check_output(output: str, overwrite: bool = True) -> None:
    """Create the output directory and prove it is writable, before Spark starts."""
    if is_remote_uri(output):
        return  # checked by Hadoop when writing
    local = local_path(output)
    if os.path.exists(local) and not os.path.isdir(local):
        raise SetupError(f"output {output} exists and is not a directory")
    probe = os.path.join(local, ".sparkasr-write-test")
    try:
        os.makedirs(local, exist_ok=True)
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as exc:
        raise SetupError(f"output directory {output} is not writable ({exc.strerror or exc})") from None


def refuse_remote_output_on_connect(output: str) -> None:
    """A Spark Connect client cannot lock, list or rename files on a Hadoop URI: refuse it before
    the session starts (see :mod:`sparkasr.job.output`)."""
    if is_remote_uri(output):
        raise SetupError(
            f"output {output} is a Hadoop URI, which a Spark Connect client cannot lock, list or rename; with "
            "--remote (or SPARK_REMOTE) use a directory this machine and the server both see (a shared mount, "
            "/Volumes/... or /dbfs/... on Databricks)"
        )


def check_output_shared(spark, output: str) -> None:
    """Connect: the server must see the output directory this client locks and lists, and
    writes the current view in: a token written here is read back through the session."""
    import uuid

    from pyspark.sql.utils import AnalysisException

    refuse_remote_output_on_connect(output)
    token = uuid.uuid4().hex
    probe = os.path.join(local_path(output), f"sparkasr-visible-{token}.txt")
    with open(probe, "w") as f:
        f.write(token)
    try:
        seen = [r[0] for r in spark.read.text(hadoop_uri(probe)).collect()]
    except AnalysisException:
        seen = []
    finally:
        os.remove(probe)
    if seen != [token]:
        raise SetupError(
            f"output {output} is a directory of this machine that the Spark Connect server does not see; use a "
            "directory both see (a shared mount, /Volumes/... or /dbfs/... on Databricks)"
        )


def check_inputs_visible(spark, paths: Sequence[str]) -> None:
    """Connect: the local files this client listed (audio, manifests) must be the server's too;
    the first of each kind is looked up through the session (its listing only, no content)."""
    from pyspark.sql.utils import AnalysisException

    probes = [local_path(p) for p in paths if p]
    if not probes:
        return
    try:
        rows = spark.read.format("binaryFile").load([hadoop_uri(p) for p in probes]).select("path", "length").collect()
    except AnalysisException:
        rows = []
    seen = {local_path(r["path"]): int(r["length"]) for r in rows}
    for p in probes:
        if seen.get(os.path.abspath(p)) != os.path.getsize(p):
            raise SetupError(
                f"input {p} is a file of this machine that the Spark Connect server does not see; give inputs by a "
                "path both see (a shared mount, /Volumes/... or /dbfs/... on Databricks) or by a URI the cluster reads"
            )


def _read_manifest(spark, path: str):
    from pyspark.sql import functions as F

    low = path.lower()
    uri = hadoop_uri(path)
    if low.endswith(".parquet"):
        df = spark.read.parquet(uri)
    elif low.endswith((".jsonl", ".json")):
        df = spark.read.json(uri)
    else:
        # RFC 4180 quoting, as Python's csv, pandas and spreadsheets write it: a quote inside a quoted
        # field is doubled ("a ""quoted"" word"), and a quoted field may hold line breaks. (Spark's
        # default escape is a backslash: a doubled quote split the row and lost the file's record.)
        df = (
            spark.read.option("header", "true")
            .option("sep", "\t" if low.endswith(".tsv") else ",")
            .option("quote", '"')
            .option("escape", '"')
            .option("multiLine", "true")
            .csv(uri)
        )
    if "path" not in df.columns:
        raise SetupError(f"manifest {path} has no 'path' column (columns: {', '.join(df.columns)})")
    # Relative paths are relative to the manifest's directory (made plain in _stat_inputs).
    base = plain_path(path).rsplit("/", 1)[0] or "/"
    return df.withColumn("path", F.col("path").cast("string")).withColumn("_manifest_dir", F.lit(base))


@dataclass
class Inputs:
    """The run's inputs: ``rows`` when the driver built them all (then ``frame`` is None), else
    ``frame`` (``path``, ``input_id``, ``content`` for non-local URIs, carried columns); how many
    (``count``), whether their ids are all distinct (``distinct``), and whether ``frame`` is
    cached (to unpersist at the end)."""

    frame: Any
    count: int
    distinct: bool
    cached: bool
    rows: Optional[DriverRows] = None

    def ids_frame(self, spark):
        """The inputs' distinct ids, as a frame (for a semi-join)."""
        df = self.frame if self.rows is None else self.rows.frame(spark)
        return df.select("input_id").distinct()


def build_input_frame(spark, audio: Sequence[str], manifests: Sequence[str], listing: Optional[Listing] = None):
    """One DataFrame of the inputs Spark reads (without ``input_id``): ``path`` (+ ``content`` for
    non-local URIs) + carried columns; the local files of ``audio`` only when ``listing`` is None
    (a listing's files are made into rows by :func:`build_inputs`, ids and all, on the driver)."""
    from ..spark.reader import read_binary

    frames = []
    remote = [p for p in audio if is_remote_uri(p)]
    local = [p for p in audio if not is_remote_uri(p)]
    if remote and manifests:
        raise SetupError("remote audio URIs and manifests cannot be mixed in one run; run them separately")
    if remote:
        # Not readable by the Python workers: binaryFile brings the bytes (Spark's file index
        # lists them, and hides names starting with '_' or '.').
        frames.append(read_binary(spark, remote).select("path", "content"))
    if local and listing is None:
        files = list_local(local).files
        if files:
            frames.append(spark.createDataFrame([(f,) for f in files], "path string"))
    for m in manifests:
        frames.append(_read_manifest(spark, m))
    if not frames:
        return None
    df = frames[0]
    for f in frames[1:]:
        df = df.unionByName(f, allowMissingColumns=True)
    return df


#: local CSV/TSV manifests up to this many rows are read by the driver itself (no Spark job)
MANIFEST_ROWS_ON_DRIVER = 200_000


def read_csv_manifest(path: str) -> Optional[Tuple[List[str], List[list]]]:
    """A local CSV/TSV manifest read here as Spark's reader reads it with the job's options
    (:func:`_read_manifest`: a header, every column a string, an empty field null, RFC 4180
    quoting with doubled quotes and line breaks inside quoted fields, blank lines skipped):
    ``(columns, rows)``, or None to leave it to Spark (a header Spark would rename: an empty or
    repeated name; more than :data:`MANIFEST_ROWS_ON_DRIVER` rows)."""
    import csv

    sep = "\t" if path.lower().endswith(".tsv") else ","
    with open(local_path(path), newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=sep, quotechar='"', doublequote=True)
        names = next(reader, None)
        if not names or any(not n for n in names) or len(set(names)) != len(names):
            return None
        rows = []
        for rec in reader:
            if not rec:
                continue
            if len(rows) >= MANIFEST_ROWS_ON_DRIVER:
                return None
            rec = rec[: len(names)] + [""] * (len(names) - len(rec))
            rows.append([v if v != "" else None for v in rec])
    return names, rows


def _manifest_rows(path: str) -> Optional[DriverRows]:
    """A local CSV/TSV manifest's rows as the run's inputs (paths made plain against the manifest's
    directory, ids and sizes stat-ed here), or None (see :func:`read_csv_manifest`)."""
    read = read_csv_manifest(path)
    if read is None:
        return None
    names, rows = read
    at = names.index("path")
    base = plain_path(path).rsplit("/", 1)[0] or "/"
    out, sizes = [], []
    for r in rows:
        p = r[at]
        r[at] = p = plain_path(p, base) if p is not None else None
        i, size = file_id(p)
        out.append((*r, i))
        sizes.append(size)
    return DriverRows((*names, "input_id"), out, sizes)


def build_inputs(spark, audio: Sequence[str], manifests: Sequence[str], listing: Listing) -> Optional[Inputs]:
    """The run's :class:`Inputs`, or None when there are none. Listed local files and local CSV/TSV
    manifests are read, stat-ed and counted here, on the driver (no Spark job); other manifests and
    remote URIs are read by Spark, stat-ed by the workers (:func:`_stat_inputs`), cached and counted
    in one job."""
    from pyspark.sql import functions as F

    parts: List[DriverRows] = []
    if listing.files:  # listed once: plain paths, each once
        ids = [file_id(f) for f in listing.files]
        parts.append(
            DriverRows(("path", "input_id"), [(f, i) for f, (i, _) in zip(listing.files, ids)], [n for _, n in ids])
        )
    by_spark = []
    for m in manifests:
        here = None if is_remote_uri(m) or not m.lower().endswith((".csv", ".tsv")) else _manifest_rows(m)
        if here is None:
            by_spark.append(m)
        else:
            parts.append(here)
    rows = DriverRows.union(parts) if parts else None
    other = build_input_frame(spark, audio, by_spark, listing)
    if other is None:
        if rows is None:
            return None
        ids = rows.ids()
        return Inputs(None, len(ids), len(set(ids)) == len(ids), False, rows)
    frame = _stat_inputs(other)
    if rows is not None:
        frame = rows.frame(spark).unionByName(frame, allowMissingColumns=True)
    frame = frame.cache()  # stat-ed once: the run's inputs, for the current view too
    (row,) = frame.agg(F.count(F.lit(1)).alias("n"), F.countDistinct("input_id").alias("ids")).collect()
    return Inputs(frame, int(row["n"]), int(row["n"]) == int(row["ids"]), True)


def _stat_inputs(df):
    """Paths in their plain form (:func:`~sparkasr.job.listing.plain_path`; a manifest's relative paths
    against its directory) and ``input_id`` (sha1 of path + size + mtime; path alone when the file
    cannot be stat-ed)."""
    from pyspark.sql.types import StringType, StructField, StructType

    fields = [f for f in df.schema.fields if f.name != "_manifest_dir"]
    schema = StructType(fields + [StructField("input_id", StringType(), False)])
    names = [f.name for f in fields]
    has_meta = "length" in df.columns and "modificationTime" in df.columns
    has_base = "_manifest_dir" in df.columns

    def run(batches):
        for pdf in batches:
            ids, paths = [], []
            bases = pdf["_manifest_dir"].tolist() if has_base else [None] * len(pdf)
            for i, (p, base) in enumerate(zip(pdf["path"].tolist(), bases)):
                if p is not None and not has_meta:
                    p = plain_path(str(p), base if isinstance(base, str) else None)
                paths.append(p)
                if has_meta:
                    ids.append(input_id(p, pdf["length"].iloc[i], pdf["modificationTime"].iloc[i]))
                else:
                    ids.append(input_id(p))
            pdf = pdf[names].copy()
            pdf["path"] = paths
            pdf["input_id"] = ids
            yield pdf

    return df.mapInPandas(run, schema=schema)


def with_subtitle_timestamps(params: Dict[str, Any], subtitles: Sequence[str]) -> Dict[str, Any]:
    """The stage params for a run that writes ``subtitles``: cues are cut at pauses and punctuation
    by word times, so timestamps default to ``word`` (an explicit ``segment`` is honoured: its
    segments are shared out among their words by length); ``none`` cannot give subtitles."""
    if not subtitles:
        return params
    if params.get("timestamps") == "none":
        raise SetupError("--subtitles needs timestamps: leave --timestamps unset (word timestamps are then used)")
    return {**params, "timestamps": params.get("timestamps") or "word"}


@dataclass
class Diarizing:
    """What the job's ``--diarize`` asks for: the SpeakerDiarizer and SpeakerIdentity params, whether
    labels are shared across files, RTTM files."""

    on: bool = False
    diarizer: Dict[str, Any] = dataclasses.field(default_factory=dict)
    identity: Dict[str, Any] = dataclasses.field(default_factory=dict)
    across_files: bool = True
    rttm: bool = False

    def stages(self):
        """The SpeakerDiarizer (params checked), or None."""
        if not self.on:
            if self.rttm:
                raise SetupError("--rttm needs --diarize")
            return None
        from ..spark.diarizer import SpeakerDiarizer, SpeakerIdentity

        SpeakerIdentity(**self.identity)  # checked before any work
        return SpeakerDiarizer(**self.diarizer)

    def config(self) -> Dict[str, Any]:
        """What the config id adds for a diarized run (a run with other speaker options is another)."""
        if not self.on:
            return {}
        return {"diarize": True, "across_files": self.across_files, **self.diarizer, **self.identity}

    def apply(self, diarizer, out, in_col: str, chunks_col: str):
        """``out`` diarized (and, across files, relabelled by a SpeakerIdentity fitted on it); the
        persisted frame to unpersist after writing, or None."""
        from pyspark import StorageLevel

        diarizer.setParams(inputCols=[in_col], pathCol="path", transcriptChunksCol=chunks_col or "")
        out = diarizer.transform(out)
        if not self.across_files:
            return out, None
        from ..spark.diarizer import SpeakerIdentity

        out = out.persist(StorageLevel.MEMORY_AND_DISK)
        identity = SpeakerIdentity(
            voicesCol=diarizer.getVoicesCol(), transcriptChunksCol=chunks_col or "", **self.identity
        )
        return identity.fit(out).transform(out), out


def config_id(model_name: str, params: Dict[str, Any]) -> str:
    """Stable id of what determines a transcript: model + decoding options (not runtime knobs)."""
    import hashlib

    from ..params import stage_table

    ignore = set(stage_table("WhisperForCTC").runtime_names())
    blob = json.dumps(
        {"model": model_name, **{k: v for k, v in sorted(params.items()) if k not in ignore}},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


class Interruption:
    """``with Interruption(spark):`` turns SIGINT and SIGTERM into a clean stop of the job: the
    first signal cancels the running Spark jobs (tasks that finished stay committed) and quiets
    Spark's logging, so :func:`run_transcription` raises :class:`Interrupted`; a second one ends
    the process at once. Only in the main thread (signal handlers live there).

    The handler itself only records the signal: the main thread is inside a Py4J call whose
    connection it owns, so the cancelling is done by a thread of its own (its own connection)."""

    def __init__(self, spark):
        self.spark = spark
        self.signame: Optional[str] = None
        self._saved: Dict[int, Any] = {}
        self._signalled = threading.Event()
        self._closed = False

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.signame is not None:  # second signal: stop now
            os.write(2, f"sparkasr: {name} again: stopping at once\n".encode())
            os._exit(128 + signum)
        self.signame = name
        self._signalled.set()

    def _cancel_on_signal(self):
        from ..spark.session import cancel_all, set_log_level

        self._signalled.wait()
        if self._closed:
            return
        try:
            set_log_level(self.spark, "OFF")  # cancelled tasks are not errors to report
            cancel_all(self.spark)
        except Exception:
            pass

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            threading.Thread(target=self._cancel_on_signal, name="sparkasr-interrupt", daemon=True).start()
            for s in (signal.SIGINT, signal.SIGTERM):
                self._saved[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, h in self._saved.items():
            signal.signal(s, h)
        self._saved.clear()
        if not self.signame:
            self._closed = True
            self._signalled.set()  # let the waiting thread end


def _records_frame(asr, out, df, cfg_id: str, diarize: bool = False, voiceprints: bool = False):
    """The record columns from the stages' output."""
    from pyspark.sql import functions as F

    doc = F.col("transcription")[0]
    carried = [c for c in df.columns if c not in ("path", "content", "input_id", "length", "modificationTime")]
    chunks_col = asr.getChunksCol()

    def chunk(c):
        fields = [
            c["result"].alias("text"),
            F.array(c["metadata"]["start"].cast("double"), c["metadata"]["end"].cast("double")).alias("timestamp"),
        ]
        return F.struct(*fields, c["metadata"]["speaker"].alias("speaker")) if diarize else F.struct(*fields)

    empty = "array<struct<text:string,timestamp:array<double>" + (",speaker:string" if diarize else "") + ">>"
    chunk_expr = F.transform(F.col(chunks_col), chunk) if chunks_col else F.array().cast(empty)
    speakers = []
    if diarize:
        turns = F.filter(F.col("speakers"), lambda a: a["metadata"]["start"].isNotNull())
        speakers.append(
            F.transform(
                turns,
                lambda a: F.struct(
                    a["metadata"]["start"].cast("double").alias("start"),
                    a["metadata"]["end"].cast("double").alias("end"),
                    a["metadata"]["speaker"].alias("speaker"),
                ),
            ).alias("speakers")
        )
        if voiceprints:
            speakers.append(
                F.transform(
                    F.col("speakers_voices"),
                    lambda a: F.struct(a["result"].alias("speaker"), a["embeddings"].alias("embedding")),
                ).alias("speaker_embeddings")
            )
    return out.select(
        F.col("path"),
        F.coalesce(doc["result"], F.lit("")).alias("text"),
        doc["metadata"]["language"].alias("language"),
        doc["metadata"]["language_probability"].cast("double").alias("language_probability"),
        doc["metadata"]["duration_s"].cast("double").alias("duration_s"),
        chunk_expr.alias("chunks"),
        *speakers,
        doc["metadata"]["error"].alias("error"),
        F.lit(asr._model_name()).alias("model"),
        *[F.col(c) for c in carried],
        F.col("input_id"),
        F.lit(cfg_id).alias("config_id"),
    )


def _kept(spark, run_dir: str, fmt: str) -> int:
    """Records an interrupted run committed (its finished tasks' part files). Counted without
    Spark for local outputs: under spark-submit, Ctrl-C reaches the JVM too, which may be gone."""
    if is_remote_uri(run_dir):
        files, _ = run_files(spark, run_dir.rsplit("/", 1)[0])
        kept = read_records(spark, [f for f in files if f.startswith(run_dir)], run_dir, fmt)
        return 0 if kept is None else kept.count()
    import glob

    n = 0
    for f in glob.glob(os.path.join(glob.escape(local_path(run_dir)), "part-*")):
        if fmt == "parquet":
            import pyarrow.parquet as pq

            n += pq.ParquetFile(f).metadata.num_rows
        else:
            with open(f, "rb") as fh:
                n += sum(1 for line in fh if line.strip())
    return n


def threads_for_few_tasks(spark, parallelism: int, tasks: int, threads: int) -> int:
    """Threads per task when the run has fewer tasks than the cluster has cores (a single long
    file, a handful of files): the idle cores are shared out among the tasks, up to an executor's
    cores (``spark.executor.cores``, else the whole parallelism: ``local[N]``), so one long row
    still uses every core. 0 (the stage's default, ``spark.task.cpus``) otherwise, or when the
    threads are set."""
    if threads or tasks >= parallelism:
        return 0
    try:
        per_executor = int(spark.conf.get("spark.executor.cores", "0") or 0)
    except Exception:
        per_executor = 0
    share = parallelism // max(tasks, 1)
    return max(1, min(share, per_executor or parallelism))


def _read_run(spark, run_dir: str, fmt: str, schema):
    """The records a run wrote into ``run_dir``, read with ``schema`` (the frame's it wrote)."""
    reader = spark.read.schema(schema)
    uri = hadoop_uri(run_dir)
    return reader.parquet(uri) if fmt == "parquet" else reader.json(uri)


def _in_record_order(df):
    """Records' columns in their documented order (JSON schema inference sorts them by name)."""
    head = [c for c in RECORD_COLUMNS[:10] if c in df.columns]
    tail = [c for c in RECORD_COLUMNS[10:] if c in df.columns]
    return df.select(*head, *[c for c in df.columns if c not in RECORD_COLUMNS], *tail)


def write_subtitles(records, out_dir: str, kinds: Sequence[str]) -> None:
    """One ``<safe name>.srt`` / ``.vtt`` per transcribed file, written by the executors.

    ``out_dir`` must be a filesystem path the executors see (local, NFS, ``/dbfs/...``).
    """
    local = local_path(out_dir)
    os.makedirs(local, exist_ok=True)
    kinds = list(kinds)

    def part(rows):
        from .subtitles import cues_from_chunks, safe_name, to_srt, to_vtt

        for r in rows:
            if r["error"] or not r["chunks"]:
                continue
            cues = cues_from_chunks([c.asDict() for c in r["chunks"]])
            name = safe_name(r["path"])
            for k in kinds:
                body = to_srt(cues) if k == "srt" else to_vtt(cues)
                tmp = os.path.join(local, f".{name}.{k}.tmp")
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(body)
                os.replace(tmp, os.path.join(local, f"{name}.{k}"))

    records.select("path", "chunks", "error").foreachPartition(part)


def write_rttm(records, out_dir: str) -> None:
    """One ``<safe name>.rttm`` per diarized file (its speaker turns), written by the executors."""
    local = local_path(out_dir)
    os.makedirs(local, exist_ok=True)

    def part(rows):
        from ..evaluation.diarization import to_rttm
        from .subtitles import safe_name

        for r in rows:
            if r["error"] or r["speakers"] is None:
                continue
            name = safe_name(r["path"])
            body = to_rttm(name, [(s["start"], s["end"], s["speaker"]) for s in r["speakers"]])
            tmp = os.path.join(local, f".{name}.rttm.tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(body)
            os.replace(tmp, os.path.join(local, f"{name}.rttm"))

    records.select("path", "speakers", "error").foreachPartition(part)


def run_transcription(
    spark,
    inputs: Sequence[str],
    output: str,
    *,
    model: Optional[str] = None,
    fmt: str = "jsonl",
    whisper_params: Optional[Dict[str, Any]] = None,
    partitions: int = 0,
    report: bool = True,
    resume: bool = True,
    retry_errors: bool = False,
    subtitles: Sequence[str] = (),
    quiet: bool = True,
    interruption: Optional[Interruption] = None,
    progress_interval: float = 10.0,
    diarize: bool = False,
    diarizer_params: Optional[Dict[str, Any]] = None,
    identity_params: Optional[Dict[str, Any]] = None,
    speakers_across_files: bool = True,
    rttm: bool = False,
    phases: Optional[Phases] = None,
) -> JobResult:
    """Transcribe ``inputs`` into ``output`` (see the module docstring and :mod:`sparkasr.job.output`).

    One run at a time per ``output`` (:class:`~sparkasr.job.output.OutputLock`). Records go to
    ``<output>/transcripts/run=<id>/``, committed task by task, so an interrupted run keeps what
    finished. With ``resume`` (default) inputs whose stable id (path + size + mtime) already has a
    record for the same model and options are skipped; with ``retry_errors`` those whose records
    are all errors are transcribed again. The result is ``<output>/current/``: one record per input,
    the newest. ``interruption``: its signal makes this raise :class:`Interrupted`. ``phases``: where
    the run's time goes is added to it (a new one when None; the result's ``phases``).
    """
    phases = Phases() if phases is None else phases
    with OutputLock(output, spark):
        try:
            return _run(
                spark,
                inputs,
                output,
                model=model,
                fmt=fmt,
                whisper_params=whisper_params,
                partitions=partitions,
                report=report,
                resume=resume,
                retry_errors=retry_errors,
                subtitles=subtitles,
                quiet=quiet,
                interruption=interruption,
                progress_interval=progress_interval,
                diarization=Diarizing(
                    diarize, diarizer_params or {}, identity_params or {}, speakers_across_files, rttm
                ),
                phases=phases,
            )
        except Interrupted:
            raise
        except Exception:
            if interruption is not None and interruption.signame:
                raise Interrupted(interruption.signame, 0, 0, "") from None
            raise


def _run(
    spark,
    inputs,
    output,
    *,
    model,
    fmt,
    whisper_params,
    partitions,
    report,
    resume,
    retry_errors,
    subtitles,
    quiet,
    interruption,
    progress_interval,
    diarization: Diarizing,
    phases: Phases,
) -> JobResult:
    from pyspark.sql import functions as F

    from ..spark.session import default_parallelism, is_connect, job_property, python_workers_checked_on_failure
    from ..spark.whisper import WhisperForCTC
    from .progress import PROPERTY, Progress

    span = phases.span

    t0 = time.time()
    inputs_given = inputs
    if fmt not in ("jsonl", "parquet"):
        raise SetupError(f"--format must be jsonl or parquet, got {fmt}")
    with span("setup"):
        audio, manifests = check_inputs(inputs)
        check_output(output)
        asr = WhisperForCTC.pretrained(model) if model else WhisperForCTC.pretrained()
        asr.setParams(**with_subtitle_timestamps(whisper_params or {}, subtitles))
        diarizer = diarization.stages()
        cfg_id = config_id(
            asr._model_name(), {**{p.name: v for p, v in asr.extractParamMap().items()}, **diarization.config()}
        )
    out_root = output.rstrip("/")
    records_root = f"{out_root}/{RUNS}"
    with span("listing"):
        listing = list_local([p for p in audio if not is_remote_uri(p)])
    if is_connect(spark):
        check_output_shared(spark, output)
        # one listed file (a name Spark's listing shows) and each local manifest
        shown = [f for f in listing.files if not any(part[:1] in "._" for part in f.split("/")[1:])]
        check_inputs_visible(spark, shown[:1] + [m for m in manifests if not is_remote_uri(m)])

    with span("inputs"):
        inputs = build_inputs(spark, audio, manifests, listing)
    if inputs is None or inputs.count == 0:
        why = f"; {listing.hidden_note()}" if listing.hidden else ""
        raise SetupError(
            f"no audio files found in {', '.join(inputs_given)} (extensions: {', '.join(AUDIO_EXTENSIONS)}){why}"
        )
    n_inputs = inputs.count
    with span("earlier runs"):
        files, _ = run_files(spark, records_root, clean=True)  # interrupted runs: keep their committed tasks
        if files and not resume:
            raise SetupError(f"{records_root} already holds results; use a new --output or keep resume on")
        previous = read_records(spark, files, records_root, fmt)
        has_ids = previous is not None and "input_id" in previous.columns and "config_id" in previous.columns
        todo, todo_rows, n = inputs.frame, inputs.rows, n_inputs
        if has_ids:
            mine = previous.where(F.col("config_id") == cfg_id)
            done = (mine.where(F.col("error").isNull()) if retry_errors else mine).select("input_id").distinct()
            if todo_rows is not None:  # the driver's rows: those not done stay here
                todo_rows = todo_rows.without(r["input_id"] for r in done.toLocalIterator())
                n = len(todo_rows)
            else:
                todo = todo.join(done, "input_id", "left_anti")
                n = todo.count()

    run_id = new_run_id()
    target = f"{records_root}/run={run_id}"
    if n > 0:
        dp = default_parallelism(spark)
        if partitions <= 0:
            partitions = max(1, min(n, max(dp * 4, n // 64)))
        threads = threads_for_few_tasks(spark, dp, partitions, asr.getCpuThreads())
        if threads:
            asr.setCpuThreads(threads)
        if todo_rows is not None:
            todo = frame_in_tasks(spark, todo_rows, partitions, slots=dp)
        else:
            todo = spread_rows(todo, partitions)
        in_col = "content" if "content" in todo.columns else "path"
        asr.setInputCols([in_col]).setOutputCol("transcription").setPathCol("path")
        cached = None
        progress = Progress(spark, n, quiet, interval=progress_interval, run_dir=target, fmt=fmt, phases=phases)
        try:
            # the run starts the Python workers itself; a worker without sparkasr is named if it fails
            with (
                python_workers_checked_on_failure(spark),
                job_property(spark, PROPERTY, progress.address),
                progress,
                span("transcribe and write"),
            ):
                out = asr.transform(todo)
                if diarizer is not None:
                    # across files, the identity step's fit runs the stages (live progress in audio hours)
                    out, cached = diarization.apply(diarizer, out, in_col, asr.getChunksCol())
                records = _records_frame(
                    asr, out, todo, cfg_id, diarizer is not None, diarization.identity.get("keepVoiceprints", False)
                )
                records = progress.counting(records)
                written_schema = records.schema
                # Algorithm 2: each task's file moves into the run directory when the task finishes, so an
                # interrupted run keeps every finished task (v1 would move them only when all are done).
                writer = records.write.mode("error").option("mapreduce.fileoutputcommitter.algorithm.version", "2")
                if fmt == "parquet":
                    writer.parquet(hadoop_uri(target))
                else:
                    writer.option("ignoreNullFields", "false").json(hadoop_uri(target))
        except Exception:
            if cached is not None:
                cached.unpersist()
            if interruption is not None and interruption.signame:
                progress.stop_printing()
                raise Interrupted(interruption.signame, _kept(spark, target, fmt), n, local_path(target)) from None
            raise
        if cached is not None:
            cached.unpersist()
        if not quiet:
            print(progress.line(), flush=True)

    with span("current view"):
        if previous is None and inputs.distinct:
            # the first run into this output: its records, one per input, are the current view (read back
            # with the schema they were written with: no inference, no shuffle)
            current = _read_run(spark, target, fmt, written_schema).withColumn("run", F.lit(run_id))
        else:
            files, _ = run_files(spark, records_root)
            everything = read_records(spark, files, records_root, fmt)
            mine = everything.where(F.col("config_id") == cfg_id) if "config_id" in everything.columns else everything
            current = newest_per_input(mine.join(inputs.ids_frame(spark), "input_id", "left_semi"))
        current = _in_record_order(current)
        current_path = write_current(spark, output, current, fmt, run_id)
    with span("summary"):
        back = read_records(spark, [current_path], current_path, fmt, schema=current.schema)
        # the references are counted here, so the evaluation report needs no job of its own to ask
        references = F.count("reference") if "reference" in back.columns else F.lit(0)
        stats = back.agg(
            F.count("*").alias("n"),
            F.count("error").alias("errors"),
            F.sum("duration_s").alias("audio"),
            F.sum(F.when(F.col("error").isNotNull() & (F.col("run") != run_id), 1).otherwise(0)).alias("kept_errors"),
            references.alias("references"),
        ).collect()[0]
    if subtitles:
        with span("subtitles"):
            write_subtitles(back, f"{out_root}/subtitles", subtitles)
    if diarization.rttm and "speakers" in back.columns:
        with span("rttm"):
            write_rttm(back, f"{out_root}/rttm")
    result = JobResult(
        output,
        int(stats["n"]),
        int(stats["errors"]),
        float(stats["audio"] or 0.0),
        time.time() - t0,
        records_root,
        records=back,
        processed=n,
        skipped=n_inputs - n,
        kept_errors=int(stats["kept_errors"] or 0),
        current_path=current_path,
        hidden_note=listing.hidden_note(),
    )
    if report and stats["references"]:
        carried = [c for c in back.columns if c not in RECORD_COLUMNS]
        with span("evaluation report"):
            result.metrics = _write_eval_report(back, output, asr, carried)
    if inputs.cached:
        inputs.frame.unpersist()
    result.wall_s = time.time() - t0
    phases.log_summary()
    result.phases = phases.as_dict()
    return result


def _write_eval_report(records, output: str, asr, carried: List[str]) -> Dict[str, Any]:
    """WER/CER report (metrics.json, report.md, PNGs) of ``records``, which carry references."""
    from ..spark.evaluation import evaluate_and_report

    group_cols = [c for c in carried if c in ("speaker", "dataset", "group", "split")]
    runtime = set(asr._option_table.runtime_names())
    options = {p.name: v for p, v in asr.extractParamMap().items() if p.name not in runtime}
    result = evaluate_and_report(
        records.where("error IS NULL"),
        output.rstrip("/") + "/report",
        prediction_col="text",
        reference_col="reference",
        group_by=group_cols or None,
        normalizer="whisper_en",
        model=asr._model_name(),
        options=options,
    )
    d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    return {
        "wer": float(getattr(result, "wer", d.get("wer", float("nan")))),
        **{k: v for k, v in d.items() if k != "wer"},
    }
