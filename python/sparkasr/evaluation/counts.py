"""Alignment counts for WER/CER and the corpus metrics derived from them (no Spark).

Per pair of texts we normalise both sides with the *same* normaliser, tokenise exactly like jiwer
4's defaults, align with rapidfuzz's Levenshtein (the aligner jiwer itself uses) and keep only
integer counts: hits, substitutions, deletions, insertions for words and for characters. Counts
add up (:class:`ErrorCounts` supports ``+``), so a corpus is scored by summing counts — per
partition, then across partitions — and the rates are derived once from the totals::

    WER = (S + D + I) / (H + S + D)        # total errors / total reference words

never as a mean of per-utterance rates. The derived measures reproduce
``jiwer.process_words`` / ``jiwer.process_characters`` on the same list of pairs exactly,
including jiwer 4's conventions for an all-empty reference (WER = number of insertions; MER 0 or 1;
WIP 1 or 0).

Tokenisation (identical to jiwer's ``wer_default`` / ``cer_default``):

* words: runs of 2+ whitespace characters become one space, the ends are stripped, the text is
  split on ``" "``; empty strings are dropped;
* characters: the ends are stripped; every remaining character (spaces included) is a token.

Null handling: a row whose reference is null cannot be scored and is skipped; a row whose
prediction is null is skipped too (``null_prediction="skip"``, the default) or scored as an empty
hypothesis (``null_prediction="empty"``: every reference word a deletion). Skipped rows are
counted in ``n_null_reference`` / ``n_null_prediction`` and reported.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Hashable, Iterable, List, Mapping, Optional, Sequence, Tuple

from rapidfuzz.distance import Levenshtein

from .normalizers import NormalizerLike, get_normalizer

__all__ = [
    "ErrorCounts",
    "WerResult",
    "Accumulator",
    "pair_counts",
    "corpus_counts",
    "evaluate_pairs",
    "WordAlignment",
    "word_alignment",
    "words",
    "top_k",
    "chars",
    "METRICS",
    "COUNT_FIELDS",
]

METRICS = ("wer", "cer", "mer", "wil", "wip")

_MULTI_WS = re.compile(r"\s\s+")


def words(text: str) -> List[str]:
    """jiwer 4's default word tokenisation (``RemoveMultipleSpaces, Strip, ReduceToListOfListOfWords``)."""
    return [w for w in _MULTI_WS.sub(" ", text).strip().split(" ") if w]


def chars(text: str) -> str:
    """jiwer 4's default character tokenisation (``Strip, ReduceToListOfListOfChars``)."""
    return text.strip()


def _rate(h: int, s: int, d: int, i: int) -> Tuple[float, float, float]:
    """(error rate, mer, wip) exactly as ``jiwer.process_words`` computes them."""
    ref_len = h + s + d
    hyp_len = h + s + i
    if ref_len == 0:
        er = float(i)
        if hyp_len == 0:
            return er, 0.0, 1.0
        return er, 1.0, 0.0
    er = float(s + d + i) / float(h + s + d)
    mer = float(s + d + i) / float(h + s + d + i)
    wip = (float(h) / ref_len) * (float(h) / hyp_len) if hyp_len >= 1 else 0.0
    return er, mer, wip


@dataclass
class ErrorCounts:
    """Additive alignment counts of a set of (reference, hypothesis) pairs.

    Word counts: ``hits``, ``substitutions``, ``deletions``, ``insertions``; character counts:
    ``char_*``. Row bookkeeping: ``n_rows`` (all rows seen), ``n_null_reference``,
    ``n_null_prediction`` (skipped rows, see the module docstring), ``n_empty_reference`` (scored
    rows whose normalised reference has no words).

    Derived: ``ref_len``/``hyp_len`` (= H+S+D / H+S+I), ``errors``, ``wer``, ``mer``, ``wil``,
    ``wip`` and the same for characters (``char_ref_len``, ``char_errors``, ``cer``). Rates are
    ``nan`` when no row was scored.
    """

    hits: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    char_hits: int = 0
    char_substitutions: int = 0
    char_deletions: int = 0
    char_insertions: int = 0
    n_rows: int = 0
    n_null_reference: int = 0
    n_null_prediction: int = 0
    n_null: int = 0
    n_empty_reference: int = 0

    # -- aggregation ---------------------------------------------------------------------------
    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        if not isinstance(other, ErrorCounts):
            return NotImplemented
        return ErrorCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def __radd__(self, other):  # sum() starts from 0
        if other == 0:
            return self
        return self.__add__(other)

    def __iadd__(self, other: ErrorCounts) -> ErrorCounts:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @classmethod
    def sum(cls, items: Iterable[ErrorCounts]) -> ErrorCounts:
        total = cls()
        for c in items:
            total += c
        return total

    # -- derived counts ------------------------------------------------------------------------
    @property
    def n_scored(self) -> int:
        return self.n_rows - self.n_null

    @property
    def ref_len(self) -> int:
        return self.hits + self.substitutions + self.deletions

    @property
    def hyp_len(self) -> int:
        return self.hits + self.substitutions + self.insertions

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def char_ref_len(self) -> int:
        return self.char_hits + self.char_substitutions + self.char_deletions

    @property
    def char_hyp_len(self) -> int:
        return self.char_hits + self.char_substitutions + self.char_insertions

    @property
    def char_errors(self) -> int:
        return self.char_substitutions + self.char_deletions + self.char_insertions

    # -- rates (jiwer 4 definitions) -----------------------------------------------------------
    def _word(self):
        if self.n_scored == 0:
            return math.nan, math.nan, math.nan
        return _rate(self.hits, self.substitutions, self.deletions, self.insertions)

    @property
    def wer(self) -> float:
        return self._word()[0]

    @property
    def mer(self) -> float:
        return self._word()[1]

    @property
    def wip(self) -> float:
        return self._word()[2]

    @property
    def wil(self) -> float:
        return 1 - self._word()[2]

    @property
    def cer(self) -> float:
        if self.n_scored == 0:
            return math.nan
        return _rate(self.char_hits, self.char_substitutions, self.char_deletions, self.char_insertions)[0]

    def metric(self, name: str) -> float:
        name = name.lower()
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; one of {METRICS}")
        return getattr(self, name)

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self, rates: bool = True) -> Dict[str, Any]:
        d: Dict[str, Any] = dataclasses.asdict(self)
        d.update(
            n_scored=self.n_scored,
            ref_len=self.ref_len,
            hyp_len=self.hyp_len,
            errors=self.errors,
            char_ref_len=self.char_ref_len,
            char_hyp_len=self.char_hyp_len,
            char_errors=self.char_errors,
        )
        if rates:
            for m in METRICS:
                d[m] = self.metric(m)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ErrorCounts:
        return cls(**{f.name: int(d.get(f.name, 0) or 0) for f in fields(cls)})


COUNT_FIELDS: Tuple[str, ...] = tuple(f.name for f in fields(ErrorCounts))


def _align_counts(
    ref: Sequence,
    hyp: Sequence,
    subs: Optional[Counter] = None,
    names: Optional[Tuple[Sequence[str], Sequence[str]]] = None,
) -> Tuple[int, int, int, int]:
    """(hits, substitutions, deletions, insertions) of rapidfuzz's Levenshtein alignment; substituted
    pairs ``(names[0][r], names[1][h])`` are counted into ``subs`` when given."""
    if not ref:
        return 0, 0, 0, len(hyp)
    if not hyp:
        return 0, 0, len(ref), 0
    s = d = i = 0
    for tag, r, h in Levenshtein.editops(ref, hyp):
        if tag == "replace":
            s += 1
            if subs is not None:
                subs[(names[0][r], names[1][h]) if names else (ref[r], hyp[h])] += 1
        elif tag == "delete":
            d += 1
        else:
            i += 1
    return len(ref) - s - d, s, d, i


def _to_ints(ref_words: List[str], hyp_words: List[str]) -> Tuple[List[int], List[int]]:
    """Map words to integers (as jiwer does) so rapidfuzz compares exact word identity."""
    ids: Dict[str, int] = {}
    r = [ids.setdefault(w, len(ids)) for w in ref_words]
    h = [ids.setdefault(w, len(ids)) for w in hyp_words]
    return r, h


def pair_counts(
    reference: Optional[str],
    prediction: Optional[str],
    normalizer: NormalizerLike = "basic",
    *,
    null_prediction: str = "skip",
    substitutions: Optional[Counter] = None,
) -> ErrorCounts:
    """Counts of one (reference, prediction) pair (``n_rows == 1``).

    ``substitutions``: if given, a :class:`collections.Counter` that receives one count per
    substituted word pair ``(reference_word, hypothesis_word)``.
    """
    if null_prediction not in ("skip", "empty"):
        raise ValueError("null_prediction must be 'skip' or 'empty'")
    c = ErrorCounts(n_rows=1)
    if reference is None or prediction is None:
        c.n_null_reference = int(reference is None)
        c.n_null_prediction = int(prediction is None)
        if reference is None or null_prediction == "skip":
            c.n_null = 1
            return c
        prediction = ""
    norm = get_normalizer(normalizer)
    ref_n = norm(str(reference))
    hyp_n = norm(str(prediction))

    rw, hw = words(ref_n), words(hyp_n)
    if not rw:
        c.n_empty_reference = 1
    ri, hi = _to_ints(rw, hw)
    c.hits, c.substitutions, c.deletions, c.insertions = _align_counts(ri, hi, substitutions, (rw, hw))

    rc, hc = chars(ref_n), chars(hyp_n)
    c.char_hits, c.char_substitutions, c.char_deletions, c.char_insertions = _align_counts(rc, hc)
    return c


@dataclass
class WordAlignment:
    """The word alignment of one pair, the same one :func:`pair_counts` counts: what happened to
    each reference word (``ops``: ``"hit"``, ``"sub"`` or ``"del"``) and the hypothesis words
    inserted before each reference word (``inserted[i]``; ``inserted[len(reference)]``: after the
    last). For a reference joined from parts (the prompts of a long recording), :meth:`span`
    gives the counts of one part."""

    reference: List[str]
    hypothesis: List[str]
    ops: List[str]
    inserted: List[List[str]]

    def span(self, start: int, end: int) -> ErrorCounts:
        """Word counts of reference words ``[start, end)``, with the insertions after each of
        them up to the next part (and those before the first word when ``start == 0``), so that
        consecutive spans covering the reference add up to the pair's counts."""
        ops = self.ops[start:end]
        ins = sum(len(x) for x in self.inserted[start + 1 : end + 1])
        if start == 0:
            ins += len(self.inserted[0])
        return ErrorCounts(
            hits=ops.count("hit"),
            substitutions=ops.count("sub"),
            deletions=ops.count("del"),
            insertions=ins,
            n_rows=1,
            n_empty_reference=int(start == end),
        )


def word_alignment(reference: str, prediction: str, normalizer: NormalizerLike = "basic") -> WordAlignment:
    """Align the words of one (reference, prediction) pair after ``normalizer`` (see
    :class:`WordAlignment`)."""
    norm = get_normalizer(normalizer)
    rw, hw = words(norm(str(reference))), words(norm(str(prediction or "")))
    ops = ["hit"] * len(rw)
    inserted: List[List[str]] = [[] for _ in range(len(rw) + 1)]
    ri, hi = _to_ints(rw, hw)
    if not rw:
        inserted[0] = list(hw)
    elif not hw:
        ops = ["del"] * len(rw)
    else:
        for tag, r, h in Levenshtein.editops(ri, hi):
            if tag == "replace":
                ops[r] = "sub"
            elif tag == "delete":
                ops[r] = "del"
            else:
                inserted[r].append(hw[h])
    return WordAlignment(rw, hw, ops, inserted)


def corpus_counts(
    references: Iterable[Optional[str]],
    predictions: Iterable[Optional[str]],
    normalizer: NormalizerLike = "basic",
    *,
    null_prediction: str = "skip",
) -> ErrorCounts:
    """Summed counts of aligned lists of references and predictions."""
    norm = get_normalizer(normalizer)
    total = ErrorCounts()
    for r, p in zip(references, predictions, strict=True):
        total += pair_counts(r, p, norm, null_prediction=null_prediction)
    return total


# ---------------------------------------------------------------------------------------------
# Grouped accumulation (used per Spark partition and by the pure-Python path)
# ---------------------------------------------------------------------------------------------


class Accumulator:
    """Accumulate counts (and optionally substitution pairs) per group key."""

    def __init__(
        self,
        normalizer: NormalizerLike = "basic",
        *,
        null_prediction: str = "skip",
        substitutions: bool = False,
    ) -> None:
        self.normalizer = get_normalizer(normalizer)
        self.null_prediction = null_prediction
        self.track_substitutions = substitutions
        self.counts: Dict[Hashable, ErrorCounts] = {}
        self.subs: Dict[Hashable, Counter] = {}

    def add(self, reference: Optional[str], prediction: Optional[str], key: Hashable = ()) -> ErrorCounts:
        sub = None
        if self.track_substitutions:
            sub = self.subs.get(key)
            if sub is None:
                sub = self.subs[key] = Counter()
        c = pair_counts(reference, prediction, self.normalizer, null_prediction=self.null_prediction, substitutions=sub)
        acc = self.counts.get(key)
        if acc is None:
            self.counts[key] = c
        else:
            acc += c
        return c


@dataclass
class WerResult:
    """Corpus counts and metrics, overall and per group.

    ``groups`` maps a tuple of group values (in ``group_by`` order) to its counts;
    ``substitutions`` holds the most frequent ``(reference_word, hypothesis_word, count)`` overall
    and ``group_substitutions`` the same per group (when requested).
    """

    overall: ErrorCounts
    normalizer: str
    group_by: List[str] = field(default_factory=list)
    groups: Dict[Tuple, ErrorCounts] = field(default_factory=dict)
    substitutions: List[Tuple[str, str, int]] = field(default_factory=list)
    group_substitutions: Dict[Tuple, List[Tuple[str, str, int]]] = field(default_factory=dict)
    options: Dict[str, Any] = field(default_factory=dict)

    # convenience
    @property
    def wer(self) -> float:
        return self.overall.wer

    @property
    def cer(self) -> float:
        return self.overall.cer

    @property
    def mer(self) -> float:
        return self.overall.mer

    @property
    def wil(self) -> float:
        return self.overall.wil

    def metric(self, name: str) -> float:
        return self.overall.metric(name)

    def to_pandas(self):
        """One row per group (or one ``overall`` row without ``group_by``): group columns, all
        counts and all rates."""
        import pandas as pd

        rows = []
        if self.group_by:
            for key, c in self.groups.items():
                row = dict(zip(self.group_by, key))
                row.update(c.to_dict())
                rows.append(row)
        else:
            rows.append(self.overall.to_dict())
        return pd.DataFrame(rows, columns=list(self.group_by) + list(self.overall.to_dict().keys()))

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict (group keys rendered as strings)."""
        return {
            "normalizer": self.normalizer,
            "group_by": list(self.group_by),
            "overall": self.overall.to_dict(),
            "groups": [
                {
                    "key": {g: _jsonable(v) for g, v in zip(self.group_by, key)},
                    **c.to_dict(),
                    "top_substitutions": [
                        {"reference": r, "hypothesis": h, "count": n}
                        for r, h, n in self.group_substitutions.get(key, [])
                    ],
                }
                for key, c in self.groups.items()
            ],
            "top_substitutions": [{"reference": r, "hypothesis": h, "count": n} for r, h, n in self.substitutions],
            "options": dict(self.options),
        }


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return None if math.isnan(v) else v
    return str(v)


def top_k(counter: Mapping[Tuple[str, str], int], k: int) -> List[Tuple[str, str, int]]:
    """Most frequent pairs, ties broken alphabetically (deterministic)."""
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))
    return [(a, b, int(n)) for (a, b), n in items[: max(k, 0)]]


def evaluate_pairs(
    references: Iterable[Optional[str]],
    predictions: Iterable[Optional[str]],
    normalizer: NormalizerLike = "basic",
    *,
    groups: Optional[Iterable[Tuple]] = None,
    group_by: Optional[Sequence[str]] = None,
    null_prediction: str = "skip",
    top_substitutions: int = 20,
) -> WerResult:
    """Pure-Python evaluation of in-memory pairs (the Spark path produces the same result).

    ``groups``: one tuple of group values per pair (names in ``group_by``).
    """
    refs = list(references)
    preds = list(predictions)
    if len(refs) != len(preds):
        raise ValueError("references and predictions must have the same length")
    keys = (
        [tuple(k) if isinstance(k, (tuple, list)) else (k,) for k in groups] if groups is not None else [()] * len(refs)
    )
    acc = Accumulator(normalizer, null_prediction=null_prediction, substitutions=top_substitutions > 0)
    for r, p, k in zip(refs, preds, keys, strict=True):
        acc.add(r, p, k)
    overall = ErrorCounts.sum(acc.counts.values())
    all_subs: Counter = Counter()
    for c in acc.subs.values():
        all_subs.update(c)
    gb = list(group_by or ([] if groups is None else [f"group{i}" for i in range(len(keys[0]) if keys else 0)]))
    return WerResult(
        overall=overall,
        normalizer=acc.normalizer.name,
        group_by=gb,
        groups=dict(acc.counts) if gb else {},
        substitutions=top_k(all_subs, top_substitutions),
        group_substitutions={k: top_k(v, top_substitutions) for k, v in acc.subs.items() if v} if gb else {},
        options={"null_prediction": null_prediction},
    )
