"""Is there speech at all? The Silero VAD that faster-whisper bundles (``silero_vad_v6.onnx``, run
by ONNX Runtime on one thread, offline), used as a gate against Whisper's hallucinations: on
near-silence, noise and tones Whisper writes text ("you you", "I'm going to do that.") with no
speech behind it, and its own no-speech probability cannot tell them from real speech (a spoken
"five five" scores 0.56, a 45-s tone 0.50).

:class:`SpeechMap` computes the speech spans of one item once (in blocks of 10 minutes, so a long
row never needs more than one block's worth of model input) and answers whether a stretch of it
holds speech. :mod:`.gate` decides where the engine asks (``vadGate``).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from ..audio import SAMPLE_RATE
from .rules import VAD_BLOCK_S, VAD_MIN_SPEECH_S, VAD_PAD_S, VAD_SPEECH_PAD_S


def speech_spans(
    samples: np.ndarray, threshold: float = 0.5, min_speech_s: float = VAD_MIN_SPEECH_S
) -> List[Tuple[float, float]]:
    """``(start_s, end_s)`` of the speech in ``samples`` (16 kHz mono), by Silero VAD."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(
        threshold=threshold,
        min_speech_duration_ms=int(min_speech_s * 1000),
        speech_pad_ms=int(round(VAD_SPEECH_PAD_S * 1000)),
    )
    block = int(VAD_BLOCK_S * SAMPLE_RATE)
    spans: List[Tuple[float, float]] = []
    for start in range(0, len(samples), block):
        part = np.ascontiguousarray(samples[start : start + block], dtype=np.float32)
        if part.size < 512:  # under one VAD frame
            continue
        for t in get_speech_timestamps(part, opts):
            spans.append(((start + t["start"]) / SAMPLE_RATE, (start + t["end"]) / SAMPLE_RATE))
    return spans


class SpeechMap:
    """The speech of one item, computed on first use."""

    def __init__(self, samples: np.ndarray, threshold: float = 0.5):
        self.samples = samples
        self.threshold = threshold
        self._spans: Optional[List[Tuple[float, float]]] = None

    @property
    def spans(self) -> List[Tuple[float, float]]:
        if self._spans is None:
            self._spans = speech_spans(self.samples, self.threshold)
        return self._spans

    def has_speech(self, start_s: float = 0.0, end_s: Optional[float] = None) -> bool:
        """Whether speech lies within ``[start_s, end_s]`` seconds of the item (default: all of it)."""
        end = len(self.samples) / SAMPLE_RATE if end_s is None else end_s
        return any(a < end + VAD_PAD_S and b > start_s - VAD_PAD_S for a, b in self.spans)
