"""Packing short utterances into shared 30-s Whisper windows.

Whisper's encoder always sees a 30-s window: a 2-s clip costs as much encoder time as 30 s of audio,
and every call pays the decoder's fixed start-up. Packing several short utterances into one window
(separated by silence gaps), decoding the windows, and splitting the result back by word timestamps
makes short-clip corpora several times cheaper.

    transcripts = engine.transcribe_packed(items)   # WhisperEngine: one Transcript per item, in order

The engine runs the steps; this module is given a :class:`~.decoder.Decoder` and knows nothing of
the engine:

1. **cut** (:func:`cut_long`): with ``cut_long``, items longer than ``window_s`` are cut at quiet
   points into pieces of at most ``window_s`` (joined again by :func:`join_cut`).
2. **plan**: items of at most ``window_s`` seconds are assigned to windows first-fit by decreasing
   duration (deterministic), each window holding at most ``window_s`` seconds including a ``gap_s``
   silence between utterances (and at most ``max_items`` utterances when set). Longer items, items
   with errors, and every item of a multilingual model without a fixed language (the language is
   detected per window, so utterances in different languages must not share one) are left to be
   decoded alone, by the engine's ordinary path.
3. **decode** (:func:`decode_packed`): the windows are decoded batched (stacked features, one
   ``generate`` per ``batch_size`` windows) with word timestamps on, whatever the caller asked for.
4. **split**: each word goes to the utterance whose span (widened by half a gap on each side)
   holds the word's midpoint; its times are shifted back to the utterance (plus
   ``AudioItem.offset_s``). An utterance that received no words is left to be decoded alone, so
   a skipped utterance costs time, never text.
5. **retry**: Whisper sometimes ends a window early, leaving what looks like an unfinished
   sentence to a next window that packing does not have. The utterances it did not reach are
   packed again in a next round (``rounds``); the one it stopped in is kept when its words reach
   the end of its sound, and packed again otherwise. Utterances still not decoded in full after
   the last round are left to be decoded alone, one 30-s window each: a third round that packs the
   last few into one window is cheaper (short clips in 4 calls: 15 windows encoded with 2 rounds,
   13 with 3, none saved by a fourth).

The decoder sees the earlier utterances of its window as context, so an occasional word can change
("context bleed"); ``bench/run_engine.py`` measures WER against one-call-per-clip decoding.

Timestamps in the result follow the options' ``timestamps``: ``word`` gives the words; ``segment``
gives segments rebuilt from the words of each utterance, cut after sentence-final punctuation or a
pause of at least ``segment_pause_s`` (Whisper's own segments may span two utterances, so they are
not reused); ``none`` gives none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Set, Tuple

import numpy as np

from ..audio import SAMPLE_RATE, cut_pieces, speech_bounds
from ..records import AudioItem, Chunk, Transcript, error_transcript
from .decoder import Decoder
from .model import add_word_timestamps, compression_ratio, encoder_rows

log = logging.getLogger(__name__)

__all__ = [
    "Packed",
    "PackingOptions",
    "assign_words",
    "build_window",
    "cut_long",
    "decode_packed",
    "join_cut",
    "plan_windows",
]

_SENTENCE_END = (".", "?", "!", "。", "？", "！")


@dataclass(frozen=True)
class PackingOptions:
    """How utterances are packed into windows."""

    window_s: float = 30.0  # audio + gaps per window (Whisper's window is 30 s)
    gap_s: float = 1.0  # silence between two utterances
    max_items: int = 0  # utterances per window (0 = as many as fit)
    segment_pause_s: float = 0.8  # timestamps="segment": a pause this long starts a new segment
    redo_empty: bool = True  # retry an utterance that its window gave no words
    rounds: int = 3  # packing rounds; utterances a round did not decode in full are re-packed
    cut_long: bool = True  # cut items longer than window_s at quiet points into pieces (else: engine's long path)
    cut_search_s: float = 5.0  # a cut moves back by up to this much to the quietest 100-ms frame

    def __post_init__(self):
        if not (1.0 <= self.window_s <= 30.0):
            raise ValueError("window_s must be in [1, 30]")
        if not (0.1 <= self.gap_s < self.window_s):
            raise ValueError("gap_s must be in [0.1, window_s)")
        if self.rounds < 1:
            raise ValueError("rounds must be >= 1")
        if self.max_items < 0:
            raise ValueError("max_items must be >= 0 (0 = no limit)")


# ---------------------------------------------------------------------------------------------
# Plan and build windows
# ---------------------------------------------------------------------------------------------


def plan_windows(durations: Sequence[float], options: PackingOptions = PackingOptions()) -> List[List[int]]:
    """Indices of ``durations`` grouped into windows: first-fit decreasing, deterministic.

    Every index with a duration of at most ``window_s`` appears in exactly one window; within a
    window, utterances keep their input order. Longer ones are left out (the caller decodes them
    on their own).
    """
    order = sorted((i for i, d in enumerate(durations) if d <= options.window_s), key=lambda i: (-durations[i], i))
    windows: List[List[int]] = []
    used: List[float] = []
    for i in order:
        d = float(durations[i])
        for w, members in enumerate(windows):
            if options.max_items and len(members) >= options.max_items:
                continue
            if used[w] + options.gap_s + d <= options.window_s + 1e-9:
                members.append(i)
                used[w] += options.gap_s + d
                break
        else:
            windows.append([i])
            used.append(d)
    return [sorted(w) for w in windows]


def build_window(parts: Sequence[np.ndarray], gap_s: float) -> Tuple[np.ndarray, List[Tuple[float, float]]]:
    """Concatenate ``parts`` with ``gap_s`` of digital silence between them.

    Returns the window's samples and each part's ``(start, end)`` in seconds within the window.
    """
    gap = np.zeros(int(round(gap_s * SAMPLE_RATE)), dtype=np.float32)
    pieces: List[np.ndarray] = []
    spans: List[Tuple[float, float]] = []
    pos = 0
    for k, x in enumerate(parts):
        if k:
            pieces.append(gap)
            pos += len(gap)
        x = np.asarray(x, dtype=np.float32)
        spans.append((pos / SAMPLE_RATE, (pos + len(x)) / SAMPLE_RATE))
        pieces.append(x)
        pos += len(x)
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32), spans


def assign_words(words: Sequence[Chunk], spans: Sequence[Tuple[float, float]], gap_s: float) -> List[List[Chunk]]:
    """Split window-timed words to utterances: by each word's midpoint, widened spans, else nearest."""
    out: List[List[Chunk]] = [[] for _ in spans]
    half = gap_s / 2.0
    for w in words:
        mid = (w.start + w.end) / 2.0
        best, best_dist = 0, float("inf")
        for j, (s, e) in enumerate(spans):
            if s - half <= mid <= e + half:
                best, best_dist = j, 0.0
                break
            dist = s - mid if mid < s else mid - e
            if dist < best_dist:
                best, best_dist = j, dist
        out[best].append(w)
    return out


# ---------------------------------------------------------------------------------------------
# Transcribe
# ---------------------------------------------------------------------------------------------


def _segments(words: Sequence[Chunk], spelled: Sequence[str], pause_s: float) -> List[Chunk]:
    """``words`` grouped into segments at sentence ends and pauses of ``pause_s``. ``spelled``:
    each word as Whisper wrote it, with its leading space or none (a word split by the aligner:
    ' ill', '-disposed'), so that a segment's text is the transcript's text over its words."""
    segs: List[Chunk] = []
    first = 0
    for k, w in enumerate(words):
        nxt = words[k + 1] if k + 1 < len(words) else None
        if nxt is None or w.text.endswith(_SENTENCE_END) or nxt.start - w.end >= pause_s:
            text = "".join(spelled[first : k + 1]).strip()
            segs.append(Chunk(text, words[first].start, w.end, "segment"))
            first = k + 1
    return segs


@dataclass
class _Word:
    text: str  # with its leading space, as Whisper wrote it
    start: float
    end: float
    probability: float


def _clean(segs: Sequence[dict], spans: Sequence[Tuple[float, float]], tolerance_s: float = 0.4) -> bool:
    """Whether every decoded segment lies within one utterance (overlapping any other by less
    than ``tolerance_s``): then segments can be split to utterances without word alignment."""
    for seg in segs:
        ov = sorted((max(0.0, min(seg["end"], e) - max(seg["start"], s)) for s, e in spans), reverse=True)
        if not ov or ov[0] <= 0.0 or (len(ov) > 1 and ov[1] >= tolerance_s):
            return False
    return True


def _segment_words(tk, segs: Sequence[dict], spans: Sequence[Tuple[float, float]]) -> List[_Word]:
    """One pseudo-word per segment, its times clamped to the utterance it lies in."""
    out = []
    for seg in segs:
        j = max(range(len(spans)), key=lambda k: min(seg["end"], spans[k][1]) - max(seg["start"], spans[k][0]))
        s, e = spans[j]
        start, end = min(max(seg["start"], s), e), max(min(seg["end"], e), s)
        text = tk.decode([t for t in seg["tokens"] if t < tk.eot])
        if text.strip():
            out.append(_Word(text, start, max(end, start), float("nan")))
    return out


def token_budget(spans: Sequence[Tuple[float, float]], tokens_per_s: float = 6.0, per_utterance: int = 3) -> int:
    """Tokens a packed window may need: ``tokens_per_s`` of utterance audio (fast English speech
    with timestamp tokens is about 4.5 per second) plus ``per_utterance`` for each utterance's
    timestamps, plus a margin."""
    speech = sum(e - s for s, e in spans)
    return int(np.ceil(tokens_per_s * speech)) + per_utterance * len(spans) + 6


def _decode_windows(
    decoder: Decoder,
    windows: List[np.ndarray],
    spans: Optional[List[List[Tuple[float, float]]]] = None,
    need_words: bool = True,
) -> List[Optional[List[_Word]]]:
    """Decode ≤30-s windows in one batch (:func:`~.window.decode_windows`, timestamps on), with
    word alignment where needed (``need_words``, or a segment that spans two utterances). ``None``
    for a window whose decode fails Whisper's checks (no speech, or average log-probability under
    the threshold); its utterances are retried elsewhere."""
    fw = decoder.fw
    # A window's decode is capped near what its speech can hold, so a decoding loop (beam search
    # repeating a phrase to the end of the decoder's context) stops early; its utterances are then
    # caught by the checks and decoded again.
    cap = max(token_budget(sp) for sp in spans) if spans else None
    batch = decoder.windows(windows, token_cap=cap)
    tk = next(iter(batch.tokenizers.values()))
    ok = [not w.checks.low_logprob and bool(w.segments) for w in batch.windows]
    segments = [
        [dict(tokens=s["tokens"], start=s["start"], end=s["end"], seek=0) for s in w.segments] if good else []
        for w, good in zip(batch.windows, ok)
    ]
    on_cpu = getattr(fw.model, "device", "cpu") == "cpu"
    align = [
        k
        for k, (good, segs) in enumerate(zip(ok, segments))
        if good and (need_words or spans is None or not on_cpu or not _clean(segs, spans[k]))
    ]
    if align:  # only the windows that need it
        enc = encoder_rows(fw, batch.encoder_output, align, batch.features)
        add_word_timestamps(
            fw, [segments[k] for k in align], tk, enc, [batch.windows[k].size for k in align], batch.features[align]
        )
    aligned = set(align)
    out: List[Optional[List[_Word]]] = []
    for k, (good, segs) in enumerate(zip(ok, segments)):
        if not good:
            out.append(None)
        elif k in aligned:
            out.append(
                [
                    _Word(w["word"], float(w["start"]), float(w["end"]), float(w["probability"]))
                    for s in segs
                    for w in s.get("words", [])
                ]
            )
        else:
            out.append(_segment_words(tk, segs, spans[k]))
    return out


def _suspicious(words: Sequence[_Word], duration_s: float, opts) -> bool:
    """An utterance's words that look like a decoding loop: too repetitive or too many per second."""
    text = "".join(w.text for w in words)
    if opts.compression_ratio_threshold is not None and compression_ratio(text) > opts.compression_ratio_threshold:
        return True
    return len(words) >= 8 and len(words) > 6.0 * max(duration_s, 0.5)


def _uncovered_speech(samples: np.ndarray, words: Sequence[_Word], offset: float, min_gap_s: float = 1.0) -> bool:
    """True when a stretch of at least ``min_gap_s`` before the first word or after the last word
    holds sound as loud as the utterance's speech: the decoder probably skipped words there."""
    if not words or len(samples) < SAMPLE_RATE // 2:
        return False
    frame = SAMPLE_RATE // 20  # 50 ms
    n = len(samples) // frame
    if n < 4:
        return False
    rms = np.sqrt((samples[: n * frame].reshape(n, frame).astype(np.float32) ** 2).mean(axis=1))
    loud = float(np.percentile(rms, 90))
    if loud <= 0:
        return False
    first = max(0.0, words[0].start - offset)
    last = max(0.0, words[-1].end - offset)
    dur = len(samples) / SAMPLE_RATE
    for a, b in ((0.0, first - 0.2), (last + 0.2, dur)):
        if b - a >= min_gap_s:
            seg = rms[int(a * 20) : int(b * 20)]
            if seg.size and float((seg > 0.3 * loud).mean()) > 0.25:
                return True
    return False


def _reaches_speech_end(samples: np.ndarray, words: Sequence[_Word], offset: float, slack_s: float = 0.3) -> bool:
    """True when the last word ends no earlier than ``slack_s`` before the end of the sound in
    ``samples`` (:func:`~sparkasr.audio.speech_bounds`); ``offset`` is where ``samples`` start
    on the words' clock."""
    return bool(words) and words[-1].end >= offset + speech_bounds(samples)[1] - slack_s


def _decode_round(decoder: Decoder, items, windows, options, want, out, round_no):
    """Decode packed windows once; fill ``out`` for utterances that were decoded in full and
    return the ones to try again: utterances of windows that failed Whisper's checks, utterances
    the decoder never reached (it stopped early), the one where it stopped when its words end
    before its sound does (cut), utterances with no words or with words that look like a loop."""
    retry: List[int] = []
    bs = max(1, decoder.options.batch_size)
    for b0 in range(0, len(windows), bs):
        batch = windows[b0 : b0 + bs]
        built = [build_window([items[i].samples for i in w], options.gap_s) for w in batch]
        try:
            decoded = _decode_windows(
                decoder, [x for x, _ in built], [sp for _, sp in built], need_words=want == "word"
            )
        except Exception as exc:  # never lose rows: the utterances are decoded alone
            log.warning("packed decode failed (%s); decoding its utterances alone", exc)
            decoded = [None] * len(batch)
        for k, (w, (_, spans), words) in enumerate(zip(batch, built, decoded)):
            if not words:
                retry.extend(w)
                continue
            chunks_w = [
                Chunk(x.text.strip(), x.start, x.end, "word", None if x.probability != x.probability else x.probability)
                for x in words
            ]
            by_id = {id(c): x for c, x in zip(chunks_w, words)}
            per_item = assign_words(chunks_w, spans, options.gap_s)
            last = max(j for j, ws in enumerate(per_item) if ws)  # the utterance where decoding stopped
            for j, (i, (s, e), ws) in enumerate(zip(w, spans, per_item)):
                it = items[i]
                raw = [by_id[id(c)] for c in ws]
                # Where the decoder stopped early (Whisper leaves what it takes for an unfinished
                # sentence to the next window), the utterance it stopped in is kept only when its
                # words reach the end of its sound: a stop between two utterances loses nothing.
                cut = j == last and j < len(w) - 1 and not _reaches_speech_end(it.samples, raw, s)
                if (
                    j > last
                    or cut
                    or (not ws and options.redo_empty)
                    or _suspicious(raw, e - s, decoder.options)
                    or _uncovered_speech(it.samples, raw, s)
                ):
                    retry.append(i)
                    continue
                local = [
                    Chunk(
                        c.text,
                        round(min(max(c.start - s, 0.0), e - s) + it.offset_s, 3),
                        round(min(max(c.end - s, 0.0), e - s) + it.offset_s, 3),
                        "word",
                        c.probability,
                    )
                    for c in ws
                ]
                if want == "word":
                    chunks = local
                elif want == "segment":
                    chunks = _segments(local, [x.text for x in raw], options.segment_pause_s)
                else:
                    chunks = []
                lang = decoder.options.language or "en"
                out[i] = Transcript(
                    text="".join(x.text for x in raw).strip(),
                    chunks=chunks,
                    language=lang,
                    language_probability=1.0,
                    duration_s=it.duration_s,
                    source=it.source,
                    offset_s=it.offset_s,
                    extra={"path": "packed", "round": round_no, "window_utterances": len(w)},
                )
    return retry


def cut_long(items: Sequence[AudioItem], options: PackingOptions) -> Tuple[List[AudioItem], List[Tuple[int, int]]]:
    """The utterances to pack: ``items``, each one longer than ``window_s`` cut (``cut_long``) at
    quiet points into pieces of at most ``window_s``; and per item its first utterance and how
    many it became."""
    flat: List[AudioItem] = []
    owner: List[Tuple[int, int]] = []
    for it in items:
        if not options.cut_long or it.error is not None or it.samples is None or it.duration_s <= options.window_s:
            owner.append((len(flat), 1))
            flat.append(it)
            continue
        ranges = cut_pieces(it.samples, options.window_s, options.cut_search_s)
        owner.append((len(flat), len(ranges)))
        for a, b in ranges:
            flat.append(AudioItem(it.samples[a:b], source=it.source, offset_s=it.offset_s + a / SAMPLE_RATE))
    return flat, owner


def join_cut(
    items: Sequence[AudioItem], owner: Sequence[Tuple[int, int]], flat: Sequence[AudioItem], res: Sequence[Transcript]
) -> List[Transcript]:
    """One transcript per item of :func:`cut_long`: an item cut into pieces gets their texts and
    chunks joined."""
    out: List[Transcript] = []
    for it, (first, count) in zip(items, owner):
        if count == 1 and flat[first] is it:
            out.append(res[first])
            continue
        parts = res[first : first + count]
        errors = [p.error for p in parts if p.error]
        out.append(
            Transcript(
                text=" ".join(p.text.strip() for p in parts if p.text.strip()),
                chunks=[c for p in parts for c in p.chunks],
                language=parts[0].language,
                language_probability=parts[0].language_probability,
                duration_s=it.duration_s,
                source=it.source,
                offset_s=it.offset_s,
                error="; ".join(errors) if errors else None,
                extra={
                    "path": "cut",
                    "pieces": count,
                    "piece_paths": sorted({str(p.extra.get("path")) for p in parts}),
                },
            )
        )
    return out


@dataclass
class Packed:
    """What packing decoded: a transcript per utterance, or None for one to be decoded alone."""

    transcripts: List[Optional[Transcript]]
    #: utterances that packed windows did not decode in full (left to be decoded alone)
    retried: Set[int] = field(default_factory=set)

    @property
    def alone(self) -> List[int]:
        """The utterances to be decoded on their own, in order."""
        return [i for i, t in enumerate(self.transcripts) if t is None]

    def fill(self, i: int, t: Transcript) -> None:
        """Utterance ``i`` as decoded alone."""
        if i in self.retried:
            t.extra = {**t.extra, "packing": "decoded alone after packed windows did not reach it in full"}
        self.transcripts[i] = t


def decode_packed(decoder: Decoder, items: Sequence[AudioItem], options: PackingOptions = PackingOptions()) -> Packed:
    """Decode ``items`` packed several to a window, in rounds (see the module docstring). Items
    with an error get an error transcript; those left to be decoded alone get None."""
    out: List[Optional[Transcript]] = [None] * len(items)
    want = decoder.options.timestamps

    pending: List[int] = []
    fixed_language = decoder.options.language or not decoder.multilingual
    for i, it in enumerate(items):
        if it.error is not None or it.samples is None:
            out[i] = error_transcript(it, it.error or "no audio")
        elif fixed_language and it.duration_s <= options.window_s and not decoder.options.vad_filter:
            pending.append(i)

    retried: set = set()
    for round_no in range(options.rounds):
        plan = plan_windows([items[i].duration_s for i in pending], options)
        windows = [[pending[k] for k in w] for w in plan]
        # A window holding a single utterance is just that utterance: decoded alone.
        windows = [w for w in windows if len(w) > 1]
        if not windows:
            break
        pending = _decode_round(decoder, items, windows, options, want, out, round_no)
        retried.update(pending)
        if not pending:
            break
    return Packed(out, retried)
