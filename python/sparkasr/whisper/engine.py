"""The Whisper engine: CTranslate2 through faster-whisper, batched across rows, no truncation.
:class:`WhisperEngine` checks each item and sends it down one path; the paths are passes in
modules of their own (``docs/long_form.md`` gives the rules they follow):

* **short items** (at most one 30-s window): :mod:`.batched`, ``batch_size`` rows per encoder call
  and ``generate``, Whisper's segments, rests of windows that stopped early decoded in further
  batched rounds, the temperature fallback on the sequential path;
* **long items**, ``strategy="batch"`` and ``"pack"`` (the default): :mod:`.pieces`, cut at quiet
  points into pieces of at most 30 s decoded batched as text, repaired from their words (skipped
  sound heard again, rests after the last word decoded), joined per row;
* **long items**, ``strategy="sequential"`` (and ``vadFilter``): :mod:`.sequential`,
  faster-whisper's own long-form algorithm, Whisper's sentence-level segments;
* ``strategy="pack"``: short items several to a window (:mod:`.packing`); long items as with
  ``"batch"``.

:meth:`WhisperEngine.transcribe_steps` runs one long row in steps (a few pieces or a window each) for
a server that interleaves other requests.

The VAD gate (:mod:`.gate`) applies on every path. Progress inside long files goes to the
``progress`` callback given to the engine (a Spark job's live progress line; else nowhere).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, ContextManager, Generator, List, Optional, Sequence

import numpy as np

from ..engines import cached_engine
from ..records import AudioItem, Transcript, error_transcript
from . import packing
from .batched import decode_in_batches
from .decoder import Decoder, Progress, model_for_call, no_progress
from .model import gated, load_model
from .options import RuntimeOptions, WhisperOptions
from .pieces import transcribe_long, transcribe_long_steps
from .rules import WINDOW_S
from .sequential import decode_sequential, decode_sequential_steps


class WhisperEngine:
    """Transcribe batches of :class:`AudioItem` with one cached Whisper model."""

    def __init__(
        self,
        model_path: str,
        options: WhisperOptions = WhisperOptions(),
        runtime: RuntimeOptions = RuntimeOptions(),
        progress: Progress = no_progress,
    ):
        self.model_path = model_path
        self.options = options
        self.runtime = runtime
        self.progress = progress
        self.model = load_model(model_path, runtime)
        self.multilingual = bool(self.model.model.is_multilingual)
        if options.language and not self.multilingual and options.language != "en":
            raise ValueError(f"{model_path} is an English-only model; language={options.language!r} is not possible")
        if options.task == "translate" and not self.multilingual:
            raise ValueError(f"{model_path} is an English-only model: task='translate' needs a multilingual model")
        if options.language and self.multilingual and options.language not in self.model.supported_languages:
            raise ValueError(f"unknown language {options.language!r} for this model")

    def decoder(self, around: Optional[Callable[[], ContextManager]] = None) -> Decoder:
        """What one call decodes with (a fresh model replica for seeded sampling: see
        :func:`.decoder.model_for_call`). ``around()``: a context manager every CTranslate2 call
        runs in (:func:`.model.gated`)."""
        fw = model_for_call(self.model, self.model_path, self.options, self.runtime)
        if around is not None:
            fw = gated(fw, around)
        return Decoder(fw, self.options, self.multilingual, self.progress)

    def transcribe(self, samples: np.ndarray, source: str = "") -> Transcript:
        return self.transcribe_batch([AudioItem(samples=samples, source=source)])[0]

    def transcribe_batch(self, items: Sequence[AudioItem]) -> List[Transcript]:
        """One transcript per item, in order; a bad item gets an error, never an exception."""
        decoder = self.decoder()
        if self.options.strategy == "pack":
            return self._pack(list(items), decoder)
        return self._rows(list(items), decoder, self.options.strategy)

    def transcribe_steps(
        self,
        item: AudioItem,
        around: Optional[Callable[[], ContextManager]] = None,
        group: Optional[Callable[[], int]] = None,
    ) -> Generator[Optional[Transcript], None, Transcript]:
        """``transcribe_batch([item])[0]`` in steps: a generator that yields between pieces and
        returns the transcript, so that a server can run other requests between the steps of a long
        one. A long row (over 30 s) is decoded ``group()`` pieces a step, batched (default 1;
        ``strategy="batch"`` or ``"pack"``: :func:`.pieces.transcribe_long_steps`, the same pieces and
        transcript) or a window at a time (the sequential path); anything else in one step.
        ``around()``: a context manager every CTranslate2 call runs in (:func:`.model.gated`)."""
        opts = self.options
        if _bad_audio(item) or item.duration_s <= WINDOW_S:
            with around() if around else nullcontext():
                return self.transcribe_batch([item])[0]
        decoder = self.decoder(around)
        if decoder.gate.before_decoding and not decoder.gate.speech_map(item.samples).has_speech():
            return decoder.gate.no_speech().transcript(item, opts.timestamps)
        if opts.strategy != "sequential" and not opts.vad_filter:
            return (yield from transcribe_long_steps(decoder, item, group))
        d = yield from decode_sequential_steps(decoder, item)
        return d.transcript(item, opts.timestamps)

    def transcribe_packed(
        self,
        items: Sequence[AudioItem],
        options: packing.PackingOptions = packing.PackingOptions(),
        decoder: Optional[Decoder] = None,
    ) -> List[Transcript]:
        """``items`` packed several to a window (:mod:`.packing`); those packing leaves out (too
        long, not reached in full, a multilingual model without a language) decoded alone by the
        batch strategy. ``options.cut_long`` (the default here; not for ``strategy="pack"``) cuts
        items over 30 s into pieces that are packed too."""
        decoder = decoder or self.decoder()
        flat, owner = packing.cut_long(items, options)
        packed = packing.decode_packed(decoder, flat, options)
        alone = packed.alone
        for i, t in zip(alone, self._rows([flat[i] for i in alone], decoder, "batch") if alone else []):
            packed.fill(i, t)
        return packing.join_cut(items, owner, flat, packed.transcripts)  # type: ignore[arg-type]

    # -- dispatch --------------------------------------------------------------------------------

    def _rows(self, items: List[AudioItem], decoder: Decoder, strategy: str) -> List[Transcript]:
        """Each item checked, then decoded by its path: short rows batched, long rows by ``strategy``."""
        opts = self.options
        out: List[Optional[Transcript]] = [None] * len(items)
        short, long_ = [], []
        for i, item in enumerate(items):
            bad = _bad_audio(item)
            if bad:
                out[i] = error_transcript(item, bad)
            elif decoder.gate.before_decoding and not decoder.gate.speech_map(item.samples).has_speech():
                out[i] = decoder.gate.no_speech().transcript(item, opts.timestamps)
            elif item.duration_s <= WINDOW_S and not opts.vad_filter:
                short.append(i)
            else:
                long_.append(i)
        for i, d in zip(short, decode_in_batches(decoder, [items[i] for i in short])):
            out[i] = d.transcript(items[i], opts.timestamps)
        if strategy == "batch" and not opts.vad_filter:
            for i, t in zip(long_, transcribe_long(decoder, [items[i] for i in long_])):
                out[i] = t
        else:
            for i in long_:
                out[i] = decode_sequential(decoder, items[i]).transcript(items[i], opts.timestamps)
        return [t for t in out]  # type: ignore[misc]

    def _pack(self, items: List[AudioItem], decoder: Decoder) -> List[Transcript]:
        """strategy=pack: rows of at most 30 s packed several to a window, longer (and bad) rows by
        the batch strategy's path (its repaired pieces: packing the cut pieces of long rows measured
        worse on the long-form sets, ``bench/results/accuracy.md``). With the VAD gate on, short
        clips without speech are left out of the windows (a silent clip packed next to speech would
        be given words)."""
        out: List[Optional[Transcript]] = [None] * len(items)
        short, rest = [], []
        for i, it in enumerate(items):
            if _bad_audio(it) or it.duration_s > WINDOW_S:
                rest.append(i)
            elif self.options.vad_gate != "off" and not decoder.gate.speech_map(it.samples).has_speech():
                out[i] = decoder.gate.no_speech().transcript(it, self.options.timestamps)
            else:
                short.append(i)
        if short:
            packed = self.transcribe_packed([items[i] for i in short], _NO_CUT, decoder)
            for i, t in zip(short, packed):
                out[i] = t
        if rest:
            for i, t in zip(rest, self._rows([items[i] for i in rest], decoder, "batch")):
                out[i] = t
        return [t for t in out]  # type: ignore[misc]


_NO_CUT = packing.PackingOptions(cut_long=False)


def _bad_audio(item: AudioItem) -> Optional[str]:
    """Why ``item`` cannot be decoded, or None."""
    if item.error is not None or item.samples is None:
        return item.error or "no audio"
    if np.size(item.samples) == 0:
        return "audio has zero length (no samples)"
    if not np.isfinite(item.samples).all():  # NaN/inf features make Whisper emit garbage text instead of failing
        return "audio contains NaN or infinite samples"
    return None


def get_engine(model_path: str, options: WhisperOptions, runtime: RuntimeOptions) -> WhisperEngine:
    """The process's cached engine for ``model_path``, ``options`` and ``runtime``."""
    return cached_engine(("whisper", model_path, options, runtime), lambda: WhisperEngine(model_path, options, runtime))
