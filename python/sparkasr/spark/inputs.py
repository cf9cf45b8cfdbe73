"""The Spark side of input cells: which kind of audio a column holds (by its type), and an Arrow
column as per-row cells for :mod:`sparkasr.cells` (float samples as zero-copy numpy views)."""

from __future__ import annotations

from typing import Any, List, Optional

from ..cells import INPUT_AUDIO, INPUT_BINARY, INPUT_FLOATS, INPUT_PATH

__all__ = [
    "INPUT_AUDIO",
    "INPUT_BINARY",
    "INPUT_FLOATS",
    "INPUT_PATH",
    "classify_input",
    "column_values",
    "input_cells",
]


def classify_input(data_type) -> str:
    """The input kind of a column of Spark type ``data_type``."""
    from pyspark.sql.types import ArrayType, BinaryType, DoubleType, FloatType, StringType, StructType

    if isinstance(data_type, BinaryType):
        return INPUT_BINARY
    if isinstance(data_type, StringType):
        return INPUT_PATH
    if isinstance(data_type, ArrayType):
        el = data_type.elementType
        if isinstance(el, StructType) and "result" in el.fieldNames():
            return INPUT_AUDIO
        if isinstance(el, (FloatType, DoubleType)):
            return INPUT_FLOATS
    raise TypeError(
        f"unsupported input column type {data_type.simpleString()}: expected Spark NLP audio annotations "
        "(AudioAssembler output), binary file content, a file path string, or array<float> at 16 kHz"
    )


def input_cells(column, kind: str) -> List[Any]:
    """An Arrow input column -> per-row cells for :func:`sparkasr.cells.cell_items` (float samples
    as zero-copy numpy views; encoded files as bytes)."""
    from .arrow import audio_annotations, float_lists

    if kind == INPUT_AUDIO:
        return audio_annotations(column)
    if kind == INPUT_FLOATS:
        return float_lists(column)
    if kind == INPUT_BINARY:
        return [column[i].as_py() for i in range(len(column))]  # one file's bytes at a time
    return column.to_pylist()


def column_values(batch, col: Optional[str], n: int) -> List[Any]:
    """A column of an Arrow batch as Python values, or ``n`` Nones when ``col`` is None."""
    return batch.column(col).to_pylist() if col else [None] * n
