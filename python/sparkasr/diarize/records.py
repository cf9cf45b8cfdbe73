"""Typed results of diarization: who spoke when in one item (:class:`Diarization`, made of
:class:`SpeakerTurn` s) and each speaker's voice (:class:`SpeakerProfile`, the centroid of its
voice embeddings, which the corpus step clusters across files)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional

import numpy as np


@dataclass(frozen=True)
class SpeakerTurn:
    """``speaker`` speaks from ``start`` to ``end`` seconds (on the file's clock)."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start

    def as_dict(self) -> Dict[str, object]:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "speaker": self.speaker}


@dataclass
class SpeakerProfile:
    """One speaker of one item: its label, how long it speaks, and its voice (the L2-normalised
    mean of its windows' embeddings)."""

    label: str
    speech_s: float
    centroid: np.ndarray


@dataclass
class Diarization:
    """The diarization of one item: its turns in time order (no two of a speaker overlap) and its
    speakers' profiles; ``error`` instead when the item could not be processed."""

    turns: List[SpeakerTurn] = field(default_factory=list)
    speakers: List[SpeakerProfile] = field(default_factory=list)
    source: str = ""
    offset_s: float = 0.0
    duration_s: float = 0.0
    error: Optional[str] = None

    def relabelled(self, mapping: Dict[str, str]) -> Diarization:
        """The same diarization with speakers renamed (labels not in ``mapping`` kept); speakers
        that end up with one name are merged (their turns joined where they touch)."""
        turns = merge_turns([replace(t, speaker=mapping.get(t.speaker, t.speaker)) for t in self.turns])
        merged: Dict[str, SpeakerProfile] = {}
        for p in self.speakers:
            name = mapping.get(p.label, p.label)
            if name in merged:
                q = merged[name]
                c = q.centroid * q.speech_s + p.centroid * p.speech_s
                merged[name] = SpeakerProfile(name, q.speech_s + p.speech_s, c / max(np.linalg.norm(c), 1e-12))
            else:
                merged[name] = SpeakerProfile(name, p.speech_s, p.centroid)
        return replace(self, turns=turns, speakers=list(merged.values()))


def merge_turns(turns: List[SpeakerTurn], gap_s: float = 0.0) -> List[SpeakerTurn]:
    """``turns`` in time order with consecutive turns of one speaker joined when at most ``gap_s``
    apart."""
    out: List[SpeakerTurn] = []
    for t in sorted(turns, key=lambda t: (t.start, t.end)):
        if out and out[-1].speaker == t.speaker and t.start - out[-1].end <= gap_s + 1e-9:
            out[-1] = SpeakerTurn(out[-1].start, max(out[-1].end, t.end), t.speaker)
        else:
            out.append(t)
    return out
