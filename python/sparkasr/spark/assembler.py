"""``AudioAssembler``: Spark NLP's entry stage, plus decoding, resampling and down-mixing."""

from __future__ import annotations

from typing import Iterator

import numpy as np
from pyspark.ml import Transformer
from pyspark.ml.util import DefaultParamsReadable

from .. import annotation as A
from ..audio import SAMPLE_RATE
from ..cells import cell_source, decode_cell, failure
from ..params import stage_table
from .inputs import INPUT_BINARY, INPUT_FLOATS, INPUT_PATH, classify_input, column_values, input_cells
from .params import HasReaderCols, declare_params
from .session import ParamsWritable, check_python_workers


@declare_params(stage_table("AudioAssembler"))
class AudioAssembler(Transformer, HasReaderCols, DefaultParamsReadable, ParamsWritable):
    """Turn a column of audio into Spark NLP ``audio`` annotations (16 kHz mono float32).

    Input column types:

    * ``array<float>`` / ``array<double>`` samples, as in Spark NLP, at ``sampleRate`` (or the
      per-row rate in ``sampleRateCol``), interleaved when ``channels`` > 1: down-mixed and
      resampled with soxr when needed (pure Spark SQL when already 16 kHz mono);
    * ``binary``: encoded file content (``spark.read.format("binaryFile")``): WAV/FLAC/OGG/MP3/...;
    * ``string``: a file path readable by the Python workers.

    A row that cannot be decoded gets one annotation with an empty ``result`` and an ``error`` in
    its metadata (naming the file when ``pathCol``/``path`` is present): the row is never dropped.

    Rows from :func:`~sparkasr.spark.reader.read_audio` carry ``offset_s`` (where a segment starts
    in its file) and ``error`` (why a file could not be read): ``offsetCol`` and ``errorCol`` (by
    default those columns when present) put them in the annotation's metadata, so the speech
    annotators time chunks from the start of the file and report the reader's error. With a path
    column as input, ``durationCol`` (by default ``duration_s`` when present) makes each row the
    slice ``[offset_s, offset_s + duration_s)`` of its file: ``read_audio(samples=False)``'s
    references, decoded here by seeking.
    """

    def _transform(self, dataset):
        from pyspark.sql import functions as F
        from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

        in_col, out_col = self.getInputCol(), self.getOutputCol()
        if in_col not in dataset.columns:
            raise ValueError(f"AudioAssembler: input column '{in_col}' not found; columns are {dataset.columns}")
        kind = classify_input(dataset.schema[in_col].dataType)
        if kind not in (INPUT_FLOATS, INPUT_BINARY, INPUT_PATH):
            raise TypeError(f"AudioAssembler: column '{in_col}' already holds audio annotations")
        sr, sr_col, ch = self.getSampleRate(), self.getSampleRateCol(), self.getChannels()
        path_col, offset_col, error_col, duration_col = self._reader_cols(dataset, kind == INPUT_PATH)

        if kind == INPUT_FLOATS and sr == SAMPLE_RATE and ch == 1 and not sr_col:
            # Already 16 kHz mono: a pure SQL cast, no Python round trip.
            samples = F.col(in_col).cast(ArrayType(FloatType(), True))
            meta_items = [
                F.lit("sample_rate"),
                F.lit(str(SAMPLE_RATE)),
                F.lit("duration_s"),
                F.format_number(F.size(in_col) / F.lit(float(SAMPLE_RATE)), 3),
            ]
            if path_col:
                meta_items += [F.lit("source"), F.col(path_col).cast("string")]
            if offset_col:
                meta_items += [F.lit("offset_s"), F.round(F.col(offset_col).cast("double"), 4).cast("string")]
            if error_col:
                meta_items += [F.lit(A.ERROR_KEY), F.col(error_col)]
            meta = F.map_filter(F.create_map(*meta_items), lambda k, v: v.isNotNull())  # no null values in the metadata
            ann = F.struct(F.lit(A.AUDIO).alias("annotatorType"), samples.alias("result"), meta.alias("metadata"))
            out = dataset.withColumn(
                out_col,
                F.when(F.col(in_col).isNull(), F.array().cast(A.audio_annotation_array_type())).otherwise(F.array(ann)),
            )
            return A.with_annotator_type_metadata(out, out_col, A.AUDIO)

        check_python_workers(dataset.sparkSession)
        fields = [f for f in dataset.schema.fields if f.name != out_col]
        fields.append(StructField(out_col, A.audio_annotation_array_type(), True, metadata={"annotatorType": A.AUDIO}))
        schema = StructType(fields)

        def run(batches: Iterator):
            from .arrow import arrow_type, audio_annotation_array, replace_columns

            names = schema.names
            out_type = arrow_type(schema[out_col].dataType)
            for batch in batches:
                cells = input_cells(batch.column(in_col), kind)
                paths = column_values(batch, path_col, len(cells))
                rates = batch.column(sr_col).to_pylist() if sr_col else [sr] * len(cells)
                offsets = column_values(batch, offset_col, len(cells))
                errors = column_values(batch, error_col, len(cells))
                durations = column_values(batch, duration_col, len(cells))
                out = [
                    [_assemble(cell, kind, p, rate, ch, off, err, dur)]
                    for cell, p, rate, off, err, dur in zip(cells, paths, rates, offsets, errors, durations)
                ]
                del cells
                col = audio_annotation_array(out, out_type)
                yield replace_columns(batch, {out_col: col}, names)

        # mapInArrow: samples go into the Arrow buffer once (mapInPandas would make a Python float
        # of each one) and the other columns pass through untouched.
        result = dataset.drop(out_col) if out_col in dataset.columns else dataset
        result = result.mapInArrow(run, schema=schema)
        return A.with_annotator_type_metadata(result, out_col, A.AUDIO)


def _assemble(cell, kind, path, rate, channels, offset=None, error=None, duration=None):
    source = cell_source(cell, kind, path)
    meta = {"sample_rate": SAMPLE_RATE, "source": source or None}
    if offset is not None:
        meta["offset_s"] = round(float(offset), 4)
    if error:  # the reader already failed on this row and said why (naming the file)
        meta[A.ERROR_KEY] = str(error)
        return A.audio_annotation(np.zeros(0, dtype=np.float32), meta)
    try:
        samples = decode_cell(cell, kind, source, offset=offset, duration=duration, rate=rate, channels=channels)
    except Exception as exc:  # never lose a row
        meta[A.ERROR_KEY] = failure(source, exc)
        return A.audio_annotation(np.zeros(0, dtype=np.float32), meta)
    if kind == INPUT_FLOATS:
        meta["original_sample_rate"] = int(rate)
        meta["channels"] = channels
    meta["duration_s"] = round(len(samples) / SAMPLE_RATE, 3)
    return A.audio_annotation(samples, meta)
