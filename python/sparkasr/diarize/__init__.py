"""Speaker diarization (who spoke when), offline: Silero VAD for speech, Resemblyzer's voice encoder
on ONNX Runtime for voices, agglomerative clustering per file, and one label per person across
files. Plain Python, no Spark: the ``SpeakerDiarizer`` stage (:mod:`sparkasr.spark.diarizer`) calls
:class:`DiarizationEngine` once per batch."""

from .assign import assign_speakers, speaker_at
from .engine import DiarizationEngine
from .identity import Voice, gallery_voices, label_of, merge_voices, name_voices
from .models import DEFAULT_ENCODER, resolve_voice_encoder
from .options import DiarizationOptions
from .records import Diarization, SpeakerProfile, SpeakerTurn, merge_turns

__all__ = [
    "DEFAULT_ENCODER",
    "Diarization",
    "DiarizationEngine",
    "DiarizationOptions",
    "SpeakerProfile",
    "SpeakerTurn",
    "Voice",
    "assign_speakers",
    "gallery_voices",
    "label_of",
    "merge_turns",
    "merge_voices",
    "name_voices",
    "resolve_voice_encoder",
    "speaker_at",
]
