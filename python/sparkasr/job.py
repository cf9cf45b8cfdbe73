"""The batch transcription job behind ``sparkasr transcribe`` (and the spark-submit entry point).

Inputs: audio files, directories (recursive), globs, any Hadoop URI, or manifests
(``.csv``/``.tsv``/``.jsonl``/``.json``/``.parquet`` with a ``path`` column; other columns, e.g.
``reference`` or ``speaker``, are carried through). Output: one record per input file::

    path, text, language, language_probability, duration_s,
    chunks: array<struct<text: string, timestamp: array<double>>>, error, model, <carried columns>

Local files are read by the Python workers themselves (path mode: bounded memory, no audio
bytes through the JVM); other URIs go through Spark's ``binaryFile`` source.
"""

from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .audio import AUDIO_EXTENSIONS
from .paths import is_remote_uri, local_path, spark_uri

MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


class SetupError(Exception):
    """A problem that stops the job before any work starts (bad input set, model, output dir)."""


@dataclass
class JobResult:
    output_dir: str
    n_inputs: int
    n_errors: int
    audio_s: float
    wall_s: float
    records_path: str
    metrics: Optional[Dict[str, Any]] = None
    records: Any = None  # all committed records for this model+options, read back (DataFrame)
    processed: int = 0  # inputs transcribed by this run
    skipped: int = 0  # inputs already done by earlier runs (resume)


def is_manifest(p: str) -> bool:
    return p.lower().endswith(MANIFEST_SUFFIXES) and not any(ch in p for ch in "*?[")


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
            if any(ch in local for ch in "*?["):
                if not glob.glob(local, recursive=True):
                    raise SetupError(f"glob {p} matches nothing")
            elif not os.path.exists(local):
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


def _read_manifest(spark, path: str):
    from pyspark.sql import functions as F

    low = path.lower()
    if low.endswith(".parquet"):
        df = spark.read.parquet(path)
    elif low.endswith((".jsonl", ".json")):
        df = spark.read.json(path)
    else:
        df = spark.read.option("header", "true").option("sep", "\t" if low.endswith(".tsv") else ",").csv(path)
    if "path" not in df.columns:
        raise SetupError(f"manifest {path} has no 'path' column (columns: {', '.join(df.columns)})")
    base = spark_uri(path).rsplit("/", 1)[0]
    # Relative paths are relative to the manifest's directory.
    resolved = F.when(F.col("path").rlike(r"^([a-zA-Z][a-zA-Z0-9+.-]*:|/)"), F.col("path")).otherwise(
        F.concat(F.lit(base + "/"), F.col("path"))
    )
    return df.withColumn("path", resolved.cast("string"))


def build_input_frame(spark, audio: Sequence[str], manifests: Sequence[str]):
    """One DataFrame of inputs: ``path`` (+ ``content`` for non-local URIs) + carried columns."""

    from .spark.reader import read_binary

    frames = []
    remote = [p for p in audio if is_remote_uri(p)]
    if remote and manifests:
        raise SetupError("remote audio URIs and manifests cannot be mixed in one run; run them separately")
    if remote:
        # Not readable by the Python workers: binaryFile brings the bytes.
        frames.append(read_binary(spark, audio).select("path", "content"))
    elif audio:
        # Spark's file index lists the inputs (in parallel for big directories); its scan would skip
        # 0-byte files, so rows are made from the listing itself: every file gets a row.
        files = read_binary(spark, audio).inputFiles()
        frames.append(spark.createDataFrame([(f,) for f in sorted(files)], "path string"))
    for m in manifests:
        frames.append(_read_manifest(spark, m))
    if not frames:
        raise SetupError("nothing to read")
    df = frames[0]
    for f in frames[1:]:
        df = df.unionByName(f, allowMissingColumns=True)
    return df


def _stat_inputs(df):
    """Add ``input_id`` (sha1 of path + size + mtime; path alone when the file cannot be stat-ed)."""
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType(df.schema.fields + [StructField("input_id", StringType(), False)])
    has_meta = "length" in df.columns and "modificationTime" in df.columns

    def run(batches):
        import hashlib

        for pdf in batches:
            ids = []
            for i, p in enumerate(pdf["path"].tolist()):
                key = str(p)
                if has_meta:
                    key += f"|{pdf['length'].iloc[i]}|{pdf['modificationTime'].iloc[i]}"
                elif p is not None:
                    local = local_path(str(p))
                    try:
                        st = os.stat(local)
                        key += f"|{st.st_size}|{int(st.st_mtime)}"
                    except OSError:
                        key += "|missing"
                ids.append(hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest())
            pdf = pdf.copy()
            pdf["input_id"] = ids
            yield pdf

    return df.mapInPandas(run, schema=schema)


def config_id(model_name: str, params: Dict[str, Any]) -> str:
    """Stable id of what determines a transcript: model + decoding options (not runtime knobs)."""
    import hashlib

    from .params import stage_table

    ignore = set(stage_table("WhisperForCTC").runtime_names())
    blob = json.dumps(
        {"model": model_name, **{k: v for k, v in sorted(params.items()) if k not in ignore}},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _fs(spark, path: str):
    jvm = spark.sparkContext._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    return p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), p, jvm


def committed_runs(spark, records_root: str) -> Tuple[List[str], List[str]]:
    """(committed run dirs, crashed run dirs) under ``records_root`` (``run=<id>`` with/without _SUCCESS)."""
    fs, root, jvm = _fs(spark, records_root)
    if not fs.exists(root):
        return [], []
    done, crashed = [], []
    for st in fs.listStatus(root):
        name = st.getPath().getName()
        if not st.isDirectory() or not name.startswith("run="):
            continue
        target = done if fs.exists(jvm.org.apache.hadoop.fs.Path(st.getPath(), "_SUCCESS")) else crashed
        target.append(st.getPath().toString())
    return sorted(done), sorted(crashed)


def _read_records(spark, paths: List[str], fmt: str, schema=None):
    if not paths:
        return None
    reader = spark.read.option("basePath", paths[0].rsplit("/", 1)[0])
    if fmt == "parquet":
        return reader.parquet(*paths)
    if schema is not None:
        reader = reader.schema(schema)
    return reader.json(list(paths))


class _Progress:
    """Live progress on the driver: files and audio hours done, throughput, ETA, errors so far."""

    def __init__(self, spark, total: int, quiet: bool, interval: float = 10.0):
        import threading

        sc = spark.sparkContext
        self.files = sc.accumulator(0)
        self.audio = sc.accumulator(0.0)
        self.errors = sc.accumulator(0)
        self.total = total
        self.quiet = quiet
        self.interval = interval
        self.t0 = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def line(self) -> str:
        done, audio, errs = self.files.value, self.audio.value, self.errors.value
        el = time.time() - self.t0
        rate = audio / el if el > 0 else 0.0
        eta = (el / done * (self.total - done)) if done else float("nan")
        eta_s = "?" if eta != eta else f"{eta / 60:.1f} min"
        return (
            f"sparkasr: {done}/{self.total} files, {audio / 3600:.3f} h audio, {errs} errors, "
            f"{rate:.1f}x real time, ETA {eta_s}"
        )

    def _loop(self):
        while not self._stop.wait(self.interval):
            print(self.line(), flush=True)

    def __enter__(self):
        if not self.quiet:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()

    def counting(self, df):
        """Pass records through unchanged while counting them into the accumulators."""
        files, audio, errors = self.files, self.audio, self.errors

        def run(batches):
            for pdf in batches:
                files.add(len(pdf))
                audio.add(float(pdf["duration_s"].fillna(0).sum()))
                errors.add(int(pdf["error"].notna().sum()))
                yield pdf

        return df.mapInPandas(run, schema=df.schema)


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
            cues = cues_from_chunks([{"text": c["text"], "timestamp": c["timestamp"]} for c in r["chunks"]])
            name = safe_name(r["path"])
            for k in kinds:
                body = to_srt(cues) if k == "srt" else to_vtt(cues)
                tmp = os.path.join(local, f".{name}.{k}.tmp")
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(body)
                os.replace(tmp, os.path.join(local, f"{name}.{k}"))

    records.select("path", "chunks", "error").foreachPartition(part)


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
    subtitles: Sequence[str] = (),
    quiet: bool = True,
) -> JobResult:
    """Transcribe ``inputs`` into ``output`` (see module docstring).

    Records go to ``<output>/transcripts/run=<id>/``; a run becomes visible only when Spark commits
    it (``_SUCCESS``), so a crash leaves nothing a reader would take for results, and crashed run
    directories are removed by the next run. With ``resume`` (default) inputs whose stable id
    (path + size + mtime) already has a record for the same model and options are skipped, so re-runs
    never duplicate rows.
    """
    from pyspark.sql import functions as F

    from .spark.whisper import WhisperForCTC

    t0 = time.time()
    if fmt not in ("jsonl", "parquet"):
        raise SetupError(f"--format must be jsonl or parquet, got {fmt}")
    audio, manifests = check_inputs(inputs)
    check_output(output)
    asr = WhisperForCTC.pretrained(model) if model else WhisperForCTC.pretrained()
    asr.setParams(**(whisper_params or {}))
    cfg_id = config_id(asr._model_name(), {p.name: v for p, v in asr.extractParamMap().items()})
    records_root = output.rstrip("/") + "/transcripts"

    df = _stat_inputs(build_input_frame(spark, audio, manifests))
    done_runs, crashed = committed_runs(spark, records_root)
    for c in crashed:  # never committed: nothing in them is a result
        fs, p, _ = _fs(spark, c)
        fs.delete(p, True)
    previous = _read_records(spark, done_runs, fmt) if done_runs else None
    if not resume and done_runs:
        raise SetupError(f"{records_root} already holds results; use a new --output or keep resume on")
    skipped = 0
    if previous is not None and "input_id" in previous.columns:
        seen = previous.where(F.col("config_id") == cfg_id).select("input_id").distinct()
        df = df.join(F.broadcast(seen) if len(done_runs) < 2 else seen, "input_id", "left_anti")
    n = df.count()
    if previous is not None and "config_id" in previous.columns:
        skipped = previous.where(F.col("config_id") == cfg_id).count()
    if n == 0 and not done_runs:
        raise SetupError(f"no audio files found in {', '.join(inputs)} (extensions: {', '.join(AUDIO_EXTENSIONS)})")

    run_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    written = None
    if n > 0:
        if partitions <= 0:
            dp = spark.sparkContext.defaultParallelism
            partitions = max(1, min(n, max(dp * 4, n // 64)))
        df = df.repartition(partitions)
        in_col = "content" if "content" in df.columns else "path"
        asr.setInputCols([in_col]).setOutputCol("transcription").setPathCol("path")
        out = asr.transform(df)
        doc = F.col("transcription")[0]
        carried = [c for c in df.columns if c not in ("path", "content", "input_id", "length", "modificationTime")]
        chunks_col = asr.getChunksCol()
        chunk_expr = (
            F.transform(
                F.col(chunks_col),
                lambda c: F.struct(
                    c["result"].alias("text"),
                    F.array(c["metadata"]["start"].cast("double"), c["metadata"]["end"].cast("double")).alias(
                        "timestamp"
                    ),
                ),
            )
            if chunks_col
            else F.array().cast("array<struct<text:string,timestamp:array<double>>>")
        )
        records = out.select(
            F.col("path"),
            F.coalesce(doc["result"], F.lit("")).alias("text"),
            doc["metadata"]["language"].alias("language"),
            doc["metadata"]["language_probability"].cast("double").alias("language_probability"),
            doc["metadata"]["duration_s"].cast("double").alias("duration_s"),
            chunk_expr.alias("chunks"),
            doc["metadata"]["error"].alias("error"),
            F.lit(asr._model_name()).alias("model"),
            *[F.col(c) for c in carried],
            F.col("input_id"),
            F.lit(cfg_id).alias("config_id"),
        )
        progress = _Progress(spark, n, quiet)
        records = progress.counting(records)
        target = f"{records_root}/run={run_id}"
        with progress:
            writer = records.write.mode("errorifexists")
            if fmt == "parquet":
                writer.parquet(target)
            else:
                writer.option("ignoreNullFields", "false").json(target)
        if not quiet:
            print(progress.line(), flush=True)
        written = _read_records(spark, [target], fmt, records.schema)
        if subtitles:
            write_subtitles(written, output.rstrip("/") + "/subtitles", subtitles)

    all_runs, _ = committed_runs(spark, records_root)
    back = _read_records(spark, all_runs, fmt)
    if back is not None and "config_id" in back.columns:
        back = back.where(F.col("config_id") == cfg_id)
    stats = back.agg(
        F.count("*").alias("n"), F.count("error").alias("errors"), F.sum("duration_s").alias("audio")
    ).collect()[0]
    result = JobResult(
        output,
        int(stats["n"]),
        int(stats["errors"]),
        float(stats["audio"] or 0.0),
        time.time() - t0,
        records_root,
        records=back,
    )
    result.processed = n
    result.skipped = skipped
    if report and "reference" in back.columns:
        carried = [
            c
            for c in back.columns
            if c
            not in (
                "path",
                "text",
                "language",
                "language_probability",
                "duration_s",
                "chunks",
                "error",
                "model",
                "input_id",
                "config_id",
                "run",
            )
        ]
        result.metrics = _write_eval_report(back, output, asr, carried)
    return result


def _write_eval_report(records, output: str, asr, carried: List[str]) -> Optional[Dict[str, Any]]:
    """WER/CER report (metrics.json, report.md, PNGs) when the inputs carry references."""
    from .spark.evaluation import evaluate_and_report, has_references

    if not has_references(records, "reference"):
        return None
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
