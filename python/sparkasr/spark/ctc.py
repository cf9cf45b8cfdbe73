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
from typing import Optional, Tuple

from ..ctc.checkpoint import load_checkpoint
from ..ctc.engine import CTCOptions
from ..ctc.lm import BeamOptions
from ..ctc.models import lm_in_dir, resolve_ctc_model, with_lm
from ..options import engine_kwargs
from ..params import stage_table
from ..paths import is_remote_uri
from .builders import build_ctc_engine
from .context import EngineSpec
from .params import declare_params
from .shipping import ModelRef, cluster_only_path
from .stage import SpeechAnnotatorModel


class _CTCAnnotator(SpeechAnnotatorModel):
    """Shared wiring of the CTC annotators (their params: the option table of each)."""

    _model_types: Tuple[str, ...] = ()
    _default_pretrained: str = ""

    # -- Spark NLP-style constructors ---------------------------------------------------------
    @classmethod
    def pretrained(
        cls,
        name: Optional[str] = None,
        lang: Optional[str] = None,
        remote_loc: Optional[str] = None,
        quantize: str = "",
    ):
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

    # -- engine wiring ------------------------------------------------------------------------
    def _beam_enabled(self) -> bool:
        g = self.getOrDefault
        return bool(g(self.lmPath)) or g(self.beamWidth) > 0 or bool(g(self.hotwords))

    def _options(self) -> CTCOptions:
        """The engine options (the KenLM file itself is set on the worker, in the model dir)."""
        values = self._option_values()
        try:
            beam = BeamOptions(**engine_kwargs(BeamOptions, values)) if self._beam_enabled() else None
            return CTCOptions(**engine_kwargs(CTCOptions, values), beam=beam)
        except ValueError as exc:
            raise ValueError(f"{type(self).__name__}: {exc}") from None

    def _validate(self) -> None:
        self._options()

    def _wants_chunks(self) -> bool:
        return self.getTimestamps() != "none"

    def _local_dir(self) -> str:
        name = self.getModelSource()
        if not name:
            raise ValueError(f"{type(self).__name__}: no model; use loadSavedModel(path, spark) or pretrained(name)")
        key = (
            name,
            self.getOrDefault(self.quantize),
            self.getOrDefault(self.allowPickle),
            self.getOrDefault(self.backend),
            self.getLmPath(),
        )
        cached = getattr(self, "_resolved_dir", None)
        if cached and cached[0] == key:
            return cached[1]
        local = resolve_ctc_model(
            name,
            quantize=self.getOrDefault(self.quantize) or None,
            allow_pickle=self.getOrDefault(self.allowPickle),
            backend=self.getOrDefault(self.backend),
        )
        lm = self.getLmPath()
        if lm:
            if os.path.isfile(os.path.expanduser(lm)):
                local = with_lm(local, lm)
            elif lm_in_dir(local) is None:
                raise FileNotFoundError(
                    f"{type(self).__name__}: lmPath {lm} not found (and the model directory holds no LM)"
                )
        self._check_model_type(local)
        self._resolved_dir = (key, local)
        return local

    def _resolve_model(self) -> Tuple[ModelRef, str]:
        name = self.getModelSource()
        if is_remote_uri(name) or cluster_only_path(name, self.getShipModel()):
            return ModelRef("path", path=name), ""
        local = self._local_dir()
        return ModelRef("path", path=local), local

    def _engine_spec(self, model: ModelRef) -> EngineSpec:
        lm_file = None
        if self.getLmPath():
            name = self.getModelSource()
            local = "" if is_remote_uri(name) or cluster_only_path(name, self.getShipModel()) else self._local_dir()
            found = lm_in_dir(local) if local else None
            lm_file = (
                os.path.basename(found) if found else ("lm.arpa" if self.getLmPath().endswith(".arpa") else "lm.binary")
            )
        return EngineSpec(model, self._options(), extra=(("lm_file", lm_file),))

    _build_engine = staticmethod(build_ctc_engine)


@declare_params(stage_table("Wav2Vec2ForCTC"))
class Wav2Vec2ForCTC(_CTCAnnotator):
    """Wav2Vec2 CTC speech recognition (also data2vec-audio, WavLM and wav2vec2-conformer CTC
    checkpoints, which take the same input and give the same output). Meant for
    ``facebook/wav2vec2-base-960h`` and its fine-tuned relatives."""

    _model_types = ("wav2vec2", "data2vec-audio", "wavlm", "wav2vec2-conformer")
    _default_pretrained = "facebook/wav2vec2-base-960h"


@declare_params(stage_table("HubertForCTC"))
class HubertForCTC(_CTCAnnotator):
    """HuBERT CTC speech recognition. Meant for ``facebook/hubert-large-ls960-ft``."""

    _model_types = ("hubert",)
    _default_pretrained = "facebook/hubert-large-ls960-ft"
