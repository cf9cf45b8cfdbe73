"""The VAD gate (``vadGate``): empty transcripts, not hallucinated text, for audio without speech.

On near-silence, noise and tones Whisper writes text with no speech behind it, and its own
no-speech probability cannot tell them apart from real speech. The gate asks Silero VAD
(:class:`~.vad.SpeechMap`) about:

* ``auto`` (default): each decode Whisper is unsure of (:meth:`VadGate.doubtful`: no-speech
  probability over ``vad_check_no_speech``, or failing Whisper's checks); one whose stretch holds
  no speech gets no text (and no fallback, no rest);
* ``always``: also every row and long-row piece before decoding; those without speech are not
  decoded (:meth:`VadGate.no_speech`);
* ``off``: Whisper's own no-speech rule only.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence, Set

import numpy as np

from ..records import AudioItem
from .decoded import Decoded
from .options import WhisperOptions
from .vad import SpeechMap


class Stretch(NamedTuple):
    """Where a decode's audio lies in a map of speech: a row's own map over all of it, or, for the
    rest of a row or piece, the map of the audio around it over the rest's seconds (the VAD run on
    a cut-off rest of a few tenths of a second missed the words in it)."""

    speech: SpeechMap
    start_s: float
    end_s: float

    def has_speech(self) -> bool:
        return self.speech.has_speech(self.start_s, self.end_s)

    def later(self, by_s: float) -> Stretch:
        """The same map from ``by_s`` seconds further on."""
        return Stretch(self.speech, self.start_s + by_s, self.end_s)


class VadGate:
    """``vadGate`` for one engine's options."""

    def __init__(self, options: WhisperOptions, multilingual: bool):
        self.mode = options.vad_gate
        self.threshold = options.vad_threshold
        self.check_no_speech = options.vad_check_no_speech
        self.language = options.language
        self.multilingual = multilingual

    def speech_map(self, samples: np.ndarray) -> SpeechMap:
        """The speech of ``samples`` (computed on first use)."""
        return SpeechMap(samples, self.threshold)

    def whole(self, item: AudioItem) -> Stretch:
        """A stretch that is all of ``item``."""
        return Stretch(self.speech_map(item.samples), 0.0, item.duration_s)

    @property
    def before_decoding(self) -> bool:
        """``always``: rows and pieces without speech are left out before decoding."""
        return self.mode == "always"

    def doubtful(self, no_speech_prob: float, failed: bool) -> bool:
        """A decode Whisper is unsure of, which the VAD must confirm."""
        return self.mode != "off" and (failed or no_speech_prob > self.check_no_speech)

    def silent_windows(self, windows, stretches: Sequence[Stretch]) -> Set[int]:
        """The windows of a batch whose decode is doubtful and whose stretch holds no speech."""
        return {
            i
            for i, (w, stretch) in enumerate(zip(windows, stretches))
            if self.doubtful(w.no_speech_prob, w.checks.failed) and not stretch.has_speech()
        }

    def no_speech(self) -> Decoded:
        """The record of audio the VAD finds no speech in: empty, not an error."""
        fixed = self.language or (None if self.multilingual else "en")
        return Decoded(
            language=fixed,
            language_probability=None if self.multilingual and not self.language else 1.0,
            path="no-speech",
        )
