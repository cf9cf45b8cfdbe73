"""WER/CER on Spark: a ``pyspark.ml`` Evaluator and a grouped, distributed scorer.

How it is computed
------------------
1. The prediction (and reference) column is reduced to a string column *in Spark SQL*: a plain
   string column is used as is; a Spark NLP annotation column
   (``array<struct<annotatorType, begin, end, result, metadata, embeddings>>``) becomes the
   space-joined ``result`` of its ``document`` annotations (what
   :func:`sparkasr.annotation.document_text` does), so embeddings never travel to Python.
2. ``mapInArrow`` runs one Python function per partition: every row is normalised, aligned with
   rapidfuzz and its integer counts are added into per-group accumulators
   (:class:`sparkasr.evaluation.Accumulator`); the partition emits one row per group seen.
3. The partial rows (partitions x groups: small) are collected and summed on the driver — one job,
   no shuffle — and the rates are derived from the totals: corpus WER = total errors / total
   reference words, exactly as jiwer computes it on the same pairs, whatever the partitioning.

Most frequent substitutions travel in the same partial rows (an ``array<struct<ref, hyp,
count>>`` per partition and group), are exploded and summed in Spark, and the top ``k`` are
collected.

``with_error_counts`` adds the per-row counts as a struct column instead (for per-utterance
analysis: worst utterances, joins with metadata).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from pyspark.ml.evaluation import Evaluator
from pyspark.ml.util import DefaultParamsReadable
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..evaluation.counts import COUNT_FIELDS, ErrorCounts, WerResult, pair_counts
from ..evaluation.normalizers import NormalizerLike, get_normalizer
from ..evaluation.partials import HYP, REF, SUBS, hashable, partition_counts
from ..evaluation.report import write_report
from ..params import stage_table
from .params import declare_params
from .session import ParamsWritable, check_python_workers

__all__ = [
    "WerEvaluator",
    "evaluate_wer",
    "evaluate_and_report",
    "has_references",
    "error_counts",
    "with_error_counts",
    "text_column",
    "EVALUATOR_METRICS",
    "evaluate_der",
]

EVALUATOR_METRICS = stage_table("WerEvaluator").option("metricName").choices


_SUB_TYPE = T.ArrayType(
    T.StructType(
        [
            T.StructField("ref", T.StringType(), True),
            T.StructField("hyp", T.StringType(), True),
            T.StructField("count", T.LongType(), False),
        ]
    ),
    False,
)


# ---------------------------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------------------------


def text_column(df: DataFrame, column: str) -> Column:
    """A string column for ``column``: itself if it is a string, else the space-joined ``result``
    of the non-empty ``document`` annotations of a Spark NLP annotation column (null stays null)."""
    dt = df.schema[column].dataType
    if isinstance(dt, T.StringType):
        return F.col(column)
    if isinstance(dt, T.ArrayType) and isinstance(dt.elementType, T.StructType):
        names = dt.elementType.fieldNames()
        if "result" in names and isinstance(dt.elementType["result"].dataType, T.StringType):

            def keep(a: Column) -> Column:
                ok = a["result"].isNotNull() & (a["result"] != F.lit(""))
                if "annotatorType" in names:
                    ok = ok & (F.coalesce(a["annotatorType"], F.lit("document")) == F.lit("document"))
                return ok

            docs = F.filter(F.col(column), keep)
            return F.array_join(F.transform(docs, lambda a: a["result"]), " ")
    raise TypeError(
        f"column {column!r} must be a string or a Spark NLP text annotation column "
        f"(array<struct<..., result: string, ...>>), not {dt.simpleString()}"
    )


def _check_normalizer(normalizer: NormalizerLike):
    norm = get_normalizer(normalizer)
    norm("")  # fail on the driver (unknown name, missing whisper-normalizer), not in a task
    # ship the name when it is one (resolved and cached on each executor), else the object
    ship = normalizer if isinstance(normalizer, str) else norm
    return norm, ship


def _partial_schema(group_fields: Sequence[T.StructField], with_subs: bool) -> T.StructType:
    fields = [T.StructField(f.name, f.dataType, True) for f in group_fields]
    fields += [T.StructField(c, T.LongType(), False) for c in COUNT_FIELDS]
    if with_subs:
        fields.append(T.StructField(SUBS, _SUB_TYPE, False))
    return T.StructType(fields)


def _prepare(df: DataFrame, prediction_col: str, reference_col: str, group_by: Sequence[str]) -> DataFrame:
    for c in list(group_by) + [prediction_col, reference_col]:
        if c not in df.columns:
            raise ValueError(f"column {c!r} not in the DataFrame (columns: {df.columns})")
    check_python_workers(df.sparkSession)
    return df.select(
        *[F.col(g) for g in group_by],
        text_column(df, prediction_col).alias(HYP),
        text_column(df, reference_col).alias(REF),
    )


def _group_key(values: Tuple) -> Tuple:
    """Driver-side key merging what Spark's GROUP BY merges (all NaNs are one group)."""
    return tuple(("__nan__",) if isinstance(v, float) and v != v else hashable(v) for v in values)


def _sum_partials(partial: DataFrame, group_by: Sequence[str]) -> Dict[Tuple, Tuple[Tuple, ErrorCounts]]:
    """Collect the per-partition partial rows (partitions x groups, small) and sum them on the
    driver: one job, no shuffle. Returns ``{key: (group values, counts)}``."""
    out: Dict[Tuple, Tuple[Tuple, ErrorCounts]] = {}
    for row in partial.select(*[F.col(g) for g in group_by], *COUNT_FIELDS).collect():
        values = tuple(row[g] for g in group_by)
        key = _group_key(values)
        c = _counts_of(row)
        if key in out:
            out[key][1].__iadd__(c)
        else:
            out[key] = (values, c)
    return out


def _counts_of(row) -> ErrorCounts:
    return ErrorCounts.from_dict({c: row[c] for c in COUNT_FIELDS})


# ---------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------


def error_counts(
    df: DataFrame,
    prediction_col: str,
    reference_col: str,
    normalizer: NormalizerLike = "basic",
    *,
    null_prediction: str = "skip",
) -> ErrorCounts:
    """Corpus :class:`ErrorCounts` of ``df`` (one distributed pass; no substitutions)."""
    _, ship = _check_normalizer(normalizer)
    scored = _prepare(df, prediction_col, reference_col, [])
    partial = scored.mapInArrow(partition_counts(ship, null_prediction, [], False, 0), _partial_schema([], False))
    sums = _sum_partials(partial, [])
    return sums[()][1] if sums else ErrorCounts()


def evaluate_wer(
    df: DataFrame,
    prediction_col: str,
    reference_col: str,
    group_by: Optional[Union[str, Sequence[str]]] = None,
    normalizer: NormalizerLike = "basic",
    *,
    null_prediction: str = "skip",
    top_substitutions: int = 20,
    max_substitutions_per_partition: int = 0,
) -> WerResult:
    """Counts and metrics overall and per group.

    Args:
        df: any DataFrame with a prediction and a reference column (strings or Spark NLP
            annotation columns).
        group_by: column name(s); counts and rates are reported per distinct combination
            (``result.groups``, ``result.to_pandas()``); null group values form their own group.
        normalizer: name (``"none"``, ``"basic"``, ``"whisper_en"``, ``"basic+nospace"``...), a
            :class:`~sparkasr.evaluation.Normalizer` or a function ``str -> str``; applied to both
            sides.
        null_prediction: ``"skip"`` (default) or ``"empty"`` (score a null prediction as an empty
            hypothesis). Null references are always skipped. Skipped rows are counted.
        top_substitutions: how many of the most frequent word substitutions to collect (overall
            and per group); 0 disables the substitution statistics (one pass less).
        max_substitutions_per_partition: 0 (exact, default) or a cap on distinct substitution
            pairs each partition ships (approximate top-k, bounded memory for huge corpora).

    Returns:
        :class:`~sparkasr.evaluation.WerResult` (``.wer``, ``.cer``, ``.overall``, ``.groups``,
        ``.substitutions``, ``.to_pandas()``, ``.to_dict()``).
    """
    if isinstance(group_by, str):
        group_by = [group_by]
    group_by = list(group_by or [])
    if null_prediction not in ("skip", "empty"):
        raise ValueError("null_prediction must be 'skip' or 'empty'")
    norm, ship = _check_normalizer(normalizer)
    with_subs = top_substitutions > 0
    scored = _prepare(df, prediction_col, reference_col, group_by)
    group_fields = [scored.schema[g] for g in group_by]
    partial = scored.mapInArrow(
        partition_counts(ship, null_prediction, group_by, with_subs, max_substitutions_per_partition),
        _partial_schema(group_fields, with_subs),
    )
    if with_subs:
        partial = partial.persist()
    try:
        sums = _sum_partials(partial, group_by)
        groups: Dict[Tuple, ErrorCounts] = {}
        overall = ErrorCounts()
        for values, c in sums.values():
            overall += c
            if group_by:
                groups[values] = c
        subs: List[Tuple[str, str, int]] = []
        group_subs: Dict[Tuple, List[Tuple[str, str, int]]] = {}
        if with_subs:
            ex = partial.select(*[F.col(g) for g in group_by], F.explode(F.col(SUBS)).alias("s")).select(
                *[F.col(g) for g in group_by],
                F.col("s.ref").alias("ref"),
                F.col("s.hyp").alias("hyp"),
                F.col("s.count").alias("n"),
            )
            top = (
                ex.groupBy("ref", "hyp")
                .agg(F.sum("n").alias("n"))
                .orderBy(F.desc("n"), F.asc("ref"), F.asc("hyp"))
                .limit(top_substitutions)
                .collect()
            )
            subs = [(r["ref"], r["hyp"], int(r["n"])) for r in top]
            if group_by:
                w = Window.partitionBy(*[F.col(g) for g in group_by]).orderBy(F.desc("n"), F.asc("ref"), F.asc("hyp"))
                per = (
                    ex.groupBy(*group_by, "ref", "hyp")
                    .agg(F.sum("n").alias("n"))
                    .withColumn("_rank", F.row_number().over(w))
                    .filter(F.col("_rank") <= top_substitutions)
                    .orderBy(*group_by, "_rank")
                    .collect()
                )
                for r in per:
                    vals = tuple(r[g] for g in group_by)
                    vals = sums.get(_group_key(vals), (vals, None))[0]  # same key objects as groups
                    group_subs.setdefault(vals, []).append((r["ref"], r["hyp"], int(r["n"])))
    finally:
        if with_subs:
            partial.unpersist()
    return WerResult(
        overall=overall,
        normalizer=norm.name,
        group_by=group_by,
        groups=groups,
        substitutions=subs,
        group_substitutions=group_subs,
        options={
            "prediction_col": prediction_col,
            "reference_col": reference_col,
            "null_prediction": null_prediction,
        },
    )


def has_references(df: DataFrame, reference_col: str = "reference") -> bool:
    """Whether ``df`` has a ``reference_col`` with at least one non-null value (one small job)."""
    if reference_col not in df.columns:
        return False
    return len(df.select(reference_col).where(F.col(reference_col).isNotNull()).limit(1).collect()) > 0


def evaluate_and_report(
    df: DataFrame,
    out_dir,
    *,
    prediction_col: str = "text",
    reference_col: str = "reference",
    group_by: Optional[Union[str, Sequence[str]]] = None,
    normalizer: NormalizerLike = "basic",
    model: Any = None,
    options: Optional[Mapping[str, Any]] = None,
    top_substitutions: int = 20,
    null_prediction: str = "skip",
) -> WerResult:
    """Evaluate ``df`` and write ``metrics.json``, ``report.md`` and PNG charts into ``out_dir``.

    The entry point for ``sparkasr transcribe``: ``df`` has the transcription column (``text``),
    the reference column (``reference``) and optional group columns.
    """
    result = evaluate_wer(
        df,
        prediction_col,
        reference_col,
        group_by=group_by,
        normalizer=normalizer,
        null_prediction=null_prediction,
        top_substitutions=top_substitutions,
    )
    write_report(out_dir, result, model=model, options=options)
    return result


def with_error_counts(
    df: DataFrame,
    prediction_col: str,
    reference_col: str,
    output_col: str = "wer_counts",
    normalizer: NormalizerLike = "basic",
    *,
    null_prediction: str = "skip",
) -> DataFrame:
    """Add a per-row struct column with the alignment counts and the row's ``wer`` / ``cer``
    (a pandas UDF). Summing the count fields over any grouping gives the corpus counts."""
    from pyspark.sql.functions import pandas_udf

    norm, ship = _check_normalizer(normalizer)
    check_python_workers(df.sparkSession)
    fields = [T.StructField(c, T.LongType(), True) for c in COUNT_FIELDS]
    fields += [T.StructField("wer", T.DoubleType(), True), T.StructField("cer", T.DoubleType(), True)]
    schema = T.StructType(fields)

    @pandas_udf(schema)
    def _counts(hyp, ref):  # pandas Series -> pandas DataFrame
        import pandas as pd

        out = []
        for r, h in zip(ref.tolist(), hyp.tolist()):
            r = None if r is None or (isinstance(r, float) and r != r) else r
            h = None if h is None or (isinstance(h, float) and h != h) else h
            c = pair_counts(r, h, ship, null_prediction=null_prediction)
            d = {f: getattr(c, f) for f in COUNT_FIELDS}
            d["wer"] = None if c.n_null else c.wer
            d["cer"] = None if c.n_null else c.cer
            out.append(d)
        return pd.DataFrame(out, columns=schema.fieldNames())

    return df.withColumn(output_col, _counts(text_column(df, prediction_col), text_column(df, reference_col)))


# ---------------------------------------------------------------------------------------------
# Evaluator
# ---------------------------------------------------------------------------------------------


@declare_params(stage_table("WerEvaluator"))
class WerEvaluator(Evaluator, DefaultParamsReadable, ParamsWritable):
    """``pyspark.ml`` Evaluator for WER / CER / MER / WIL (smaller is better).

    Usable with ``CrossValidator`` / ``TrainValidationSplit`` (e.g. to choose a beam size)::

        WerEvaluator(predictionCol="transcription", referenceCol="reference",
                     metricName="wer", normalizer="whisper_en")

    ``predictionCol`` and ``referenceCol`` may be strings or Spark NLP annotation columns.
    """

    def setNormalizer(self, value: str) -> WerEvaluator:
        get_normalizer(value)
        return self.setParams(normalizer=value)

    def _validate(self) -> None:
        get_normalizer(self.getNormalizer())

    def isLargerBetter(self) -> bool:
        return False

    def counts(self, dataset: DataFrame) -> ErrorCounts:
        """The corpus counts behind the metric (all metrics are derivable from them)."""
        return error_counts(
            dataset,
            self.getPredictionCol(),
            self.getReferenceCol(),
            self.getNormalizer(),
            null_prediction=self.getNullPrediction(),
        )

    def _evaluate(self, dataset: DataFrame) -> float:
        return float(self.counts(dataset).metric(self.getMetricName()))


# ---------------------------------------------------------------------------------------------
# Diarization error rate
# ---------------------------------------------------------------------------------------------


def _turn_list(value) -> List[Tuple[float, float, str]]:
    """Turns from a cell: SpeakerDiarizer's chunk annotations, ``{start, end, speaker}`` structs, or
    RTTM text."""
    if value is None:
        return []
    if isinstance(value, str):
        from ..evaluation.diarization import read_rttm

        return [t for turns in read_rttm(value).values() for t in turns]
    out = []
    for v in value:
        v = dict(v)
        if "metadata" in v:
            m = dict(v["metadata"] or {})
            if "start" in m and "end" in m and not m.get("error"):
                out.append((float(m["start"]), float(m["end"]), m.get("speaker") or v.get("result")))
        elif v.get("start") is not None:
            out.append((float(v["start"]), float(v["end"]), str(v["speaker"])))
    return out


def evaluate_der(
    df: DataFrame,
    reference_col: str = "reference_speakers",
    hypothesis_col: str = "speakers",
    collar: float = 0.25,
    global_labels: bool = False,
) -> Dict[str, Any]:
    """Diarization error rate of a DataFrame, computed per partition and summed (like WER): each row's
    reference turns (``{start, end, speaker}`` structs or RTTM text) against its hypothesis
    (SpeakerDiarizer's annotations or structs), 0.25-s collar. Per-file speaker mappings; with
    ``global_labels`` (labels meant to be corpus-wide, after SpeakerIdentity) one mapping for all
    rows from the summed co-occurrence. Returns the counts and ``der``."""
    from ..evaluation.diarization import DiarizationStats, diarization_stats

    schema = T.StructType(
        [
            T.StructField("total", T.DoubleType()),
            T.StructField("missed", T.DoubleType()),
            T.StructField("false_alarm", T.DoubleType()),
            T.StructField("confusion", T.DoubleType()),
            T.StructField("matchable", T.DoubleType()),
            T.StructField("files", T.LongType()),
            T.StructField(
                "co",
                T.ArrayType(
                    T.StructType(
                        [
                            T.StructField("ref", T.StringType()),
                            T.StructField("hyp", T.StringType()),
                            T.StructField("s", T.DoubleType()),
                        ]
                    )
                ),
            ),
        ]
    )

    def fn(batches):
        import pyarrow as pa

        acc = DiarizationStats()
        confusion = 0.0
        for b in batches:
            for r, h in zip(b.column(0).to_pylist(), b.column(1).to_pylist()):
                if r is None or h is None:
                    continue
                st = diarization_stats(_turn_list(r), _turn_list(h), collar=collar)
                confusion += st.counts().confusion
                acc = acc + st
        co = [{"ref": k[0], "hyp": k[1], "s": v} for k, v in acc.cooccurrence.items()]
        yield pa.RecordBatch.from_pylist(
            [
                {
                    "total": acc.total,
                    "missed": acc.missed,
                    "false_alarm": acc.false_alarm,
                    "confusion": confusion,
                    "matchable": acc.matchable,
                    "files": acc.files,
                    "co": co,
                }
            ],
            schema=pa.schema(
                [
                    ("total", pa.float64()),
                    ("missed", pa.float64()),
                    ("false_alarm", pa.float64()),
                    ("confusion", pa.float64()),
                    ("matchable", pa.float64()),
                    ("files", pa.int64()),
                    ("co", pa.list_(pa.struct([("ref", pa.string()), ("hyp", pa.string()), ("s", pa.float64())]))),
                ]
            ),
        )

    parts = df.select(reference_col, hypothesis_col).mapInArrow(fn, schema).collect()
    total = DiarizationStats()
    confusion = 0.0
    for p in parts:
        co: Dict[Tuple[str, str], float] = {}
        for c in p["co"] or []:
            co[(c["ref"], c["hyp"])] = co.get((c["ref"], c["hyp"]), 0.0) + c["s"]
        total = total + DiarizationStats(p["total"], p["missed"], p["false_alarm"], p["matchable"], co, p["files"])
        confusion += p["confusion"]
    if global_labels:
        counts = total.counts()
    else:
        from ..evaluation.diarization import DerCounts

        counts = DerCounts(total.total, total.missed, total.false_alarm, confusion)
    return {**counts.to_dict(), "files": total.files, "global_labels": global_labels}
