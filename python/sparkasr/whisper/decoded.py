"""What decoding one stretch of a row gave: the typed record the Whisper passes read and write,
and the measures taken of it (where its sound is, what sound its words leave unheard).

A stretch is a short row, a long row's piece, or the rest of either after a window stopped early.
The passes (:mod:`.batched`, :mod:`.sequential`, :mod:`.pieces`) decode stretches into
:class:`Decoded` records, find what is missing from them (a rest, a skipped stretch) and decode
that again; :meth:`Decoded.transcript` turns a finished record into the row's
:class:`~sparkasr.records.Transcript`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..audio import sound_frames, speech_bounds
from ..records import AudioItem, Chunk, SegmentInfo, Transcript
from .model import compression_ratio
from .rules import SOUND_FRAME_S, SOUND_PAD_S, UNHEARD_FRAME_S, WORD_S


@dataclass
class Decoded:
    """One decoded stretch. ``segments`` and ``words`` are on the file's clock (the stretch's
    offset added); which of them a transcript shows follows ``timestamps``."""

    text: str = ""
    language: Optional[str] = None
    language_probability: Optional[float] = None
    #: Whisper's segments; a text-only decode (a long row's piece): one segment trimmed to its sound
    segments: List[Chunk] = field(default_factory=list)
    #: aligned words (timestamps=word, and every text-only decode: the repairs measure them)
    words: List[Chunk] = field(default_factory=list)
    #: text-only decodes: where the words end, seconds from the stretch's start
    text_end_s: Optional[float] = None
    #: text-only decodes: the most sound in one stretch that no word accounts for (:func:`unheard_s`)
    unheard_s: float = 0.0
    #: how it was decoded: batched, batched-piece, sequential, sequential-pieces, no-speech
    path: str = "batched"
    error: Optional[str] = None
    #: rests decoded and joined to it
    continued: int = 0
    #: the path of the last rest joined, when it needed the sequential path
    rest_path: Optional[str] = None
    #: heard again with timestamps (a long row's piece that skipped speech), and rests heard again
    reheard: int = 0
    #: strategy=sequential: pieces of ``longPieceS`` decoded
    pieces: int = 0

    def chunks(self, timestamps: str) -> List[Chunk]:
        """The chunk annotations ``timestamps`` asks for."""
        if timestamps == "word":
            return list(self.words)
        if timestamps == "segment":
            return list(self.segments)
        return []

    def join(self, rest: Decoded) -> None:
        """Append the decode of this stretch's rest: its text, segments and words (the caller
        counts the rest in ``continued``)."""
        self.text = f"{self.text} {rest.text}".strip()
        self.segments = self.segments + rest.segments
        self.words = self.words + rest.words

    def extra(self) -> Dict[str, Any]:
        if self.error is not None:
            return {}
        out: Dict[str, Any] = {"path": self.path}
        if self.pieces:
            out["pieces"] = self.pieces
        if self.continued:
            out["continued"] = self.continued
        if self.rest_path:
            out["rest_path"] = self.rest_path
        return out

    def transcript(self, item: AudioItem, timestamps: str) -> Transcript:
        """The row ``item``'s transcript from this record."""
        return Transcript(
            text=self.text,
            chunks=self.chunks(timestamps),
            language=self.language,
            language_probability=self.language_probability,
            duration_s=item.duration_s,
            source=item.source,
            offset_s=item.offset_s,
            error=self.error,
            extra=self.extra(),
        )


def failed(reason_with_source: str) -> Decoded:
    """The record of a stretch whose decode raised (the reason names the file)."""
    return Decoded(path="error", error=reason_with_source)


def r3(x: float) -> float:
    """Times in chunks: seconds to the millisecond."""
    return round(float(x), 3)


def piece_segment(item: AudioItem, text: str, info: Optional[SegmentInfo] = None) -> Chunk:
    """A long row's piece as one segment, its times trimmed to the piece's sound."""
    start, end = speech_bounds(item.samples, SOUND_FRAME_S, SOUND_PAD_S)
    return Chunk(text.strip(), r3(start + item.offset_s), r3(end + item.offset_s), "segment", info=info)


def joined_info(item: AudioItem, segs: Sequence[dict], temperature: float) -> Optional[SegmentInfo]:
    """The :class:`SegmentInfo` of the segments ``segs`` of one window (decoded at ``temperature``)
    taken as one segment; None when there are none."""
    if not segs:
        return None
    return SegmentInfo(
        seek=int(round(item.offset_s * 100)),
        tokens=[int(tok) for s in segs for tok in s["tokens"]],
        temperature=float(segs[0].get("temperature", temperature)),
        avg_logprob=float(segs[0]["avg_logprob"]),
        compression_ratio=compression_ratio("".join(s["text"] for s in segs)),
        no_speech_prob=float(segs[0]["no_speech_prob"]),
    )


def merged_info(parts: Sequence[Optional[SegmentInfo]], text: str) -> Optional[SegmentInfo]:
    """One piece's :class:`SegmentInfo` from its decode and the decodes of its rests: tokens in
    order, the average log-probability weighted by tokens, the highest temperature."""
    known = [p for p in parts if p is not None]
    if not known:
        return None
    n = [max(1, len(p.tokens)) for p in known]
    return SegmentInfo(
        seek=known[0].seek,
        tokens=[tok for p in known for tok in p.tokens],
        temperature=max(p.temperature for p in known),
        avg_logprob=sum(p.avg_logprob * k for p, k in zip(known, n)) / sum(n),
        compression_ratio=compression_ratio(text),
        no_speech_prob=known[0].no_speech_prob,
    )


def sound_end_s(samples: np.ndarray) -> float:
    """Where the sound in ``samples`` ends (padded as a piece's segment is)."""
    return speech_bounds(samples, SOUND_FRAME_S, SOUND_PAD_S)[1]


def unheard_s(samples: np.ndarray, words: Sequence[Tuple[float, float]], until_s: float) -> float:
    """The most sound (:func:`~sparkasr.audio.sound_frames`, in seconds) in one stretch of
    ``samples`` before ``until_s`` that no word (``(start_s, end_s)``) accounts for: before the
    first word, between two words, or inside a word aligned over more than ``WORD_S``
    (cross-attention alignment stretches the words it has over the speech a decode skipped; only
    such a word's last ``WORD_S`` count as heard). A text-only decode that skipped prompts shows
    here and nowhere else."""
    frame_s = UNHEARD_FRAME_S
    loud = sound_frames(samples, frame_s)
    heard = np.zeros(loud.size, dtype=bool)
    for start, end in words:
        b = max(0.0, float(end))
        a = max(0.0, float(start), b - WORD_S)
        heard[int(a / frame_s) : int(np.ceil(b / frame_s))] = True
    n = min(loud.size, int(until_s / frame_s))
    best = run = 0
    for is_heard, is_loud in zip(heard[:n], loud[:n]):
        run = 0 if is_heard else run + int(is_loud)
        best = max(best, run)
    return best * frame_s
