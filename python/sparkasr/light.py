"""``LightPipeline``: run a fitted pipeline on a few clips locally, without a Spark job.

Same engines, same options, same results as the Spark ``transform`` (Spark NLP's LightPipeline
role)::

    light = LightPipeline(pipeline_model)
    light.annotate("clip.wav")            # {"transcription": ["..."]}; raises for a bad file
    light.fullAnnotate(["a.wav", samples]) # [{"transcription": [annotation dicts], ...}, ...]
    light.transcribe("clip.wav")          # Transcript(text, chunks, language, ...)

The pipeline is an ``AudioAssembler`` (ours or Spark NLP's), speech annotators, then optionally
Spark NLP text annotators (``SentenceDetector``, ``Tokenizer``, ...) reading one speech
annotator's ``document`` column. Those run in Spark NLP's own ``LightPipeline`` on each
transcript (the driver's JVM, no Spark job), behind a ``DocumentAssembler`` that writes that column.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from .audio import SAMPLE_RATE
from .cells import INPUT_BINARY, INPUT_FLOATS, INPUT_PATH, cell_items
from .records import AudioItem

AudioInput = Union[str, os.PathLike, bytes, np.ndarray, Sequence[float]]

SPARKNLP_AUDIO_ASSEMBLER = "com.johnsnowlabs.nlp.AudioAssembler"


def _sparknlp_class(stage) -> Optional[str]:
    """The JVM class of a Spark NLP stage (``com.johnsnowlabs...``), else None."""
    from pyspark.ml.wrapper import JavaWrapper

    if not isinstance(stage, JavaWrapper) or getattr(stage, "_java_obj", None) is None:
        return None
    name = str(stage._java_obj.getClass().getName())
    return name if name.startswith("com.johnsnowlabs.") else None


class LightPipeline:
    def __init__(self, pipeline_model, parse_embeddings: bool = False):
        stages = getattr(pipeline_model, "stages", None) or [pipeline_model]
        from .spark.assembler import AudioAssembler
        from .spark.stage import SpeechAnnotatorModel

        self.assembler = None
        self.annotators: List[SpeechAnnotatorModel] = []
        text_stages = []
        for st in stages:
            snlp = _sparknlp_class(st)
            if not self.annotators and (isinstance(st, AudioAssembler) or snlp == SPARKNLP_AUDIO_ASSEMBLER):
                self.assembler = st
            elif isinstance(st, SpeechAnnotatorModel) and not text_stages:
                self.annotators.append(st)
            elif snlp is not None and self.annotators:
                text_stages.append(st)
            else:
                raise TypeError(
                    f"LightPipeline runs an AudioAssembler, sparkasr speech annotators, then Spark NLP "
                    f"annotators; {type(st).__name__} here needs a Spark job "
                    "(run pipeline_model.transform on a DataFrame instead)"
                )
        if not self.annotators:
            raise ValueError("the pipeline has no speech annotator")
        self._text = _SparkNlpText(text_stages, self.annotators, parse_embeddings) if text_stages else None

    def _item(self, audio: AudioInput) -> AudioItem:
        if isinstance(audio, (str, os.PathLike)):
            source = os.fspath(audio)
            (item,) = cell_items(source, INPUT_PATH, source)
        elif isinstance(audio, (bytes, bytearray)):
            (item,) = cell_items(bytes(audio), INPUT_BINARY, "<bytes>")
        else:
            from .spark.assembler import AudioAssembler

            asm = self.assembler
            if isinstance(asm, AudioAssembler):
                rate, channels = asm.getSampleRate(), asm.getOrDefault(asm.channels)
            else:  # none, or Spark NLP's, which takes its samples as 16-kHz mono
                rate, channels = SAMPLE_RATE, 1
            (item,) = cell_items(audio, INPUT_FLOATS, "<array>", rate=rate, channels=channels)
        return item

    def transcribe(self, audio: Union[AudioInput, List[AudioInput]]):
        """Transcript (or list of them) from the last speech annotator of the pipeline."""
        single = not isinstance(audio, list)
        items = [self._item(a) for a in ([audio] if single else audio)]
        res = self.annotators[-1].transcribe_items(items)
        return res[0] if single else res

    def fullAnnotate(self, audio: Union[AudioInput, List[AudioInput]]) -> List[Dict[str, List[Dict[str, Any]]]]:
        from .annotation import transcript_chunks, transcript_document

        inputs = audio if isinstance(audio, list) else [audio]
        items = [self._item(a) for a in inputs]
        out: List[Dict[str, List[Dict[str, Any]]]] = [{} for _ in items]
        for ann in self.annotators:
            results = ann.transcribe_items(items)
            chunks_col = ann.getChunksCol()
            for row, t in zip(out, results):
                row[ann.getOutputCol()] = [transcript_document(t, 0, ann._model_name())]
                if chunks_col:
                    row[chunks_col] = transcript_chunks(t, 0)
        if self._text is not None:
            self._text.annotate(out)
        return out

    def annotate(self, audio: Union[AudioInput, List[AudioInput]]):
        """The texts only (``{outputCol: [text], ...}``). An input that could not be transcribed
        raises ``ValueError`` naming it and the reason (texts alone would hide it as ``['']``);
        :meth:`fullAnnotate` returns such inputs' annotations with the error in their metadata."""
        from .annotation import ERROR_KEY

        full = self.fullAnnotate(audio)
        failed = [
            a["metadata"][ERROR_KEY] for row in full for v in row.values() for a in v if a["metadata"].get(ERROR_KEY)
        ]
        if failed:
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise ValueError(f"LightPipeline.annotate: {failed[0]}{more}; fullAnnotate keeps errors in the metadata")
        simple = [{k: [a["result"] for a in v] for k, v in row.items()} for row in full]
        return simple if isinstance(audio, list) else simple[0]


class _SparkNlpText:
    """The Spark NLP stages after the speech annotators, run by Spark NLP's LightPipeline on the
    transcript of the one ``document`` column they read."""

    def __init__(self, stages, annotators, parse_embeddings: bool):
        from pyspark.ml import PipelineModel
        from sparknlp.base import DocumentAssembler
        from sparknlp.base import LightPipeline as SparkNlpLightPipeline

        ours = {a.getOutputCol() for a in annotators}
        produced = set()
        read = []
        for st in stages:
            cols = st.getInputCols() if st.hasParam("inputCols") and st.isDefined("inputCols") else []
            read += [c for c in cols if c not in produced and c not in read]
            if st.hasParam("outputCol"):
                produced.add(st.getOutputCol())
        if len(read) != 1 or read[0] not in ours:
            raise TypeError(
                f"LightPipeline: the Spark NLP stages after the speech annotators must read exactly one "
                f"of their document columns {sorted(ours)}; they read {read}"
            )
        self.source = read[0]
        self.columns = sorted(produced)
        assembler = DocumentAssembler().setInputCol("text").setOutputCol(self.source)
        self._light = SparkNlpLightPipeline(PipelineModel(stages=[assembler, *stages]), parse_embeddings)

    def annotate(self, rows: List[Dict[str, List[Dict[str, Any]]]]) -> None:
        """Add the Spark NLP columns to each row (LightPipeline makes one document per input; an
        empty transcript gives empty columns, as Spark NLP's annotators give in a DataFrame)."""
        from .annotation import annotation

        texts = [row[self.source][0]["result"] for row in rows]
        for row, result in zip(rows, self._light.fullAnnotate(texts)):
            for c in self.columns:
                row[c] = [
                    annotation(a.annotatorType, a.begin, a.end, a.result, a.metadata, a.embeddings) for a in result[c]
                ]
