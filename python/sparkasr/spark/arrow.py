"""Arrow columns <-> numpy and plain Python, for the ``mapInArrow`` glue of the audio stages.

Why not ``mapInPandas``: when a pandas function returns an ``array<float>`` column (decoded audio,
or Spark NLP ``audio`` annotations whose ``result`` is ``array<float>``), PySpark turns every cell
into a Python list (``list(value)``, one float object per sample) before building the Arrow array.
For an hour of 16 kHz audio that is 57.6 million objects: ~2.5 GB and tens of seconds per worker.
Here float lists are read as zero-copy numpy views of the Arrow buffer and written back with one
concatenation, and columns a stage only passes through are handed back to Spark untouched.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np


def arrow_type(spark_type):
    """The Arrow type Spark uses for ``spark_type`` (``mapInArrow`` output must match it; no
    timestamps: those need the session time zone, and pass-through columns keep their own type)."""
    from pyspark.sql.pandas.types import to_arrow_type

    return to_arrow_type(spark_type)


def float_lists(arr) -> List[Optional[np.ndarray]]:
    """A ``list<float|double>`` Arrow array -> one float32 numpy array per row (None for null).

    float32 rows are views of the Arrow buffer (no copy); double rows are converted once.
    """
    n = len(arr)
    if n == 0:
        return []
    offsets = arr.offsets.to_numpy(zero_copy_only=False)
    values = _float_values(arr.values)
    valid = _validity(arr)
    return [values[offsets[i] : offsets[i + 1]] if valid[i] else None for i in range(n)]


def _float_values(values) -> np.ndarray:
    # A null sample reads as NaN (as pandas gave it), so validation reports the row, naming it.
    out = values.to_numpy(zero_copy_only=False)
    return out if out.dtype == np.float32 else out.astype(np.float32)


def _validity(arr) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return arr.is_valid().to_numpy(zero_copy_only=False)


def float_list_array(rows: Sequence[Optional[np.ndarray]], list_type=None):
    """One ``list<float>`` Arrow array from numpy rows (None -> null), with a single copy."""
    import pyarrow as pa

    list_type = list_type or pa.list_(pa.float32())
    parts = [np.asarray(r, dtype=np.float32).ravel() if r is not None else np.zeros(0, np.float32) for r in rows]
    offsets = _offsets([len(p) for p in parts])
    big = pa.types.is_large_list(list_type)
    if not big and offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError(
            f"{offsets[-1]} samples in one Arrow batch exceed a list array's 2^31 limit; lower "
            "spark.sql.execution.arrow.maxRecordsPerBatch or segment_s"
        )
    values = pa.array(np.concatenate(parts) if parts else np.zeros(0, np.float32), type=list_type.value_type)
    mask = pa.array([r is None for r in rows], type=pa.bool_()) if any(r is None for r in rows) else None
    offs = pa.array(offsets, type=pa.int64() if big else pa.int32())
    cls = pa.LargeListArray if big else pa.ListArray
    return cls.from_arrays(offs, values, type=list_type, mask=mask)


def _offsets(lengths: Sequence[int]) -> np.ndarray:
    """List offsets (int64) from row lengths: ``[0, l0, l0 + l1, ...]``."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def audio_annotations(arr) -> List[Optional[List[Dict[str, Any]]]]:
    """Spark NLP ``audio`` annotation cells (``array<struct<annotatorType, result: array<float>,
    metadata: map>>``) -> per row a list of ``{"annotatorType", "result": float32 view, "metadata": dict}``."""
    n = len(arr)
    if n == 0:
        return []
    outer = arr.offsets.to_numpy(zero_copy_only=False)
    valid = _validity(arr)
    structs = arr.values
    names = [structs.type.field(i).name for i in range(structs.type.num_fields)]
    results = float_lists(structs.field(names.index("result"))) if "result" in names else [None] * len(structs)
    # a map cell comes as a list of (key, value) pairs
    metas = structs.field(names.index("metadata")).to_pylist() if "metadata" in names else [None] * len(structs)
    types = (
        structs.field(names.index("annotatorType")).to_pylist() if "annotatorType" in names else [None] * len(structs)
    )
    struct_valid = _validity(structs)
    rows: List[Optional[List[Dict[str, Any]]]] = []
    for i in range(n):
        if not valid[i]:
            rows.append(None)
            continue
        anns = []
        for j in range(outer[i], outer[i + 1]):
            if not struct_valid[j]:
                continue
            anns.append({"annotatorType": types[j], "result": results[j], "metadata": dict(metas[j] or ())})
        rows.append(anns)
    return rows


def audio_annotation_array(rows: Sequence[Sequence[Dict[str, Any]]], list_type):
    """Build an ``audio`` annotation column (type ``list_type``) from per-row annotation dicts,
    copying each row's samples once into the Arrow ``result`` buffer."""
    import pyarrow as pa

    struct_type = list_type.value_type
    flat = [a for r in rows for a in r]
    fields = {}
    for i in range(struct_type.num_fields):
        f = struct_type.field(i)
        if f.name == "result":
            fields[f.name] = float_list_array([a.get("result") for a in flat], f.type)
        elif f.name == "metadata":
            fields[f.name] = pa.array([list((a.get("metadata") or {}).items()) for a in flat], type=f.type)
        else:
            fields[f.name] = pa.array([a.get(f.name) for a in flat], type=f.type)
    structs = pa.StructArray.from_arrays(
        [fields[struct_type.field(i).name] for i in range(struct_type.num_fields)],
        fields=[struct_type.field(i) for i in range(struct_type.num_fields)],
    )
    offsets = pa.array(_offsets([len(r) for r in rows]), type=pa.int32())
    return pa.ListArray.from_arrays(offsets, structs, type=list_type)


def replace_columns(batch, columns: Dict[str, Any], names: Sequence[str]):
    """A record batch of ``names`` in that order: the arrays in ``columns`` (name -> Arrow array)
    where given, else ``batch``'s own column, passed through as it came (no copy, same type)."""
    import pyarrow as pa

    arrays = [columns[n] if n in columns else batch.column(n) for n in names]
    return pa.RecordBatch.from_arrays(arrays, names=list(names))
