"""Typed records shared by the engines (Whisper, CTC) and the Spark glue.

Engines take a list of :class:`AudioItem` and return one :class:`Transcript` per item, in order,
and never raise for a bad item: a per-item problem becomes ``Transcript.error``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Protocol, Sequence

import numpy as np

from .audio import SAMPLE_RATE


@dataclass
class AudioItem:
    """One unit of work: 16 kHz mono float32 samples (or the error that prevented decoding)."""

    samples: Optional[np.ndarray]
    source: str = ""  # file path / id, used in error messages
    offset_s: float = 0.0  # where these samples start in the source file
    error: Optional[str] = None

    @property
    def duration_s(self) -> float:
        return 0.0 if self.samples is None else len(self.samples) / SAMPLE_RATE


@dataclass
class SegmentInfo:
    """How Whisper decoded a segment (what OpenAI's ``verbose_json`` reports of each segment)."""

    seek: int  # where the window it was decoded in starts, in 10-ms frames from the audio's start
    tokens: List[int]  # the tokens decoded, timestamp tokens included (as Whisper's segments give them)
    temperature: float  # the temperature of the decode that was kept
    avg_logprob: float  # of the window's decode (Whisper's quality check)
    compression_ratio: float  # of the segment's text (Whisper's quality check)
    no_speech_prob: float  # of the window


@dataclass
class Chunk:
    """A timed piece of a transcript (HF pipeline's ``chunks``): text + [start, end] seconds.

    Whisper's segments carry ``info`` (how they were decoded) and its words the ``segment`` they
    belong to; neither takes part in comparisons."""

    text: str
    start: float
    end: float
    kind: str = "segment"  # segment | word | char
    probability: Optional[float] = None
    info: Optional[SegmentInfo] = field(default=None, compare=False, repr=False)
    segment: Optional[Chunk] = field(default=None, compare=False, repr=False)

    def as_dict(self) -> Dict[str, Any]:
        return {"text": self.text, "timestamp": [self.start, self.end]}


@dataclass
class Transcript:
    text: str = ""
    chunks: List[Chunk] = field(default_factory=list)
    language: Optional[str] = None
    language_probability: Optional[float] = None
    duration_s: float = 0.0
    source: str = ""
    offset_s: float = 0.0
    error: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    """What the Spark glue and LightPipeline call, once per batch."""

    def transcribe_batch(self, items: Sequence[AudioItem]) -> List[Transcript]: ...


def with_source(source: str, reason: str) -> str:
    """An error message that names its audio: ``"<source>: <reason>"`` (once)."""
    where = source or "<in-memory audio>"
    return reason if reason.startswith(where) else f"{where}: {reason}"


def error_transcript(item: AudioItem, reason: str) -> Transcript:
    """A transcript for an item that could not be processed: empty text, error naming the file."""
    return Transcript(
        text="",
        duration_s=item.duration_s,
        source=item.source,
        offset_s=item.offset_s,
        error=with_source(item.source, reason),
    )
