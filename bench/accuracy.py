"""Scoring for the accuracy benchmark and the accuracy tests: per-file counts, the non-speech files
that got text, and the completeness of long-form transcripts prompt by prompt. The counts,
normalisers, alignment and bootstrap are :mod:`sparkasr.evaluation`'s.

Completeness of a long-form transcript (its reference is the speech prompts joined in order, each
normalised on its own): the hypothesis is aligned word by word with the joined reference and each prompt gets the alignment of
its own words (:meth:`sparkasr.evaluation.WordAlignment.span`). A prompt of two words or more is
**dropped** when more than half of its words are deleted, and **repeated** when the words inserted
next to it (between the previous prompt's last word and the next prompt's first) hold a copy of
it: at least half of its words, and two at least, again. One-word prompts (digits, letters) are
left to the WER: a lost or doubled single word ("nineteen" + "s" heard as "19s") cannot be told
from a recognition error; so are prompts of single letters, abbreviations spoken as one word
(Spanish "a.m.", normalised "a m", is written "AM." by faster-whisper and by us alike). A stretch of dropped speech spans several prompts, longer ones among them.
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


def _owners(parts_words: List[List[str]], joined: List[str]) -> List[int]:
    """For each word of the whole reference normalised at once, the part it comes from: the parts
    normalised one by one are aligned with it (a number normaliser may join words across two parts,
    "fifty five" + "eight" -> "558"; such a word goes to the first of them)."""
    from rapidfuzz.distance import Levenshtein

    flat = [w for ws in parts_words for w in ws]
    owner_of = [k for k, ws in enumerate(parts_words) for _ in ws]
    ids: Dict[str, int] = {}
    a = [ids.setdefault(w, len(ids)) for w in flat]
    b = [ids.setdefault(w, len(ids)) for w in joined]
    owners = [0] * len(joined)
    for op in Levenshtein.opcodes(a, b):
        for j in range(op.dest_start, op.dest_end):
            if op.tag in ("equal", "replace") and op.src_end > op.src_start:
                i = min(op.src_start + (j - op.dest_start), op.src_end - 1)
                owners[j] = owner_of[i]
            else:  # a word only the joined normalisation has: the part before it
                owners[j] = owner_of[op.src_start - 1] if op.src_start > 0 else 0
    return owners


def score_long(parts: Sequence[dict], text: str, normalizer: str) -> LongScore:
    """Score a long-form transcript prompt by prompt (see the module docstring). Both sides are
    normalised as whole texts, so the counts add up to the whole transcript's WER."""
    norm = get_normalizer(normalizer)
    speech = [p for p in parts if p["speech"]]
    al = word_alignment(" ".join(p["reference"] for p in speech), text or "", norm)
    owners = _owners([norm(p["reference"]).split() for p in speech], al.reference)
    out = LongScore([], [])
    pos = 0
    for k, p in enumerate(speech):
        start = pos
        while pos < len(owners) and owners[pos] == k:
            pos += 1
        end, n = pos, pos - start
        c = al.span(start, end)
        out.prompts.append(c)
        out.names.append(p["name"])
        if n < 2 or all(len(w) == 1 for w in al.reference[start:end]):
            continue
        if c.deletions * 2 > n:
            out.dropped.append(p["name"])
        own = Counter(al.reference[start:end])
        around = Counter(w for ins in al.inserted[start : end + 1] for w in ins)
        if sum((own & around).values()) >= max(2, (n + 1) // 2):
            out.repeated.append(p["name"])
    return out
