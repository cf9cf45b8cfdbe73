"""Packing short utterances into shared Whisper windows (sparkasr.whisper.packing), on the real clips."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ALL_CLIPS
from sparkasr.audio import SAMPLE_RATE, cut_pieces
from sparkasr.records import AudioItem, Chunk
from sparkasr.whisper.packing import PackingOptions, assign_words, build_window, plan_windows


def _norm(text: str) -> str:
    from whisper_normalizer.english import EnglishTextNormalizer

    return " ".join(EnglishTextNormalizer()(text).split())


def _wer(ref: str, hyp: str) -> float:
    import jiwer

    r, h = _norm(ref), _norm(hyp)
    if not h:
        return 1.0
    return jiwer.wer(r, h)


def _corpus_wer(refs, hyps) -> float:
    import jiwer

    pairs = [(_norm(r), _norm(h) or "<empty>") for r, h in zip(refs, hyps)]
    return jiwer.wer([r for r, _ in pairs], [h for _, h in pairs])


@pytest.fixture(scope="module")
def items():
    import soundfile as sf

    return [AudioItem(sf.read(str(p), dtype="float32")[0], source=str(p)) for p, _ in ALL_CLIPS]


@pytest.fixture(scope="module")
def refs():
    return [r for _, r in ALL_CLIPS]


@pytest.fixture(scope="module")
def engine():
    from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions
    from sparkasr.whisper.models import resolve_whisper_model

    return WhisperEngine(
        resolve_whisper_model(None).path, WhisperOptions(timestamps="word"), RuntimeOptions(cpu_threads=2)
    )


# -- planning, pure functions -------------------------------------------------------------------


def test_plan_windows_covers_each_short_item_once_within_the_window():
    durs = [7.1, 3.0, 5.3, 6.05, 3.29, 1.1, 1.96, 1.54, 1.55, 3.5, 31.0, 29.0]
    opts = PackingOptions(window_s=29.0, gap_s=1.0)
    plan = plan_windows(durs, opts)
    flat = sorted(i for w in plan for i in w)
    assert flat == [i for i, d in enumerate(durs) if d <= 29.0]  # the 31-s item is left out
    for w in plan:
        assert sum(durs[i] for i in w) + opts.gap_s * (len(w) - 1) <= 29.0 + 1e-9
        assert w == sorted(w)
    assert plan == plan_windows(durs, opts)  # deterministic
    assert len(plan) < len(durs) / 2  # it actually packs
    assert all(len(w) <= 2 for w in plan_windows(durs, PackingOptions(max_items=2)))


def test_build_window_spans_and_gaps():
    a, b = np.ones(16000, np.float32), np.full(8000, 0.5, np.float32)
    x, spans = build_window([a, b], gap_s=1.0)
    assert len(x) == 16000 + 16000 + 8000
    assert spans == [(0.0, 1.0), (2.0, 2.5)]
    assert not x[16000:32000].any() and (x[32000:] == 0.5).all()


def test_assign_words_by_midpoint_and_nearest():
    spans = [(0.0, 2.0), (3.0, 4.0)]
    words = [
        Chunk("a", 0.1, 0.5, "word"),
        Chunk("b", 1.9, 2.4, "word"),
        Chunk("c", 2.6, 3.2, "word"),
        Chunk("d", 5.0, 5.5, "word"),
    ]
    out = assign_words(words, spans, gap_s=1.0)
    assert [w.text for w in out[0]] == ["a", "b"]
    assert [w.text for w in out[1]] == ["c", "d"]  # d lies past every span: nearest


def test_segments_spell_words_as_the_transcript_does():
    """A word the aligner split (' ill', '-disposed') is written without a space inside a segment,
    as in the transcript's text: a segment's text is the text over its words."""
    from sparkasr.whisper.packing import _segments

    spelled = [" He", " was", " ill", "-disposed.", " Then", " he", " left."]
    times = [(0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 1.0), (2.0, 2.2), (2.2, 2.4), (2.4, 2.8)]
    words = [Chunk(t.strip(), s, e, "word") for t, (s, e) in zip(spelled, times)]
    segs = _segments(words, spelled, pause_s=0.5)
    text = "".join(spelled).strip()
    assert [c.text for c in segs] == ["He was ill-disposed.", "Then he left."]
    assert [(c.start, c.end) for c in segs] == [(0.0, 1.0), (2.0, 2.8)]
    assert all(c.text in text for c in segs)


def test_cut_pieces_cover_the_signal_in_order():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SAMPLE_RATE * 70).astype(np.float32) * 0.1
    x[SAMPLE_RATE * 27 : SAMPLE_RATE * 27 + 1600] = 0.0  # a pause where the first cut should land
    pieces = cut_pieces(x, 29.0, 5.0)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(x)
    assert all(b == c for (_, b), (c, _) in zip(pieces, pieces[1:]))
    assert all(b - a <= 29 * SAMPLE_RATE for a, b in pieces)
    assert abs(pieces[0][1] - (27 * SAMPLE_RATE + 800)) <= 1600


# -- real clips ----------------------------------------------------------------------------------


def test_one_transcript_per_item_with_its_own_text(engine, items, refs):
    bad = AudioItem(None, source="broken.wav", error="broken.wav: cannot read audio")
    batch = items[:5] + [bad] + items[5:]
    out = engine.transcribe_packed(batch)
    assert len(out) == len(batch)
    assert out[5].error and "broken.wav" in out[5].error and out[5].text == ""
    res = out[:5] + out[6:]
    assert any(t.extra.get("path") == "packed" for t in res)  # several clips shared a window
    for k, (t, it) in enumerate(zip(res, items)):
        assert t.error is None and t.source == it.source and t.duration_s == pytest.approx(it.duration_s)
        # Each text belongs to its own clip: closer to its reference than to any other clip's.
        own = _wer(refs[k], t.text)
        others = min(_wer(r, t.text) for j, r in enumerate(refs) if j != k)
        assert own < others, (k, t.text, refs[k])
        for c in t.chunks:  # word times lie inside the clip
            assert c.kind == "word" and -1e-6 <= c.start <= c.end <= it.duration_s + 1e-3
    wer = _corpus_wer(refs, [t.text for t in res])
    assert wer <= 0.12, wer  # one-call-per-clip decoding scores 0.099 on these clips


def test_packed_wer_close_to_one_call_per_clip(engine, items, refs):
    seq = [engine.transcribe_batch([it])[0].text for it in items]
    packed = [t.text for t in engine.transcribe_packed(items)]
    assert _corpus_wer(refs, packed) <= _corpus_wer(refs, seq) + 0.03


def test_segment_timestamps_and_offsets(items):
    from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions
    from sparkasr.whisper.models import resolve_whisper_model

    eng = WhisperEngine(
        resolve_whisper_model(None).path, WhisperOptions(timestamps="segment"), RuntimeOptions(cpu_threads=2)
    )
    shifted = [AudioItem(it.samples, source=it.source, offset_s=100.0) for it in items[:6]]
    for t, it in zip(eng.transcribe_packed(shifted), shifted):
        assert t.text and t.chunks and all(c.kind == "segment" for c in t.chunks)
        assert all(100.0 - 1e-6 <= c.start <= c.end <= 100.0 + it.duration_s + 1e-3 for c in t.chunks)


def test_long_item_is_cut_and_joined(engine, items, refs):
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    order = list(range(len(items))) * 2
    x = np.concatenate([p for i in order for p in (items[i].samples, gap)])
    ref = " ".join(refs[i] for i in order)
    long_item = AudioItem(x, source="long.wav")
    assert long_item.duration_s > 60
    t = engine.transcribe_packed([long_item, items[0]])
    assert t[0].extra["path"] == "cut" and t[0].extra["pieces"] >= 3
    assert _wer(ref, t[0].text) <= 0.15
    assert t[1].text and t[1].source == items[0].source
    starts = [c.start for c in t[0].chunks]
    assert starts == sorted(starts) and starts[-1] > 50.0  # absolute times across pieces


def test_strategy_pack_decodes_long_rows_as_batch(engine, items):
    """strategy=pack (the default) packs the rows of up to 30 s; a longer row takes the batch
    strategy's pieces (the same transcript as strategy=batch), not packing's cut, in one call and
    in steps."""
    from sparkasr.whisper import WhisperEngine, WhisperOptions

    assert engine.options.strategy == "pack" == WhisperOptions().strategy
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    long_item = AudioItem(np.concatenate([p for it in items for p in (it.samples, gap)]), source="long.wav")
    assert long_item.duration_s > 30
    batch = WhisperEngine(engine.model_path, WhisperOptions(timestamps="word", strategy="batch"), engine.runtime)
    want = batch.transcribe_batch([long_item])[0]
    got = engine.transcribe_batch([items[0], long_item, items[1]])
    assert got[1].extra.get("path") == want.extra.get("path") != "cut"
    assert got[1].text == want.text and [c.start for c in got[1].chunks] == [c.start for c in want.chunks]
    assert got[0].text and got[2].text and got[0].source == items[0].source
    steps = engine.transcribe_steps(long_item)
    n = 0
    try:
        while True:
            next(steps)
            n += 1
    except StopIteration as done:
        stepped = done.value
    assert n >= 1 and stepped.text == want.text  # a piece at a time, as strategy=batch steps


def test_reaches_speech_end_tells_a_finished_utterance_from_a_cut_one():
    """The utterance where the decoder stopped early is kept only when its words reach the end of
    its sound; a decode that stopped inside it (words end well before the sound) is redone."""
    from sparkasr.whisper.packing import _reaches_speech_end, _Word

    rng = np.random.default_rng(0)
    x = np.zeros(3 * SAMPLE_RATE, np.float32)  # sound from 0.5 s to 2.2 s, silence after
    x[SAMPLE_RATE // 2 : int(2.2 * SAMPLE_RATE)] = 0.3 * rng.standard_normal(int(1.7 * SAMPLE_RATE)).astype(np.float32)
    offset = 10.0  # the utterance starts 10 s into its window
    done = [_Word(" seven", 10.5, 11.2, 0.9), _Word(" of clubs.", 11.3, 12.2, 0.9)]
    cut = done[:1]
    assert _reaches_speech_end(x, done, offset)
    assert not _reaches_speech_end(x, cut, offset)
    assert not _reaches_speech_end(x, [], offset)
    # within the slack: a last word that ends a little early still counts as finished
    assert _reaches_speech_end(x, [_Word(" clubs", 11.0, 12.05, 0.9)], offset)
