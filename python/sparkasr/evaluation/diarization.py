"""Diarization error rate (DER) and RTTM, without Spark.

DER = (missed speech + false alarm + speaker confusion) / reference speech, all in seconds, the way
NIST's md-eval and ``pyannote.metrics`` count them: time is cut where any reference or hypothesis
turn starts or ends; a stretch with ``R`` reference and ``H`` hypothesis speakers adds ``R`` to the
reference speech, ``max(R - H, 0)`` to missed speech, ``max(H - R, 0)`` to false alarm and
``min(R, H)`` minus the speakers the mapping pairs there to confusion. A ``collar`` (0.25 s by
default) either side of every reference boundary is not scored; overlapping speech is scored.

The mapping of hypothesis to reference speakers is the one-to-one mapping that pairs the most time
(the Hungarian algorithm on the co-occurrence matrix). Per file it is the file's own; for a corpus
whose labels are meant to be global (one label per person in every file), :func:`corpus_der`
finds one mapping for all files at once.

What a file contributes is additive (:class:`DiarizationStats`: the counts that do not depend on
the mapping, plus the co-occurrence matrix), so a corpus is scored by summing files, per
partition and then across partitions, like WER.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "COLLAR_S",
    "DerCounts",
    "DiarizationStats",
    "Turn",
    "corpus_der",
    "diarization_stats",
    "optimal_mapping",
    "read_rttm",
    "to_rttm",
]

COLLAR_S = 0.25
Turn = Tuple[float, float, str]  # start s, end s, speaker


@dataclass(frozen=True)
class DerCounts:
    """Seconds of reference speech and of each kind of error; ``der`` derived from them."""

    total: float = 0.0
    missed: float = 0.0
    false_alarm: float = 0.0
    confusion: float = 0.0

    @property
    def errors(self) -> float:
        return self.missed + self.false_alarm + self.confusion

    @property
    def der(self) -> float:
        return self.errors / self.total if self.total > 0 else float("nan")

    def __add__(self, other: DerCounts) -> DerCounts:
        return DerCounts(
            self.total + other.total,
            self.missed + other.missed,
            self.false_alarm + other.false_alarm,
            self.confusion + other.confusion,
        )

    def to_dict(self) -> Dict[str, float]:
        return {
            "der": self.der,
            "total_s": self.total,
            "missed_s": self.missed,
            "false_alarm_s": self.false_alarm,
            "confusion_s": self.confusion,
        }


@dataclass
class DiarizationStats:
    """What one file (or a sum of files) contributes: reference speech, missed speech, false alarm,
    ``matchable`` (the time-weighted ``min(R, H)``: confusion before the mapping's pairs are taken
    away) and ``cooccurrence`` (seconds each reference and hypothesis speaker speak together)."""

    total: float = 0.0
    missed: float = 0.0
    false_alarm: float = 0.0
    matchable: float = 0.0
    cooccurrence: Dict[Tuple[str, str], float] = field(default_factory=dict)
    files: int = 0

    def __add__(self, other: DiarizationStats) -> DiarizationStats:
        co: Dict[Tuple[str, str], float] = defaultdict(float, self.cooccurrence)
        for k, v in other.cooccurrence.items():
            co[k] += v
        return DiarizationStats(
            self.total + other.total,
            self.missed + other.missed,
            self.false_alarm + other.false_alarm,
            self.matchable + other.matchable,
            dict(co),
            self.files + other.files,
        )

    def counts(self, mapping: Optional[Mapping[str, str]] = None) -> DerCounts:
        """The counts under ``mapping`` (hypothesis → reference speaker; default: the optimal one)."""
        mapping = optimal_mapping(self.cooccurrence) if mapping is None else mapping
        matched = sum(v for (r, h), v in self.cooccurrence.items() if mapping.get(h) == r)
        return DerCounts(self.total, self.missed, self.false_alarm, max(self.matchable - matched, 0.0))


def _scored_pieces(reference: Sequence[Turn], collar: float, uem: Optional[Tuple[float, float]]):
    """The scored zone: ``uem`` (default: everything) minus ``collar`` either side of each
    reference boundary, as sorted disjoint intervals."""
    lo = min([t[0] for t in reference] + [0.0]) if uem is None else uem[0]
    hi = max([t[1] for t in reference] + [0.0]) if uem is None else uem[1]
    holes = sorted((b - collar, b + collar) for t in reference for b in (t[0], t[1])) if collar > 0 else []
    pieces, cur = [], lo
    for a, b in holes:
        if a > cur:
            pieces.append((cur, min(a, hi)))
        cur = max(cur, b)
    if cur < hi:
        pieces.append((cur, hi))
    return [(a, b) for a, b in pieces if b > a], (lo, hi)


def diarization_stats(
    reference: Iterable[Turn],
    hypothesis: Iterable[Turn],
    collar: float = COLLAR_S,
    uem: Optional[Tuple[float, float]] = None,
) -> DiarizationStats:
    """One file's :class:`DiarizationStats`; turns are ``(start, end, speaker)``. ``uem``: the scored
    extent (default: from 0 to the end of the last turn of either side)."""
    ref = [(float(a), float(b), str(s)) for a, b, s in reference if b > a]
    hyp = [(float(a), float(b), str(s)) for a, b, s in hypothesis if b > a]
    if uem is None:
        uem = (0.0, max([t[1] for t in ref + hyp] + [0.0]))
    pieces, _ = _scored_pieces(ref, collar, uem)
    cuts = sorted({x for a, b, _ in ref + hyp for x in (a, b)} | {x for p in pieces for x in p})
    st = DiarizationStats(files=1)
    co: Dict[Tuple[str, str], float] = defaultdict(float)
    pi = 0
    for t0, t1 in zip(cuts, cuts[1:]):
        while pi < len(pieces) and pieces[pi][1] <= t0:
            pi += 1
        if pi >= len(pieces) or not (pieces[pi][0] <= t0 and t1 <= pieces[pi][1]):
            continue
        d = t1 - t0
        if d <= 0:
            continue
        mid = (t0 + t1) / 2
        rs = {s for a, b, s in ref if a <= mid < b}
        hs = {s for a, b, s in hyp if a <= mid < b}
        st.total += d * len(rs)
        st.missed += d * max(len(rs) - len(hs), 0)
        st.false_alarm += d * max(len(hs) - len(rs), 0)
        st.matchable += d * min(len(rs), len(hs))
        for r in rs:
            for h in hs:
                co[(r, h)] += d
    st.cooccurrence = dict(co)
    return st


def optimal_mapping(cooccurrence: Mapping[Tuple[str, str], float]) -> Dict[str, str]:
    """Hypothesis → reference speaker, one-to-one, pairing the most co-occurring time (Hungarian)."""
    if not cooccurrence:
        return {}
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    refs = sorted({r for r, _ in cooccurrence})
    hyps = sorted({h for _, h in cooccurrence})
    m = np.zeros((len(refs), len(hyps)))
    for (r, h), v in cooccurrence.items():
        m[refs.index(r), hyps.index(h)] = v
    rows, cols = linear_sum_assignment(-m)
    return {hyps[c]: refs[r] for r, c in zip(rows, cols) if m[r, c] > 0}


def corpus_der(stats: Sequence[DiarizationStats]) -> Tuple[DerCounts, Dict[str, str]]:
    """Global DER of files whose labels are corpus-wide: one mapping for all files (from the summed
    co-occurrence), and that mapping."""
    total = sum(stats, DiarizationStats())
    mapping = optimal_mapping(total.cooccurrence)
    return total.counts(mapping), mapping


# -- RTTM ------------------------------------------------------------------------------------


def to_rttm(file_id: str, turns: Iterable[Turn]) -> str:
    """RTTM lines (``SPEAKER <file> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>``) of ``turns``;
    names with spaces get underscores (fields are space-separated)."""
    fid = "_".join(str(file_id).split()) or "audio"
    lines = []
    for a, b, s in sorted(turns, key=lambda t: (t[0], t[1])):
        spk = "_".join(str(s).split()) or "unknown"
        lines.append(f"SPEAKER {fid} 1 {a:.3f} {b - a:.3f} <NA> <NA> {spk} <NA> <NA>")
    return "\n".join(lines) + ("\n" if lines else "")


def read_rttm(text: str) -> Dict[str, List[Turn]]:
    """RTTM text → file id → turns (``SPEAKER`` lines only)."""
    out: Dict[str, List[Turn]] = defaultdict(list)
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 8 and f[0] == "SPEAKER":
            start, dur = float(f[3]), float(f[4])
            out[f[1]].append((start, start + dur, f[7]))
    return dict(out)
