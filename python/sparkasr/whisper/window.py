"""One batch of Whisper windows (at most 30 s each) decoded together: the sequence every batched
path shares (the engine's short rows and long-row pieces, and packed windows).

features (faster-whisper's log-Mel, padded to 3000 frames) → one encoder call → the language
(given, or detected per window) → the prompt (initial prompt and previous text) → one
``generate`` for the batch (beam search, or sampling at the first temperature) → per window the
tokens split into timestamped segments and Whisper's quality checks (:class:`Checks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..audio import SAMPLE_RATE
from .model import compression_ratio, encode
from .options import WhisperOptions


class Checks(NamedTuple):
    """Whisper's quality checks on one decode (faster-whisper's thresholds)."""

    low_logprob: bool  # average log-probability under log_prob_threshold
    no_speech: bool  # no-speech probability over no_speech_threshold, and low_logprob
    repetitive: bool  # compression ratio over compression_ratio_threshold (a decoding loop)

    @property
    def failed(self) -> bool:
        """The checks after which faster-whisper tries the next temperature."""
        return self.repetitive or self.low_logprob


def checks(opts: WhisperOptions, text: str, avg_logprob: float, no_speech_prob: float) -> Checks:
    low = opts.log_prob_threshold is not None and avg_logprob < opts.log_prob_threshold
    return Checks(
        low_logprob=low,
        no_speech=opts.no_speech_threshold is not None and no_speech_prob > opts.no_speech_threshold and low,
        repetitive=opts.compression_ratio_threshold is not None
        and compression_ratio(text) > opts.compression_ratio_threshold,
    )


@dataclass
class Window:
    """One decoded window. Times are on the window's clock (seconds from its first sample)."""

    tokens: List[int]
    text: str
    language: str
    language_probability: float
    avg_logprob: float
    no_speech_prob: float
    checks: Checks
    segments: List[dict]  # faster-whisper's segments split on timestamp tokens: tokens, start, end
    size: int  # frames of the window that hold audio (faster-whisper's segment_size)
    size_s: float  # the same in seconds
    rest_s: float  # where faster-whisper's seek would go on: before size_s, Whisper left the rest
    #                (from its last timestamp) to a next window
    duration_s: float
    content_s: float  # the frames of audio (faster-whisper's content_frames) in seconds: a rest
    #                   from rest_s >= content_s holds no audio (its seek loop ends there)


@dataclass
class WindowBatch:
    """The windows of one ``generate`` call, with what word alignment needs afterwards."""

    windows: List[Window]
    tokenizers: Dict[str, Any]  # language -> faster-whisper Tokenizer
    encoder_output: Any
    features: np.ndarray


def decode_windows(
    fw,
    opts: WhisperOptions,
    samples: Sequence[np.ndarray],
    *,
    multilingual: bool,
    languages: Optional[Sequence[Tuple[str, float]]] = None,
    contexts: Optional[Sequence[str]] = None,
    without_timestamps: bool = False,
    token_cap: Optional[int] = None,
) -> WindowBatch:
    """Decode ``samples`` (each at most 30 s) in one batch with faster-whisper's model ``fw``.

    ``languages``: (code, probability) per window; default ``opts.language`` (English-only models:
    ``en``), else detected per window. ``contexts``: previous text per window, appended to the
    initial prompt (as faster-whisper's next window would be conditioned). ``token_cap``: new
    tokens a window may need at most (packed windows: a decoding loop stops early).
    """
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    n_frames = int(fw.feature_extractor.nb_max_frames)
    mels = [fw.feature_extractor(x)[..., :-1] for x in samples]
    feats = np.stack([pad_or_trim(m, n_frames) for m in mels])
    encoder_output = encode(fw, feats)

    if languages is not None:
        langs = list(languages)
    elif opts.language or not multilingual:
        langs = [(opts.language or "en", 1.0)] * len(samples)
    else:
        langs = []
        for res in fw.model.detect_language(encoder_output):
            tok, prob = res[0]
            langs.append((tok[2:-2], float(prob)))

    tokenizers: Dict[str, Any] = {}
    previous: List[List[int]] = []
    for j, (lang, _) in enumerate(langs):
        tk = tokenizers.get(lang)
        if tk is None:
            tk = tokenizers[lang] = Tokenizer(fw.hf_tokenizer, multilingual, task=opts.task, language=lang)
        prev = tk.encode(" " + opts.initial_prompt.strip()) if opts.initial_prompt else []
        if contexts is not None and contexts[j].strip():
            prev = prev + tk.encode(" " + contexts[j].strip())
        previous.append(prev)
    if contexts is not None:  # CTranslate2 needs <|startoftranscript|> at one position: keep the last n of each
        keep = min(min(len(p) for p in previous), fw.max_length // 2 - 1)
        previous = [p[len(p) - keep :] if keep else [] for p in previous]
    prompts = [
        fw.get_prompt(tokenizers[lang], prev, without_timestamps=without_timestamps)
        for (lang, _), prev in zip(langs, previous)
    ]

    max_length = fw.max_length if opts.max_new_tokens is None else max(len(p) for p in prompts) + opts.max_new_tokens
    if token_cap is not None:
        # CTranslate2 4.x's Whisper ``generate`` returns at most ``max_length / 2`` tokens
        # (measured: 60 -> 30, 448 -> 224), hence the factor 2; were it to return
        # ``max_length``, the cap would only be looser.
        max_length = min(max_length, 2 * (max(len(p) for p in prompts) + token_cap))
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
        suppress_tokens=get_suppressed_tokens(next(iter(tokenizers.values())), list(opts.suppress_tokens)),
        max_initial_timestamp_index=int(round(1.0 / fw.time_precision)),
        **gen_kwargs,
    )

    windows: List[Window] = []
    for x, mel, res, (lang, lang_p) in zip(samples, mels, results, langs):
        tk = tokenizers[lang]
        tokens = res.sequences_ids[0]
        avg_logprob = res.scores[0] * (len(tokens) ** opts.length_penalty) / (len(tokens) + 1)
        text = tk.decode(tokens).strip()
        dur = len(x) / SAMPLE_RATE
        size = min(int(np.ceil(dur) * fw.frames_per_second), n_frames)
        segments, seek, _ = fw._split_segments_by_timestamps(
            tokenizer=tk,
            tokens=tokens,
            time_offset=0.0,
            segment_size=size,
            segment_duration=dur,
            seek=0,
        )
        windows.append(
            Window(
                tokens=tokens,
                text=text,
                language=lang,
                language_probability=lang_p,
                avg_logprob=avg_logprob,
                no_speech_prob=res.no_speech_prob,
                checks=checks(opts, text, avg_logprob, res.no_speech_prob),
                segments=segments,
                size=size,
                size_s=size / fw.frames_per_second,
                rest_s=seek / fw.frames_per_second,
                duration_s=dur,
                content_s=mel.shape[-1] / fw.frames_per_second,
            )
        )
    return WindowBatch(windows, tokenizers, encoder_output, feats)
