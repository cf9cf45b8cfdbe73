"""WER/CER and diarization error rate: normalisers, additive alignment counts, corpus metrics,
bootstrap intervals and reports.

This package is plain Python (no Spark). The distributed layer lives in
:mod:`sparkasr.spark.evaluation` (``WerEvaluator``, ``evaluate_wer``).
"""

from .bootstrap import Interval, bootstrap_difference, bootstrap_rate, bootstrap_ratio
from .counts import (
    COUNT_FIELDS,
    METRICS,
    Accumulator,
    ErrorCounts,
    WerResult,
    WordAlignment,
    chars,
    corpus_counts,
    evaluate_pairs,
    pair_counts,
    top_k,
    word_alignment,
    words,
)
from .diarization import (
    COLLAR_S,
    DerCounts,
    DiarizationStats,
    corpus_der,
    diarization_stats,
    optimal_mapping,
    read_rttm,
    to_rttm,
)
from .normalizers import NORMALIZERS, Compose, Normalizer, get_normalizer, normalizer_name
from .report import render_markdown, write_metrics_json, write_report

__all__ = [
    "COLLAR_S",
    "COUNT_FIELDS",
    "DerCounts",
    "DiarizationStats",
    "corpus_der",
    "diarization_stats",
    "optimal_mapping",
    "read_rttm",
    "to_rttm",
    "bootstrap_ratio",
    "METRICS",
    "NORMALIZERS",
    "Accumulator",
    "Compose",
    "ErrorCounts",
    "Interval",
    "Normalizer",
    "WerResult",
    "bootstrap_difference",
    "bootstrap_rate",
    "chars",
    "corpus_counts",
    "evaluate_pairs",
    "get_normalizer",
    "normalizer_name",
    "pair_counts",
    "render_markdown",
    "top_k",
    "WordAlignment",
    "word_alignment",
    "words",
    "write_metrics_json",
    "write_report",
]
