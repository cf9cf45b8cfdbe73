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
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .audio import AUDIO_EXTENSIONS

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
    records: Any = None  # the written records, read back (DataFrame)


def is_manifest(p: str) -> bool:
    return p.lower().endswith(MANIFEST_SUFFIXES) and not any(ch in p for ch in "*?[")


def _is_uri(p: str) -> bool:
    return "://" in p


def check_manifest_columns(path: str) -> None:
    """For a local manifest, check the ``path`` column before Spark starts."""
    if _is_uri(path):
        return
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
            if not _is_uri(p) and not os.path.isfile(p):
                raise SetupError(f"manifest {p} does not exist")
            check_manifest_columns(p)
            manifests.append(p)
            continue
        if not _is_uri(p):
            local = p[5:] if p.startswith("file:") else p
            if any(ch in local for ch in "*?["):
                if not glob.glob(local, recursive=True):
                    raise SetupError(f"glob {p} matches nothing")
            elif not os.path.exists(local):
                raise SetupError(f"input {p} does not exist")
        audio.append(p)
    return audio, manifests


def check_output(output: str, overwrite: bool = True) -> None:
    """Create the output directory and prove it is writable, before Spark starts."""
    if _is_uri(output) and not output.startswith("file:"):
        return  # checked by Hadoop when writing
    local = output[5:] if output.startswith("file:") else output
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
    base = os.path.dirname(os.path.abspath(path)) if not _is_uri(path) else path.rsplit("/", 1)[0]
    # Relative paths are relative to the manifest's directory.
    resolved = F.when(F.col("path").rlike(r"^([a-zA-Z][a-zA-Z0-9+.-]*:|/)"), F.col("path")).otherwise(
        F.concat(F.lit(base + "/"), F.col("path"))
    )
    return df.withColumn("path", resolved.cast("string"))


def build_input_frame(spark, audio: Sequence[str], manifests: Sequence[str]):
    """One DataFrame of inputs: ``path`` (+ ``content`` for non-local URIs) + carried columns."""
    from pyspark.sql import functions as F

    from .spark.reader import read_binary

    frames = []
    remote = [p for p in audio if _is_uri(p) and not p.startswith("file:")]
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
) -> JobResult:
    from pyspark.sql import functions as F

    from .spark.whisper import WhisperForCTC

    t0 = time.time()
    if fmt not in ("jsonl", "parquet"):
        raise SetupError(f"--format must be jsonl or parquet, got {fmt}")
    audio, manifests = check_inputs(inputs)
    check_output(output)
    asr = WhisperForCTC.pretrained(model) if model else WhisperForCTC.pretrained()
    asr.setParams(**(whisper_params or {}))
    df = build_input_frame(spark, audio, manifests)
    n = df.count()
    if n == 0:
        raise SetupError(f"no audio files found in {', '.join(inputs)} (extensions: {', '.join(AUDIO_EXTENSIONS)})")
    if partitions <= 0:
        partitions = max(1, min(n, spark.sparkContext.defaultParallelism * 4, max(n // 64, spark.sparkContext.defaultParallelism)))
    df = df.repartition(partitions)
    in_col = "content" if "content" in df.columns else "path"
    asr.setInputCols([in_col]).setOutputCol("transcription").setPathCol("path")
    out = asr.transform(df)
    doc = F.col("transcription")[0]
    carried = [c for c in df.columns if c not in ("path", "content", "_audio_input")]
    chunks_col = asr.getChunksCol()
    chunk_expr = (
        F.transform(
            F.col(chunks_col),
            lambda c: F.struct(
                c["result"].alias("text"),
                F.array(c["metadata"]["start"].cast("double"), c["metadata"]["end"].cast("double")).alias("timestamp"),
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
    )
    records_path = output.rstrip("/") + "/transcripts"
    writer = records.write.mode("overwrite")
    if fmt == "parquet":
        writer.parquet(records_path)
    else:
        writer.option("ignoreNullFields", "false").json(records_path)
    back = spark.read.parquet(records_path) if fmt == "parquet" else spark.read.schema(records.schema).json(records_path)
    stats = back.agg(F.count("*").alias("n"), F.count("error").alias("errors"), F.sum("duration_s").alias("audio")).collect()[0]
    result = JobResult(output, int(stats["n"]), int(stats["errors"]), float(stats["audio"] or 0.0), time.time() - t0, records_path, records=back)
    if report and "reference" in carried:
        result.metrics = _write_eval_report(back, output, asr, carried)
    return result


def _write_eval_report(records, output: str, asr, carried: List[str]) -> Optional[Dict[str, Any]]:
    """WER/CER report (metrics.json, report.md, PNGs) when the inputs carry references."""
    from .spark.evaluation import evaluate_and_report, has_references

    if not has_references(records, "reference"):
        return None
    group_cols = [c for c in carried if c in ("speaker", "dataset", "group", "split")]
    options = {p.name: v for p, v in asr.extractParamMap().items() if p.name not in ("inputCols", "outputCol", "pathCol", "chunksCol")}
    result = evaluate_and_report(
        records.where("error IS NULL"), output.rstrip("/") + "/report", prediction_col="text", reference_col="reference",
        group_by=group_cols or None, normalizer="whisper_en", model=asr._model_name(), options=options,
    )
    d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    return {"wer": float(getattr(result, "wer", d.get("wer", float("nan")))), **{k: v for k, v in d.items() if k != "wer"}}
