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
  timestamps come from cross-attention alignment. This is faster-whisper's batched mode made safe:
  no VAD (no speech dropped), no window over 30 s (faster-whisper's merged VAD windows can exceed
  30 s and lose their last words), and the fallback that its batched mode lacks.
* **long items**, ``strategy="sequential"``: faster-whisper's sequential long-form algorithm (30-s
  windows that seek on predicted timestamps, conditioning on previous text, temperature fallback):
  the same result as ``WhisperModel.transcribe`` on the same audio, never truncated; Whisper's own
  sentence-level segments. Rows longer than ``1.5 * long_piece_s`` are decoded in pieces of
  ``long_piece_s`` (bounded memory).

Options are validated up front: an option that CTranslate2 cannot honour is refused, never ignored.
"""

from __future__ import annotations

import logging
import threading
import zlib
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .types import SAMPLE_RATE, AudioItem, Chunk, Transcript, error_transcript

log = logging.getLogger(__name__)

WINDOW_S = 30.0
TIMESTAMP_MODES = ("none", "segment", "word")
COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")
DEVICES = ("cpu", "cuda", "auto")
TASKS = ("transcribe", "translate")
STRATEGIES = ("batch", "sequential", "pack")
PIECE_SEARCH_S = 5.0  # a long row's piece boundary moves back by up to this much to a quiet point


@dataclass(frozen=True)
class RuntimeOptions:
    """How to load the model: one cached instance per distinct value per Python worker."""

    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0  # 0 = CTranslate2's default (all cores); Spark stages set cores per task
    device_index: int = 0  # CUDA device (Spark stages: the GPU Spark assigned to the task); CPU: unused

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.compute_type not in COMPUTE_TYPES:
            raise ValueError(f"computeType must be one of {COMPUTE_TYPES}, got {self.compute_type!r}")
        if self.cpu_threads < 0:
            raise ValueError("cpuThreads must be >= 0")
        if self.device_index < 0:
            raise ValueError("device_index must be >= 0")


@dataclass(frozen=True)
class WhisperOptions:
    """Decoding options (each one honoured)."""

    language: Optional[str] = None  # None: detect (English-only models: "en")
    task: str = "transcribe"
    beam_size: int = 5
    best_of: int = 5
    patience: float = 1.0
    length_penalty: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    temperature: Tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    top_k: int = 0  # sampling: 0 = whole distribution
    top_p: float = 1.0  # nucleus sampling: CTranslate2's Whisper has none, so only 1.0 is accepted
    max_new_tokens: Optional[int] = None
    initial_prompt: Optional[str] = None
    timestamps: str = "segment"  # none | segment | word
    condition_on_previous_text: bool = True
    compression_ratio_threshold: Optional[float] = 2.4
    log_prob_threshold: Optional[float] = -1.0
    no_speech_threshold: Optional[float] = 0.6
    batch_size: int = 8
    vad_filter: bool = False
    seed: Optional[int] = None
    strategy: str = "batch"  # batch: rows batched, long rows cut into <=30-s pieces | sequential: long rows by faster-whisper's long-form algorithm | pack: short utterances packed into shared windows
    long_piece_s: float = 600.0  # strategy=sequential: rows longer than 1.5x this are decoded in pieces of this length (bounded memory)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.timestamps not in TIMESTAMP_MODES:
            raise ValueError(f"timestamps must be one of {TIMESTAMP_MODES}, got {self.timestamps!r}")
        if self.beam_size < 1 or self.best_of < 1 or self.batch_size < 1:
            raise ValueError("beamSize, bestOf and batchSize must be >= 1")
        if not self.temperature or any(t < 0 for t in self.temperature):
            raise ValueError("temperature must be a non-empty list of values >= 0")
        if self.top_k < 0:
            raise ValueError("topK must be >= 0 (0 samples from the whole distribution)")
        if not (0.0 < self.top_p <= 1.0):
            raise ValueError("topP must be in (0, 1]")
        if self.top_p < 1.0:
            raise ValueError(
                "topP < 1 (nucleus sampling) is not supported by CTranslate2's Whisper decoder; "
                "use topK to restrict sampling"
            )
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.long_piece_s < 60:
            raise ValueError("longPieceS must be >= 60 seconds")
        if self.max_new_tokens is not None and not (0 < self.max_new_tokens <= 440):
            raise ValueError("maxNewTokens must be in 1..440 (Whisper's decoder holds 448 tokens)")

    @property
    def sampling(self) -> bool:
        return any(t > 0 for t in self.temperature)

    def fw_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments for faster-whisper's ``WhisperModel.transcribe``."""
        return dict(
            language=self.language,
            task=self.task,
            beam_size=self.beam_size,
            best_of=self.best_of,
            patience=self.patience,
            length_penalty=self.length_penalty,
            repetition_penalty=self.repetition_penalty,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
            temperature=list(self.temperature),
            compression_ratio_threshold=self.compression_ratio_threshold,
            log_prob_threshold=self.log_prob_threshold,
            no_speech_threshold=self.no_speech_threshold,
            condition_on_previous_text=self.condition_on_previous_text,
            initial_prompt=self.initial_prompt,
            without_timestamps=self.timestamps == "none",
            word_timestamps=self.timestamps == "word",
            max_new_tokens=self.max_new_tokens,
            vad_filter=self.vad_filter,
        )

    def as_metadata(self) -> Dict[str, str]:
        d = asdict(self)
        return {k: ("" if v is None else (",".join(map(str, v)) if isinstance(v, tuple) else str(v))) for k, v in d.items()}


# ---------------------------------------------------------------------------------------------
# Model cache: one model per (path, runtime) per Python worker process
# ---------------------------------------------------------------------------------------------

_MODELS: Dict[Tuple[str, RuntimeOptions], Any] = {}
_LOCK = threading.Lock()
LOAD_COUNT: Dict[str, int] = {}  # model path -> times actually loaded in this process (observable by tests)


def load_model(path: str, runtime: RuntimeOptions = RuntimeOptions()):
    """The cached ``faster_whisper.WhisperModel`` for ``path`` and ``runtime``."""
    key = (path, runtime)
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            from faster_whisper import WhisperModel

            device = runtime.device
            if device == "auto":
                import ctranslate2

                device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
            compute_type = runtime.compute_type
            if device == "cpu" and compute_type in ("float16", "int8_float16", "bfloat16", "int8_bfloat16"):
                import ctranslate2

                if compute_type not in ctranslate2.get_supported_compute_types("cpu"):
                    raise ValueError(f"computeType {compute_type} is not supported on this CPU")
            model = WhisperModel(
                path,
                device=device,
                device_index=runtime.device_index if device == "cuda" else 0,  # CPU has only index 0
                compute_type=compute_type,
                cpu_threads=runtime.cpu_threads,
                local_files_only=True,
            )
            _MODELS[key] = model
            LOAD_COUNT[path] = LOAD_COUNT.get(path, 0) + 1
    return model


class _TopKModel:
    """Proxy around ``ctranslate2.models.Whisper`` that applies ``top_k`` to sampling calls.

    faster-whisper always samples with ``sampling_topk=0`` (whole distribution); this forwards
    everything else unchanged.
    """

    def __init__(self, inner, top_k: int):
        self._inner = inner
        self._top_k = top_k

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def generate(self, *args, **kwargs):
        if kwargs.get("sampling_temperature", 0) > 0 and kwargs.get("sampling_topk", 1) == 0:
            kwargs["sampling_topk"] = self._top_k
        return self._inner.generate(*args, **kwargs)


def encode(fw, feats: np.ndarray):
    """Whisper's encoder on stacked ``feats``. On CPU one window per call, the outputs stacked:
    batching the encoder on CPU is slower (measured 15-20% on 2 cores: the activations of several
    30-s windows fall out of cache), while the decoder still gets the whole batch at once. Other
    devices encode the batch in one call."""
    if len(feats) == 1 or getattr(fw.model, "device", "cpu") != "cpu":
        return fw.encode(feats)
    import ctranslate2

    outs = [np.asarray(fw.encode(feats[k : k + 1])) for k in range(len(feats))]
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate(outs)))


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------


class WhisperEngine:
    """Transcribe batches of :class:`AudioItem` with one cached Whisper model."""

    def __init__(self, model_path: str, options: WhisperOptions = WhisperOptions(), runtime: RuntimeOptions = RuntimeOptions()):
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
            from .packing import transcribe_packed

            return transcribe_packed(self, list(items))
        out: List[Optional[Transcript]] = [None] * len(items)
        short, long_ = [], []
        for i, item in enumerate(items):
            if item.error is not None or item.samples is None:
                out[i] = error_transcript(item, item.error or "no audio")
            elif np.size(item.samples) == 0:
                out[i] = error_transcript(item, "audio has zero length (no samples)")
            elif not np.isfinite(item.samples).all():
                # NaN/inf features make Whisper emit garbage text instead of failing
                out[i] = error_transcript(item, "audio contains NaN or infinite samples")
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

    def _decode_in_batches(self, items: List[AudioItem], fw, text_only: bool) -> List[Transcript]:
        """Items of at most 30 s, ``batch_size`` at a time; a failed batch is retried item by item."""
        out: List[Transcript] = []
        bs = self.options.batch_size
        for start in range(0, len(items), bs):
            batch = items[start : start + bs]
            try:
                out.extend(self._transcribe_short(batch, fw, text_only=text_only))
            except Exception as exc:  # a batch failure must not lose rows: retry one by one
                log.warning("batched decode failed (%s); retrying items one at a time", exc)
                out.extend(self._safe_sequential(it, fw, text_only=text_only) for it in batch)
        return out

    def _transcribe_long_batched(self, items: List[AudioItem], fw) -> List[Transcript]:
        """Long rows: cut into <=30-s pieces at quiet points, all pieces decoded batched as text,
        joined per row (see the module docstring)."""
        from .packing import cut_pieces

        pieces: List[AudioItem] = []
        owner: List[Tuple[int, int]] = []
        for it in items:
            ranges = cut_pieces(it.samples, WINDOW_S, PIECE_SEARCH_S)
            owner.append((len(pieces), len(ranges)))
            pieces.extend(AudioItem(it.samples[a:b], source=it.source, offset_s=it.offset_s + a / SAMPLE_RATE) for a, b in ranges)
        done = self._decode_in_batches(pieces, fw, text_only=True)
        out: List[Transcript] = []
        for it, (first, count) in zip(items, owner):
            parts = done[first : first + count]
            errors = [f"piece at {p.offset_s:.1f} s: {p.error}" for p in parts if p.error]
            weight: Dict[str, float] = {}
            for p in parts:
                if p.language and p.text:
                    weight[p.language] = weight.get(p.language, 0.0) + p.language_probability * p.duration_s
            lang = max(weight, key=weight.get) if weight else parts[0].language
            out.append(Transcript(
                text=" ".join(p.text.strip() for p in parts if p.text.strip()),
                chunks=[c for p in parts for c in p.chunks],
                language=lang,
                language_probability=max((p.language_probability for p in parts if p.language == lang), default=0.0),
                duration_s=it.duration_s, source=it.source, offset_s=it.offset_s,
                error=("; ".join(errors) if errors else None),
                extra={"path": "pieces", "pieces": count, "fallbacks": sum(p.extra.get("path") == "sequential" for p in parts)},
            ))
        return out

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
        try:
            return self._transcribe_sequential(item, fw, text_only=text_only)
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
        """faster-whisper's ``transcribe`` on one item. ``text_only``: a piece of a long row (at most
        30 s), decoded without timestamp tokens as one segment, with the temperature fallback."""
        opts = self.options
        model = self._with_topk(fw)
        kwargs = opts.fw_kwargs()
        if not self.multilingual:
            kwargs["language"] = "en"
        if text_only:
            kwargs.update(without_timestamps=True, condition_on_previous_text=False)
            t = self._run_sequential(item, model, kwargs)
            if opts.timestamps == "segment" and t.text:
                t.chunks = [_piece_segment(item, t.text)]
            return t
        if opts.seed is not None:
            import ctranslate2

            ctranslate2.set_random_seed(opts.seed)
        if item.duration_s > 1.5 * opts.long_piece_s:
            return self._transcribe_in_pieces(item, model, kwargs)
        return self._run_sequential(item, model, kwargs)

    def _transcribe_in_pieces(self, item: AudioItem, model, kwargs) -> Transcript:
        """Very long rows: faster-whisper's long-form algorithm on pieces of ``long_piece_s`` cut at
        quiet points, the language fixed by the first piece and the previous piece's last words as
        the prompt, so a worker's memory no longer grows with the file (faster-whisper computes the
        log-mel features of its whole input at once)."""
        from .audio import iter_segments

        parts: List[Transcript] = []
        kw = dict(kwargs)
        for off, samples in iter_segments(iter([item.samples]), self.options.long_piece_s, search_s=10.0):
            if samples.size == 0:
                continue
            sub = AudioItem(samples, source=item.source, offset_s=item.offset_s + off)
            t = self._run_sequential(sub, model, kw)
            parts.append(t)
            kw["language"] = kw.get("language") or t.language
            if self.options.condition_on_previous_text and t.text:
                tail = " ".join(t.text.split()[-40:])
                kw["initial_prompt"] = tail if not self.options.initial_prompt else f"{self.options.initial_prompt} {tail}"
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
        opts = self.options
        segments, info = model.transcribe(item.samples, **kwargs)
        chunks: List[Chunk] = []
        texts: List[str] = []
        dur = item.duration_s  # Whisper may predict a final timestamp past the end: clamp
        for seg in segments:  # generator: memory stays bounded by one window
            texts.append(seg.text)
            if opts.timestamps == "segment":
                chunks.append(Chunk(seg.text.strip(), _r(min(seg.start, dur) + item.offset_s), _r(min(seg.end, dur) + item.offset_s), "segment"))
            elif opts.timestamps == "word" and seg.words:
                for w in seg.words:
                    chunks.append(Chunk(w.word.strip(), _r(min(w.start, dur) + item.offset_s), _r(min(w.end, dur) + item.offset_s), "word", float(w.probability)))
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

    def _transcribe_short(self, items: List[AudioItem], fw=None, text_only: bool = False,
                          languages: Optional[List[Tuple[str, float]]] = None, contexts: Optional[List[str]] = None) -> List[Transcript]:
        """One batch of items of at most 30 s: one encode, one ``generate``. ``text_only``: pieces
        of long rows, decoded without timestamp tokens, one segment each (see the module docstring)."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        fw = self.model if fw is None else fw
        opts = self.options
        n_frames = int(fw.feature_extractor.nb_max_frames)
        feats = np.stack([pad_or_trim(fw.feature_extractor(it.samples)[..., :-1], n_frames) for it in items])
        encoder_output = encode(fw, feats)

        # Language per item.
        if languages is not None:
            langs = list(languages)
        elif opts.language or not self.multilingual:
            langs = [(opts.language or "en", 1.0)] * len(items)
        else:
            langs = []
            for res in fw.model.detect_language(encoder_output):
                tok, prob = res[0]
                langs.append((tok[2:-2], float(prob)))

        tokenizers: Dict[str, Any] = {}
        prompts = []
        previous: List[List[int]] = []
        for j, (lang, _) in enumerate(langs):
            tk = tokenizers.get(lang)
            if tk is None:
                tk = tokenizers[lang] = Tokenizer(fw.hf_tokenizer, self.multilingual, task=opts.task, language=lang)
            prev = tk.encode(" " + opts.initial_prompt.strip()) if opts.initial_prompt else []
            if contexts is not None and contexts[j].strip():
                prev = prev + tk.encode(" " + contexts[j].strip())
            previous.append(prev)
        if contexts is not None:  # CTranslate2 needs <|startoftranscript|> at one position: keep the last n of each
            keep = min(min(len(p) for p in previous), fw.max_length // 2 - 1)
            previous = [p[len(p) - keep:] if keep else [] for p in previous]
        for (lang, _), prev in zip(langs, previous):
            prompts.append(fw.get_prompt(tokenizers[lang], prev, without_timestamps=text_only or opts.timestamps == "none"))
        any_tk = next(iter(tokenizers.values()))
        suppress = get_suppressed_tokens(any_tk, [-1])
        max_length = fw.max_length if opts.max_new_tokens is None else max(len(p) for p in prompts) + opts.max_new_tokens
        t0 = opts.temperature[0]
        if opts.seed is not None:
            import ctranslate2

            ctranslate2.set_random_seed(opts.seed)
        gen_kwargs = (
            dict(beam_size=1, num_hypotheses=opts.best_of, sampling_topk=opts.top_k, sampling_temperature=t0)
            if t0 > 0
            else dict(beam_size=opts.beam_size, patience=opts.patience)
        )
        results = fw.model.generate(
            encoder_output,
            prompts,
            length_penalty=opts.length_penalty,
            repetition_penalty=opts.repetition_penalty,
            no_repeat_ngram_size=opts.no_repeat_ngram_size,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=suppress,
            max_initial_timestamp_index=int(round(1.0 / fw.time_precision)),
            **gen_kwargs,
        )

        out: List[Optional[Transcript]] = [None] * len(items)
        per_item_segments: List[List[dict]] = []
        segment_sizes: List[int] = []
        redo: List[int] = []
        rest_from: Dict[int, float] = {}  # stopped early: decode the rest from this time (s)
        for i, (item, res, (lang, lang_p)) in enumerate(zip(items, results, langs)):
            tk = tokenizers[lang]
            tokens = res.sequences_ids[0]
            seq_len = len(tokens)
            avg_logprob = res.scores[0] * (seq_len ** opts.length_penalty) / (seq_len + 1)
            text = tk.decode(tokens).strip()
            no_speech = (
                opts.no_speech_threshold is not None
                and res.no_speech_prob > opts.no_speech_threshold
                and opts.log_prob_threshold is not None
                and avg_logprob < opts.log_prob_threshold
            )
            bad = (opts.compression_ratio_threshold is not None and _compression_ratio(text) > opts.compression_ratio_threshold) or (
                opts.log_prob_threshold is not None and avg_logprob < opts.log_prob_threshold
            )
            segment_size = int(np.ceil(item.duration_s) * fw.frames_per_second)
            subsegments, seek, _ = fw._split_segments_by_timestamps(
                tokenizer=tk, tokens=tokens, time_offset=0.0, segment_size=min(segment_size, n_frames),
                segment_duration=item.duration_s, seek=0,
            )
            # faster-whisper's rule: unless the output ends on a single timestamp (nothing after it),
            # the last, unfinished segment is dropped and decoding resumes at the last timestamp
            rest_s = seek / fw.frames_per_second
            stopped_early = not text_only and opts.timestamps != "none" and not no_speech and rest_s < min(segment_size, n_frames) / fw.frames_per_second
            if no_speech:
                subsegments = []
            elif (bad and len(opts.temperature) > 1) or (stopped_early and rest_s < 0.1):
                redo.append(i)
            elif stopped_early:
                rest_from[i] = rest_s
            segs = [
                dict(
                    text=tk.decode(s["tokens"]), tokens=s["tokens"], start=s["start"], end=s["end"],
                    seek=0, avg_logprob=avg_logprob, no_speech_prob=res.no_speech_prob,
                    compression_ratio=_compression_ratio(tk.decode(s["tokens"])),
                )
                for s in subsegments
            ]
            per_item_segments.append(segs)
            segment_sizes.append(min(segment_size, n_frames))
            out[i] = Transcript(
                language=lang, language_probability=lang_p, duration_s=item.duration_s,
                source=item.source, offset_s=item.offset_s, extra={"path": "batched-piece" if text_only else "batched"},
            )

        if opts.timestamps == "word":
            self._add_words(per_item_segments, langs, tokenizers, encoder_output, feats, segment_sizes, fw)

        for i, (item, segs) in enumerate(zip(items, per_item_segments)):
            if i in redo:
                continue
            t = out[i]
            assert t is not None
            t.text = "".join(s["text"] for s in segs).strip()
            dur = item.duration_s  # Whisper may predict a final timestamp past the end: clamp
            if opts.timestamps == "segment" and text_only:
                t.chunks = [_piece_segment(item, t.text)] if t.text else []
            elif opts.timestamps == "segment":
                t.chunks = [Chunk(s["text"].strip(), _r(min(s["start"], dur) + item.offset_s), _r(min(s["end"], dur) + item.offset_s), "segment") for s in segs]
            elif opts.timestamps == "word":
                t.chunks = [
                    Chunk(w["word"].strip(), _r(min(w["start"], dur) + item.offset_s), _r(min(w["end"], dur) + item.offset_s), "word", float(w["probability"]))
                    for s in segs for w in s.get("words", [])
                ]
        if rest_from:  # the rest of each early-stopped item, batched (recursion ends: each rest is shorter)
            idx = list(rest_from)
            rests = [
                AudioItem(items[i].samples[int(round(rest_from[i] * SAMPLE_RATE)):], source=items[i].source, offset_s=items[i].offset_s + rest_from[i])
                for i in idx
            ]
            # conditioned on the text so far, as faster-whisper's next window would be
            contexts = [out[i].text if opts.condition_on_previous_text else "" for i in idx]  # type: ignore[union-attr]
            for i, r in zip(idx, self._transcribe_short(rests, fw, text_only=text_only, languages=[langs[i] for i in idx], contexts=contexts)):
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

    def _add_words(self, per_item_segments, langs, tokenizers, encoder_output, feats, segment_sizes, fw=None):
        fw = self.model if fw is None else fw
        opts_p = dict(prepend_punctuations="\"'“¿([{-", append_punctuations="\"'.。,，!！?？:：”)]}、")
        groups: Dict[str, List[int]] = {}
        for i, (lang, _) in enumerate(langs):
            groups.setdefault(lang, []).append(i)
        for lang, idx in groups.items():
            if len(groups) == 1:
                enc = encoder_output
            else:
                enc = encode(fw, feats[idx])
            sub = [per_item_segments[i] for i in idx]
            if not any(sub):
                continue
            # faster-whisper skips empty segment lists incorrectly; give each item at least a list.
            fw.add_word_timestamps(sub, tokenizers[lang], enc, [segment_sizes[i] for i in idx], opts_p["prepend_punctuations"], opts_p["append_punctuations"], 0.0)


def _r(x: float) -> float:
    return round(float(x), 3)


def speech_bounds(samples: np.ndarray, frame_s: float = 0.02, pad_s: float = 0.1) -> Tuple[float, float]:
    """``(start_s, end_s)`` of the sound in ``samples``: the first and last 20-ms frames louder than a
    tenth of the loud frames' level (95th percentile RMS), padded by ``pad_s``; the whole span when
    nothing stands out."""
    n = len(samples)
    dur = n / SAMPLE_RATE
    frame = max(1, int(frame_s * SAMPLE_RATE))
    k = n // frame
    if k < 3:
        return 0.0, dur
    rms = np.sqrt((np.asarray(samples[: k * frame], dtype=np.float32).reshape(k, frame) ** 2).mean(axis=1))
    level = float(np.percentile(rms, 95))
    if level <= 1e-5:
        return 0.0, dur
    loud = np.flatnonzero(rms > 0.1 * level)
    if loud.size == 0:
        return 0.0, dur
    return max(0.0, loud[0] * frame_s - pad_s), min(dur, (loud[-1] + 1) * frame_s + pad_s)


def _piece_segment(item: AudioItem, text: str) -> Chunk:
    """A long row's piece as one segment, its times trimmed to the piece's sound."""
    start, end = speech_bounds(item.samples)
    return Chunk(text.strip(), _r(start + item.offset_s), _r(end + item.offset_s), "segment")


# ---------------------------------------------------------------------------------------------
# Convenience: a process-wide engine cache keyed by (model, options, runtime)
# ---------------------------------------------------------------------------------------------

_ENGINES: Dict[Tuple[str, WhisperOptions, RuntimeOptions], WhisperEngine] = {}


def get_engine(model_path: str, options: WhisperOptions, runtime: RuntimeOptions) -> WhisperEngine:
    key = (model_path, options, runtime)
    eng = _ENGINES.get(key)
    if eng is None:
        eng = _ENGINES[key] = WhisperEngine(model_path, options, runtime)
    return eng
