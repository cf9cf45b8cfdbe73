"""Long rows, ``strategy="batch"`` and ``"pack"``: cut into pieces of at most 30 s at quiet points,
the pieces of all rows decoded batched as text, repaired from their words, and joined per row.

This is faster-whisper's batched mode made safe: no VAD (no speech dropped), no window over 30 s
(faster-whisper's merged VAD windows can exceed 30 s and lose their last words), and the
temperature fallback its batched mode lacks. The passes (``docs/long_form.md``):

1. **cut** each row into pieces of at most ``WINDOW_S``, each cut moved back by up to
   ``PIECE_SEARCH_S`` to a quiet 100-ms frame, so words are not split (vadGate=always: pieces
   without speech are left out);
2. **decode** the pieces of all rows, batched, as text (:func:`.batched.decode_in_batches`,
   ``text_only``): one segment each, trimmed to the piece's sound; the words' alignment gives each
   :class:`~.decoded.Decoded` where its words end and what sound they leave unheard;
3. **re-hear** skipped pieces: a piece whose words leave ``UNHEARD_S`` or more of its sound in one
   stretch unaccounted for (Whisper jumped over prompts) is decoded again, batched, with
   timestamps, and keeps Whisper's segments;
4. **rests**: a piece whose words end ``SOUND_AFTER_WORDS_S`` or more before its sound does had the
   rest dropped (Whisper ended the window, and a decode without timestamps leaves no timestamp to
   seek from): the rest, from its last word, is decoded like a piece (re-heard likewise) and
   joined to it; up to ``PIECE_REST_ROUNDS`` rounds, each rest shorter than the one before;
5. **join** the pieces of each row: their texts, chunks, and the language most of its speech has.

:func:`transcribe_long_steps` does the same for one row a few pieces at a time (a server's long lane).
"""

from __future__ import annotations

from typing import Callable, Dict, Generator, List, Optional, Sequence, Tuple

import numpy as np

from ..audio import SAMPLE_RATE, cut_pieces
from ..records import AudioItem, Transcript
from .batched import decode_in_batches
from .decoded import Decoded, merged_info, piece_segment, sound_end_s
from .decoder import Decoder
from .gate import Stretch
from .rules import (
    MIN_TEXT_END_S,
    PIECE_CUT_LATEST_WITHIN,
    PIECE_REST_ROUNDS,
    PIECE_SEARCH_S,
    SOUND_AFTER_WORDS_S,
    UNHEARD_S,
    WINDOW_S,
)


def transcribe_long(decoder: Decoder, items: Sequence[AudioItem]) -> List[Transcript]:
    """One transcript per long row of ``items``, in order (see the module docstring)."""
    pieces: List[AudioItem] = []
    owner: List[Tuple[int, int]] = []  # row -> (its first piece, its number of pieces)
    silent: Dict[int, Decoded] = {}  # vadGate=always: pieces without speech, not decoded
    for it in items:
        row, quiet = cut(decoder, it)
        silent.update((len(pieces) + j, d) for j, d in quiet.items())
        owner.append((len(pieces), len(row)))
        pieces.extend(row)
    live = [pieces[j] for j in range(len(pieces)) if j not in silent]
    decoded = decode_in_batches(decoder, live, text_only=True)
    repair(decoder, live, decoded)
    done = iter(decoded)
    parts = [silent[j] if j in silent else next(done) for j in range(len(pieces))]
    return [
        join_row(it, pieces[first : first + count], parts[first : first + count], decoder.options.timestamps)
        for it, (first, count) in zip(items, owner)
    ]


def transcribe_long_steps(
    decoder: Decoder, item: AudioItem, group: Optional[Callable[[], int]] = None
) -> Generator[Transcript, None, Transcript]:
    """One long row as :func:`transcribe_long` decodes it, in steps, so that a server can run other
    requests between them. A step decodes the next ``group()`` pieces with speech (default 1)
    batched, and repairs them, as :func:`transcribe_long` does all of them: a server asks for one
    piece while others wait and for several when the row is alone (a batch costs less per piece).
    Each piece's transcript is then yielded, in order (a partial result for a streamed answer). The
    transcript is the same: a window's decode does not depend on the windows batched with it."""
    pieces, silent = cut(decoder, item)
    parts: Dict[int, Decoded] = dict(silent)
    live = [j for j in range(len(pieces)) if j not in silent]
    k = 0  # the pieces in ``live`` decoded so far
    while k < len(live):
        take = live[k : k + max(1, group() if group else 1)]
        k += len(take)
        batch = [pieces[j] for j in take]
        decoded = decode_in_batches(decoder, batch, text_only=True)
        repair(decoder, batch, decoded)
        for j, d in zip(take, decoded):
            parts[j] = d
            yield d.transcript(pieces[j], decoder.options.timestamps)
    return join_row(item, pieces, [parts[j] for j in range(len(pieces))], decoder.options.timestamps)


def cut(decoder: Decoder, item: AudioItem) -> Tuple[List[AudioItem], Dict[int, Decoded]]:
    """``item``'s pieces (:func:`piece_ranges`) and, with vadGate=always, the records of those
    without speech (by index: they are not decoded)."""
    speech = decoder.gate.speech_map(item.samples) if decoder.gate.before_decoding else None
    pieces: List[AudioItem] = []
    silent: Dict[int, Decoded] = {}
    for a, b in piece_ranges(item.samples):
        if speech is not None and not speech.has_speech(a / SAMPLE_RATE, b / SAMPLE_RATE):
            silent[len(pieces)] = decoder.gate.no_speech()
        pieces.append(_piece(item, a, b))
    return pieces, silent


def piece_ranges(samples: np.ndarray) -> List[Tuple[int, int]]:
    """``(start, end)`` sample ranges of at most ``WINDOW_S`` covering ``samples``, each cut moved
    back by up to ``PIECE_SEARCH_S`` to a quiet 100-ms frame."""
    return cut_pieces(samples, WINDOW_S, PIECE_SEARCH_S, latest_within=PIECE_CUT_LATEST_WITHIN)


def pieces_of(item: AudioItem) -> List[AudioItem]:
    """``item``'s pieces (:func:`piece_ranges`), on the file's clock."""
    return [_piece(item, a, b) for a, b in piece_ranges(item.samples)]


def _piece(item: AudioItem, a: int, b: int) -> AudioItem:
    return AudioItem(item.samples[a:b], source=item.source, offset_s=item.offset_s + a / SAMPLE_RATE)


def repair(decoder: Decoder, pieces: Sequence[AudioItem], done: List[Decoded]) -> None:
    """The repairs of decoded ``pieces`` (in place): re-hear the skipped ones, then decode the rests
    after their last words in bounded rounds. Like the pieces, rests are not conditioned on the
    text before them: conditioned, Whisper skipped the short prompts at the start of a rest
    (Asterisk Spanish long-form set, base)."""
    maps = [decoder.gate.speech_map(p.samples) for p in pieces]  # vadGate: computed on first use
    rehear(decoder, pieces, done, [Stretch(m, 0.0, p.duration_s) for m, p in zip(maps, pieces)])
    ends = {k: d.text_end_s for k, d in enumerate(done) if d.text_end_s is not None}
    for _ in range(PIECE_REST_ROUNDS):
        todo = [(k, end) for k, end in ends.items() if rest_is_missing(pieces[k], done[k], end)]
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
        stretches = [Stretch(maps[k], end, pieces[k].duration_s) for k, end in todo]
        results = decode_in_batches(
            decoder,
            rests,
            text_only=True,
            languages=[(done[k].language, done[k].language_probability) for k, _ in todo],
            stretches=stretches,
        )
        # a rest skips as a piece does (Spanish long-form set, base, AVX2 kernels: the rest after
        # a 29-s prompt jumped over the three short prompts at its start): heard again likewise
        rehear(decoder, rests, results, stretches)
        ends = {}
        for (k, end), r in zip(todo, results):
            if r.error or not r.text.strip():
                continue
            t = done[k]
            infos = [c.info for c in t.segments + r.segments]
            t.join(r)
            if decoder.options.timestamps == "segment":
                t.segments = [piece_segment(pieces[k], t.text, merged_info(infos, t.text))]
            t.continued += 1
            if r.reheard:
                t.reheard += 1
            if r.text_end_s is not None:
                ends[k] = end + r.text_end_s


def rest_is_missing(piece: AudioItem, d: Decoded, text_end_s: float) -> bool:
    """Whether ``piece``'s sound goes on ``SOUND_AFTER_WORDS_S`` or more after its words end at
    ``text_end_s`` (and they end ``MIN_TEXT_END_S`` or more into it)."""
    return (
        bool(d.text) and MIN_TEXT_END_S <= text_end_s and sound_end_s(piece.samples) - text_end_s >= SOUND_AFTER_WORDS_S
    )


def rehear(decoder: Decoder, pieces: Sequence[AudioItem], done: List[Decoded], stretches: Sequence[Stretch]) -> None:
    """Pieces whose words leave ``UNHEARD_S`` or more of their sound in one stretch unaccounted
    for had speech skipped inside them: the text-only decode jumped from the first prompts to
    later ones (Asterisk Spanish long-form set, base: "para incrementar el volumen..." alone for a
    26-s piece whose first 16 s held four prompts). They are decoded again, batched, with
    timestamps (faster-whisper's seek within the piece, which did not skip them), and keep
    Whisper's segments (in place in ``done``). ``stretches[k]``: piece ``k`` in a map of speech."""
    todo = [k for k, d in enumerate(done) if d.text and d.unheard_s >= UNHEARD_S]
    if not todo:
        return
    results = decode_in_batches(
        decoder,
        [pieces[k] for k in todo],
        text_only=False,
        languages=[(done[k].language, done[k].language_probability) for k in todo],
        stretches=[stretches[k] for k in todo],
    )
    for k, r in zip(todo, results):
        if r.error or not r.text.strip():
            continue
        r.reheard = 1
        done[k] = r


def join_row(item: AudioItem, pieces: Sequence[AudioItem], parts: Sequence[Decoded], timestamps: str) -> Transcript:
    """A long row's transcript from its pieces: the texts and chunks in order, the language most
    of its speech has (weighted by each piece's length and language probability)."""
    errors = [f"piece at {p.offset_s:.1f} s: {d.error}" for p, d in zip(pieces, parts) if d.error]
    weight: Dict[str, float] = {}
    for p, d in zip(pieces, parts):
        if d.language and d.text:
            weight[d.language] = weight.get(d.language, 0.0) + d.language_probability * p.duration_s
    lang = max(weight, key=weight.get) if weight else parts[0].language
    return Transcript(
        text=" ".join(d.text.strip() for d in parts if d.text.strip()),
        chunks=[c for d in parts for c in d.chunks(timestamps)],
        language=lang,
        language_probability=max((d.language_probability for d in parts if d.language == lang), default=0.0),
        duration_s=item.duration_s,
        source=item.source,
        offset_s=item.offset_s,
        error=("; ".join(errors) if errors else None),
        extra={
            "path": "pieces",
            "pieces": len(parts),
            "fallbacks": sum(d.path == "sequential" for d in parts),
            "continued": sum(d.continued for d in parts),
            "reheard": sum(d.reheard for d in parts),
        },
    )
