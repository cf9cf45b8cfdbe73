"""Scoring for the accuracy benchmark and the accuracy tests: per-file counts, the non-speech files
that got text, and the completeness of long-form transcripts prompt by prompt. The counts,
normalisers, alignment and bootstrap are :mod:`sparkasr.evaluation`'s.

Completeness of a long-form transcript (its reference is the speech prompts joined in order, each
normalised on its own): the hypothesis is aligned word by word with the joined reference and each prompt gets the alignment of
its own words (:meth:`sparkasr.evaluation.WordAlignment.span`). A prompt is **dropped** when more
than half of its words are deleted, and **repeated** when the words inserted next to it (between
the previous prompt's last word and the next prompt's first) hold a copy of it: at least half of
its words (two at least, or its one word) again.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence

BENCH = Path(__file__).resolve().parent
if str(BENCH.parent / "python") not in sys.path:
    sys.path.insert(0, str(BENCH.parent / "python"))

from sparkasr.evaluation import ErrorCounts, get_normalizer, pair_counts, word_alignment  # noqa: E402


@dataclass
class FileScores:
    """A system's output on a set of files, scored."""

    counts: List[ErrorCounts]  # one per speech file, in the entries' order
    names: List[str]
    nonspeech_text: Dict[str, str]  # non-speech file -> its (non-empty, normalised) text
    nonspeech_files: int

    @property
    def total(self) -> ErrorCounts:
        return ErrorCounts.sum(self.counts)


def score_files(entries: Sequence, texts: Sequence[str], normalizer: str) -> FileScores:
    """``texts[i]`` is the output for ``entries[i]``; speech files are scored against their
    reference, non-speech files report any text left after normalisation."""
    norm = get_normalizer(normalizer)
    counts, names, nonspeech = [], [], {}
    n_ns = 0
    for e, text in zip(entries, texts, strict=True):
        if e.speech:
            counts.append(pair_counts(e.reference, text or "", norm))
            names.append(e.name)
        else:
            n_ns += 1
            if norm(text or "").strip():
                nonspeech[e.name] = (text or "").strip()
    return FileScores(counts, names, nonspeech, n_ns)


@dataclass
class LongScore:
    """One long-form transcript against its parts."""

    prompts: List[ErrorCounts]  # one per speech part, in order
    names: List[str]
    dropped: List[str] = field(default_factory=list)
    repeated: List[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.dropped and not self.repeated

    @property
    def total(self) -> ErrorCounts:
        return ErrorCounts.sum(self.prompts)


def score_long(parts: Sequence[dict], text: str, normalizer: str) -> LongScore:
    """Score a long-form transcript prompt by prompt (see the module docstring)."""
    norm = get_normalizer(normalizer)
    speech = [p for p in parts if p["speech"]]
    # each prompt normalised on its own (a number normaliser would join "twenty" + "five" across two
    # prompts), the hypothesis as a whole
    refs = [norm(p["reference"]).split() for p in speech]
    al = word_alignment(" ".join(w for r in refs for w in r), norm(text or ""), "none")
    out = LongScore([], [])
    start = 0
    for p, n in zip(speech, (len(r) for r in refs)):
        end = start + n
        c = al.span(start, end)
        out.prompts.append(c)
        out.names.append(p["name"])
        if n and c.deletions * 2 > n:
            out.dropped.append(p["name"])
        own = Counter(al.reference[start:end])
        around = Counter(w for ins in al.inserted[start : end + 1] for w in ins)
        copied = sum((own & around).values())
        if n and copied >= (1 if n == 1 else max(2, (n + 1) // 2)):
            out.repeated.append(p["name"])
        start = end
    return out
