"""``LightPipeline``: run a fitted pipeline on a few clips locally, without a Spark job.

Same engines, same options, same results as the Spark ``transform`` (Spark NLP's LightPipeline
role)::

    light = LightPipeline(pipeline_model)
    light.annotate("clip.wav")            # {"transcription": ["..."]}; raises for a bad file
    light.fullAnnotate(["a.wav", samples]) # [{"transcription": [annotation dicts], ...}, ...]
    light.transcribe("clip.wav")          # Transcript(text, chunks, language, ...)
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Sequence, Union

import numpy as np

from .audio import SAMPLE_RATE
from .cells import INPUT_BINARY, INPUT_FLOATS, INPUT_PATH, cell_items
from .records import AudioItem

AudioInput = Union[str, os.PathLike, bytes, np.ndarray, Sequence[float]]


class LightPipeline:
    def __init__(self, pipeline_model, parse_embeddings: bool = False):
        stages = getattr(pipeline_model, "stages", None) or [pipeline_model]
        from .spark.assembler import AudioAssembler
        from .spark.stage import SpeechAnnotatorModel

        self.assembler = None
        self.annotators: List[SpeechAnnotatorModel] = []
        for st in stages:
            if isinstance(st, AudioAssembler):
                self.assembler = st
            elif isinstance(st, SpeechAnnotatorModel):
                self.annotators.append(st)
            else:
                raise TypeError(
                    f"LightPipeline runs sparkasr stages only; {type(st).__name__} needs a Spark job "
                    "(run pipeline_model.transform on a DataFrame instead)"
                )
        if not self.annotators:
            raise ValueError("the pipeline has no speech annotator")

    def _item(self, audio: AudioInput) -> AudioItem:
        if isinstance(audio, (str, os.PathLike)):
            source = os.fspath(audio)
            (item,) = cell_items(source, INPUT_PATH, source)
        elif isinstance(audio, (bytes, bytearray)):
            (item,) = cell_items(bytes(audio), INPUT_BINARY, "<bytes>")
        else:
            asm = self.assembler
            rate, channels = (
                (asm.getSampleRate(), asm.getOrDefault(asm.channels)) if asm is not None else (SAMPLE_RATE, 1)
            )
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
