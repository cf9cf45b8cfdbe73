"""The sequential path: faster-whisper's own long-form algorithm (``WhisperModel.transcribe``:
30-s windows that seek on predicted timestamps, conditioned on the previous text, with the
temperature fallback) on one stretch.

It decodes the long rows of ``strategy="sequential"`` (rows longer than
``SEQUENTIAL_PIECE_FACTOR * longPieceS`` in pieces of ``longPieceS`` cut at quiet points, so a
worker's memory does not grow with the file), ``vadFilter`` rows, and every stretch a batched pass
hands back: windows that fail Whisper's checks (the temperature fallback), that stop before they
start, or whose batch raised. The VAD gate drops segments Whisper doubts and the VAD finds no
speech under; progress is reported per segment. The ``*_steps`` generators yield after each
segment (a window's decode), so that a server can run other requests between them.
"""

from __future__ import annotations

from typing import Generator, List

from ..audio import iter_segments
from ..engines import run_steps
from ..records import AudioItem, Chunk, SegmentInfo, with_source
from .decoded import Decoded, failed, merged_info, piece_segment, r3
from .decoder import Decoder
from .rules import SEQUENTIAL_PIECE_FACTOR, SEQUENTIAL_PROMPT_WORDS, SEQUENTIAL_SEARCH_S

Steps = Generator[None, None, Decoded]


def decode_sequential(decoder: Decoder, item: AudioItem, text_only: bool = False) -> Decoded:
    """:func:`transcribe_sequential`, a failure kept in the record (the reason names the file)."""
    return run_steps(decode_sequential_steps(decoder, item, text_only))


def decode_sequential_steps(decoder: Decoder, item: AudioItem, text_only: bool = False) -> Steps:
    """:func:`decode_sequential` a segment per step."""
    try:
        return (yield from transcribe_sequential_steps(decoder, item, text_only))
    except Exception as exc:
        return failed(with_source(item.source, f"transcription failed: {type(exc).__name__}: {exc}"))


def transcribe_sequential(decoder: Decoder, item: AudioItem, text_only: bool = False) -> Decoded:
    """faster-whisper's ``transcribe`` on ``item``. ``text_only``: a long row's piece (at most
    30 s), decoded without timestamp tokens and unconditioned, as one segment trimmed to its sound."""
    return run_steps(transcribe_sequential_steps(decoder, item, text_only))


def transcribe_sequential_steps(decoder: Decoder, item: AudioItem, text_only: bool = False) -> Steps:
    """:func:`transcribe_sequential` a segment per step."""
    opts = decoder.options
    model = decoder.sequential_model()
    kwargs = opts.fw_kwargs()
    if not decoder.multilingual:
        kwargs["language"] = "en"
    if text_only:
        kwargs.update(without_timestamps=True, condition_on_previous_text=False)
        d = yield from _run(decoder, item, model, kwargs)
        if opts.timestamps == "segment" and d.text:
            d.segments = [piece_segment(item, d.text, merged_info([c.info for c in d.segments], d.text))]
        return d
    if opts.seed is not None:
        import ctranslate2

        ctranslate2.set_random_seed(opts.seed)
    if item.duration_s > SEQUENTIAL_PIECE_FACTOR * opts.long_piece_s:
        return (yield from _in_pieces(decoder, item, model, kwargs))
    return (yield from _run(decoder, item, model, kwargs))


def _in_pieces(decoder: Decoder, item: AudioItem, model, kwargs) -> Steps:
    """Very long rows: pieces of ``longPieceS`` cut at quiet points, the language fixed by the
    first piece and the previous piece's last words as the prompt (faster-whisper computes the
    log-Mel features of its whole input at once)."""
    opts = decoder.options
    parts: List[Decoded] = []
    kw = dict(kwargs)
    for off, samples in iter_segments(iter([item.samples]), opts.long_piece_s, search_s=SEQUENTIAL_SEARCH_S):
        if samples.size == 0:
            continue
        d = yield from _run(decoder, AudioItem(samples, source=item.source, offset_s=item.offset_s + off), model, kw)
        parts.append(d)
        kw["language"] = kw.get("language") or d.language
        if opts.condition_on_previous_text and d.text:
            tail = " ".join(d.text.split()[-SEQUENTIAL_PROMPT_WORDS:])
            kw["initial_prompt"] = tail if not opts.initial_prompt else f"{opts.initial_prompt} {tail}"
    first = parts[0] if parts else Decoded()
    return Decoded(
        text=" ".join(p.text for p in parts if p.text).strip(),
        language=first.language,
        language_probability=first.language_probability,
        segments=[c for p in parts for c in p.segments],
        words=[c for p in parts for c in p.words],
        path="sequential-pieces",
        pieces=len(parts),
    )


def _run(decoder: Decoder, item: AudioItem, model, kwargs) -> Steps:
    """One ``WhisperModel.transcribe`` call; its segments consumed as they come (memory stays
    bounded by one window), a step after each."""
    opts = decoder.options
    segments, info = model.transcribe(item.samples, **kwargs)
    texts: List[str] = []
    segs: List[Chunk] = []
    words: List[Chunk] = []
    dur = item.duration_s  # Whisper may predict a final timestamp past the end: clamp
    speech = decoder.gate.speech_map(item.samples)
    for seg in segments:
        decoder.progress(item.source, item.offset_s + min(seg.end, dur), None)
        yield
        bad = (opts.log_prob_threshold is not None and seg.avg_logprob < opts.log_prob_threshold) or (
            opts.compression_ratio_threshold is not None and seg.compression_ratio > opts.compression_ratio_threshold
        )
        if decoder.gate.doubtful(seg.no_speech_prob, bad) and not speech.has_speech(seg.start, seg.end):
            continue  # text with no speech under it
        texts.append(seg.text)
        segment = Chunk(
            seg.text.strip(),
            r3(min(seg.start, dur) + item.offset_s),
            r3(min(seg.end, dur) + item.offset_s),
            "segment",
            info=SegmentInfo(
                seek=int(seg.seek) + int(round(item.offset_s * 100)),
                tokens=[int(tok) for tok in seg.tokens],
                temperature=float(seg.temperature if seg.temperature is not None else opts.temperature[0]),
                avg_logprob=float(seg.avg_logprob),
                compression_ratio=float(seg.compression_ratio),
                no_speech_prob=float(seg.no_speech_prob),
            ),
        )
        segs.append(segment)
        for w in seg.words or ():
            words.append(
                Chunk(
                    w.word.strip(),
                    r3(min(w.start, dur) + item.offset_s),
                    r3(min(w.end, dur) + item.offset_s),
                    "word",
                    float(w.probability),
                    segment=segment,
                )
            )
    decoder.progress(item.source, item.offset_s + dur, None)  # done: the last segment may end before the audio
    return Decoded(
        text="".join(texts).strip(),
        language=info.language,
        language_probability=float(info.language_probability),
        segments=segs,
        words=words,
        path="sequential",
    )
