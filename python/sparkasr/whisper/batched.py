"""The batched pass: stretches of at most 30 s (short rows, a long row's pieces, the rests of
either) decoded ``batch_size`` at a time, one encoder call and one ``generate`` per batch.

Each batch is decoded in rounds (decode → find what is missing → decode that again):

1. **decode** the stretches (:meth:`.decoder.Decoder.windows`: beam search, the language given or
   detected per window). The VAD gate empties a doubtful window without speech under it
   (:mod:`.gate`); a window that fails Whisper's quality checks (compression ratio, average
   log-probability) is marked for the sequential path, which applies the temperature fallback.
2. **find the rests**: a timestamped window that stopped early (Whisper left its last sentence
   open for a next window, where faster-whisper's seek would go on from the last timestamp) has
   its rest, from that timestamp, decoded in the next round, batched, conditioned on the window's
   text; a window that stopped within its first ``REDO_BEFORE_S`` is marked for the sequential
   path, and a rest under ``MIN_REST_S`` after a window that left no text open is dropped. At most
   ``WINDOW_REST_ROUNDS`` rounds; a rest still open after them goes to the sequential path.
3. **decode the marked stretches on the sequential path**, the last round first; each rest is
   joined to the stretch it continues (a rest whose sequential decode failed sends that stretch
   to the sequential path whole).

``text_only``: a long row's pieces and their rests (:mod:`.pieces`), decoded without timestamp
tokens (a timestamped decode leaves a window's last sentence open for a next window to seek to),
one segment each, with their words aligned to measure where they end and what sound they leave
unheard: the record's ``text_end_s`` and ``unheard_s``, from which :mod:`.pieces` repairs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..audio import SAMPLE_RATE
from ..records import AudioItem, Chunk
from .decoded import Decoded, joined_info, piece_segment, r3, unheard_s
from .decoder import Decoder
from .gate import Stretch
from .model import compression_ratio
from .rules import MIN_REST_S, REDO_BEFORE_S, WINDOW_REST_ROUNDS
from .sequential import decode_sequential

log = logging.getLogger(__name__)


def decode_in_batches(
    decoder: Decoder,
    items: Sequence[AudioItem],
    text_only: bool = False,
    languages: Optional[Sequence[Tuple[str, float]]] = None,
    stretches: Optional[Sequence[Stretch]] = None,
) -> List[Decoded]:
    """``items`` (each at most 30 s), ``batch_size`` at a time (:func:`decode_batch`); a batch that
    raises is decoded item by item on the sequential path. ``languages``: (code, probability) per
    item, else given or detected; ``stretches``: where each item lies in a map of speech (the VAD
    gate), else each item's own. Progress is reported as each batch finishes."""
    out: List[Decoded] = []
    bs = decoder.options.batch_size
    for start in range(0, len(items), bs):
        batch = list(items[start : start + bs])
        try:
            out.extend(
                decode_batch(
                    decoder,
                    batch,
                    text_only=text_only,
                    languages=None if languages is None else languages[start : start + bs],
                    stretches=None if stretches is None else stretches[start : start + bs],
                )
            )
        except Exception as exc:  # a batch failure must not lose rows: retry one by one
            log.warning("batched decode failed (%s); retrying items one at a time", exc)
            out.extend(decode_sequential(decoder, it, text_only=text_only) for it in batch)
        for it in batch:  # live progress: how far into its file each stretch reached
            decoder.progress(it.source, it.offset_s + it.duration_s, None)
    return out


@dataclass
class _Round:
    """One round of a batch: its stretches, their records, and what it found missing."""

    items: List[AudioItem]
    stretches: List[Stretch]
    continues: List[int]  # the stretch of the round before that each one continues (round 0: none)
    decoded: List[Decoded] = field(default_factory=list)
    redo: List[int] = field(default_factory=list)  # for the sequential path
    rests: Dict[int, float] = field(default_factory=dict)  # stopped early: its rest decoded from this time (s)


def decode_batch(
    decoder: Decoder,
    items: Sequence[AudioItem],
    text_only: bool = False,
    languages: Optional[Sequence[Tuple[str, float]]] = None,
    stretches: Optional[Sequence[Stretch]] = None,
) -> List[Decoded]:
    """One batch of stretches of at most 30 s, in rounds (see the module docstring)."""
    opts = decoder.options
    if stretches is None:  # each item's own speech map (computed only if a window is doubtful)
        stretches = [decoder.gate.whole(it) for it in items]
    rnd = _Round(list(items), list(stretches), [])
    rounds = [rnd]
    contexts: Optional[List[str]] = None
    while True:
        _decode_round(decoder, rnd, text_only, languages, contexts)
        if not rnd.rests:
            break
        if len(rounds) > WINDOW_REST_ROUNDS:  # still open: the sequential path goes on to the end
            rnd.redo.extend(rnd.rests)
            break
        idx = list(rnd.rests)
        nxt = _Round(
            [_rest(rnd.items[i], rnd.rests[i]) for i in idx],
            [rnd.stretches[i].later(rnd.rests[i]) for i in idx],
            idx,
        )
        languages = [(rnd.decoded[i].language, rnd.decoded[i].language_probability) for i in idx]
        # conditioned on the text so far, as faster-whisper's next window would be
        contexts = [rnd.decoded[i].text if opts.condition_on_previous_text else "" for i in idx]
        rnd = nxt
        rounds.append(rnd)
    for depth in range(len(rounds) - 1, -1, -1):
        rnd = rounds[depth]
        for i in rnd.redo:  # temperature fallback: the full sequential algorithm
            rnd.decoded[i] = decode_sequential(decoder, rnd.items[i], text_only=text_only)
        if depth:
            _join_rests(rounds[depth - 1], rnd)
    return rounds[0].decoded


def _rest(item: AudioItem, from_s: float) -> AudioItem:
    """The rest of ``item`` from ``from_s`` seconds, on the file's clock."""
    return AudioItem(
        item.samples[int(round(from_s * SAMPLE_RATE)) :], source=item.source, offset_s=item.offset_s + from_s
    )


def _join_rests(parent: _Round, rests: _Round) -> None:
    for i, r in zip(rests.continues, rests.decoded):
        if r.error:
            parent.redo.append(i)
            continue
        t = parent.decoded[i]
        t.join(r)
        t.continued = 1 + r.continued
        if r.path == "sequential":  # the rest needed the temperature fallback
            t.rest_path = "sequential"


def _decode_round(
    decoder: Decoder,
    rnd: _Round,
    text_only: bool,
    languages: Optional[Sequence[Tuple[str, float]]],
    contexts: Optional[Sequence[str]],
) -> None:
    """Decode one round's stretches in one batch; fill ``rnd.decoded`` and what it found missing."""
    opts = decoder.options
    batch = decoder.windows(
        [it.samples for it in rnd.items],
        languages=languages,
        contexts=contexts,
        without_timestamps=text_only or opts.timestamps == "none",
    )
    silent = decoder.gate.silent_windows(batch.windows, rnd.stretches)
    segments: List[List[dict]] = []
    for i, w in enumerate(batch.windows):
        tk = batch.tokenizers[w.language]
        # faster-whisper's rule: unless the output ends on a single timestamp (nothing after it),
        # the last, unfinished segment is dropped and decoding resumes at the last timestamp,
        # and only while audio is left: a last timestamp at or past the audio's end (29.2 s of a
        # 29.18-s row) ends the row, as faster-whisper's seek loop ends at its content frames
        open_end = min(w.size_s, w.content_s)
        stopped_early = not text_only and opts.timestamps != "none" and not w.checks.no_speech and w.rest_s < open_end
        found = w.segments
        if w.checks.no_speech or i in silent:
            found = []
        elif (w.checks.failed and len(opts.temperature) > 1) or (stopped_early and w.rest_s < REDO_BEFORE_S):
            rnd.redo.append(i)
        elif stopped_early and (open_end - w.rest_s >= MIN_REST_S or (w.tokens and w.tokens[-1] < tk.timestamp_begin)):
            rnd.rests[i] = w.rest_s
        # else: a rest too short for a word after a window that left no text open: decoded
        # alone and conditioned on the text, 70 ms of noise came back as the window's last
        # sentence twice (Asterisk Spanish long-form set, base, strategy pack)
        segments.append(
            [
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
                for s in found
            ]
        )
    if opts.timestamps == "word" or text_only:  # text-only: where the words end (the repairs)
        decoder.align(batch, segments)
    redo = set(rnd.redo)
    path = "batched-piece" if text_only else "batched"
    for i, (item, w, segs) in enumerate(zip(rnd.items, batch.windows, segments)):
        d = Decoded(language=w.language, language_probability=w.language_probability, path=path)
        if i not in redo:
            _fill(d, item, segs, text_only, opts.timestamps, float(opts.temperature[0]))
        rnd.decoded.append(d)


def _fill(d: Decoded, item: AudioItem, segs: List[dict], text_only: bool, timestamps: str, temperature: float) -> None:
    """A decoded window's text, segments and words on the file's clock (each segment with how it
    was decoded, each word pointing at its segment), and for a text-only decode where its words
    end and what sound they leave unheard."""
    d.text = "".join(s["text"] for s in segs).strip()
    dur = item.duration_s  # Whisper may predict a final timestamp past the end: clamp
    off = item.offset_s
    if text_only:
        piece = piece_segment(item, d.text, joined_info(item, segs, temperature)) if d.text else None
        segments = [piece] * len(segs)
        d.segments = [piece] if timestamps == "segment" and piece is not None else []
    else:
        segments = [
            Chunk(
                s["text"].strip(),
                r3(min(s["start"], dur) + off),
                r3(min(s["end"], dur) + off),
                "segment",
                info=joined_info(item, [s], temperature),
            )
            for s in segs
        ]
        d.segments = list(segments)
    d.words = [
        Chunk(
            w["word"].strip(),
            r3(min(w["start"], dur) + off),
            r3(min(w["end"], dur) + off),
            "word",
            float(w["probability"]),
            segment=seg,
        )
        for s, seg in zip(segs, segments)
        for w in s.get("words", [])
    ]
    if text_only:
        words = [w for s in segs for w in s.get("words", [])]
        if words:
            d.text_end_s = min(max(w["end"] for w in words), dur)
            d.unheard_s = unheard_s(item.samples, [(w["start"], w["end"]) for w in words], d.text_end_s)
