"""sparkasr.whisper.WhisperEngine on real speech, without Spark.

Quality gate: the embedded default (Whisper tiny.en, int8) must transcribe the 10 vendored clips with
a corpus WER <= 0.15 after Whisper's EnglishTextNormalizer on both sides (it measures ~0.10; a broken
feature/prompt/decode pipeline produces far worse or empty text).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jiwer
import numpy as np
import pytest
from whisper_normalizer.english import EnglishTextNormalizer

import sparkasr.whisper as whisper_mod
import sparkasr.whisper.model as whisper_model
from conftest import ALL_CLIPS, CARDS, LIBRIVOX
from sparkasr.audio import decode_audio
from sparkasr.records import AudioItem
from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions, get_engine
from sparkasr.whisper.models import resolve_whisper_model
from whisper_support import sequential

RUNTIME = RuntimeOptions(cpu_threads=2)  # the CI box has 2 cores
WER_GATE = 0.15
_norm = EnglishTextNormalizer()


def corpus_wer(refs, hyps) -> float:
    return jiwer.wer([_norm(r) for r in refs], [_norm(h) for h in hyps])


@pytest.fixture(scope="module")
def tiny_path() -> str:
    return resolve_whisper_model(None).path


@pytest.fixture(scope="module")
def items():
    return [AudioItem(samples=decode_audio(p), source=str(p)) for p, _ in ALL_CLIPS]


@pytest.fixture(scope="module")
def refs():
    return [r for _, r in ALL_CLIPS]


@pytest.fixture(scope="module")
def engine(tiny_path) -> WhisperEngine:
    """The batched path (strategy=batch: one window per clip), which these tests are about; the
    default, pack, is tested in test_packing.py."""
    return WhisperEngine(tiny_path, WhisperOptions(strategy="batch"), RUNTIME)


@pytest.fixture(scope="module")
def default_results(engine, items):
    t0 = time.perf_counter()
    res = engine.transcribe_batch(items)
    return res, time.perf_counter() - t0


def _item(items, path) -> AudioItem:
    return next(it for it in items if it.source == str(path))


# ---------------------------------------------------------------------------------------------
# Accuracy and batching
# ---------------------------------------------------------------------------------------------


def test_default_model_wer_on_real_clips(default_results, items, refs):
    res, wall = default_results
    assert len(res) == len(items)
    for item, r in zip(items, res):  # one Transcript per item, in order
        assert r.source == item.source
        assert r.error is None, r.error
        assert r.text.strip()
        assert r.language == "en" and r.language_probability == 1.0
        assert r.duration_s == pytest.approx(item.duration_s)
    wer = corpus_wer(refs, [r.text for r in res])
    audio_s = sum(it.duration_s for it in items)
    print(
        f"\n[tiny.en batched beam=5] corpus WER {wer:.4f} on {len(items)} clips ({audio_s:.1f} s audio) in {wall:.1f} s"
    )
    assert wer <= WER_GATE


def test_batched_path_equals_sequential_path(engine, items, default_results):
    """Every clip decoded batched; every other clip (three LibriVox sentences, two card clips: both
    sets, 1.6-7.1 s) also sequentially, one at a time, and compared."""
    res, _ = default_results
    assert {r.extra.get("path") for r in res} == {"batched"}
    diffs = []
    for item, r in list(zip(items, res))[::2]:
        seq = sequential(engine, item)
        assert seq.extra["path"] == "sequential"
        if seq.text != r.text:
            diffs.append((item.source, r.text, seq.text))
    # On these clips the batched decode (same prompt, beam search, suppression and thresholds as
    # faster-whisper's) gives exactly faster-whisper's sequential text.
    assert not diffs, diffs


def test_one_transcript_per_item_in_order_across_batches(tiny_path, items):
    eng = WhisperEngine(tiny_path, WhisperOptions(batch_size=3, beam_size=1), RUNTIME)
    order = [7, 1, 9, 5, 6, 8]
    res = eng.transcribe_batch([items[i] for i in order])
    assert [r.source for r in res] == [items[i].source for i in order]
    assert all(r.text and r.error is None for r in res)


def test_greedy_beam_size_1_works(tiny_path, items, refs):
    # beam_size=5 is the default, measured in test_default_model_wer_on_real_clips
    beam_size = 1
    eng = WhisperEngine(tiny_path, WhisperOptions(beam_size=beam_size, timestamps="none"), RUNTIME)
    res = eng.transcribe_batch(items)
    wer = corpus_wer(refs, [r.text for r in res])
    print(f"\n[tiny.en beam={beam_size} no timestamps] corpus WER {wer:.4f}")
    assert wer <= WER_GATE + 0.05


# ---------------------------------------------------------------------------------------------
# Timestamps
# ---------------------------------------------------------------------------------------------


def _check_chunks(t, item, kind, offset=0.0):
    assert t.chunks, f"no {kind} chunks for {item.source}"
    prev_start = prev_end = offset
    for c in t.chunks:
        assert c.kind == kind
        assert offset <= c.start <= c.end <= offset + item.duration_s + 1e-6, (c, item.duration_s)
        assert c.start >= prev_start - 1e-6 and c.end >= prev_end - 1e-6, t.chunks
        prev_start, prev_end = c.start, c.end
        assert c.as_dict() == {"text": c.text, "timestamp": [c.start, c.end]}


def test_segment_timestamps(default_results, items):
    res, _ = default_results
    for item, t in zip(items, res):
        _check_chunks(t, item, "segment")
        assert " ".join(c.text for c in t.chunks) == t.text


def test_word_timestamps_batched_and_sequential(tiny_path, items):
    eng = WhisperEngine(tiny_path, WhisperOptions(timestamps="word", strategy="batch"), RUNTIME)
    subset = [items[1], items[2], items[5], items[6]]
    for path_name, res in (
        ("batched", eng.transcribe_batch(subset)),
        ("sequential", [sequential(eng, it) for it in subset]),
    ):
        for item, t in zip(subset, res):
            assert t.extra["path"] == path_name
            _check_chunks(t, item, "word")
            assert all(c.probability is not None and 0 <= c.probability <= 1 for c in t.chunks)
            # the words, joined, are the text (word pieces such as "-disposed" carry no space)
            assert "".join(c.text for c in t.chunks) == t.text.replace(" ", "")


def test_word_timestamps_in_a_batch_where_an_item_decodes_to_nothing(tiny_path, items, caplog):
    """Word alignment of a batch in which one window decodes to no segment (silence) and another
    has segments: the batch stays batched (faster-whisper's alignment indexes every window's first
    segment, so the empty windows are left out of it). So do a long row's pieces when one of them,
    the row's silent tail, decodes to nothing: no piece falls back to the sequential path."""
    eng = WhisperEngine(tiny_path, WhisperOptions(timestamps="word", strategy="batch"), RUNTIME)
    speech = _item(items, LIBRIVOX[0][0])
    silence = AudioItem(np.zeros(5 * 16000, np.float32), source="silence.wav")
    talk = np.concatenate([_item(items, p).samples for p, _ in LIBRIVOX])  # ~25 s, five sentences
    long_row = AudioItem(np.concatenate([talk, np.zeros(10 * 16000, np.float32)]), source="long.wav")
    assert 30 < long_row.duration_s < 60
    with caplog.at_level("WARNING", logger="sparkasr.whisper"):
        a, b, c = eng.transcribe_batch([speech, silence, long_row])
    assert "batched decode failed" not in caplog.text
    assert a.extra["path"] == "batched" and a.text
    _check_chunks(a, speech, "word")
    assert b.extra["path"] == "batched" and b.text == "" and b.chunks == [] and b.error is None
    assert c.extra["path"] == "pieces" and c.extra["pieces"] == 2 and c.extra["fallbacks"] == 0 and c.error is None
    _check_chunks(c, long_row, "word")
    assert c.chunks[-1].end <= len(talk) / 16000 + 0.5  # no words in the silent tail


def test_suppressed_tokens_are_never_generated(tiny_path):
    """suppressTokens: ids the decoder must not emit (on top of Whisper's default set), on the
    batched path and the sequential one."""
    from faster_whisper.tokenizer import Tokenizer

    from conftest import GOFORWARD

    item = AudioItem(decode_audio(str(GOFORWARD[0])), source="goforward.raw")
    plain = WhisperEngine(tiny_path, WhisperOptions(beam_size=1), RUNTIME)
    assert "forward" in plain.transcribe_batch([item])[0].text.lower()
    tk = Tokenizer(plain.model.hf_tokenizer, False, task="transcribe", language="en")
    banned = sorted({t for w in (" forward", " Forward", "forward", "Forward") for t in tk.encode(w)})
    opts = WhisperOptions(beam_size=1, suppress_tokens=(-1, *banned))
    eng = WhisperEngine(tiny_path, opts, RUNTIME)
    for t in (eng.transcribe_batch([item])[0], sequential(eng, item)):
        assert t.error is None and t.text.strip(), t
        assert "forward" not in t.text.lower(), t.text
    with pytest.raises(ValueError, match="suppressTokens must be an integer in -1..51865"):
        WhisperOptions(suppress_tokens=(-2,))


def test_no_timestamps_gives_no_chunks(tiny_path, items):
    eng = WhisperEngine(tiny_path, WhisperOptions(timestamps="none"), RUNTIME)
    res = eng.transcribe_batch(items[5:8])
    assert all(t.text and t.chunks == [] for t in res)
    assert sequential(eng, items[5]).chunks == []


def test_offset_shifts_timestamps(engine, items):
    base = items[0]
    shifted = AudioItem(samples=base.samples, source=base.source, offset_s=120.0)
    a, b = engine.transcribe_batch([base, shifted])
    assert a.text == b.text and b.offset_s == 120.0
    assert [(c.start + 120.0, c.end + 120.0) for c in a.chunks] == [(c.start, c.end) for c in b.chunks]


# ---------------------------------------------------------------------------------------------
# Decoding options are honoured
# ---------------------------------------------------------------------------------------------


def test_initial_prompt_changes_the_output(engine, tiny_path, items):
    card = _item(items, CARDS[0][0])  # "ten of clubs": tiny.en writes "10 of clubs."
    lib = _item(items, LIBRIVOX[1][0])  # "he was not an ill disposed young man"
    plain = engine.transcribe_batch([card, lib])
    prompted_eng = WhisperEngine(
        tiny_path, WhisperOptions(initial_prompt="Ten of clubs. Four of spades. He was ill-disposed."), RUNTIME
    )
    prompted = prompted_eng.transcribe_batch([card, lib])
    print(f"\nwithout prompt: {[t.text for t in plain]}\nwith prompt:    {[t.text for t in prompted]}")
    assert [t.text for t in prompted] != [t.text for t in plain]
    # measured with tiny.en int8: "10 of clubs." -> "Ten of clubs." and "old-sposed" -> "ill-disposed"
    spelled = plain[0].text.startswith("10") and prompted[0].text.startswith("Ten")
    fixed = "ill-disposed" in prompted[1].text and "ill-disposed" not in plain[1].text
    assert spelled or fixed
    # the sequential path takes the prompt the same way
    assert sequential(prompted_eng, card).text == prompted[0].text


def test_max_new_tokens_truncates(tiny_path, engine, items, default_results):
    res, _ = default_results
    eng = WhisperEngine(tiny_path, WhisperOptions(max_new_tokens=3), RUNTIME)
    tok = eng.model.hf_tokenizer
    n_tokens = lambda text: len(tok.encode(" " + text, add_special_tokens=False).ids)  # noqa: E731
    short = eng.transcribe_batch(items[:5])
    seq = [sequential(eng, it) for it in items[:2]]
    for full, t in zip(res[:5], short):
        assert t.error is None
        assert 1 <= n_tokens(t.text) <= 3, t.text  # 3 new tokens, timestamp tokens included
        assert n_tokens(full.text) > 5
    for t in seq:
        assert 1 <= n_tokens(t.text) <= 3, t.text
    with pytest.raises(ValueError, match="maxNewTokens"):
        WhisperOptions(max_new_tokens=0)


class _RecordingModel:
    """Records the keyword arguments of every ``generate`` call on a CTranslate2 Whisper model."""

    def __init__(self, inner):
        self._inner = inner
        self.calls = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def generate(self, *args, **kwargs):
        self.calls.append(kwargs)
        return self._inner.generate(*args, **kwargs)


def test_temperature_fallback_runs(tiny_path, items, monkeypatch):
    # A log-prob threshold no real decode meets (-0.01) makes every temperature fail its check:
    # the batched decode hands the items to the sequential algorithm, which retries at 0.5.
    opts = WhisperOptions(temperature=(0.0, 0.5), log_prob_threshold=-0.01, no_speech_threshold=None)
    eng = WhisperEngine(tiny_path, opts, RUNTIME)
    rec = _RecordingModel(eng.model.model)
    monkeypatch.setattr(eng.model, "model", rec)
    res = eng.transcribe_batch([items[1], items[5]])
    temps = [c.get("sampling_temperature", 0.0) for c in rec.calls]
    assert 0.5 in temps, rec.calls
    for t in res:
        assert t.error is None and t.text.strip()
        assert t.extra["path"] == "sequential"


def test_sampling_with_top_k_and_seed_is_deterministic(tiny_path, items):
    """A batch of two (a card clip and a LibriVox sentence): seeded sampling over a batch, decoded
    three times (sampling at temperature 1 can run long on a clip, so few clips)."""
    opts = WhisperOptions(temperature=(1.0,), top_k=20, best_of=1, seed=1234, timestamps="none")
    eng = WhisperEngine(tiny_path, opts, RUNTIME)
    batch = [items[5], items[1]]
    first = [t.text for t in eng.transcribe_batch(batch)]
    second = [t.text for t in eng.transcribe_batch(batch)]
    again = [t.text for t in WhisperEngine(tiny_path, opts, RUNTIME).transcribe_batch(batch)]
    assert first == second == again
    assert all(first)
    # the sequential path too (top_k applied through the _TopKModel proxy; a fresh replica per call)
    assert sequential(eng, items[5]).text == sequential(eng, items[5]).text


def test_top_k_proxy_applies_top_k_only_to_sampling():
    class Inner:
        def generate(self, *a, **kw):
            return kw

    proxy = whisper_model._TopKModel(Inner(), 7)
    assert proxy.generate(sampling_temperature=0.5, sampling_topk=0)["sampling_topk"] == 7
    assert "sampling_topk" not in proxy.generate(beam_size=5)


def test_top_p_below_one_is_refused():
    with pytest.raises(ValueError, match="topP < 1 .*not supported.*topK"):
        WhisperOptions(top_p=0.9)
    with pytest.raises(ValueError, match="topP must be in"):
        WhisperOptions(top_p=0.0)
    assert WhisperOptions(top_p=1.0).top_p == 1.0


@pytest.mark.parametrize(
    "opts,match",
    [
        (WhisperOptions(task="translate"), "English-only.*translate"),
        (WhisperOptions(language="fr"), "English-only.*'fr'"),
    ],
)
def test_english_only_model_refuses_other_languages_and_translation(tiny_path, opts, match):
    with pytest.raises(ValueError, match=match):
        WhisperEngine(tiny_path, opts, RUNTIME)


def test_invalid_options_are_refused():
    for bad in (
        dict(task="summarize"),
        dict(timestamps="char"),
        dict(beam_size=0),
        dict(temperature=()),
        dict(top_k=-1),
    ):
        with pytest.raises(ValueError):
            WhisperOptions(**bad)
    with pytest.raises(ValueError, match="computeType"):
        RuntimeOptions(compute_type="int4")


# ---------------------------------------------------------------------------------------------
# Multilingual model: language detection
# ---------------------------------------------------------------------------------------------


def test_language_detection_with_multilingual_base(items, refs):
    base = resolve_whisper_model("base")
    eng = WhisperEngine(base.path, WhisperOptions(), RUNTIME)
    assert eng.multilingual
    subset = [items[0], items[3]]
    res = eng.transcribe_batch(subset)
    seq = sequential(eng, items[0])
    for t in res + [seq]:
        assert t.error is None
        assert t.language == "en"
        assert t.language_probability is not None and 0.5 < t.language_probability <= 1.0
        assert t.duration_s > 0 and t.source
    assert [t.extra["path"] for t in res] == ["batched", "batched"]
    wer = corpus_wer([refs[0], refs[3]], [t.text for t in res])
    print(f"\n[base] language {[(t.language, round(t.language_probability, 3)) for t in res]}, WER {wer:.4f}")
    assert wer <= WER_GATE
    # a multilingual model accepts an explicit language and translation
    WhisperEngine(base.path, WhisperOptions(language="fr", task="translate"), RUNTIME)
    with pytest.raises(ValueError, match="unknown language"):
        WhisperEngine(base.path, WhisperOptions(language="xx"), RUNTIME)


# ---------------------------------------------------------------------------------------------
# Bad items, model cache, no torch on executors
# ---------------------------------------------------------------------------------------------


def test_bad_items_give_error_transcripts_without_stopping_the_batch(engine, items):
    good = items[5]
    batch = [
        AudioItem(samples=None, source="s3://bucket/broken.mp3", error="not a decodable audio file"),
        good,
        AudioItem(samples=None, source="missing.wav"),
        AudioItem(samples=np.zeros(0, np.float32), source="empty.wav"),
        AudioItem(samples=np.full(16000, np.nan, np.float32), source="nan.wav"),
        AudioItem(samples=None, source="", error="boom"),
        items[6],
    ]
    res = engine.transcribe_batch(batch)
    assert len(res) == len(batch)
    assert res[0].error == "s3://bucket/broken.mp3: not a decodable audio file" and res[0].text == ""
    assert res[1].error is None and res[1].text and res[1].source == good.source
    assert res[2].error.startswith("missing.wav: ")
    assert res[3].error.startswith("empty.wav: ") and "zero length" in res[3].error
    assert res[4].error.startswith("nan.wav: ") and "NaN" in res[4].error and res[4].text == ""
    assert res[5].error == "<in-memory audio>: boom"
    assert res[6].error is None and res[6].text
    assert [r.source for r in res] == [it.source for it in batch]


def test_model_loaded_once_per_process(tiny_path, engine):
    loads = lambda: whisper_mod.LOAD_COUNT.get(tiny_path, 0)  # noqa: E731  (path -> loads)
    before = loads()
    assert before >= 1
    engines = [
        WhisperEngine(tiny_path, WhisperOptions(beam_size=b, timestamps=ts), RUNTIME)
        for b, ts in ((1, "none"), (5, "word"), (2, "segment"))
    ]
    assert all(e.model is engine.model for e in engines)
    assert loads() == before
    e1 = get_engine(tiny_path, WhisperOptions(beam_size=3), RUNTIME)
    assert get_engine(tiny_path, WhisperOptions(beam_size=3), RUNTIME) is e1
    assert loads() == before
    # another runtime is another model (evicted first: an earlier test may have loaded it)
    other = RuntimeOptions(cpu_threads=1)
    whisper_model._MODELS.pop((tiny_path, other), None)
    before = loads()
    WhisperEngine(tiny_path, WhisperOptions(), other)
    assert loads() == before + 1


NO_TORCH_SCRIPT = textwrap.dedent(
    """
    import json, sys
    for name in ("torch", "transformers", "torchaudio"):
        sys.modules[name] = None  # any import of these now raises ImportError
    from sparkasr.audio import decode_audio
    from sparkasr.whisper.models import resolve_whisper_model
    from sparkasr.records import AudioItem
    import sparkasr.whisper as w
    path = resolve_whisper_model(None).path
    rt = w.RuntimeOptions(cpu_threads=2)
    engines = [w.WhisperEngine(path, w.WhisperOptions(beam_size=b), rt) for b in (5, 1, 5)]
    item = AudioItem(decode_audio(sys.argv[1]), source=sys.argv[1])
    texts = [e.transcribe_batch([item])[0].text for e in engines[:2]]
    from sparkasr.whisper.sequential import decode_sequential
    texts.append(decode_sequential(engines[2].decoder(), item).text)
    print(json.dumps({"texts": texts, "loads": w.LOAD_COUNT,
                      "torch": sys.modules.get("torch") is not None}))
    """
)


def test_engine_runs_without_torch(tmp_path):
    clip = str(LIBRIVOX[0][0])
    env = dict(os.environ)
    src = str(Path(whisper_mod.__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH_SCRIPT, clip], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["torch"] is False
    assert out["loads"] == {resolve_whisper_model(None).path: 1}  # three engines, one model load
    assert all("Dashwood" in t for t in out["texts"]), out["texts"]
