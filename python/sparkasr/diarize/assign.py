"""Who said each piece of a transcript: a timed chunk (a word or a segment) gets the speaker whose
turns overlap it most (WhisperX's ``assign_word_speakers``), or, overlapping none, the nearest turn
within ``NEAREST_S``."""

from __future__ import annotations

import bisect
from typing import List, Optional, Sequence

from .records import SpeakerTurn

NEAREST_S = 1.0


def speaker_at(start: float, end: float, turns: Sequence[SpeakerTurn], nearest_s: float = NEAREST_S) -> Optional[str]:
    """The speaker of ``[start, end]`` seconds among ``turns`` (sorted by start), or None."""
    if not turns:
        return None
    starts = [t.start for t in turns]
    overlap: dict = {}
    longest = max(t.end - t.start for t in turns)
    i = bisect.bisect_left(starts, start - longest)
    best_gap, near = float("inf"), None
    for t in turns[i:]:
        if t.start > end + nearest_s:
            break
        ov = min(end, t.end) - max(start, t.start)
        if ov > 0 or (ov == 0 and end == start and t.start <= start <= t.end):
            overlap[t.speaker] = overlap.get(t.speaker, 0.0) + max(ov, 1e-9)
        gap = max(t.start - end, start - t.end, 0.0)
        if gap < best_gap:
            best_gap, near = gap, t.speaker
    if overlap:
        return max(overlap.items(), key=lambda kv: kv[1])[0]
    return near if best_gap <= nearest_s else None


def assign_speakers(
    spans: Sequence[tuple], turns: Sequence[SpeakerTurn], nearest_s: float = NEAREST_S
) -> List[Optional[str]]:
    """The speaker of each ``(start, end)`` of ``spans``."""
    ordered = sorted(turns, key=lambda t: (t.start, t.end))
    return [speaker_at(float(a), float(b), ordered, nearest_s) for a, b in spans]
