"""``read_audio``: audio files into a DataFrame, decoded on executors, long files split into rows."""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

from ..audio import AUDIO_EXTENSIONS, SAMPLE_RATE, AudioError, RawFormat, iter_segments
from ..cells import INPUT_BINARY, INPUT_PATH, cell_blocks, failure
from ..paths import is_remote_uri, spark_uri


def audio_glob_filter(extensions: Sequence[str] = AUDIO_EXTENSIONS) -> str:
    """A Hadoop glob matching the extensions in lower and upper case: ``*.{wav,WAV,flac,...}``."""
    exts = sorted({e.lstrip(".") for e in extensions} | {e.lstrip(".").upper() for e in extensions})
    return "*.{" + ",".join(exts) + "}"


#: decoded samples per output Arrow batch of ``read_audio`` (~20 min of audio, 77 MB of float32)
_SAMPLES_PER_BATCH = 20 * 60 * SAMPLE_RATE


def read_binary(
    spark, paths: Union[str, Sequence[str]], recursive: bool = True, extensions: Sequence[str] = AUDIO_EXTENSIONS
):
    """``binaryFile`` over files, directories (recursive) and globs, filtered to audio extensions.

    Listing happens through Spark's file index (parallel listing for large directories), not in
    Python on the driver. Columns: ``path, modificationTime, length, content``.
    """
    if isinstance(paths, str):
        paths = [paths]
    uris = [spark_uri(p) for p in paths]
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
    samples: bool = True,
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

    ``offset_s`` and ``duration_s`` are exact to the sample (``n / 16000``).

    With ``samples=False`` the rows are the same segments without their samples (no ``audio``
    column): references that the speech annotators and ``AudioAssembler`` decode themselves from
    ``inputCols=["path"]`` (with ``offset_s`` and ``duration_s``), seeking to the slice, on the
    executor that transcribes it. Decoded audio (64 kB per second as float32) then never goes
    through the JVM or a shuffle; a ``repartition`` that spreads a few long files over many tasks
    moves rows of a few bytes. The files must be readable by path from the Python workers (local
    disk, NFS, ``/dbfs`` and other mounts): ``s3a://``-style URIs raise ``ValueError``. Lossless
    files slice to exactly the samples ``samples=True`` gives (see
    :func:`~sparkasr.audio.decode_audio_slice` for the others).

    With ``decode=False`` it returns the ``binaryFile`` rows (``path, modificationTime, length,
    content``), which ``AudioAssembler`` or the speech annotators decode themselves — the cheapest
    path for files that fit in a row, since decoded floats never travel back to the JVM.
    """
    from pyspark.sql.types import ArrayType, DoubleType, FloatType, IntegerType, StringType, StructField, StructType

    if decode and not samples:
        remote = [p for p in ([path] if isinstance(path, str) else path) if is_remote_uri(p)]
        if remote:
            raise ValueError(
                f"read_audio(samples=False) needs files the Python workers can open by path; {remote[0]} is not "
                "(use samples=True, or a mount of that storage)"
            )
    binary = read_binary(spark, path, recursive=recursive, extensions=extensions)
    if not decode:
        return binary
    from .session import check_python_workers

    check_python_workers(spark)
    fields = [
        StructField("path", StringType(), False),
        StructField("segment", IntegerType(), False),
        StructField("offset_s", DoubleType(), False),
        StructField("duration_s", DoubleType(), False),
        StructField("sample_rate", IntegerType(), False),
        StructField("audio", ArrayType(FloatType(), False), False),
        StructField("error", StringType(), True),
    ]
    schema = StructType([f for f in fields if samples or f.name != "audio"])
    seg = float(segment_s)
    names = [f.name for f in schema.fields]

    def run(batches):
        import pyarrow as pa

        from .arrow import arrow_type, float_list_array

        out_schema = pa.schema([pa.field(f.name, arrow_type(f.dataType), f.nullable) for f in schema.fields])

        def emit(rows):
            cols = {n: [r[n] for r in rows] for n in names}
            arrays = [
                float_list_array(cols[f.name], out_schema.field(f.name).type)
                if f.name == "audio"
                else pa.array(cols[f.name], type=out_schema.field(f.name).type)
                for f in schema.fields
            ]
            return pa.RecordBatch.from_arrays(arrays, schema=out_schema)

        for batch in batches:
            paths = batch.column("path").to_pylist()
            contents = batch.column("content") if samples else None
            rows: List[dict] = []
            n_samples = 0
            for i, p in enumerate(paths):
                source = contents[i].as_py() if samples else None
                decoded = _decode_rows(p, source, seg, raw_format, samples)
                rows.extend(decoded)
                n_samples += sum(len(r["audio"]) for r in decoded) if samples else 0
                if n_samples >= _SAMPLES_PER_BATCH:  # bound what one worker holds
                    yield emit(rows)
                    rows, n_samples = [], 0
            if rows:
                yield emit(rows)

    # mapInArrow, not mapInPandas: PySpark would turn every returned sample into a Python float
    # (see sparkasr.spark.arrow); here the samples are copied once into the Arrow buffer.
    # samples=False reads each file by its path: binaryFile does not load the content column
    # when it is not selected.
    return binary.select("path", *(["content"] if samples else [])).mapInArrow(run, schema=schema)


def _decode_rows(path: str, content, segment_s: float, raw_format, samples: bool = True) -> List[dict]:
    """read_audio's rows for one file: decoded from ``content``, or (``samples=False``) from the
    file at ``path``, then cut into segments; with ``samples=False`` the rows keep only where each
    segment lies."""
    import numpy as np

    out = []
    try:
        blocks = (
            cell_blocks(content, INPUT_BINARY, path, raw_format)
            if samples
            else cell_blocks(path, INPUT_PATH, path, raw_format)
        )
        start = 0  # in samples: offsets and durations exact to the sample, in both modes
        for i, (_, seg) in enumerate(iter_segments(blocks, segment_s)):
            if i == 0 and len(seg) == 0:
                raise AudioError("audio has zero length (no samples)")
            row = dict(
                path=path,
                segment=i,
                offset_s=start / SAMPLE_RATE,
                duration_s=len(seg) / SAMPLE_RATE,
                sample_rate=SAMPLE_RATE,
                error=None,
            )
            out.append({**row, "audio": seg} if samples else row)
            start += len(seg)
        return out
    except Exception as exc:  # never lose a file
        error = failure(path, exc)
    # Keep any segments decoded before the failure, and record the error on an extra row.
    error_row = dict(path=path, segment=len(out), offset_s=0.0, duration_s=0.0, sample_rate=SAMPLE_RATE, error=error)
    out.append({**error_row, "audio": np.zeros(0, dtype=np.float32)} if samples else error_row)
    return out
