"""``Wav2Vec2ForCTC`` and ``HubertForCTC``: Spark NLP's class names and setters, ONNX Runtime inside.

Thin subclasses of :class:`~sparkasr.spark.stage.SpeechAnnotatorModel` (same ingestion, batching,
error rows and output schema as ``WhisperForCTC``) over :class:`sparkasr.ctc.CTCEngine`.

    >>> asr = Wav2Vec2ForCTC.loadSavedModel("/models/w2v2-base-960h-onnx", spark) \\
    ...     .setInputCols(["audio_assembler"]).setOutputCol("text")
    >>> asr = HubertForCTC.pretrained()  # facebook/hubert-large-ls960-ft (online once, then cached)

Output: ``outputCol`` holds one ``document`` annotation per input audio; with ``timestamps`` =
word|char, ``chunksCol`` (default ``<outputCol>_chunks``) holds ``chunk`` annotations with
``start``/``end`` seconds in their metadata.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import List, Optional, Tuple

from pyspark import keyword_only
from pyspark.ml.param import Param, Params, TypeConverters

from ..ctc.checkpoint import load_checkpoint
from ..ctc.engine import BACKENDS, TIMESTAMP_MODES, CTCOptions
from ..ctc.lm import BeamOptions
from ..ctc.models import lm_in_dir, resolve_ctc_model, with_lm
from ..paths import is_remote_uri
from .context import EngineSpec, task_cpus
from .shipping import ModelRef, local_model_dir
from .stage import SpeechAnnotatorModel


def _to_float_list(value) -> List[float]:
    if isinstance(value, (int, float)):
        return [float(value)]
    return TypeConverters.toListFloat(value)


class _CTCAnnotator(SpeechAnnotatorModel):
    """Shared params and wiring of the CTC annotators."""

    _model_types: Tuple[str, ...] = ()
    _default_pretrained: str = ""

    timestamps = Param(Params._dummy(), "timestamps", "none, word or char: chunk annotations with times", typeConverter=TypeConverters.toString)
    chunkLengthS = Param(Params._dummy(), "chunkLengthS", "long audio: chunk length in seconds (0 = only rows longer than maxUnchunkedS are chunked)", typeConverter=TypeConverters.toFloat)
    strideLengthS = Param(Params._dummy(), "strideLengthS", "overlap dropped on each side of a chunk, [left, right] seconds ([] = chunkLengthS/6)", typeConverter=_to_float_list)
    maxUnchunkedS = Param(Params._dummy(), "maxUnchunkedS", "rows longer than this are always chunked (bounded memory)", typeConverter=TypeConverters.toFloat)
    lmPath = Param(Params._dummy(), "lmPath", "KenLM n-gram model (.arpa or binary) for beam search ('' = greedy decoding)", typeConverter=TypeConverters.toString)
    beamWidth = Param(Params._dummy(), "beamWidth", "beam width of the LM beam search", typeConverter=TypeConverters.toInt)
    lmAlpha = Param(Params._dummy(), "lmAlpha", "LM weight (shallow fusion)", typeConverter=TypeConverters.toFloat)
    lmBeta = Param(Params._dummy(), "lmBeta", "word insertion bonus", typeConverter=TypeConverters.toFloat)
    hotwords = Param(Params._dummy(), "hotwords", "words to favour in beam search (set lmPath or beamWidth > 0 to enable)", typeConverter=TypeConverters.toListString)
    hotwordWeight = Param(Params._dummy(), "hotwordWeight", "weight of the hotwords", typeConverter=TypeConverters.toFloat)
    cpuThreads = Param(Params._dummy(), "cpuThreads", "ONNX Runtime threads per task; 0 = spark.task.cpus inside Spark", typeConverter=TypeConverters.toInt)
    backend = Param(Params._dummy(), "backend", "onnx (default; no torch on executors) or transformers (needs torch on executors)", typeConverter=TypeConverters.toString)
    quantize = Param(Params._dummy(), "quantize", "when a Hugging Face checkpoint is converted on the driver: '' or 'int8'", typeConverter=TypeConverters.toString)
    allowPickle = Param(Params._dummy(), "allowPickle", "accept a pickled pytorch_model.bin checkpoint (trusted sources only)", typeConverter=TypeConverters.toBoolean)

    @keyword_only
    def __init__(
        self, *, inputCols=None, outputCol=None, modelSource=None, batchSize=None, timestamps=None, chunkLengthS=None,
        strideLengthS=None, maxUnchunkedS=None, lmPath=None, beamWidth=None, lmAlpha=None, lmBeta=None, hotwords=None,
        hotwordWeight=None, cpuThreads=None, backend=None, quantize=None, allowPickle=None, shipModel=None,
        pathCol=None, chunksCol=None, offsetCol=None, durationCol=None, errorCol=None,
    ):
        super().__init__()
        self._setDefault(
            modelSource="", timestamps="word", chunkLengthS=0.0, strideLengthS=[], maxUnchunkedS=60.0, lmPath="",
            beamWidth=0, lmAlpha=0.5, lmBeta=1.5, hotwords=[], hotwordWeight=10.0, cpuThreads=0, backend="onnx",
            quantize="", allowPickle=False,
        )
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(
        self, *, inputCols=None, outputCol=None, modelSource=None, batchSize=None, timestamps=None, chunkLengthS=None,
        strideLengthS=None, maxUnchunkedS=None, lmPath=None, beamWidth=None, lmAlpha=None, lmBeta=None, hotwords=None,
        hotwordWeight=None, cpuThreads=None, backend=None, quantize=None, allowPickle=None, shipModel=None,
        pathCol=None, chunksCol=None, offsetCol=None, durationCol=None, errorCol=None,
    ):
        out = self._set(**self._input_kwargs)
        self._options()  # validate now, on the driver, naming the class
        return out

    # -- Spark NLP-style constructors ---------------------------------------------------------
    @classmethod
    def pretrained(cls, name: Optional[str] = None, lang: Optional[str] = None, remote_loc: Optional[str] = None, quantize: str = ""):
        """A Hub checkpoint (default: the class's public model), downloaded once when online and
        converted to ONNX on the driver (needs the ``convert`` extra there); cached afterwards.

        ``lang`` and ``remote_loc`` exist for Spark NLP signature compatibility; nothing is fetched
        from Spark NLP's S3.
        """
        name = name or cls._default_pretrained
        path = resolve_ctc_model(name, quantize=quantize or None)
        inst = cls(modelSource=path, quantize=quantize)
        inst._check_model_type(path)
        return inst

    @classmethod
    def loadSavedModel(cls, path: str, spark=None, allowPickle: bool = False, quantize: str = ""):
        """A directory converted by ``sparkasr convert`` (model.onnx), or a Hugging Face CTC
        checkpoint directory (model.safetensors), converted once on the driver."""
        local = resolve_ctc_model(path, quantize=quantize or None, allow_pickle=allowPickle)
        inst = cls(modelSource=local, allowPickle=allowPickle, quantize=quantize)
        inst._check_model_type(local)
        return inst

    def _check_model_type(self, path: str) -> None:
        mt = load_checkpoint(path).model_type
        if self._model_types and mt not in self._model_types:
            other = "HubertForCTC" if mt == "hubert" else "Wav2Vec2ForCTC"
            raise ValueError(f"{type(self).__name__}: {path} is a '{mt}' model; use {other}")

    # -- setters/getters (Spark NLP style) ------------------------------------------------------
    def setTimestamps(self, value: str):
        return self.setParams(timestamps=value)

    def getTimestamps(self) -> str:
        return self.getOrDefault(self.timestamps)

    def setChunkLengthS(self, value: float):
        return self.setParams(chunkLengthS=value)

    def setStrideLengthS(self, value):
        return self.setParams(strideLengthS=value)

    def setMaxUnchunkedS(self, value: float):
        return self.setParams(maxUnchunkedS=value)

    def setLmPath(self, value: str):
        return self.setParams(lmPath=value)

    def getLmPath(self) -> str:
        return self.getOrDefault(self.lmPath)

    def setBeamWidth(self, value: int):
        return self.setParams(beamWidth=value)

    def setLmAlpha(self, value: float):
        return self.setParams(lmAlpha=value)

    def setLmBeta(self, value: float):
        return self.setParams(lmBeta=value)

    def setHotwords(self, value: List[str]):
        return self.setParams(hotwords=value)

    def setHotwordWeight(self, value: float):
        return self.setParams(hotwordWeight=value)

    def setCpuThreads(self, value: int):
        return self.setParams(cpuThreads=value)

    def getCpuThreads(self) -> int:
        return self.getOrDefault(self.cpuThreads)

    def setBackend(self, value: str):
        return self.setParams(backend=value)

    def setQuantize(self, value: str):
        return self.setParams(quantize=value)

    def setAllowPickle(self, value: bool):
        return self.setParams(allowPickle=value)

    # -- engine wiring ------------------------------------------------------------------------
    def _beam_enabled(self) -> bool:
        g = self.getOrDefault
        return bool(g(self.lmPath)) or g(self.beamWidth) > 0 or bool(g(self.hotwords))

    def _options(self, lm_file: Optional[str] = None) -> CTCOptions:
        g = self.getOrDefault
        name = type(self).__name__
        try:
            if g(self.backend) not in BACKENDS:
                raise ValueError(f"backend must be one of {BACKENDS}, got {g(self.backend)!r}")
            if g(self.timestamps) not in TIMESTAMP_MODES:
                raise ValueError(f"timestamps must be one of {TIMESTAMP_MODES}, got {g(self.timestamps)!r}")
            if g(self.quantize) not in ("", "int8"):
                raise ValueError("quantize must be '' or 'int8'")
            if g(self.cpuThreads) < 0:
                raise ValueError("cpuThreads must be >= 0")
            stride = g(self.strideLengthS)
            if stride and len(stride) == 1:
                stride = [stride[0], stride[0]]
            beam = None
            if self._beam_enabled():
                beam = BeamOptions(
                    kenlm_model_path=lm_file,
                    alpha=g(self.lmAlpha),
                    beta=g(self.lmBeta),
                    beam_width=g(self.beamWidth) or 100,
                    hotwords=tuple(g(self.hotwords)),
                    hotword_weight=g(self.hotwordWeight),
                )
            return CTCOptions(
                batch_size=g(self.batchSize),
                timestamps=g(self.timestamps),
                chunk_length_s=g(self.chunkLengthS),
                stride_length_s=tuple(stride) if stride else None,
                max_unchunked_s=g(self.maxUnchunkedS),
                num_threads=g(self.cpuThreads),
                backend=g(self.backend),
                allow_pickle=g(self.allowPickle),
                beam=beam,
            )
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None

    def _wants_chunks(self) -> bool:
        return self.getTimestamps() != "none"

    def _local_dir(self) -> str:
        name = self.getModelSource()
        if not name:
            raise ValueError(f"{type(self).__name__}: no model; use loadSavedModel(path, spark) or pretrained(name)")
        key = (name, self.getOrDefault(self.quantize), self.getOrDefault(self.allowPickle), self.getOrDefault(self.backend), self.getLmPath())
        cached = getattr(self, "_resolved_dir", None)
        if cached and cached[0] == key:
            return cached[1]
        local = resolve_ctc_model(
            name, quantize=self.getOrDefault(self.quantize) or None,
            allow_pickle=self.getOrDefault(self.allowPickle), backend=self.getOrDefault(self.backend),
        )
        lm = self.getLmPath()
        if lm:
            if os.path.isfile(os.path.expanduser(lm)):
                local = with_lm(local, lm)
            elif lm_in_dir(local) is None:
                raise FileNotFoundError(f"{type(self).__name__}: lmPath {lm} not found (and the model directory holds no LM)")
        self._check_model_type(local)
        self._resolved_dir = (key, local)
        return local

    def _resolve_model(self) -> Tuple[ModelRef, str]:
        name = self.getModelSource()
        if is_remote_uri(name):
            return ModelRef("path", path=name), ""
        local = self._local_dir()
        return ModelRef("path", path=local), local

    def _model_name(self) -> str:
        name = self.getModelSource()
        return name if len(name) < 80 else "..." + name[-77:]

    def _engine_spec(self, model: ModelRef) -> EngineSpec:
        lm_file = None
        if self.getLmPath():
            name = self.getModelSource()
            local = "" if is_remote_uri(name) else self._local_dir()
            found = lm_in_dir(local) if local else None
            lm_file = os.path.basename(found) if found else ("lm.arpa" if self.getLmPath().endswith(".arpa") else "lm.binary")
        return EngineSpec(model, self._options(), extra=(("lm_file", lm_file),))

    @staticmethod
    def _build_engine(spec: EngineSpec):
        from ..ctc.engine import CTCEngine

        path = local_model_dir(spec.model)
        opts = spec.options
        if not opts.num_threads:
            opts = replace(opts, num_threads=task_cpus())
        lm_file = dict(spec.extra).get("lm_file")
        if opts.beam is not None and lm_file:
            opts = replace(opts, beam=replace(opts.beam, kenlm_model_path=os.path.join(path, lm_file)))
        return CTCEngine(path, opts)


class Wav2Vec2ForCTC(_CTCAnnotator):
    """Wav2Vec2 CTC speech recognition (also data2vec-audio, WavLM and wav2vec2-conformer CTC
    checkpoints, which take the same input and give the same output). Meant for
    ``facebook/wav2vec2-base-960h`` and its fine-tuned relatives."""

    _model_types = ("wav2vec2", "data2vec-audio", "wavlm", "wav2vec2-conformer")
    _default_pretrained = "facebook/wav2vec2-base-960h"


class HubertForCTC(_CTCAnnotator):
    """HuBERT CTC speech recognition. Meant for ``facebook/hubert-large-ls960-ft``."""

    _model_types = ("hubert",)
    _default_pretrained = "facebook/hubert-large-ls960-ft"
