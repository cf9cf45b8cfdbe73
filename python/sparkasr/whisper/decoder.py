"""One call's Whisper decoder: the model for the call, the options, the VAD gate, where progress
goes, and the two steps every batched path shares (the engine's short rows, long rows' pieces and
rests, packed windows): a batch of windows of at most 30 s decoded in one ``generate``
(:func:`.window.decode_windows`), and their words aligned."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .gate import VadGate
from .model import _TopKModel, add_word_timestamps, encode
from .options import RuntimeOptions, WhisperOptions
from .window import WindowBatch, decode_windows

#: ``progress(source, done_s, total_s)``: the file ``source`` is transcribed up to ``done_s`` seconds
#: from its start (``total_s``: its length, when known). Called as pieces, windows and segments finish.
Progress = Callable[[str, float, Optional[float]], None]


def no_progress(source: str, done_s: float, total_s: Optional[float] = None) -> None:
    """Progress that goes nowhere (engines used outside a job)."""


class Decoder:
    """What the passes decode with during one ``transcribe_batch`` call."""

    def __init__(self, fw, options: WhisperOptions, multilingual: bool, progress: Progress = no_progress):
        self.fw = fw  # faster-whisper's WhisperModel (for this call: see model_for_call)
        self.options = options
        self.multilingual = multilingual
        self.progress = progress
        self.gate = VadGate(options, multilingual)

    def windows(
        self,
        samples: Sequence[np.ndarray],
        *,
        languages: Optional[Sequence[Tuple[str, float]]] = None,
        contexts: Optional[Sequence[str]] = None,
        without_timestamps: bool = False,
        token_cap: Optional[int] = None,
    ) -> WindowBatch:
        """``samples`` (each at most 30 s) decoded in one batch (:func:`.window.decode_windows`)."""
        return decode_windows(
            self.fw,
            self.options,
            samples,
            multilingual=self.multilingual,
            languages=languages,
            contexts=contexts,
            without_timestamps=without_timestamps,
            token_cap=token_cap,
        )

    def align(self, batch: WindowBatch, segments: List[List[dict]]) -> None:
        """Word timestamps on ``segments`` (faster-whisper's segment dicts, one list per window of
        ``batch``), in place: one alignment per language in the batch (the tokenizer differs)."""
        groups: Dict[str, List[int]] = {}
        for i, w in enumerate(batch.windows):
            groups.setdefault(w.language, []).append(i)
        for lang, idx in groups.items():
            enc = batch.encoder_output if len(groups) == 1 else encode(self.fw, batch.features[idx])
            add_word_timestamps(
                self.fw,
                [segments[i] for i in idx],
                batch.tokenizers[lang],
                enc,
                [batch.windows[i].size for i in idx],
                batch.features[idx],
            )

    def sequential_model(self):
        """The model for faster-whisper's own ``transcribe``, with ``topK`` applied to its sampling
        (faster-whisper samples from the whole distribution): a per-call proxy, as the cached model
        is shared by engines with other options."""
        model = self.fw
        if self.options.top_k > 0 and not isinstance(model.model, _TopKModel):
            import copy

            inner = model.model
            model = copy.copy(model)
            model.model = _TopKModel(inner, self.options.top_k)
        return model


def model_for_call(fw, model_path: str, options: WhisperOptions, runtime: RuntimeOptions):
    """The faster-whisper model for one ``transcribe_batch`` call.

    With a ``seed`` and sampling, CTranslate2's random generator is thread-local to the model's
    worker threads and seeded only when a thread first samples, so ``set_random_seed`` before a
    call has no effect on a model that has sampled before: repeated calls would differ. For a
    seeded sampling engine each call therefore gets a fresh CTranslate2 replica (new worker
    threads) of the cached model, created after setting the seed: the same input and seed give
    the same output on every call. Costs one replica load per call, only for seeded sampling.
    """
    if options.seed is None or not options.sampling:
        return fw
    import copy

    import ctranslate2

    ctranslate2.set_random_seed(options.seed)
    inner = fw.model
    fresh = copy.copy(fw)
    fresh.model = ctranslate2.models.Whisper(
        model_path,
        device=inner.device,
        device_index=inner.device_index,
        compute_type=inner.compute_type,
        intra_threads=runtime.cpu_threads,
    )
    return fresh
