"""sparkasr: distributed batch speech-to-text on Apache Spark.

Spark stages (need pyspark; imported lazily so the engine works without it)::

    from sparkasr import AudioAssembler, WhisperForCTC, read_audio

Engine (plain Python)::

    from sparkasr.whisper import WhisperEngine, WhisperOptions
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "AudioAssembler": ("sparkasr.spark.assembler", "AudioAssembler"),
    "WhisperForCTC": ("sparkasr.spark.whisper", "WhisperForCTC"),
    "Wav2Vec2ForCTC": ("sparkasr.spark.ctc", "Wav2Vec2ForCTC"),
    "HubertForCTC": ("sparkasr.spark.ctc", "HubertForCTC"),
    "WerEvaluator": ("sparkasr.spark.evaluation", "WerEvaluator"),
    "SpeakerDiarizer": ("sparkasr.spark.diarizer", "SpeakerDiarizer"),
    "SpeakerIdentity": ("sparkasr.spark.diarizer", "SpeakerIdentity"),
    "evaluate_der": ("sparkasr.spark.evaluation", "evaluate_der"),
    "evaluate_wer": ("sparkasr.spark.evaluation", "evaluate_wer"),
    "read_audio": ("sparkasr.spark.reader", "read_audio"),
    "read_binary": ("sparkasr.spark.reader", "read_binary"),
    "LightPipeline": ("sparkasr.light", "LightPipeline"),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sparkasr' has no attribute {name!r}")
