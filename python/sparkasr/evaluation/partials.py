"""Per-partition WER/CER partial counts over Arrow batches: what the Spark scorer's tasks run
(:mod:`sparkasr.spark.evaluation` sums the partials on the driver).

A worker unpickling the task's function imports this module and :mod:`.counts`, and neither
pyspark.ml nor the Spark evaluator.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Tuple

from .counts import COUNT_FIELDS, Accumulator

HYP = "__sparkasr_hyp"
REF = "__sparkasr_ref"
SUBS = "__sparkasr_subs"


def hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), hashable(x)) for k, x in v.items()))
    return v


def partition_counts(ship, null_prediction: str, group_names: List[str], with_subs: bool, max_subs: int):
    """The function a scoring task runs in ``mapInArrow``: its batches' (``REF``, ``HYP`` and the
    ``group_names`` columns) error counts per group, one row each (``SUBS``: the substitutions)."""

    def fn(batches: Iterator) -> Iterator:
        import pyarrow as pa

        acc = Accumulator(ship, null_prediction=null_prediction, substitutions=with_subs)
        first: Dict[Any, Tuple] = {}
        group_types = None
        for b in batches:
            if group_types is None:
                group_types = [b.schema.field(g).type for g in group_names]
            refs = b.column(REF).to_pylist()
            hyps = b.column(HYP).to_pylist()
            if group_names:
                cols = [b.column(g).to_pylist() for g in group_names]
                for i, (r, h) in enumerate(zip(refs, hyps)):
                    raw = tuple(c[i] for c in cols)
                    key = hashable(raw)
                    if key not in first:
                        first[key] = raw
                    acc.add(r, h, key)
            else:
                for r, h in zip(refs, hyps):
                    acc.add(r, h, ())
        if not acc.counts:
            return
        keys = list(acc.counts)
        arrays = []
        names = []
        for j, g in enumerate(group_names):
            arrays.append(pa.array([first[k][j] for k in keys], type=group_types[j]))
            names.append(g)
        for f in COUNT_FIELDS:
            arrays.append(pa.array([getattr(acc.counts[k], f) for k in keys], type=pa.int64()))
            names.append(f)
        if with_subs:
            sub_rows = []
            for k in keys:
                counter = acc.subs.get(k) or {}
                items = counter.items()
                if max_subs and len(counter) > max_subs:  # bounded memory: keep the frequent ones
                    items = sorted(items, key=lambda kv: -kv[1])[:max_subs]
                sub_rows.append([{"ref": a, "hyp": b_, "count": n} for (a, b_), n in items])
            arrays.append(
                pa.array(
                    sub_rows,
                    type=pa.list_(
                        pa.struct(
                            [
                                pa.field("ref", pa.string()),
                                pa.field("hyp", pa.string()),
                                pa.field("count", pa.int64(), nullable=False),
                            ]
                        )
                    ),
                )
            )
            names.append(SUBS)
        yield pa.RecordBatch.from_arrays(arrays, names=names)

    return fn
