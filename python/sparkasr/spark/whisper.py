"""``WhisperForCTC``: Spark NLP's class name and setters, CTranslate2 inside, nothing truncated."""

from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Tuple

from pyspark import keyword_only
from pyspark.ml.param import Param, Params, TypeConverters

from ..models import ModelSource, resolve_whisper_model
from ..paths import is_remote_uri
from ..whisper import RuntimeOptions, WhisperOptions
from .context import EngineSpec, task_cpus
from .params import HasRuntimeParams
from .shipping import ModelRef, local_model_dir
from .stage import SpeechAnnotatorModel


def _to_float_list(value) -> List[float]:
    if isinstance(value, (int, float)):
        return [float(value)]
    return TypeConverters.toListFloat(value)


class WhisperForCTC(SpeechAnnotatorModel, HasRuntimeParams):
    """Whisper speech recognition (any length, batched across rows, timestamps, language).

    >>> asr = WhisperForCTC.pretrained().setInputCols(["audio_assembler"]).setOutputCol("text")
    >>> asr = WhisperForCTC(inputCols=["audio_assembler"], outputCol="text", beamSize=5, timestamps="word")

    Output: ``outputCol`` holds one Spark NLP ``document`` annotation per input audio (text, with
    ``language``, ``language_probability``, ``duration_s``, ``error`` in its metadata); with
    timestamps on, ``chunksCol`` (default ``<outputCol>_chunks``) holds ``chunk`` annotations whose
    metadata has ``start``/``end`` in seconds.
    """

    language = Param(Params._dummy(), "language", "language code ('' = detect; English-only models use 'en')", typeConverter=TypeConverters.toString)
    task = Param(Params._dummy(), "task", "transcribe or translate (to English)", typeConverter=TypeConverters.toString)
    beamSize = Param(Params._dummy(), "beamSize", "beam size for temperature-0 decoding (1 = greedy)", typeConverter=TypeConverters.toInt)
    bestOf = Param(Params._dummy(), "bestOf", "candidates sampled at temperature > 0", typeConverter=TypeConverters.toInt)
    temperature = Param(Params._dummy(), "temperature", "temperatures tried in order when a decode fails the quality checks", typeConverter=_to_float_list)
    topK = Param(Params._dummy(), "topK", "sampling: keep the K most likely tokens (0 = all)", typeConverter=TypeConverters.toInt)
    topP = Param(Params._dummy(), "topP", "nucleus sampling; CTranslate2 supports only 1.0 (any other value is refused)", typeConverter=TypeConverters.toFloat)
    maxNewTokens = Param(Params._dummy(), "maxNewTokens", "max tokens generated per 30-s window (0 = model maximum)", typeConverter=TypeConverters.toInt)
    initialPrompt = Param(Params._dummy(), "initialPrompt", "text given to the decoder as previous context", typeConverter=TypeConverters.toString)
    timestamps = Param(Params._dummy(), "timestamps", "none, segment or word", typeConverter=TypeConverters.toString)
    conditionOnPreviousText = Param(Params._dummy(), "conditionOnPreviousText", "long audio: prompt each window with the previous text", typeConverter=TypeConverters.toBoolean)
    lengthPenalty = Param(Params._dummy(), "lengthPenalty", "beam search length penalty", typeConverter=TypeConverters.toFloat)
    repetitionPenalty = Param(Params._dummy(), "repetitionPenalty", "penalty on repeated tokens (>1 penalises)", typeConverter=TypeConverters.toFloat)
    noRepeatNgramSize = Param(Params._dummy(), "noRepeatNgramSize", "forbid repeating n-grams of this size (0 = off)", typeConverter=TypeConverters.toInt)
    vadFilter = Param(Params._dummy(), "vadFilter", "skip non-speech with Silero VAD (sequential path)", typeConverter=TypeConverters.toBoolean)
    seed = Param(Params._dummy(), "seed", "random seed for sampling (-1 = unset)", typeConverter=TypeConverters.toInt)
    strategy = Param(Params._dummy(), "strategy", "batch (default): rows batched, long rows cut at quiet points into <=30-s pieces decoded batched; sequential: long rows by faster-whisper's long-form algorithm (Whisper's sentence segments); pack: short utterances packed into shared 30-s windows (fastest on short clips)", typeConverter=TypeConverters.toString)
    longPieceS = Param(Params._dummy(), "longPieceS", "strategy=sequential: rows longer than 1.5x this many seconds are decoded in pieces of this length (bounded memory)", typeConverter=TypeConverters.toFloat)

    @keyword_only
    def __init__(
        self, *, inputCols=None, outputCol=None, modelSource=None, batchSize=None, language=None, task=None,
        beamSize=None, bestOf=None, temperature=None, topK=None, topP=None, maxNewTokens=None, initialPrompt=None,
        timestamps=None, conditionOnPreviousText=None, lengthPenalty=None, repetitionPenalty=None,
        noRepeatNgramSize=None, vadFilter=None, seed=None, strategy=None, longPieceS=None, device=None, computeType=None, cpuThreads=None,
        shipModel=None, pathCol=None, chunksCol=None, offsetCol=None, durationCol=None, errorCol=None,
    ):
        super().__init__()
        self._setDefault(
            modelSource="tiny.en", language="", task="transcribe", beamSize=5, bestOf=5,
            temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0], topK=0, topP=1.0, maxNewTokens=0, initialPrompt="",
            timestamps="segment", conditionOnPreviousText=True, lengthPenalty=1.0, repetitionPenalty=1.0,
            noRepeatNgramSize=0, vadFilter=False, seed=-1, strategy="batch", longPieceS=600.0, device="cpu", computeType="int8", cpuThreads=0,
        )
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(
        self, *, inputCols=None, outputCol=None, modelSource=None, batchSize=None, language=None, task=None,
        beamSize=None, bestOf=None, temperature=None, topK=None, topP=None, maxNewTokens=None, initialPrompt=None,
        timestamps=None, conditionOnPreviousText=None, lengthPenalty=None, repetitionPenalty=None,
        noRepeatNgramSize=None, vadFilter=None, seed=None, strategy=None, longPieceS=None, device=None, computeType=None, cpuThreads=None,
        shipModel=None, pathCol=None, chunksCol=None, offsetCol=None, durationCol=None, errorCol=None,
    ):
        kwargs = self._input_kwargs
        out = self._set(**kwargs)
        self._options()  # validate now, on the driver, naming the param
        return out

    # -- Spark NLP-style constructors ---------------------------------------------------------
    @classmethod
    def pretrained(cls, name: Optional[str] = None, lang: Optional[str] = None, remote_loc: Optional[str] = None) -> "WhisperForCTC":
        """The embedded default (Whisper tiny.en) or a named model: 'base', a local directory, a hub id.

        ``lang`` and ``remote_loc`` exist for Spark NLP signature compatibility; nothing is fetched
        from Spark NLP's S3.
        """
        src = resolve_whisper_model(name)  # fail fast, on the driver, with a clear message
        inst = cls(modelSource=src.path if src.kind in ("hf-converted", "hub") else (name or "tiny.en"))
        inst._resolved = src
        return inst

    @classmethod
    def loadSavedModel(cls, path: str, spark=None) -> "WhisperForCTC":
        """A local CTranslate2 or Hugging Face Whisper directory (converted once to CTranslate2)."""
        src = resolve_whisper_model(path)
        inst = cls(modelSource=src.path)
        inst._resolved = src
        return inst

    # -- setters/getters (Spark NLP names) ------------------------------------------------------
    def setLanguage(self, value: str):
        return self.setParams(language=value)

    def getLanguage(self) -> str:
        return self.getOrDefault(self.language)

    def setTask(self, value: str):
        return self.setParams(task=value)

    def getTask(self) -> str:
        return self.getOrDefault(self.task)

    def setBeamSize(self, value: int):
        return self.setParams(beamSize=value)

    def getBeamSize(self) -> int:
        return self.getOrDefault(self.beamSize)

    def setBestOf(self, value: int):
        return self.setParams(bestOf=value)

    def setTemperature(self, value):
        return self.setParams(temperature=value)

    def getTemperature(self) -> List[float]:
        return self.getOrDefault(self.temperature)

    def setTopK(self, value: int):
        return self.setParams(topK=value)

    def setTopP(self, value: float):
        return self.setParams(topP=value)

    def setMaxNewTokens(self, value: int):
        return self.setParams(maxNewTokens=value)

    def setInitialPrompt(self, value: str):
        return self.setParams(initialPrompt=value)

    def setTimestamps(self, value: str):
        return self.setParams(timestamps=value)

    def getTimestamps(self) -> str:
        return self.getOrDefault(self.timestamps)

    def setConditionOnPreviousText(self, value: bool):
        return self.setParams(conditionOnPreviousText=value)

    def setVadFilter(self, value: bool):
        return self.setParams(vadFilter=value)

    def setSeed(self, value: int):
        return self.setParams(seed=value)

    def setStrategy(self, value: str):
        return self.setParams(strategy=value)

    def getStrategy(self) -> str:
        return self.getOrDefault(self.strategy)

    def setLongPieceS(self, value: float):
        return self.setParams(longPieceS=value)

    # -- engine wiring ------------------------------------------------------------------------
    def _options(self) -> WhisperOptions:
        g = self.getOrDefault
        try:
            return WhisperOptions(
                language=g(self.language) or None,
                task=g(self.task),
                beam_size=g(self.beamSize),
                best_of=g(self.bestOf),
                temperature=tuple(g(self.temperature)),
                top_k=g(self.topK),
                top_p=g(self.topP),
                max_new_tokens=g(self.maxNewTokens) or None,
                initial_prompt=g(self.initialPrompt) or None,
                timestamps=g(self.timestamps),
                condition_on_previous_text=g(self.conditionOnPreviousText),
                length_penalty=g(self.lengthPenalty),
                repetition_penalty=g(self.repetitionPenalty),
                no_repeat_ngram_size=g(self.noRepeatNgramSize),
                batch_size=g(self.batchSize),
                vad_filter=g(self.vadFilter),
                seed=None if g(self.seed) < 0 else g(self.seed),
                strategy=g(self.strategy),
                long_piece_s=g(self.longPieceS),
            )
        except ValueError as exc:
            raise ValueError(f"WhisperForCTC: {exc}") from None

    #: strategy=pack: rows handed to the engine per call, per unit of batchSize (packing needs many
    #: utterances per call to fill its windows: 8 windows of several utterances each)
    PACK_ROWS_PER_BATCH = 8

    def _items_per_call(self) -> int:
        n = self.getBatchSize()
        return n * self.PACK_ROWS_PER_BATCH if self.getOrDefault(self.strategy) == "pack" else n

    def _runtime(self, threads: int) -> RuntimeOptions:
        try:
            return RuntimeOptions(device=self.getDevice(), compute_type=self.getComputeType(), cpu_threads=threads)
        except ValueError as exc:
            raise ValueError(f"WhisperForCTC: {exc}") from None

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
        if is_remote_uri(name):
            return ModelRef("path", path=name), ""
        src = self._source()
        if src.is_embedded:
            return ModelRef("embedded", name=src.name), src.path
        return ModelRef("path", path=src.path), src.path

    def _model_name(self) -> str:
        name = self.getModelSource()
        return name if len(name) < 80 else "..." + name[-77:]

    def _engine_spec(self, model: ModelRef) -> EngineSpec:
        return EngineSpec(model, self._options(), self._runtime(self.getCpuThreads()))

    @staticmethod
    def _build_engine(spec: EngineSpec):
        from ..whisper import WhisperEngine

        path = local_model_dir(spec.model, resolver=lambda n: resolve_whisper_model(n).path)
        runtime = spec.runtime if spec.runtime.cpu_threads else replace(spec.runtime, cpu_threads=task_cpus())
        return WhisperEngine(path, spec.options, runtime)
