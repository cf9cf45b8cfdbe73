"""CTC decoding, timestamps, chunk stitching and the engine's batching/error handling, on hand-made
logits and fake backends: no torch, no model weights."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from ctc_support import VOCAB, write_checkpoint_dir
from sparkasr.ctc import decode as D
from sparkasr.ctc.engine import CTCEngine, CTCOptions
from sparkasr.ctc.features import FeatureConfig, length_groups, normalize
from sparkasr.records import AudioItem

V = D.CTCVocab.from_vocab(VOCAB)
BLANK = "<pad>"


def ids(*tokens: str):
    return [VOCAB[t] for t in tokens]


def spell(text: str, blank_between_repeats: bool = True, repeat: int = 1):
    """Frame ids for ``text``: each char ``repeat`` frames, blank between doubled letters."""
    out = []
    prev = None
    for ch in text:
        tok = "|" if ch == " " else ch
        if blank_between_repeats and tok == prev:
            out.append(BLANK)
        out.extend([tok] * repeat)
        prev = tok
    return ids(*out)


def one_hot(id_seq, n=len(VOCAB), scale=10.0):
    lg = np.zeros((len(id_seq), n), dtype=np.float32)
    lg[np.arange(len(id_seq)), id_seq] = scale
    return lg


# --------------------------------------------------------------------------------------------
# Greedy decoding
# --------------------------------------------------------------------------------------------


def test_doubled_letters_survive_when_a_blank_separates_them():
    # "collapse repeats THEN remove blanks": D D with a blank between is two Ds
    seq = spell("MIDDLE CLASSES", repeat=2)
    assert D.decode_ids(seq, V).text == "MIDDLE CLASSES"
    # Spark NLP's Scala decoder removes blanks first and prints "MIDLE CLASES"; a reference of
    # that (wrong) order on the same frames proves the test input distinguishes the two
    no_blank = [t for t in seq if t != VOCAB[BLANK]]
    wrong = "".join(k for k, _ in itertools.groupby(V.tokens[t] for t in no_blank)).replace("|", " ")
    assert wrong == "MIDLE CLASES"


def test_repeats_without_blank_collapse():
    assert D.decode_ids(ids("H", "H", "H", "E", "E", "Y"), V).text == "HEY"
    assert D.decode_ids(spell("AA", blank_between_repeats=False, repeat=3), V).text == "A"


def test_blanks_and_delimiters():
    seq = ids(BLANK, "|", "|", "A", BLANK, "|", BLANK, "|", "B", "B", "|", BLANK)
    # leading/trailing delimiters are stripped; a blank between two delimiters keeps two spaces
    # (what transformers does too)
    assert D.decode_ids(seq, V).text == "A  B"
    assert D.decode_ids(ids(BLANK, BLANK), V).text == ""
    assert D.decode_ids([], V).text == ""


def test_special_tokens_are_printed_like_transformers_batch_decode():
    assert D.decode_ids(ids("A", "<unk>", "B", "<s>"), V).text == "A<unk>B<s>"
    # ids outside the vocab decode as unk
    assert D.decode_ids([VOCAB["A"], 99], V).text == "A<unk>"


def test_case_follows_the_vocab_unless_do_lower_case():
    seq = spell("HELLO WORLD")
    assert D.decode_ids(seq, V).text == "HELLO WORLD"
    lower = D.CTCVocab.from_vocab(VOCAB, do_lower_case=True)
    assert D.decode_ids(seq, lower).text == "hello world"
    lc_vocab = {k.lower() if len(k) == 1 else k: v for k, v in VOCAB.items()}
    assert D.decode_ids(seq, D.CTCVocab.from_vocab(lc_vocab)).text == "hello world"


def test_char_and_word_offsets():
    # frame:  0     1 2 3     4 5 6 7 8 9    10 11 12
    seq = ids(BLANK, "H", "H", "I", BLANK, "|", "|", "Y", "O", BLANK, "O", "|", BLANK)
    d = D.decode_ids(seq, V)
    assert d.text == "HI YOO"
    assert [(c.char, c.start_offset, c.end_offset) for c in d.char_offsets] == [
        ("H", 1, 3),
        ("I", 3, 4),
        (" ", 5, 7),
        ("Y", 7, 8),
        ("O", 8, 9),
        ("O", 10, 11),
        (" ", 11, 12),
    ]
    assert [(w.word, w.start_offset, w.end_offset) for w in d.word_offsets] == [("HI", 1, 4), ("YOO", 7, 11)]


def test_frames_to_seconds_uses_the_stride():
    assert D.frames_to_seconds(50, 320) == pytest.approx(1.0)
    assert D.frames_to_seconds(50, 160) == pytest.approx(0.5)
    cfg = FeatureConfig()
    assert cfg.inputs_to_logits_ratio == 320
    assert cfg.min_samples == 400
    assert cfg.output_length(16000) == 49
    assert cfg.output_length(399) == 0 and cfg.output_length(400) == 1
    half = FeatureConfig(conv_stride=(5, 2, 2, 2, 2, 2, 1))
    assert half.inputs_to_logits_ratio == 160
    assert half.output_length(16000) == 98  # last conv: kernel 2, stride 1


def _reference_decode(seq):
    """Independent implementation of transformers' CTC decode (groupby, drop pad, map '|')."""
    chars = [k for k, _ in itertools.groupby(V.tokens[i] for i in seq)]
    chars = [" " if c == "|" else c for c in chars if c != BLANK]
    return "".join(chars).strip()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0, 0, 0, 4, 4, 5, 6, 7, 3, 1]), max_size=60))
def test_decode_matches_reference_on_random_sequences(seq):
    d = D.decode_ids(seq, V)
    assert d.text == _reference_decode(seq)
    # offsets are consistent with the collapsed runs
    for c in d.char_offsets:
        assert c.end_offset > c.start_offset
        run = set(seq[c.start_offset : c.end_offset])
        assert len(run) == 1
    assert " ".join(w.word for w in d.word_offsets) == " ".join(d.text.split())


def test_greedy_decode_uses_argmax():
    seq = spell("CAT")
    lg = one_hot(seq) + np.random.default_rng(0).normal(0, 0.1, (len(seq), len(VOCAB))).astype(np.float32)
    assert D.greedy_decode(lg, V).text == "CAT"
    with pytest.raises(ValueError):
        D.greedy_decode(lg[None], V)


# --------------------------------------------------------------------------------------------
# Chunk planning and stitching
# --------------------------------------------------------------------------------------------


def test_chunk_sizes_are_aligned_to_the_stride():
    assert D.chunk_sizes(10.0, None, 320) == (160000, 26560, 26560)  # 10/6 s rounded to 320
    assert D.chunk_sizes(4.0, (1.0, 0.5), 320) == (64000, 16000, 8000)
    with pytest.raises(ValueError):
        D.chunk_sizes(1.0, (0.6, 0.6), 320)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=400, max_value=300000), st.integers(2, 12), st.integers(0, 3), st.integers(0, 3))
def test_plan_chunks_covers_everything(n, chunk_frames, left_frames, right_frames):
    chunk = (chunk_frames + left_frames + right_frames) * 320 * 10
    left, right = left_frames * 3200, right_frames * 3200
    spans = D.plan_chunks(n, chunk, left, right)
    assert spans[0].start == 0 and spans[0].left == 0
    assert spans[-1].end == n and spans[-1].right == 0
    for a, b in zip(spans, spans[1:]):
        # the kept parts tile the input: a's kept end == b's kept start
        assert a.end - a.right == b.start + b.left
        assert b.start - a.start == chunk - left - right


def _local_logits(x: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """A 'model' whose frame f depends only on the samples of its receptive field."""
    n = cfg.output_length(len(x))
    rf, hop = cfg.min_samples, cfg.inputs_to_logits_ratio
    out = np.zeros((n, len(VOCAB)), dtype=np.float32)
    for f in range(n):
        w = x[f * hop : f * hop + rf]
        out[f, int(abs(w).sum() * 1000) % len(VOCAB)] = 5.0
        out[f, :] += np.float32(w[:4].sum())
    return out


class LocalBackend:
    """Fake backend running :func:`_local_logits` row by row; records the batches it sees."""

    has_attention_mask = True

    def __init__(self, cfg: FeatureConfig, fail_on_length=None):
        self.cfg = cfg
        self.calls = []
        self.fail_on_length = fail_on_length

    def __call__(self, values, mask=None):
        lengths = [int(m.sum()) for m in mask] if mask is not None else [values.shape[1]] * len(values)
        self.calls.append((values.shape, None if mask is None else lengths))
        if self.fail_on_length is not None and self.fail_on_length in lengths:
            raise RuntimeError("backend exploded")
        frames = self.cfg.output_length(values.shape[1])
        out = np.zeros((len(values), frames, len(VOCAB)), dtype=np.float32)
        for i, (row, n) in enumerate(zip(values, lengths)):
            lg = _local_logits(row[:n], self.cfg)
            out[i, : len(lg)] = lg
        return out


@pytest.fixture(scope="module")
def speech(data_dir):
    x, sr = sf.read(str(sorted((data_dir / "librivox").glob("*.wav"))[0]), dtype="float32")
    assert sr == 16000
    return x


def _engine(tmp_path: Path, **opts):
    ckpt = write_checkpoint_dir(tmp_path / "ckpt", do_normalize=False, **opts.pop("ckpt", {}))
    from sparkasr.ctc.checkpoint import load_checkpoint

    cfg = load_checkpoint(ckpt).features
    backend = opts.pop("backend", None) or LocalBackend(cfg)
    return CTCEngine(ckpt, CTCOptions(**opts), backend=backend), backend


@pytest.mark.parametrize("chunk,strides", [(1.0, (0.2, 0.2)), (1.5, None), (2.0, (0.5, 0.1))])
def test_chunked_logits_equal_unchunked_for_a_local_model(tmp_path, speech, chunk, strides):
    whole, _ = _engine(tmp_path / "a")
    chunked, backend = _engine(tmp_path / "b", chunk_length_s=chunk, stride_length_s=strides)
    ref = whole.logits(speech)
    got = chunked.logits(speech)
    assert len(backend.calls) > 0 and sum(s[0] for s, _ in backend.calls) > 3  # really chunked
    assert got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)
    assert chunked.transcribe(speech).text == whole.transcribe(speech).text
    assert len(set(whole.transcribe(speech).text)) > 5


def test_stitch_drops_stride_frames_exactly():
    # 3 chunks of 10 frames each (3200 samples), stride 2 frames (640 samples) each side
    spans = D.plan_chunks(3200 + 2 * 1920, 3200, 640, 640)
    assert [(s.start, s.end, s.left, s.right) for s in spans] == [
        (0, 3200, 0, 640),
        (1920, 5120, 640, 640),
        (3840, 7040, 640, 0),
    ]
    chunks = [np.full((10, 1), i, dtype=np.float32) for i in range(3)]
    out = D.stitch(chunks, spans, 320)
    assert out[:, 0].tolist() == [0] * 8 + [1] * 6 + [2] * 8


def test_repeat_across_a_chunk_boundary_collapses_like_unchunked():
    spans = D.plan_chunks(3200 + 1920, 3200, 640, 640)
    a = np.array(ids(*(["<pad>"] * 6 + ["A", "A"] + ["B", "B"])))  # kept: 8 frames, ends with A
    b = np.array(ids(*(["Z", "Z"] + ["A", "A", "C"] + ["<pad>"] * 5)))  # kept from frame 2: A A C
    s = D.stitch([one_hot(a), one_hot(b)], spans, 320)
    assert D.greedy_decode(s, V).text == "AC"


# --------------------------------------------------------------------------------------------
# Engine: batching, padding, timestamps, errors
# --------------------------------------------------------------------------------------------


def test_unmasked_models_batch_only_identical_lengths(tmp_path, speech):
    eng, backend = _engine(tmp_path, batch_size=8)
    items = [AudioItem(speech[:n], source=f"r{n}") for n in (16000, 16000, 20000, 16000, 24000, 20000)]
    out = eng.transcribe_batch(items)
    assert [t.error for t in out] == [None] * 6
    shapes = sorted(s for s, _ in backend.calls)
    assert shapes == [(1, 24000), (2, 20000), (3, 16000)]
    assert all(m is None for _, m in backend.calls)  # no mask for models trained without one
    single = [eng.transcribe(it.samples).text for it in items]
    assert [t.text for t in out] == single


def test_masked_models_pad_similar_lengths(tmp_path, speech):
    eng, backend = _engine(tmp_path, batch_size=8, ckpt={"return_attention_mask": True})
    items = [AudioItem(speech[:n]) for n in (16000, 15000, 14000, 40000)]
    out = eng.transcribe_batch(items)
    assert sorted((s, tuple(m)) for s, m in backend.calls) == [
        ((1, 40000), (40000,)),
        ((3, 16000), (16000, 15000, 14000)),
    ]
    assert [t.text for t in out] == [eng.transcribe(it.samples).text for it in items]


def test_length_groups_respect_limits():
    lengths = [100, 100, 100, 90, 50, 10]
    assert length_groups(lengths, 8, exact=True) == [[0, 1, 2], [3], [4], [5]]
    assert length_groups(lengths, 2, exact=True) == [[0, 1], [2], [3], [4], [5]]
    assert length_groups(lengths, 8, exact=False, max_padding_ratio=0.2) == [[0, 1, 2, 3], [4], [5]]
    assert length_groups(lengths, 8, exact=False, max_padding_ratio=0.2, max_batch_samples=250) == [
        [0, 1],
        [2, 3],
        [4],
        [5],
    ]


class FixedBackend:
    """Returns the same frame-id sequence (repeated/truncated) for every row."""

    has_attention_mask = False

    def __init__(self, cfg, seq):
        self.cfg, self.seq = cfg, seq

    def __call__(self, values, mask=None):
        n = self.cfg.output_length(values.shape[1])
        seq = (self.seq * (n // len(self.seq) + 1))[:n]
        return np.stack([one_hot(seq)] * len(values))


@pytest.mark.parametrize("stride,ratio", [((5, 2, 2, 2, 2, 2, 2), 320), ((5, 2, 2, 2, 2, 2, 1), 160)])
def test_word_and_char_timestamps(tmp_path, stride, ratio):
    seq = ids(BLANK, "H", "H", "I", BLANK, "|", "|", "Y", "O", BLANK, "O", "|") + [0] * 200
    ckpt = write_checkpoint_dir(tmp_path / "w", conv_stride=stride)
    from sparkasr.ctc.checkpoint import load_checkpoint

    cfg = load_checkpoint(ckpt).features
    audio = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    eng = CTCEngine(ckpt, CTCOptions(timestamps="word"), backend=FixedBackend(cfg, seq))
    t = eng.transcribe_batch([AudioItem(audio, source="x.wav", offset_s=10.0)])[0]
    assert t.text == "HI YOO" and t.error is None
    sec = ratio / 16000
    assert [(c.text, c.start, c.end, c.kind) for c in t.chunks] == [
        ("HI", round(10 + 1 * sec, 3), round(10 + 4 * sec, 3), "word"),
        ("YOO", round(10 + 7 * sec, 3), round(10 + 11 * sec, 3), "word"),
    ]
    assert all(0.99 < c.probability <= 1.0 for c in t.chunks)
    eng_c = CTCEngine(ckpt, CTCOptions(timestamps="char"), backend=FixedBackend(cfg, seq))
    tc = eng_c.transcribe(audio)
    assert [c.text for c in tc.chunks] == ["H", "I", " ", "Y", "O", "O", " "]
    assert tc.chunks[0].start == round(1 * sec, 3) and tc.chunks[0].end == round(3 * sec, 3)
    eng_n = CTCEngine(ckpt, CTCOptions(timestamps="none"), backend=FixedBackend(cfg, seq))
    assert eng_n.transcribe(audio).chunks == []


def test_bad_items_become_error_rows_and_the_batch_goes_on(tmp_path, speech):
    eng, backend = _engine(tmp_path, batch_size=4)
    backend.fail_on_length = 12345
    nan = speech[:16000].copy()
    nan[100] = np.nan
    items = [
        AudioItem(speech[:16000], source="good1.wav"),
        AudioItem(None, source="broken.mp3", error="undecodable audio"),
        AudioItem(None, source="none.wav"),
        AudioItem(nan, source="nan.wav"),
        AudioItem(np.zeros((2, 8000), dtype=np.float32), source="stereo.wav"),
        AudioItem(speech[:12345], source="explodes.wav"),
        AudioItem(speech[:100], source="tiny.wav"),
        AudioItem(speech[:20000], source="good2.wav"),
    ]
    out = eng.transcribe_batch(items)
    assert len(out) == len(items)
    assert out[0].error is None and out[0].text and out[7].error is None and out[7].text
    assert out[1].error.startswith("broken.mp3") and "undecodable" in out[1].error
    assert out[2].error.startswith("none.wav")
    assert "NaN" in out[3].error and out[3].error.startswith("nan.wav")
    assert "mono" in out[4].error
    assert out[5].error.startswith("explodes.wav") and "backend exploded" in out[5].error
    assert out[6].error is None and out[6].text == "" and "receptive field" in out[6].extra["note"]
    assert [t.source for t in out] == [i.source for i in items]


def test_batch_failure_retries_rows_one_by_one(tmp_path, speech):
    ckpt_opts = {"return_attention_mask": True}
    eng, backend = _engine(tmp_path, batch_size=4, ckpt=ckpt_opts)
    backend.fail_on_length = 15000
    items = [AudioItem(speech[:n], source=f"{n}.wav") for n in (16000, 15000, 14500)]
    out = eng.transcribe_batch(items)
    assert out[1].error and "15000.wav" in out[1].error
    assert out[0].error is None and out[2].error is None
    assert out[0].text == eng.transcribe(speech[:16000]).text


def test_auto_chunking_bounds_memory(tmp_path, speech):
    long = np.tile(speech, 4)  # ~28 s
    eng, backend = _engine(tmp_path, max_unchunked_s=10.0, auto_chunk_length_s=5.0, max_batch_samples=16000 * 12)
    t = eng.transcribe(long)
    assert t.error is None and t.extra["chunks_in"] > 5
    assert max(s[0] * s[1] for s, _ in backend.calls) <= 16000 * 12
    whole, _ = _engine(tmp_path / "w")
    assert t.text == whole.transcribe(long).text  # local model: chunking is exact


def test_normalize_matches_formula():
    x = np.random.default_rng(1).normal(0.3, 2.0, 1000).astype(np.float32)
    y = normalize(x)
    assert abs(float(y.mean())) < 1e-5 and abs(float(y.std()) - 1) < 1e-3


def test_options_are_validated():
    with pytest.raises(ValueError):
        CTCOptions(timestamps="segment")
    with pytest.raises(ValueError):
        CTCOptions(batch_size=0)
    with pytest.raises(ValueError):
        CTCOptions(chunk_length_s=2.0, stride_length_s=(1.0, 1.0))
    with pytest.raises(ValueError):
        CTCOptions(backend="tensorflow")
