"""``read_audio``: audio files into a DataFrame, decoded on executors, long files split into rows."""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Union

from ..audio import AUDIO_EXTENSIONS, SAMPLE_RATE, AudioError, RawFormat, iter_audio_blocks, iter_segments


def audio_glob_filter(extensions: Sequence[str] = AUDIO_EXTENSIONS) -> str:
    """A Hadoop glob matching the extensions in lower and upper case: ``*.{wav,WAV,flac,...}``."""
    exts = sorted({e.lstrip(".") for e in extensions} | {e.lstrip(".").upper() for e in extensions})
    return "*.{" + ",".join(exts) + "}"


def _to_uri(p: str) -> str:
    if "://" in p or p.startswith("file:"):
        return p
    return os.path.abspath(os.path.expanduser(p))


#: decoded samples per output Arrow batch of ``read_audio`` (~20 min of audio, 77 MB of float32)
_SAMPLES_PER_BATCH = 20 * 60 * SAMPLE_RATE


def read_binary(spark, paths: Union[str, Sequence[str]], recursive: bool = True, extensions: Sequence[str] = AUDIO_EXTENSIONS):
    """``binaryFile`` over files, directories (recursive) and globs, filtered to audio extensions.

    Listing happens through Spark's file index (parallel listing for large directories), not in
    Python on the driver. Columns: ``path, modificationTime, length, content``.
    """
    if isinstance(paths, str):
        paths = [paths]
    uris = [_to_uri(p) for p in paths]
    reader = spark.read.format("binaryFile").option("pathGlobFilter", audio_glob_filter(extensions))
    if recursive:
        reader = reader.option("recursiveFileLookup", "true")
    return reader.load(uris)


def read_audio(
    spark,
    path: Union[str, Sequence[str]],
    *,
    segment_s: float = 600.0,
    decode: bool = True,
    recursive: bool = True,
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    raw_format: Optional[RawFormat] = None,
):
    """Read audio files into a DataFrame.

    With ``decode=True`` (default) files are decoded on the executors into 16 kHz mono float32:
    one row per file, or one row per segment of at most ``segment_s`` seconds for longer files
    (segments are cut at the quietest point near the boundary), so nothing is truncated and no row
    holds an hour of floats. Columns::

        path, segment (int), offset_s (double), duration_s (double), sample_rate (int),
        audio (array<float>), error (string)

    A file that cannot be decoded gives one row with empty ``audio`` and ``error`` naming the file
    and the reason. ``audio`` feeds ``AudioAssembler(inputCol="audio")`` directly.

    With ``decode=False`` it returns the ``binaryFile`` rows (``path, modificationTime, length,
    content``), which ``AudioAssembler`` or the speech annotators decode themselves — the cheapest
    path, since decoded floats never travel back to the JVM.
    """
    from pyspark.sql.types import ArrayType, DoubleType, FloatType, IntegerType, StringType, StructField, StructType

    binary = read_binary(spark, path, recursive=recursive, extensions=extensions)
    if not decode:
        return binary
    schema = StructType(
        [
            StructField("path", StringType(), False),
            StructField("segment", IntegerType(), False),
            StructField("offset_s", DoubleType(), False),
            StructField("duration_s", DoubleType(), False),
            StructField("sample_rate", IntegerType(), False),
            StructField("audio", ArrayType(FloatType(), False), False),
            StructField("error", StringType(), True),
        ]
    )
    seg = float(segment_s)
    names = [f.name for f in schema.fields]

    def run(batches):
        import pyarrow as pa

        from .arrow import arrow_type, float_list_array

        out_schema = pa.schema([pa.field(f.name, arrow_type(f.dataType), f.nullable) for f in schema.fields])

        def emit(rows):
            cols = {n: [r[n] for r in rows] for n in names}
            arrays = [
                float_list_array(cols[f.name], out_schema.field(f.name).type) if f.name == "audio"
                else pa.array(cols[f.name], type=out_schema.field(f.name).type)
                for f in schema.fields
            ]
            return pa.RecordBatch.from_arrays(arrays, schema=out_schema)

        for batch in batches:
            paths = batch.column("path").to_pylist()
            contents = batch.column("content")
            rows: List[dict] = []
            n_samples = 0
            for i, p in enumerate(paths):
                decoded = _decode_rows(p, contents[i].as_py(), seg, raw_format)
                rows.extend(decoded)
                n_samples += sum(len(r["audio"]) for r in decoded)
                if n_samples >= _SAMPLES_PER_BATCH:  # bound what one worker holds
                    yield emit(rows)
                    rows, n_samples = [], 0
            if rows:
                yield emit(rows)

    # mapInArrow, not mapInPandas: PySpark would turn every returned sample into a Python float
    # (see sparkasr.spark.arrow); here the samples are copied once into the Arrow buffer.
    return binary.select("path", "content").mapInArrow(run, schema=schema)


def _decode_rows(path: str, content, segment_s: float, raw_format) -> List[dict]:
    import numpy as np

    empty = np.zeros(0, dtype=np.float32)
    out = []
    try:
        if content is None or len(content) == 0:
            raise AudioError("empty file (0 bytes)")
        blocks = iter_audio_blocks(bytes(content), name=path, raw_format=raw_format)
        for i, (offset, samples) in enumerate(iter_segments(blocks, segment_s)):
            if i == 0 and len(samples) == 0:
                raise AudioError("audio has zero length (no samples)")
            out.append(
                dict(path=path, segment=i, offset_s=round(offset, 4), duration_s=round(len(samples) / SAMPLE_RATE, 4),
                     sample_rate=SAMPLE_RATE, audio=samples, error=None)
            )
        return out
    except AudioError as exc:
        reason = str(exc)
    except Exception as exc:  # never lose a file
        reason = f"cannot read audio ({type(exc).__name__}: {exc})"
    # Keep any segments decoded before the failure, and record the error on an extra row.
    out.append(dict(path=path, segment=len(out), offset_s=0.0, duration_s=0.0, sample_rate=SAMPLE_RATE, audio=empty, error=f"{path}: {reason}"))
    return out
