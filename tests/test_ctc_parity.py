"""ONNX Runtime path vs transformers, on real speech clips, with tiny random-weight wav2vec2 and
HuBERT CTC models built at test time (tests/fixtures/make_ctc_models.py).

Tolerance: logits agree within LOGIT_ATOL (max abs difference; measured about 5e-5 for logits of
magnitude ~10-40), and decoded text is *identical* to ``Wav2Vec2Processor.batch_decode``.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from ctc_support import tiny_int8, tiny_models, tiny_other
from sparkasr.ctc import decode as D
from sparkasr.ctc.checkpoint import CheckpointError, load_checkpoint
from sparkasr.ctc.engine import CTCEngine, CTCOptions
from sparkasr.records import AudioItem

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

LOGIT_ATOL = 2e-4
KINDS = ("wav2vec2", "hubert")


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    return tiny_models()


@pytest.fixture(scope="module")
def audio(clips):
    out = []
    for path, _ref in clips:
        x, sr = sf.read(str(path), dtype="float32")
        assert sr == 16000 and x.ndim == 1
        out.append((path.name, x))
    return out


_HF = {}


def hf(models, kind):
    if kind not in _HF:
        from transformers import AutoModelForCTC, Wav2Vec2Processor

        d = models[kind]["hf"]
        _HF[kind] = (AutoModelForCTC.from_pretrained(str(d)).eval(), Wav2Vec2Processor.from_pretrained(str(d)))
    return _HF[kind]


def hf_logits(models, kind, x):
    model, proc = hf(models, kind)
    inputs = proc(x, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        return model(**inputs).logits[0].numpy()


def onnx_engine(models, kind, **opts):
    return CTCEngine(models[kind]["onnx"], CTCOptions(num_threads=1, **opts))


@pytest.mark.parametrize("kind", KINDS)
def test_logits_match_transformers(models, audio, kind):
    eng = onnx_engine(models, kind)
    worst = 0.0
    for name, x in audio:
        ref = hf_logits(models, kind, x)
        got = eng.logits(x)
        assert got.shape == ref.shape, name
        diff = float(np.abs(got - ref).max())
        worst = max(worst, diff)
        assert diff < LOGIT_ATOL, f"{kind} {name}: max abs logit diff {diff}"
        assert float(np.abs(ref).max()) > 5.0  # the head is scaled: a real margin, not tiny values
    print(
        f"{kind}: max abs logit diff {worst:.3g} (tolerance {LOGIT_ATOL}), max |logit| {float(np.abs(ref).max()):.1f}"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_text_is_exactly_batch_decode(models, audio, kind):
    _model, proc = hf(models, kind)
    eng = onnx_engine(models, kind, batch_size=4)
    out = eng.transcribe_batch([AudioItem(x, source=name) for name, x in audio])
    for (name, x), t in zip(audio, out):
        ids = hf_logits(models, kind, x).argmax(-1)
        ref = proc.batch_decode(ids[None])[0]
        assert t.error is None
        assert t.text == ref, f"{kind} {name}"
        # random weights still give varied text: many distinct characters, several words
        assert len(set(ref.replace(" ", ""))) >= 8, ref
        assert len(ref.split()) >= 3, ref


@pytest.mark.parametrize("kind", KINDS)
def test_offsets_match_tokenizer(models, audio, kind):
    _model, proc = hf(models, kind)
    vocab = load_checkpoint(models[kind]["onnx"]).vocab
    for name, x in audio[:4]:
        ids = hf_logits(models, kind, x).argmax(-1)
        ref = proc.tokenizer.decode(ids, output_char_offsets=True, output_word_offsets=True)
        ours = D.decode_ids(ids, vocab)
        assert ours.text == ref.text
        assert [(c.char, c.start_offset, c.end_offset) for c in ours.char_offsets] == [
            (c["char"], int(c["start_offset"]), int(c["end_offset"])) for c in ref.char_offsets
        ]
        assert [(w.word, w.start_offset, w.end_offset) for w in ours.word_offsets] == [
            (w["word"], int(w["start_offset"]), int(w["end_offset"])) for w in ref.word_offsets
        ]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=33), max_size=80))
def test_decode_equals_transformers_tokenizer_on_any_ids(models, seq):
    _model, proc = hf(models, "wav2vec2")
    vocab = load_checkpoint(models["wav2vec2"]["onnx"]).vocab
    ref = proc.tokenizer.decode(seq) if seq else ""
    assert D.decode_ids(seq, vocab).text == ref


def test_masked_batch_matches_transformers_padded_batch(models, audio):
    """HuBERT (attention mask): our padded, length-grouped batches give transformers' padded-batch
    logits for each row, and the same text as each row alone."""
    model, proc = hf(models, "hubert")
    xs = [x for _, x in audio[5:]]  # the five short cards clips, different lengths
    inputs = proc(xs, sampling_rate=16000, return_tensors="pt", padding=True)
    assert "attention_mask" in inputs
    with torch.inference_mode():
        ref = model(**inputs).logits.numpy()
    eng = onnx_engine(models, "hubert", batch_size=8, max_padding_ratio=0.9)
    cfg = eng.features
    from sparkasr.ctc.features import pad_batch, prepare

    values, mask = pad_batch([prepare(x, cfg) for x in xs], cfg)
    got = eng.backend(values, mask)
    for i, x in enumerate(xs):
        n = cfg.output_length(len(x))
        assert np.abs(got[i, :n] - ref[i, :n]).max() < LOGIT_ATOL
    texts = [t.text for t in eng.transcribe_batch([AudioItem(x) for x in xs])]
    assert texts == [proc.batch_decode(hf_logits(models, "hubert", x).argmax(-1)[None])[0] for x in xs]


@pytest.mark.parametrize("kind", KINDS)
def test_chunked_long_audio_matches_transformers_pipeline(models, audio, kind):
    from transformers import pipeline

    model, proc = hf(models, kind)
    asr = pipeline(
        "automatic-speech-recognition",
        model=model,
        tokenizer=proc.tokenizer,
        feature_extractor=proc.feature_extractor,
        device="cpu",
    )
    long = np.concatenate([x for _, x in audio[:3]])  # ~15 s
    kw = dict(chunk_length_s=4.0, stride_length_s=(1.0, 0.5))
    ref = asr(long, return_timestamps="word", **kw)
    eng = onnx_engine(models, kind, **kw)
    t = eng.transcribe(long)
    assert t.extra["chunks_in"] >= 4
    assert t.text == ref["text"]
    assert [(c.text, c.start, c.end) for c in t.chunks] == [
        (c["text"], round(float(c["timestamp"][0]), 3), round(float(c["timestamp"][1]), 3)) for c in ref["chunks"]
    ]
    # the same row unchunked is a different computation (attention sees the whole file) but the
    # stitched logits still cover exactly the unchunked frames
    whole = onnx_engine(models, kind).logits(long)
    assert eng.logits(long).shape == whole.shape


def test_word_timestamps_use_the_model_stride(models, audio):
    name, x = audio[0]
    for kind, ratio in (("wav2vec2", 320), ("hubert", 160)):
        eng = onnx_engine(models, kind)
        assert eng.ratio == ratio
        t = eng.transcribe(x)
        assert t.chunks and t.chunks[-1].end <= len(x) / 16000 + 1e-6
        ids = hf_logits(models, kind, x).argmax(-1)
        words = hf(models, kind)[1].tokenizer.decode(ids, output_word_offsets=True).word_offsets
        assert [(c.start, c.end) for c in t.chunks] == [
            (round(w["start_offset"] * ratio / 16000, 3), round(w["end_offset"] * ratio / 16000, 3)) for w in words
        ]


@pytest.mark.parametrize("kind", KINDS)
def test_transformers_backend_gives_the_same_text(models, audio, kind):
    onnx = onnx_engine(models, kind)
    tb = CTCEngine(models[kind]["hf"], CTCOptions(backend="transformers", num_threads=1))
    items = [AudioItem(x, source=n) for n, x in audio[:4]]
    assert [t.text for t in tb.transcribe_batch(items)] == [t.text for t in onnx.transcribe_batch(items)]


@pytest.mark.parametrize("kind", ("data2vec-audio", "wavlm"))
def test_other_ctc_architectures_same_code(audio, kind):
    """data2vec-audio (no mask) and WavLM (mask, relative position bias) run through the same
    conversion and engine, batched, with transformers' logits and text."""
    from transformers import AutoModelForCTC, Wav2Vec2Processor

    paths = tiny_other(kind)
    model = AutoModelForCTC.from_pretrained(str(paths["hf"])).eval()
    proc = Wav2Vec2Processor.from_pretrained(str(paths["hf"]))
    eng = CTCEngine(paths["onnx"], CTCOptions(num_threads=1, batch_size=8, max_padding_ratio=0.9))
    clips5 = [x for _, x in audio[5:]]
    out = eng.transcribe_batch([AudioItem(x) for x in clips5])
    for x, t in zip(clips5, out):
        with torch.inference_mode():
            ref = model(**proc(x, sampling_rate=16000, return_tensors="pt")).logits[0].numpy()
        assert np.abs(eng.logits(x) - ref).max() < LOGIT_ATOL
        text = proc.batch_decode(ref.argmax(-1)[None])[0]
        assert t.text == text and len(set(text)) >= 6


def test_int8_model_runs_and_stays_close(models, audio):
    q = CTCEngine(tiny_int8("wav2vec2"), CTCOptions(num_threads=1))
    meta = json.loads((tiny_int8("wav2vec2") / "sparkasr_ctc.json").read_text())
    assert meta["quantize"] == "int8"
    fp = onnx_engine(models, "wav2vec2")
    _, x = audio[0]
    a, b = q.logits(x), fp.logits(x)
    assert a.shape == b.shape
    # quantisation error is real but small relative to the logits' spread
    corr = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert corr > 0.95, corr
    assert q.transcribe(x).text


def test_convert_refuses_pickle_unless_allowed(models, tmp_path, capsys):
    from sparkasr.convert.command import convert_main

    src = tmp_path / "pickled"
    shutil.copytree(models["wav2vec2"]["hf"], src)
    from safetensors.torch import load_file

    state = load_file(str(src / "model.safetensors"))
    (src / "model.safetensors").unlink()
    torch.save(state, str(src / "pytorch_model.bin"))
    assert convert_main(["--model", str(src), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "pytorch_model.bin" in err and "--allow-pickle" in err
    assert not (tmp_path / "out" / "model.onnx").exists()
    assert convert_main(["--model", str(src), "--output", str(tmp_path / "out"), "--allow-pickle"]) == 0
    eng = CTCEngine(tmp_path / "out", CTCOptions(num_threads=1))
    ref = onnx_engine(models, "wav2vec2")
    x = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    np.testing.assert_allclose(eng.logits(x), ref.logits(x), atol=LOGIT_ATOL)
    # the transformers backend refuses the pickle too
    with pytest.raises(CheckpointError, match="allow_pickle"):
        CTCEngine(src, CTCOptions(backend="transformers"))


def test_convert_rejects_non_ctc_checkpoints(models, tmp_path, capsys):
    from sparkasr.convert.command import convert_main

    src = tmp_path / "bad"
    shutil.copytree(models["hubert"]["hf"], src)
    cfg = json.loads((src / "config.json").read_text())
    cfg["model_type"] = "bert"  # (a "whisper" model_type is exported as Whisper: tests/test_whisper_onnx.py)
    (src / "config.json").write_text(json.dumps(cfg))
    assert convert_main(["--model", str(src), "--output", str(tmp_path / "o")]) == 2
    assert "not a supported CTC model" in capsys.readouterr().err
    assert convert_main(["--model", str(tmp_path / "missing"), "--output", str(tmp_path / "o")]) == 2
    # an HF dir without model.onnx cannot run on the ONNX backend, and says how to convert
    with pytest.raises(CheckpointError, match="sparkasr convert"):
        CTCEngine(models["hubert"]["hf"])
