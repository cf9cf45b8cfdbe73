"""Bootstrap confidence intervals for corpus WER/CER, resampling units (files, or the prompts of a
long recording) with replacement.

A corpus rate is a ratio of sums (errors / reference words), so a resample reweights the units'
counts and takes the ratio again: ``rate* = sum(w * errors) / sum(w * ref_len)`` with
multinomial weights ``w`` (each unit drawn ``w_i`` times). The interval is the percentile
interval of the resampled rates. :func:`bootstrap_difference` is **paired**: both systems are
reweighted with the same draw, so a difference that is consistent file by file is told apart from
one that the choice of files could produce. Seeded: the same counts give the same interval.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, Iterator, Sequence, Tuple

import numpy as np

from .counts import ErrorCounts

__all__ = ["Interval", "bootstrap_rate", "bootstrap_ratio", "bootstrap_difference"]

_CHUNK = 1000  # resamples per weight matrix (bounded memory for large corpora)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    level: float = 0.95
    resamples: int = 0
    units: int = 0

    def __str__(self) -> str:
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> Dict[str, float]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "resamples": self.resamples,
            "units": self.units,
        }


def _num_den(counts: Sequence[ErrorCounts], metric: str) -> Tuple[np.ndarray, np.ndarray]:
    if metric == "wer":
        return (
            np.array([c.errors for c in counts], dtype=np.float64),
            np.array([c.ref_len for c in counts], dtype=np.float64),
        )
    if metric == "cer":
        return (
            np.array([c.char_errors for c in counts], dtype=np.float64),
            np.array([c.char_ref_len for c in counts], dtype=np.float64),
        )
    raise ValueError(f"metric must be 'wer' or 'cer' (got {metric!r})")


def _weights(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    p = np.full(n, 1.0 / n)
    done = 0
    while done < resamples:
        k = min(_CHUNK, resamples - done)
        yield rng.multinomial(n, p, size=k).astype(np.float64)
        done += k


def _interval(estimate: float, stats: np.ndarray, level: float, resamples: int, units: int) -> Interval:
    stats = stats[np.isfinite(stats)]
    alpha = (1.0 - level) / 2.0
    low, high = (float(x) for x in np.quantile(stats, [alpha, 1.0 - alpha])) if stats.size else (np.nan, np.nan)
    return Interval(float(estimate), low, high, level, resamples, units)


def _check(counts: Sequence[ErrorCounts], resamples: int, level: float) -> None:
    if not counts:
        raise ValueError("no units to resample")
    if resamples < 1 or not (0.0 < level < 1.0):
        raise ValueError("resamples must be >= 1 and level in (0, 1)")


def bootstrap_rate(
    counts: Sequence[ErrorCounts], metric: str = "wer", *, resamples: int = 10000, level: float = 0.95, seed: int = 0
) -> Interval:
    """The corpus ``metric`` (``wer`` or ``cer``) of ``counts`` (one :class:`ErrorCounts` per unit)
    and its bootstrap interval over the units."""
    _check(counts, resamples, level)
    num, den = _num_den(counts, metric)
    interval = bootstrap_ratio(num, den, resamples=resamples, level=level, seed=seed)
    return dataclasses.replace(interval, estimate=float(ErrorCounts.sum(counts).metric(metric)))


def bootstrap_ratio(
    numerators: Sequence[float],
    denominators: Sequence[float],
    *,
    resamples: int = 10000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``sum(numerators) / sum(denominators)`` (one pair per unit: errors and reference length of a
    file, in words or in seconds, as DER counts them) and its bootstrap interval over the units."""
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if len(num) != len(den):
        raise ValueError(f"{len(num)} numerators for {len(den)} denominators")
    if len(num) == 0:
        raise ValueError("no units to resample")
    if resamples < 1 or not (0.0 < level < 1.0):
        raise ValueError("resamples must be >= 1 and level in (0, 1)")
    stats = []
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = num.sum() / den.sum() if den.sum() else float("nan")
        for w in _weights(len(num), resamples, seed):
            stats.append((w @ num) / (w @ den))
    return _interval(float(estimate), np.concatenate(stats), level, resamples, len(num))


def bootstrap_difference(
    a: Sequence[ErrorCounts],
    b: Sequence[ErrorCounts],
    metric: str = "wer",
    *,
    resamples: int = 10000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``metric(a) - metric(b)`` for two systems scored on the same units (``a[i]`` and ``b[i]``:
    the same file and reference), with its paired bootstrap interval."""
    _check(a, resamples, level)
    if len(a) != len(b):
        raise ValueError(f"paired units differ in number: {len(a)} vs {len(b)}")
    num_a, den_a = _num_den(a, metric)
    num_b, den_b = _num_den(b, metric)
    if not np.array_equal(den_a, den_b):
        raise ValueError("paired units must have the same references (reference lengths differ)")
    estimate = ErrorCounts.sum(a).metric(metric) - ErrorCounts.sum(b).metric(metric)
    stats = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for w in _weights(len(a), resamples, seed):
            d = w @ den_a
            stats.append((w @ num_a) / d - (w @ num_b) / d)
    return _interval(estimate, np.concatenate(stats), level, resamples, len(a))
