"""The staged copy of a fine-tuning DataFrame: a Spark job writes the rows, as they are, to Parquet
with what each row can teach (its length and text tokens, or why it is skipped), so the training
processes read their shard from storage, never through the driver.

Columns (:data:`INDEX_COLUMNS` are small and read whole by every training process;
:data:`AUDIO_COLUMNS` only for the rows a process trains on): ``key`` (a hash of the row's audio
and text: the order every process agrees on), ``text``, ``validation``, ``duration_s``,
``n_tokens``, ``skip_kind``/``skip``; ``audio`` (the input cell: a path, file bytes, samples or
audio annotations), ``source``, ``offset_s``, ``slice_s``, ``error``. A ``staged.json`` beside the
files says what kind of cell ``audio`` holds.

The staging directory is a file system path every training process reads (local in local mode; a
shared mount such as NFS, ``/dbfs`` or ``/Volumes`` on a cluster).

Audio is decoded here once, to measure it and find bad rows (never kept), and again in the
training processes, which compute the log-Mel features.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..cells import INPUT_PATH, cell_items, cell_source
from .windows import SKIP_LONG, WINDOW_S, Labeler, RowCheck, check_row

INDEX_COLUMNS = ("key", "text", "validation", "duration_s", "n_tokens", "skip_kind", "skip")
AUDIO_COLUMNS = ("audio", "source", "offset_s", "slice_s", "error")
MANIFEST = "staged.json"
ROWS_PER_FILE = 64  # rows per Parquet file: the unit a training process reads
EXAMPLES_PER_KIND = 5


@dataclass
class StageSummary:
    """Row counts of a staged DataFrame: usable training and validation rows, skipped rows by kind
    (both sides) with a few example reasons."""

    kind: str
    train_rows: int = 0
    validation_rows: int = 0
    skipped: Dict[str, int] = field(default_factory=dict)
    skip_examples: Dict[str, List[str]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def read(cls, directory: str) -> StageSummary:
        with open(os.path.join(directory, MANIFEST), encoding="utf-8") as f:
            return cls(**json.load(f))


def decode_row(
    cell, kind: str, source: Optional[str], offset: Optional[float], slice_s: Optional[float], error: Optional[str]
) -> Tuple[Optional[np.ndarray], Optional[str], str]:
    """One staged row's audio: ``(samples, error, source)``; the annotations of an audio cell are
    joined (the reference is the whole row's)."""
    src = cell_source(cell, kind, source)
    items = cell_items(cell, kind, src, offset=offset, error=error, duration=slice_s)
    bad = next((it for it in items if it.error is not None), None)
    if bad is not None:
        return None, bad.error, src
    parts = [it.samples for it in items]
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)), None, src


def _file_seconds(cell, kind: str, slice_s: Optional[float]) -> Optional[float]:
    """A whole-file path row's length from its header, so a long file is skipped without decoding it."""
    if kind != INPUT_PATH or slice_s is not None or cell is None:
        return None
    try:
        import soundfile as sf

        from ..paths import local_path

        return float(sf.info(local_path(str(cell))).duration)
    except Exception:
        return None


def check_staged_row(cell, kind, source, offset, slice_s, error, text, labeler: Labeler, max_words_per_s: float):
    """:func:`~sparkasr.train.windows.check_row` of one staged row (the audio decoded, then dropped)."""
    seconds = _file_seconds(cell, kind, slice_s)
    if seconds is not None and seconds > WINDOW_S + 0.5 and not error:
        src = cell_source(cell, kind, source)
        return RowCheck(
            seconds,
            0,
            SKIP_LONG,
            f"{src}: {seconds:.1f} s of audio is longer than Whisper's 30-s window (cut it into rows of at most 30 s, "
            "with their texts)",
        )
    samples, err, src = decode_row(cell, kind, source, offset, slice_s, error)
    return check_row(samples, err, text, labeler, src, max_words_per_s)


def _check_fn(kind: str, labeler: Labeler, max_words_per_s: float):
    """The ``mapInArrow`` function adding each row's check to the staged columns."""

    def run(batches):
        import pyarrow as pa

        from ..spark.inputs import input_cells

        for batch in batches:
            cells = input_cells(batch.column("audio"), kind)
            cols = {c: batch.column(c).to_pylist() for c in ("source", "offset_s", "slice_s", "error", "text")}
            checks = [
                check_staged_row(
                    cell,
                    kind,
                    cols["source"][i],
                    cols["offset_s"][i],
                    cols["slice_s"][i],
                    cols["error"][i],
                    cols["text"][i],
                    labeler,
                    max_words_per_s,
                )
                for i, cell in enumerate(cells)
            ]
            del cells
            extra = [
                pa.array([c.duration_s for c in checks], pa.float64()),
                pa.array([c.n_tokens for c in checks], pa.int32()),
                pa.array([c.skip_kind for c in checks], pa.string()),
                pa.array([c.skip for c in checks], pa.string()),
            ]
            yield pa.RecordBatch.from_arrays(
                list(batch.columns) + extra,
                names=list(batch.schema.names) + ["duration_s", "n_tokens", "skip_kind", "skip"],
            )

    return run


def stage_rows(
    dataset,
    audio_col: str,
    kind: str,
    label_col: str,
    reader_cols,
    validation_col: Optional[str],
    validation_fraction: float,
    seed: int,
    labeler: Labeler,
    max_words_per_s: float,
    dest: str,
) -> StageSummary:
    """Write ``dataset``'s rows, checked, to Parquet at ``dest`` (replaced) and count them.

    ``reader_cols``: read_audio's path/offset/error/duration columns of ``dataset`` (any None).
    Validation rows: ``validation_col`` (true), else a ``validation_fraction`` of the distinct
    reference texts, chosen by a hash of the text and ``seed``."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

    def col_or_null(name, typ):
        return (F.col(name) if name else F.lit(None)).cast(typ)

    if validation_col:
        validation = F.coalesce(F.col(validation_col).cast("boolean"), F.lit(False))
    elif validation_fraction > 0:
        h = F.xxhash64(F.lower(F.trim(F.coalesce(F.col(label_col).cast("string"), F.lit("")))), F.lit(seed))
        validation = F.pmod(h, F.lit(1_000_000)) < F.lit(int(round(validation_fraction * 1_000_000)))
    else:
        validation = F.lit(False)
    staged = dataset.select(
        F.xxhash64(F.col(audio_col), F.col(label_col)).alias("key"),
        F.col(audio_col).alias("audio"),
        col_or_null(reader_cols.path, "string").alias("source"),
        col_or_null(reader_cols.offset, "double").alias("offset_s"),
        col_or_null(reader_cols.duration, "double").alias("slice_s"),
        col_or_null(reader_cols.error, "string").alias("error"),
        F.col(label_col).cast("string").alias("text"),
        validation.alias("validation"),
    )
    schema = StructType(
        staged.schema.fields
        + [
            StructField("duration_s", DoubleType()),
            StructField("n_tokens", IntegerType()),
            StructField("skip_kind", StringType()),
            StructField("skip", StringType()),
        ]
    )
    (
        staged.mapInArrow(_check_fn(kind, labeler, max_words_per_s), schema=schema)
        .write.mode("overwrite")
        .option("maxRecordsPerFile", ROWS_PER_FILE)
        .parquet(dest)
    )
    spark = dataset.sparkSession
    written = spark.read.parquet(dest).select(*INDEX_COLUMNS)
    summary = StageSummary(kind)
    for r in written.groupBy("validation", "skip_kind").count().collect():
        if r["skip_kind"] is not None:
            summary.skipped[r["skip_kind"]] = summary.skipped.get(r["skip_kind"], 0) + int(r["count"])
        elif r["validation"]:
            summary.validation_rows += int(r["count"])
        else:
            summary.train_rows += int(r["count"])
    for k in sorted(summary.skipped):
        rows = written.where(F.col("skip_kind") == k).select("skip").limit(EXAMPLES_PER_KIND).collect()
        summary.skip_examples[k] = [r["skip"] for r in rows]
    _write_manifest(dest, summary)
    return summary


def _write_manifest(dest: str, summary: StageSummary) -> None:
    from ..paths import local_path

    with open(os.path.join(local_path(dest), MANIFEST), "w", encoding="utf-8") as f:
        f.write(summary.to_json())


def staged_files(directory: str) -> List[str]:
    """The Parquet files of a staged copy, in name order (local directory or ``file:`` URI)."""
    from ..paths import local_path

    d = local_path(directory)
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".parquet") and not f.startswith((".", "_")))


def read_index(files: Sequence[str]):
    """The index columns of every staged file: one pyarrow table per file."""
    import pyarrow.parquet as pq

    return [pq.read_table(f, columns=list(INDEX_COLUMNS)) for f in files]
