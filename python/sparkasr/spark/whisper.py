"""``WhisperForCTC``: Spark NLP's class name and setters, CTranslate2 inside, nothing truncated.

Its params are the option table's (:func:`sparkasr.params.stage_table` ``("WhisperForCTC")``):
the speech stages' columns and model, then every :class:`~sparkasr.whisper.WhisperOptions` and
:class:`~sparkasr.whisper.RuntimeOptions` option, each with ``setX``/``getX``.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

from ..options import engine_kwargs
from ..params import stage_table
from ..paths import is_remote_uri
from ..whisper import RuntimeOptions, WhisperOptions
from ..whisper.models import ModelSource, check_whisper_options, resolve_whisper_model
from .builders import build_whisper_engine
from .context import EngineSpec
from .params import declare_params
from .shipping import ModelRef, cluster_only_path
from .stage import SpeechAnnotatorModel


@declare_params(stage_table("WhisperForCTC"))
class WhisperForCTC(SpeechAnnotatorModel):
    """Whisper speech recognition (any length, batched across rows, timestamps, language).

    >>> asr = WhisperForCTC.pretrained().setInputCols(["audio_assembler"]).setOutputCol("text")
    >>> asr = WhisperForCTC(inputCols=["audio_assembler"], outputCol="text", beamSize=5, timestamps="word")

    Output: ``outputCol`` holds one Spark NLP ``document`` annotation per input audio (text, with
    ``language``, ``language_probability``, ``duration_s``, ``error`` in its metadata); with
    timestamps on, ``chunksCol`` (default ``<outputCol>_chunks``) holds ``chunk`` annotations whose
    metadata has ``start``/``end`` in seconds.
    """

    # -- Spark NLP-style constructors ---------------------------------------------------------
    @classmethod
    def pretrained(
        cls, name: Optional[str] = None, lang: Optional[str] = None, remote_loc: Optional[str] = None
    ) -> WhisperForCTC:
        """The embedded default (Whisper tiny.en) or a named model: 'base', a local directory, a hub id.

        ``lang`` and ``remote_loc`` exist for Spark NLP signature compatibility; nothing is fetched
        from Spark NLP's S3.
        """
        src = resolve_whisper_model(name)  # fail fast, on the driver, with a clear message
        inst = cls(modelSource=src.path if src.kind in ("hf-converted", "hub") else (name or "tiny.en"))
        inst._resolved = src
        return inst

    @classmethod
    def loadSavedModel(cls, path: str, spark=None) -> WhisperForCTC:
        """A local CTranslate2 or Hugging Face Whisper directory (converted once to CTranslate2)."""
        src = resolve_whisper_model(path)
        inst = cls(modelSource=src.path)
        inst._resolved = src
        return inst

    def getTrainingMetrics(self):
        """How this model was fine-tuned (:class:`~sparkasr.train.metrics.TrainingMetrics`: loss per step,
        validation WER per epoch, rows skipped and why), read from ``training_metrics.json`` beside its
        weights, so a saved and loaded pipeline keeps it; None for a model not made by
        :class:`~sparkasr.train.WhisperFineTuner`."""
        from ..train.metrics import TrainingMetrics

        local = self._resolve_model()[1]
        return TrainingMetrics.read(local) if local and os.path.isdir(local) else None

    # -- engine wiring ------------------------------------------------------------------------
    def _options(self) -> WhisperOptions:
        try:
            return WhisperOptions(**engine_kwargs(WhisperOptions, self._option_values()))
        except ValueError as exc:
            raise ValueError(f"WhisperForCTC: {exc}") from None

    def _runtime(self) -> RuntimeOptions:
        try:
            return RuntimeOptions(**engine_kwargs(RuntimeOptions, self._option_values()))
        except ValueError as exc:
            raise ValueError(f"WhisperForCTC: {exc}") from None

    def _validate(self) -> None:
        self._options()
        self._runtime()

    def _check_model(self, local_dir: str) -> None:
        if local_dir and self._source().kind == "onnx-export":
            raise ValueError(
                f"WhisperForCTC: {local_dir} is a Whisper ONNX export (sparkasr convert), which the JVM WhisperForCTC "
                "runs; the Python stage runs CTranslate2 models (tiny.en, base, a CTranslate2 or Hugging Face directory)"
            )
        if local_dir:
            try:
                check_whisper_options(local_dir, self._model_name(), self.getLanguage(), self.getTask())
            except ValueError as exc:
                raise ValueError(f"WhisperForCTC: {exc}") from None

    #: strategy=pack: rows handed to the engine per call, per unit of batchSize (packing needs many
    #: utterances per call to fill its windows: 8 windows of several utterances each)
    PACK_ROWS_PER_BATCH = 8

    def _items_per_call(self) -> int:
        n = self.getBatchSize()
        return n * self.PACK_ROWS_PER_BATCH if self.getOrDefault(self.strategy) == "pack" else n

    def _wants_chunks(self) -> bool:
        return self.getTimestamps() != "none"

    def _source(self) -> ModelSource:
        cached = getattr(self, "_resolved", None)
        name = self.getModelSource()
        if cached is not None and (cached.path == name or cached.name == name or name in ("tiny.en", "base")):
            return cached
        src = resolve_whisper_model(name)
        self._resolved = src
        return src

    def _resolve_model(self) -> Tuple[ModelRef, str]:
        name = self.getModelSource()
        if is_remote_uri(name) or cluster_only_path(name, self.getShipModel()):
            return ModelRef("path", path=name), ""
        src = self._source()
        if src.is_embedded:
            return ModelRef("embedded", name=src.name), src.path
        return ModelRef("path", path=src.path), src.path

    def _engine_spec(self, model: ModelRef) -> EngineSpec:
        return EngineSpec(model, self._options(), self._runtime())

    _build_engine = staticmethod(build_whisper_engine)
