"""The Whisper engine: CTranslate2 through faster-whisper, batched across rows, no truncation.

Two paths, chosen per item:

* **short items** (at most one 30-s window): batched across items. Features of up to
  ``batch_size`` items are stacked, encoded in one call, the language is detected per item when not
  given, and one ``generate`` call decodes the whole batch (beam search, timestamps). Items whose
  decode fails Whisper's quality checks (compression ratio, average log-probability) are decoded
  again on the sequential path, which applies the temperature fallback. An item that stops early
  (a dense window whose last sentence Whisper leaves open for a next window) has the rest, from its
  last predicted timestamp, decoded in a further batched round, as faster-whisper's seek would.
* **long items**, ``strategy="batch"`` (the default): cut at quiet points into pieces of at most
  30 s (a cut moves back by up to 5 s to the quietest 100-ms frame, so words are not split and no
  window ever runs past Whisper's 30 s), and the pieces of all rows are decoded like short items,
  batched, as text (no timestamp tokens: a timestamped decode leaves a window's last sentence open
  for a next window to seek to). A piece that fails the quality checks is decoded again with the
  temperature fallback. Each piece is one segment, its times trimmed to the piece's speech; word
  timestamps come from cross-attention alignment. The words' alignment also shows where a text
  decode lost speech: a piece whose words end a second or more before its sound has the rest
  decoded from its last word; a piece whose words leave two seconds of its sound in one stretch
  unaccounted for (Whisper jumped over prompts) is decoded again with timestamps. This is
  faster-whisper's batched mode made safe: no VAD (no speech dropped), no window over 30 s (faster-whisper's merged VAD windows can exceed
  30 s and lose their last words), and the fallback that its batched mode lacks.
* **long items**, ``strategy="sequential"``: faster-whisper's sequential long-form algorithm (30-s
  windows that seek on predicted timestamps, conditioning on previous text, temperature fallback):
  the same result as ``WhisperModel.transcribe`` on the same audio, never truncated; Whisper's own
  sentence-level segments. Rows longer than ``1.5 * long_piece_s`` are decoded in pieces of
  ``long_piece_s`` (bounded memory).

``strategy="pack"`` hands the items to :mod:`.packing`. :meth:`WhisperEngine.transcribe_steps` runs a
long row in steps (a piece or a window each) for a server that interleaves other requests.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Callable, ContextManager, Dict, Generator, List, Optional, Sequence, Tuple

import numpy as np

from ..audio import SAMPLE_RATE, cut_pieces, sound_frames, speech_bounds
from ..engines import cached_engine, run_steps
from ..job import progress
from ..records import AudioItem, Chunk, Transcript, error_transcript
from .model import _TopKModel, add_word_timestamps, compression_ratio, encode, gated, load_model
from .options import PIECE_SEARCH_S, WINDOW_S, RuntimeOptions, WhisperOptions
from .packing import transcribe_packed
from .vad import SpeechMap
from .window import WindowBatch, decode_windows

log = logging.getLogger(__name__)


class WhisperEngine:
    """Transcribe batches of :class:`AudioItem` with one cached Whisper model."""

    def __init__(
        self, model_path: str, options: WhisperOptions = WhisperOptions(), runtime: RuntimeOptions = RuntimeOptions()
    ):
        self.model_path = model_path
        self.options = options
        self.runtime = runtime
        self.model = load_model(model_path, runtime)
        self.multilingual = bool(self.model.model.is_multilingual)
        if options.language and not self.multilingual and options.language != "en":
            raise ValueError(f"{model_path} is an English-only model; language={options.language!r} is not possible")
        if options.task == "translate" and not self.multilingual:
            raise ValueError(f"{model_path} is an English-only model: task='translate' needs a multilingual model")
        if options.language and self.multilingual and options.language not in self.model.supported_languages:
            raise ValueError(f"unknown language {options.language!r} for this model")

    # -- public ------------------------------------------------------------------------------

    def transcribe_batch(self, items: Sequence[AudioItem]) -> List[Transcript]:
        if self.options.strategy == "pack":
            return self._transcribe_packed(list(items))
        out: List[Optional[Transcript]] = [None] * len(items)
        short, long_ = [], []
        always = self.options.vad_gate == "always"
        for i, item in enumerate(items):
            if item.error is not None or item.samples is None:
                out[i] = error_transcript(item, item.error or "no audio")
            elif np.size(item.samples) == 0:
                out[i] = error_transcript(item, "audio has zero length (no samples)")
            elif not np.isfinite(item.samples).all():
                # NaN/inf features make Whisper emit garbage text instead of failing
                out[i] = error_transcript(item, "audio contains NaN or infinite samples")
            elif always and not SpeechMap(item.samples, self.options.vad_threshold).has_speech():
                out[i] = self._no_speech(item)
            elif item.duration_s <= WINDOW_S and not self.options.vad_filter:
                short.append(i)
            else:
                long_.append(i)
        fw = self._model_for_call()
        for i, r in zip(short, self._decode_in_batches([items[i] for i in short], fw, text_only=False)):
            out[i] = r
        if self.options.strategy == "batch" and not self.options.vad_filter:
            for i, r in zip(long_, self._transcribe_long_batched([items[i] for i in long_], fw)):
                out[i] = r
        else:
            for i in long_:
                out[i] = self._safe_sequential(items[i], fw)
        return [r for r in out]  # type: ignore[misc]

    def transcribe_steps(
        self, item: AudioItem, around: Optional[Callable[[], ContextManager]] = None
    ) -> Generator[None, None, Transcript]:
        """``transcribe_batch([item])[0]`` in steps: a generator that yields between pieces and
        returns the transcript, so that a server can run other requests between the steps of a long
        one. A long row (over 30 s) is decoded a piece at a time (``strategy="batch"``: the same
        pieces; one per model call where :meth:`transcribe_batch` decodes ``batchSize`` together,
        which gives the same transcript: a window's decode does not depend on the windows batched
        with it, as the tests check) or a window at a time (the sequential path); anything else in
        one step. ``around()``: a context manager every CTranslate2 call runs in
        (:func:`~.model.gated`)."""
        opts = self.options
        samples = item.samples
        long_row = (
            item.error is None
            and samples is not None
            and item.duration_s > WINDOW_S
            and opts.strategy != "pack"
            and bool(np.isfinite(samples).all())
        )
        if not long_row:
            with around() if around else nullcontext():
                return self.transcribe_batch([item])[0]
        if opts.vad_gate == "always" and not SpeechMap(samples, opts.vad_threshold).has_speech():
            return self._no_speech(item)
        fw = self._model_for_call()
        if around is not None:
            fw = gated(fw, around)
        if opts.strategy == "batch" and not opts.vad_filter:
            return (yield from self._long_steps(item, fw))
        return (yield from self._safe_sequential_steps(item, fw))

    def _transcribe_packed(self, items: List[AudioItem]) -> List[Transcript]:
        """strategy=pack: with the VAD gate on, clips without speech are left out of the windows
        (a silent clip packed next to speech would be given words)."""
        if self.options.vad_gate == "off":
            return transcribe_packed(self, items)
        out: List[Optional[Transcript]] = [None] * len(items)
        rest = []
        for i, it in enumerate(items):
            ok = it.error is None and it.samples is not None and np.size(it.samples) and np.isfinite(it.samples).all()
            if ok and not SpeechMap(it.samples, self.options.vad_threshold).has_speech():
                out[i] = self._no_speech(it)
            else:
                rest.append(i)
        for i, r in zip(rest, transcribe_packed(self, [items[i] for i in rest]) if rest else []):
            out[i] = r
        return [r for r in out]  # type: ignore[misc]

    def _no_speech(self, item: AudioItem) -> Transcript:
        """The transcript of audio the VAD finds no speech in: empty, not an error."""
        return Transcript(
            language=self.options.language or (None if self.multilingual else "en"),
            language_probability=None if self.multilingual and not self.options.language else 1.0,
            duration_s=item.duration_s,
            source=item.source,
            offset_s=item.offset_s,
            extra={"path": "no-speech"},
        )

    def _doubtful(self, no_speech_prob: float, failed: bool) -> bool:
        """vadGate auto or always: a decode Whisper is unsure of, which the VAD must confirm."""
        return self.options.vad_gate != "off" and (failed or no_speech_prob > self.options.vad_check_no_speech)

    def _silent_windows(self, windows, stretches) -> set:
        """The windows of a batch whose decode is doubtful and whose audio holds no speech.
        ``stretches[i]`` is ``(SpeechMap, start_s, end_s)``: a row's own map over all of it, or, for
        the rest of a row or piece, its row's map over the rest's stretch (with the row's audio around
        it: the VAD run on a cut-off rest of a few tenths of a second missed the words in it)."""
        return {
            i
            for i, (w, (speech, a, b)) in enumerate(zip(windows, stretches))
            if self._doubtful(w.no_speech_prob, w.checks.failed) and not speech.has_speech(a, b)
        }

    def _decode_in_batches(
        self,
        items: List[AudioItem],
        fw,
        text_only: bool,
        languages: Optional[List[Tuple[str, float]]] = None,
        contexts: Optional[List[str]] = None,
        stretches: Optional[list] = None,
    ) -> List[Transcript]:
        """Items of at most 30 s, ``batch_size`` at a time; a failed batch is retried item by item."""
        out: List[Transcript] = []
        bs = self.options.batch_size
        for start in range(0, len(items), bs):
            batch = items[start : start + bs]
            try:
                out.extend(
                    self._transcribe_short(
                        batch,
                        fw,
                        text_only=text_only,
                        languages=None if languages is None else languages[start : start + bs],
                        contexts=None if contexts is None else contexts[start : start + bs],
                        stretches=None if stretches is None else stretches[start : start + bs],
                    )
                )
            except Exception as exc:  # a batch failure must not lose rows: retry one by one
                log.warning("batched decode failed (%s); retrying items one at a time", exc)
                out.extend(self._safe_sequential(it, fw, text_only=text_only) for it in batch)
            for it in batch:  # live progress: how far into its file each piece reached
                progress.advance(it.source, it.offset_s + it.duration_s)
        return out

    def _pieces(self, item: AudioItem) -> Tuple[List[AudioItem], Dict[int, Transcript]]:
        """A long row's pieces (cut at quiet points into at most 30 s) and, with vadGate=always, the
        transcripts of those without speech (by index: they are not decoded)."""
        speech = SpeechMap(item.samples, self.options.vad_threshold) if self.options.vad_gate == "always" else None
        pieces: List[AudioItem] = []
        silent: Dict[int, Transcript] = {}
        for a, b in cut_pieces(item.samples, WINDOW_S, PIECE_SEARCH_S):
            piece = AudioItem(item.samples[a:b], source=item.source, offset_s=item.offset_s + a / SAMPLE_RATE)
            if speech is not None and not speech.has_speech(a / SAMPLE_RATE, b / SAMPLE_RATE):
                silent[len(pieces)] = self._no_speech(piece)
            pieces.append(piece)
        return pieces, silent

    def _transcribe_long_batched(self, items: List[AudioItem], fw) -> List[Transcript]:
        """Long rows: cut into <=30-s pieces at quiet points, all pieces decoded batched as text,
        joined per row (see the module docstring)."""
        pieces: List[AudioItem] = []
        owner: List[Tuple[int, int]] = []
        silent: Dict[int, Transcript] = {}  # vadGate=always: pieces without speech, not decoded
        for it in items:
            row, quiet = self._pieces(it)
            silent.update((len(pieces) + j, t) for j, t in quiet.items())
            owner.append((len(pieces), len(row)))
            pieces.extend(row)
        live = [pieces[j] for j in range(len(pieces)) if j not in silent]
        decoded = iter(self._finish_pieces(live, self._decode_in_batches(live, fw, text_only=True), fw))
        done = [silent[j] if j in silent else next(decoded) for j in range(len(pieces))]
        return [self._join_pieces(it, done[first : first + count]) for it, (first, count) in zip(items, owner)]

    def _long_steps(self, item: AudioItem, fw) -> Generator[None, None, Transcript]:
        """One long row as :meth:`_transcribe_long_batched` decodes it, one piece per step (its
        decode and its rests), so that other work can run between the pieces."""
        pieces, silent = self._pieces(item)
        done: List[Transcript] = []
        for j, piece in enumerate(pieces):
            if j in silent:
                done.append(silent[j])
                continue
            done.extend(self._finish_pieces([piece], self._decode_in_batches([piece], fw, text_only=True), fw))
            yield
        return self._join_pieces(item, done)

    def _join_pieces(self, it: AudioItem, parts: List[Transcript]) -> Transcript:
        """A long row's transcript from its pieces' (in order)."""
        errors = [f"piece at {p.offset_s:.1f} s: {p.error}" for p in parts if p.error]
        weight: Dict[str, float] = {}
        for p in parts:
            if p.language and p.text:
                weight[p.language] = weight.get(p.language, 0.0) + p.language_probability * p.duration_s
        lang = max(weight, key=weight.get) if weight else parts[0].language
        return Transcript(
            text=" ".join(p.text.strip() for p in parts if p.text.strip()),
            chunks=[c for p in parts for c in p.chunks],
            language=lang,
            language_probability=max((p.language_probability for p in parts if p.language == lang), default=0.0),
            duration_s=it.duration_s,
            source=it.source,
            offset_s=it.offset_s,
            error=("; ".join(errors) if errors else None),
            extra={
                "path": "pieces",
                "pieces": len(parts),
                "fallbacks": sum(p.extra.get("path") == "sequential" for p in parts),
                "continued": sum(p.extra.get("continued", 0) for p in parts),
                "reheard": sum(p.extra.get("reheard", 0) for p in parts),
            },
        )

    def _finish_pieces(self, pieces: List[AudioItem], done: List[Transcript], fw, rounds: int = 3) -> List[Transcript]:
        """A piece whose words end a second or more before its sound does has had the rest of its
        speech dropped: Whisper ended the window (after a tone or a long pause, say), and a decode
        without timestamps leaves no timestamp to seek from. The rest, from its last word, is decoded
        as a further piece and joined to it (up to ``rounds`` times; each rest is shorter than the
        last). Like the pieces, rests are not conditioned on the text before them: conditioned, Whisper
        skipped the short prompts at the start of a rest (Asterisk Spanish long-form set, base)."""
        opts = self.options
        maps: Dict[int, SpeechMap] = {}  # vadGate: each piece's speech, asked over its rest's stretch

        def piece_map(k: int) -> SpeechMap:
            return maps.setdefault(k, SpeechMap(pieces[k].samples, opts.vad_threshold))

        self._rehear(pieces, done, fw, lambda k: (piece_map(k), 0.0, pieces[k].duration_s))
        for _ in range(rounds):
            todo = []
            for k, (piece, t) in enumerate(zip(pieces, done)):
                end = t.extra.pop("text_end_s", None)
                if end is not None and t.text and 1.0 <= end and speech_bounds(piece.samples)[1] - end >= 1.0:
                    todo.append((k, end))
            if not todo:
                break
            rests = [
                AudioItem(
                    pieces[k].samples[int(round(end * SAMPLE_RATE)) :],
                    source=pieces[k].source,
                    offset_s=pieces[k].offset_s + end,
                )
                for k, end in todo
            ]
            stretches = [(piece_map(k), end, pieces[k].duration_s) for k, end in todo]
            results = self._decode_in_batches(
                rests,
                fw,
                text_only=True,
                languages=[(done[k].language, done[k].language_probability) for k, _ in todo],
                stretches=stretches,
            )
            # a rest skips as a piece does (Spanish long-form set, base, AVX2 kernels: the rest after
            # a 29-s prompt jumped over the three short prompts at its start): heard again likewise
            self._rehear(rests, results, fw, lambda j: stretches[j])
            for (k, end), r in zip(todo, results):
                t = done[k]
                rest_end = r.extra.pop("text_end_s", None)
                if r.error or not r.text.strip():
                    continue
                t.text = f"{t.text} {r.text}".strip()
                if opts.timestamps == "segment":
                    t.chunks = [_piece_segment(pieces[k], t.text)]
                else:
                    t.chunks = t.chunks + r.chunks
                t.extra["continued"] = t.extra.get("continued", 0) + 1
                if r.extra.get("reheard"):
                    t.extra["reheard"] = t.extra.get("reheard", 0) + 1
                if rest_end is not None:
                    t.extra["text_end_s"] = end + rest_end
        for t in done:
            t.extra.pop("text_end_s", None)
        return done

    def _rehear(self, pieces: List[AudioItem], done: List[Transcript], fw, stretch: Callable[[int], tuple]) -> None:
        """A piece whose words leave ``UNHEARD_S`` or more of its sound in one stretch unaccounted
        for (:func:`unheard_s`) had speech skipped inside it: the text-only decode jumped from the
        first prompts to later ones (Asterisk Spanish long-form set, base: "para incrementar el
        volumen..." alone for a 26-s piece whose first 16 s held four prompts). Such pieces are
        decoded again, batched, with timestamps (faster-whisper's seek within the piece, which did
        not skip them), and keep Whisper's segments. ``stretch(k)`` is piece ``k``'s
        ``(SpeechMap, start_s, end_s)`` for the VAD check (see :meth:`_silent_windows`)."""
        unheard = [t.extra.pop("unheard_s", 0.0) for t in done]
        todo = [k for k, (t, u) in enumerate(zip(done, unheard)) if t.text and u >= UNHEARD_S]
        if not todo:
            return
        results = self._decode_in_batches(
            [pieces[k] for k in todo],
            fw,
            text_only=False,
            languages=[(done[k].language, done[k].language_probability) for k in todo],
            stretches=[stretch(k) for k in todo],
        )
        for k, r in zip(todo, results):
            if r.error or not r.text.strip():
                continue
            r.extra["reheard"] = 1
            done[k] = r

    def transcribe(self, samples: np.ndarray, source: str = "") -> Transcript:
        return self.transcribe_batch([AudioItem(samples=samples, source=source)])[0]

    # -- sequential (long-form) path -----------------------------------------------------------

    def _model_for_call(self):
        """The faster-whisper model for one ``transcribe_batch`` call.

        With a ``seed`` and sampling, CTranslate2's random generator is thread-local to the model's
        worker threads and seeded only when a thread first samples, so ``set_random_seed`` before a
        call has no effect on a model that has sampled before: repeated calls would differ. For a
        seeded sampling engine each call therefore gets a fresh CTranslate2 replica (new worker
        threads) of the cached model, created after setting the seed: the same input and seed give
        the same output on every call. Costs one replica load per call, only for seeded sampling.
        """
        fw = self.model
        if self.options.seed is None or not self.options.sampling:
            return fw
        import copy

        import ctranslate2

        ctranslate2.set_random_seed(self.options.seed)
        inner = fw.model
        fresh = copy.copy(fw)
        fresh.model = ctranslate2.models.Whisper(
            self.model_path,
            device=inner.device,
            device_index=inner.device_index,
            compute_type=inner.compute_type,
            intra_threads=self.runtime.cpu_threads,
        )
        return fresh

    def _safe_sequential(self, item: AudioItem, fw=None, text_only: bool = False) -> Transcript:
        return run_steps(self._safe_sequential_steps(item, fw, text_only))

    def _safe_sequential_steps(
        self, item: AudioItem, fw=None, text_only: bool = False
    ) -> Generator[None, None, Transcript]:
        try:
            return (yield from self._transcribe_sequential_steps(item, fw, text_only=text_only))
        except Exception as exc:
            return error_transcript(item, f"transcription failed: {type(exc).__name__}: {exc}")

    def _with_topk(self, fw=None):
        model = self.model if fw is None else fw
        if self.options.top_k > 0 and not isinstance(model.model, _TopKModel):
            # Per-call proxy (the cached model is shared by engines with other options).
            import copy

            inner = model.model
            model = copy.copy(model)
            model.model = _TopKModel(inner, self.options.top_k)
        return model

    def _transcribe_sequential(self, item: AudioItem, fw=None, text_only: bool = False) -> Transcript:
        return run_steps(self._transcribe_sequential_steps(item, fw, text_only))

    def _transcribe_sequential_steps(
        self, item: AudioItem, fw=None, text_only: bool = False
    ) -> Generator[None, None, Transcript]:
        """faster-whisper's ``transcribe`` on one item, a step per segment. ``text_only``: a piece of
        a long row (at most 30 s), decoded without timestamp tokens as one segment, with the
        temperature fallback."""
        opts = self.options
        model = self._with_topk(fw)
        kwargs = opts.fw_kwargs()
        if not self.multilingual:
            kwargs["language"] = "en"
        if text_only:
            kwargs.update(without_timestamps=True, condition_on_previous_text=False)
            t = yield from self._run_sequential_steps(item, model, kwargs)
            if opts.timestamps == "segment" and t.text:
                t.chunks = [_piece_segment(item, t.text)]
            return t
        if opts.seed is not None:
            import ctranslate2

            ctranslate2.set_random_seed(opts.seed)
        if item.duration_s > 1.5 * opts.long_piece_s:
            return (yield from self._transcribe_in_pieces(item, model, kwargs))
        return (yield from self._run_sequential_steps(item, model, kwargs))

    def _transcribe_in_pieces(self, item: AudioItem, model, kwargs) -> Generator[None, None, Transcript]:
        """Very long rows: faster-whisper's long-form algorithm on pieces of ``long_piece_s`` cut at
        quiet points, the language fixed by the first piece and the previous piece's last words as
        the prompt, so a worker's memory no longer grows with the file (faster-whisper computes the
        log-mel features of its whole input at once)."""
        from ..audio import iter_segments

        parts: List[Transcript] = []
        kw = dict(kwargs)
        for off, samples in iter_segments(iter([item.samples]), self.options.long_piece_s, search_s=10.0):
            if samples.size == 0:
                continue
            sub = AudioItem(samples, source=item.source, offset_s=item.offset_s + off)
            t = yield from self._run_sequential_steps(sub, model, kw)
            parts.append(t)
            kw["language"] = kw.get("language") or t.language
            if self.options.condition_on_previous_text and t.text:
                tail = " ".join(t.text.split()[-40:])
                kw["initial_prompt"] = (
                    tail if not self.options.initial_prompt else f"{self.options.initial_prompt} {tail}"
                )
        first = parts[0] if parts else Transcript()
        return Transcript(
            text=" ".join(p.text for p in parts if p.text).strip(),
            chunks=[c for p in parts for c in p.chunks],
            language=first.language,
            language_probability=first.language_probability,
            duration_s=item.duration_s,
            source=item.source,
            offset_s=item.offset_s,
            extra={"path": "sequential-pieces", "pieces": len(parts)},
        )

    def _run_sequential(self, item: AudioItem, model, kwargs) -> Transcript:
        return run_steps(self._run_sequential_steps(item, model, kwargs))

    def _run_sequential_steps(self, item: AudioItem, model, kwargs) -> Generator[None, None, Transcript]:
        """faster-whisper's ``transcribe``, a step per segment it yields (each window's decode)."""
        opts = self.options
        segments, info = model.transcribe(item.samples, **kwargs)
        chunks: List[Chunk] = []
        texts: List[str] = []
        dur = item.duration_s  # Whisper may predict a final timestamp past the end: clamp
        speech = SpeechMap(item.samples, opts.vad_threshold)
        for seg in segments:  # generator: memory stays bounded by one window
            progress.advance(item.source, item.offset_s + min(seg.end, dur))
            failed = (opts.log_prob_threshold is not None and seg.avg_logprob < opts.log_prob_threshold) or (
                opts.compression_ratio_threshold is not None
                and seg.compression_ratio > opts.compression_ratio_threshold
            )
            yield
            if self._doubtful(seg.no_speech_prob, failed) and not speech.has_speech(seg.start, seg.end):
                continue  # vadGate: text with no speech under it
            texts.append(seg.text)
            if opts.timestamps == "segment":
                chunks.append(
                    Chunk(
                        seg.text.strip(),
                        _r(min(seg.start, dur) + item.offset_s),
                        _r(min(seg.end, dur) + item.offset_s),
                        "segment",
                    )
                )
            elif opts.timestamps == "word" and seg.words:
                for w in seg.words:
                    chunks.append(
                        Chunk(
                            w.word.strip(),
                            _r(min(w.start, dur) + item.offset_s),
                            _r(min(w.end, dur) + item.offset_s),
                            "word",
                            float(w.probability),
                        )
                    )
        progress.advance(item.source, item.offset_s + dur)  # done: the last segment may end before the audio
        return Transcript(
            text="".join(texts).strip(),
            chunks=chunks,
            language=info.language,
            language_probability=float(info.language_probability),
            duration_s=item.duration_s,
            source=item.source,
            offset_s=item.offset_s,
            extra={"path": "sequential"},
        )

    # -- batched (short items) path --------------------------------------------------------------

    def _transcribe_short(
        self,
        items: List[AudioItem],
        fw=None,
        text_only: bool = False,
        languages: Optional[List[Tuple[str, float]]] = None,
        contexts: Optional[List[str]] = None,
        stretches: Optional[list] = None,
    ) -> List[Transcript]:
        """One batch of items of at most 30 s: one encode, one ``generate``. ``text_only``: pieces
        of long rows, decoded without timestamp tokens, one segment each (see the module docstring)."""
        fw = self.model if fw is None else fw
        opts = self.options
        batch = decode_windows(
            fw,
            opts,
            [it.samples for it in items],
            multilingual=self.multilingual,
            languages=languages,
            contexts=contexts,
            without_timestamps=text_only or opts.timestamps == "none",
        )
        langs = [(w.language, w.language_probability) for w in batch.windows]
        if stretches is None:  # each item's own speech map (computed only if a window is doubtful)
            stretches = [(SpeechMap(it.samples, opts.vad_threshold), 0.0, it.duration_s) for it in items]
        silent = self._silent_windows(batch.windows, stretches)

        out: List[Optional[Transcript]] = [None] * len(items)
        per_item_segments: List[List[dict]] = []
        segment_sizes: List[int] = []
        redo: List[int] = []
        rest_from: Dict[int, float] = {}  # stopped early: decode the rest from this time (s)
        for i, (item, w) in enumerate(zip(items, batch.windows)):
            tk = batch.tokenizers[w.language]
            # faster-whisper's rule: unless the output ends on a single timestamp (nothing after it),
            # the last, unfinished segment is dropped and decoding resumes at the last timestamp
            # and only while audio is left: a last timestamp at or past the audio's end (29.2 s of a
            # 29.18-s row) ends the row, as faster-whisper's seek loop ends at its content frames
            stopped_early = (
                not text_only
                and opts.timestamps != "none"
                and not w.checks.no_speech
                and w.rest_s < min(w.size_s, w.content_s)
            )
            subsegments = w.segments
            if w.checks.no_speech or i in silent:
                subsegments = []
            elif (w.checks.failed and len(opts.temperature) > 1) or (stopped_early and w.rest_s < 0.1):
                redo.append(i)
            elif stopped_early and (
                min(w.size_s, w.content_s) - w.rest_s >= MIN_REST_S or (w.tokens and w.tokens[-1] < tk.timestamp_begin)
            ):
                rest_from[i] = w.rest_s
            # else: a rest too short for a word after a window that left no text open: decoded
            # alone and conditioned on the text, 70 ms of noise came back as the window's last
            # sentence twice (Asterisk Spanish long-form set, base, strategy pack)
            segs = [
                dict(
                    text=tk.decode(s["tokens"]),
                    tokens=s["tokens"],
                    start=s["start"],
                    end=s["end"],
                    seek=0,
                    avg_logprob=w.avg_logprob,
                    no_speech_prob=w.no_speech_prob,
                    compression_ratio=compression_ratio(tk.decode(s["tokens"])),
                )
                for s in subsegments
            ]
            per_item_segments.append(segs)
            segment_sizes.append(w.size)
            out[i] = Transcript(
                language=w.language,
                language_probability=w.language_probability,
                duration_s=item.duration_s,
                source=item.source,
                offset_s=item.offset_s,
                extra={"path": "batched-piece" if text_only else "batched"},
            )

        if opts.timestamps == "word" or text_only:  # pieces: where their words end (_finish_pieces)
            self._add_words(per_item_segments, langs, batch, segment_sizes, fw)

        for i, (item, segs) in enumerate(zip(items, per_item_segments)):
            if i in redo:
                continue
            t = out[i]
            assert t is not None
            t.text = "".join(s["text"] for s in segs).strip()
            dur = item.duration_s  # Whisper may predict a final timestamp past the end: clamp
            if text_only:
                words = [w for s in segs for w in s.get("words", [])]
                if words:
                    t.extra["text_end_s"] = min(max(w["end"] for w in words), dur)
                    t.extra["unheard_s"] = unheard_s(item.samples, words, t.extra["text_end_s"])
            if opts.timestamps == "segment" and text_only:
                t.chunks = [_piece_segment(item, t.text)] if t.text else []
            elif opts.timestamps == "segment":
                t.chunks = [
                    Chunk(
                        s["text"].strip(),
                        _r(min(s["start"], dur) + item.offset_s),
                        _r(min(s["end"], dur) + item.offset_s),
                        "segment",
                    )
                    for s in segs
                ]
            elif opts.timestamps == "word":
                t.chunks = [
                    Chunk(
                        w["word"].strip(),
                        _r(min(w["start"], dur) + item.offset_s),
                        _r(min(w["end"], dur) + item.offset_s),
                        "word",
                        float(w["probability"]),
                    )
                    for s in segs
                    for w in s.get("words", [])
                ]
        if rest_from:  # the rest of each early-stopped item, batched (recursion ends: each rest is shorter)
            idx = list(rest_from)
            rests = [
                AudioItem(
                    items[i].samples[int(round(rest_from[i] * SAMPLE_RATE)) :],
                    source=items[i].source,
                    offset_s=items[i].offset_s + rest_from[i],
                )
                for i in idx
            ]
            # conditioned on the text so far, as faster-whisper's next window would be
            contexts = [out[i].text if opts.condition_on_previous_text else "" for i in idx]  # type: ignore[union-attr]
            for i, r in zip(
                idx,
                self._transcribe_short(
                    rests,
                    fw,
                    text_only=text_only,
                    languages=[langs[i] for i in idx],
                    contexts=contexts,
                    # the same row's map, further on (computed once per row)
                    stretches=[(stretches[i][0], stretches[i][1] + rest_from[i], stretches[i][2]) for i in idx],
                ),
            ):
                t = out[i]
                assert t is not None
                if r.error:
                    redo.append(i)
                    continue
                t.text = f"{t.text} {r.text}".strip()
                t.chunks = t.chunks + r.chunks
                t.extra["continued"] = 1 + r.extra.get("continued", 0)
                if r.extra.get("path") == "sequential":  # the rest needed the temperature fallback
                    t.extra["rest_path"] = "sequential"
        for i in redo:  # temperature fallback: the full sequential algorithm
            out[i] = self._safe_sequential(items[i], fw, text_only=text_only)
        return [t for t in out]  # type: ignore[misc]

    def _add_words(self, per_item_segments, langs, batch: WindowBatch, segment_sizes, fw=None):
        fw = self.model if fw is None else fw
        groups: Dict[str, List[int]] = {}
        for i, (lang, _) in enumerate(langs):
            groups.setdefault(lang, []).append(i)
        for lang, idx in groups.items():
            enc = batch.encoder_output if len(groups) == 1 else encode(fw, batch.features[idx])
            sub = [per_item_segments[i] for i in idx]
            if not any(sub):
                continue
            # faster-whisper skips empty segment lists incorrectly; give each item at least a list.
            add_word_timestamps(fw, sub, batch.tokenizers[lang], enc, [segment_sizes[i] for i in idx])


WORD_S = 2.0  # no word is spoken this long: an alignment that says so spans speech the decode skipped
MIN_REST_S = 0.15  # the shortest rest of a window that can hold a word
UNHEARD_S = 2.0  # sound no word accounts for, in one stretch, that marks a piece as skipped (at most 1.44 s
# in a piece that skipped nothing on the Asterisk long-form sets; 4.8 s in the one that did)


def unheard_s(samples: np.ndarray, words: Sequence[dict], until_s: float, frame_s: float = 0.02) -> float:
    """The most sound (:func:`~sparkasr.audio.sound_frames`, in seconds) in one stretch of
    ``samples`` before ``until_s`` that no word accounts for: before the first word, between two
    words, or inside a word aligned over more than ``WORD_S`` (cross-attention alignment stretches
    the words it has over the speech a decode skipped; only such a word's last ``WORD_S`` count as
    heard). A text-only decode that skipped prompts shows here and nowhere else."""
    loud = sound_frames(samples, frame_s)
    heard = np.zeros(loud.size, dtype=bool)
    for w in words:
        b = max(0.0, float(w["end"]))
        a = max(0.0, float(w["start"]), b - WORD_S)
        heard[int(a / frame_s) : int(np.ceil(b / frame_s))] = True
    n = min(loud.size, int(until_s / frame_s))
    best = run = 0
    for is_heard, is_loud in zip(heard[:n], loud[:n]):
        run = 0 if is_heard else run + int(is_loud)
        best = max(best, run)
    return best * frame_s


def _r(x: float) -> float:
    return round(float(x), 3)


def _piece_segment(item: AudioItem, text: str) -> Chunk:
    """A long row's piece as one segment, its times trimmed to the piece's sound."""
    start, end = speech_bounds(item.samples)
    return Chunk(text.strip(), _r(start + item.offset_s), _r(end + item.offset_s), "segment")


def get_engine(model_path: str, options: WhisperOptions, runtime: RuntimeOptions) -> WhisperEngine:
    """The process's cached engine for ``model_path``, ``options`` and ``runtime``."""
    return cached_engine(("whisper", model_path, options, runtime), lambda: WhisperEngine(model_path, options, runtime))
