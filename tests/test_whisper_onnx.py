"""Whisper exported to ONNX (``sparkasr convert --model tiny.en``) against faster-whisper's features,
transformers' Whisper logits and CTranslate2's greedy tokens, on the real vendored clips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ALL_CLIPS
from whisper_support import OnnxGreedy, ct2_greedy, onnx_export

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("transformers")
ox = pytest.importorskip("sparkasr.convert.whisper_onnx")
tw = pytest.importorskip("sparkasr.convert.torch_whisper")


@pytest.fixture(scope="module")
def model_path():
    from sparkasr.whisper.models import resolve_whisper_model

    return resolve_whisper_model(None).path


@pytest.fixture(scope="module")
def export():
    return onnx_export()


@pytest.fixture(scope="module")
def clips():
    import soundfile as sf

    return [sf.read(str(p), dtype="float32")[0] for p, _ in ALL_CLIPS]


@pytest.fixture(scope="module")
def onnx(export, model_path):
    return OnnxGreedy(export, model_path)


@pytest.fixture(scope="module")
def ct2(model_path):
    from faster_whisper import WhisperModel

    return WhisperModel(model_path, device="cpu", compute_type="float32", cpu_threads=2)


@pytest.fixture(scope="module")
def decoded(onnx, ct2, clips):
    """Per ``timestamps`` the greedy tokens of every clip by the float32 export and by CTranslate2
    (computed on first use, shared: the ONNX/CTranslate2, alignment and int8 tests decode the same)."""
    cache = {}

    def get(timestamps: bool):
        if timestamps not in cache:
            ours = onnx.token_ids(clips, timestamps=timestamps)
            cache[timestamps] = (ours, ct2_greedy(ct2, clips, timestamps))
        return cache[timestamps]

    return get


def test_layout_is_spark_nlps_plus_front_end_and_metadata(export, model_path):
    assert ox.is_whisper_onnx_dir(export)
    names = {p.name for p in export.iterdir()}
    # no temporary files left behind
    assert names == {*ox.GRAPH_FILES, *ox.OPTIONAL_GRAPH_FILES, ox.ASSETS_DIR, ox.META_FILE, ox.VAD_FILE}
    # faster-whisper's Silero VAD, byte for byte, with its provenance and licence (the JVM's vadGate)
    from faster_whisper.utils import get_assets_path

    assert (export / ox.VAD_FILE).read_bytes() == (tw.Path(get_assets_path()) / ox.VAD_FILE).read_bytes()
    vad = ox.read_meta(export)["vad"]
    assert vad["file"] == ox.VAD_FILE and "MIT" in vad["license"] and "faster-whisper" in vad["source"]
    assets = export / ox.ASSETS_DIR
    for name in ("config.json", "generation_config.json", "preprocessor_config.json", "vocab.json", "merges.txt"):
        assert (assets / name).is_file(), name
    assert (assets / "tokenizer.json").read_bytes() == (tw.Path(model_path) / "tokenizer.json").read_bytes()
    meta = ox.read_meta(export)
    assert meta["tokens"]["sot"] == 50257 and meta["tokens"]["timestamp_begin"] == 50363
    assert meta["dims"]["n_vocab"] == 51864 and not meta["multilingual"] and meta["languages"] == {}
    # the keys Spark NLP's WhisperForCTC.loadSavedModel reads from assets/config.json
    cfg = json.loads((assets / "config.json").read_text())
    for key in ("begin_suppress_tokens", "suppress_tokens", "forced_decoder_ids", "max_length", "vocab_size"):
        assert key in cfg, key
    assert cfg["forced_decoder_ids"] == [[1, 50362]] and cfg["decoder_start_token_id"] == 50257
    added = json.loads((assets / "added_tokens.json").read_text())
    assert added["<|notimestamps|>"] == 50362
    # the suppressed tokens are faster-whisper's own (get_suppressed_tokens)
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    fw = WhisperModel(model_path, device="cpu", compute_type="int8", cpu_threads=1)
    tk = Tokenizer(fw.hf_tokenizer, False, task="transcribe", language="en")
    assert meta["suppress_tokens"] == list(get_suppressed_tokens(tk, [-1]))
    assert meta["suppress_tokens_begin"] == [220, 50256]
    # the vocab.json + merges.txt pair tokenizes as tokenizer.json does (for BPE readers of those files)
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    bpe = HFTokenizer(models.BPE.from_file(str(assets / "vocab.json"), str(assets / "merges.txt")))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    text = " Mr. Quilter's café, naïve — 1,234 “quotes”"
    assert bpe.encode(text).ids == fw.hf_tokenizer.encode(text, add_special_tokens=False).ids


def test_front_end_graph_equals_faster_whisper_features(onnx, clips):
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor

    fe = FeatureExtractor()
    whole = np.concatenate(clips)
    batch = clips + [whole[: 16000 * 30], whole[: 16000 * 30 - 77], clips[0][:1000]]  # 30 s exactly, and short
    ref = np.stack([pad_or_trim(fe(x)[..., :-1], 3000) for x in batch])
    ours = onnx.features(batch)  # one batch of mixed lengths: padding must not leak across rows
    assert ours.shape == ref.shape == (len(batch), 80, 3000)
    assert np.abs(ours - ref).max() < 1e-4
    single = onnx.features([clips[3]])  # a row alone (the input only as long as the row)
    assert np.abs(single[0] - ref[3]).max() < 1e-4


def test_graphs_reproduce_transformers_whisper_logits(onnx, model_path, clips):
    """Encoder states, the prompt's logits (decoder_model) and then one and two tokens at a time
    through the cache (decoder_with_past_model) equal transformers' Whisper on the same weights;
    beams sharing their input's encoder keys/values give each beam the same logits."""
    w, _ = tw.load_weights(model_path)
    hf = tw.hf_whisper(w)
    feats = onnx.features(clips[:2])
    tokens = np.array([[50257, 50363, 400, 1770, 13, 50400, 2329]] * 2, dtype=np.int64)
    with torch.no_grad():
        mel = torch.from_numpy(feats)
        ref_enc = hf.model.encoder(mel).last_hidden_state.numpy()
        ref = hf(input_features=mel, decoder_input_ids=torch.from_numpy(tokens)).logits.numpy()
    enc = onnx.encode(feats)
    assert np.abs(enc - ref_enc).max() < 2e-4
    dec, past = onnx.sessions["decoder"], onnx.sessions["decoder_with_past"]
    out = dict(
        zip(
            [o.name for o in dec.get_outputs()],
            dec.run(None, {"input_ids": tokens[:, :3], "encoder_hidden_states": enc}),
        )
    )
    state = {n.replace("present", "past_key_values"): v for n, v in out.items() if n != "logits"}
    assert state["past_key_values.0.encoder.key"].shape == (2, 6, 1500, 64)
    logits = [out["logits"]]
    for a, b in ((3, 4), (4, 6), (6, 7)):  # one token, two tokens, one token
        res = dict(zip([o.name for o in past.get_outputs()], past.run(None, {"input_ids": tokens[:, a:b], **state})))
        state.update({n.replace("present", "past_key_values"): v for n, v in res.items() if n != "logits"})
        logits.append(res["logits"])
    ours = np.concatenate(logits, axis=1)
    assert np.abs(ref).max() > 5
    assert np.abs(ours - ref).max() < 1e-3
    # three beams per input, the encoder keys/values given once per input
    beams = {
        n: (v if ".encoder." in n else np.repeat(v, 3, axis=0))
        for n, v in state.items()
        if n.startswith("past_key_values.")
    }
    res = past.run(["logits"], {"input_ids": np.repeat(tokens[:, 6:7], 3, axis=0), **beams})[0]
    alone = past.run(["logits"], {"input_ids": tokens[:, 6:7], **state})[0]
    assert np.abs(res.reshape(2, 3, -1) - alone.reshape(2, 1, -1)).max() < 1e-4


@pytest.mark.parametrize("timestamps", [True, False])
def test_onnx_greedy_tokens_equal_ctranslate2_float32_on_every_clip(onnx, decoded, timestamps):
    """The reference for the JVM decoder: onnxruntime alone, greedy, batched, gives CTranslate2's
    float32 beam-1 token ids on every vendored clip."""
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    ours, ct2_results = decoded(timestamps)
    theirs = [r.sequences_ids[0] for r in ct2_results]
    assert ours == theirs
    assert all(ours) and sum(map(len, ours)) > 100
    norm = EnglishTextNormalizer()
    refs = [" ".join(norm(r).split()) for _, r in ALL_CLIPS]
    hyps = [" ".join(norm(onnx.rules._text(t)).split()) for t in ours]
    assert jiwer.wer(refs, hyps) < 0.25


def _negative_dtw(x: np.ndarray) -> list:
    """CTranslate2's ``negative_dtw`` (src/dtw.cc), its tie rules: the reference for the graph."""
    n, m = x.shape
    cost = np.full((n + 1, m + 1), np.inf, dtype=np.float32)
    trace = -np.ones((n + 1, m + 1), dtype=int)
    cost[0, 0] = 0
    for j in range(1, m + 1):
        for i in range(1, n + 1):
            c0, c1, c2 = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
            c, t = (c0, 0) if c0 < c1 and c0 < c2 else (c1, 1) if c1 < c0 and c1 < c2 else (c2, 2)
            cost[i, j] = -x[i - 1, j - 1] + c
            trace[i, j] = t
    trace[0, :], trace[:, 0] = 2, 1
    i, j, path = n, m, []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        t = trace[i, j]
        i, j = (i - 1, j - 1) if t == 0 else (i - 1, j) if t == 1 else (i, j - 1)
    return path[::-1]


def test_alignment_graph_gives_ctranslate2s_word_alignment_path(export, ct2, clips, decoded):
    """The alignment heads' cross-attention scores (alignment_model.onnx), through CTranslate2's
    post-processing (softmax over the window's frames, standardised over tokens, median filter of
    width 7, mean over heads, negated DTW), give the path CTranslate2's ``align`` gives, on the
    greedy text of every clip: what the JVM's word timestamps start from."""
    import ctranslate2
    from faster_whisper.audio import pad_or_trim

    meta = ox.read_meta(export)
    tok = meta["tokens"]
    assert meta["files"]["alignment"] == ox.ALIGNMENT_FILE and meta["alignment_heads"]
    sess = {f: ort.InferenceSession(str(export / f)) for f in (ox.FEATURES_FILE, ox.ENCODER_FILE, ox.ALIGNMENT_FILE)}
    texts = [[t for t in r.sequences_ids[0] if t < tok["eot"]] for r in decoded(False)[1]]
    for x, text in zip(clips, texts):
        feats = sess[ox.FEATURES_FILE].run(None, {"audio": x[None].astype(np.float32), "lengths": np.array([len(x)])})[
            0
        ]
        states = sess[ox.ENCODER_FILE].run(None, {"input_features": feats})[0]
        ids = np.array([[tok["sot"], tok["no_timestamps"], *text, tok["eot"]]])
        scores = sess[ox.ALIGNMENT_FILE].run(None, {"input_ids": ids, "encoder_hidden_states": states})[0][0]
        assert scores.shape == (len(meta["alignment_heads"]), ids.shape[1], 1500)
        frames = min(int(np.ceil(len(x) / 16000)) * 100, 3000)
        w = scores[:, :, : frames // 2]
        w = np.exp(w - w.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        w = (w - w.mean(-2, keepdims=True)) / np.sqrt(w.var(-2, keepdims=True))
        idx = np.abs(np.arange(w.shape[-1])[:, None] + np.arange(-3, 4)[None, :])
        idx = np.where(idx >= w.shape[-1], 2 * w.shape[-1] - 2 - idx, idx)
        matrix = np.median(w[..., idx], axis=-1).mean(0)[1 : len(text) + 2]
        feats_ct2 = np.ascontiguousarray(pad_or_trim(ct2.feature_extractor(x)[..., :-1], 3000)[None])
        ref = ct2.model.align(
            ct2.model.encode(ctranslate2.StorageView.from_array(feats_ct2)), [tok["sot"]], [text], [frames]
        )[0]
        assert _negative_dtw(matrix.astype(np.float32)) == [tuple(p) for p in ref.alignments]


def test_int8_export_is_smaller_and_transcribes_alike(export, model_path, clips, onnx, decoded):
    """The int8 export's text against the float32 export's (its decode shared with the test above)."""
    import jiwer

    small = onnx_export("int8")
    assert ox.read_meta(small)["quantize"] == "int8"
    for name in (ox.ENCODER_FILE, ox.DECODER_FILE, ox.DECODER_WITH_PAST_FILE, ox.ALIGNMENT_FILE):
        assert (small / name).stat().st_size < 0.4 * (export / name).stat().st_size, name
    assert (small / ox.FEATURES_FILE).read_bytes() == (export / ox.FEATURES_FILE).read_bytes()  # front end: float
    q = OnnxGreedy(small, model_path)
    a = [onnx.rules._text(t) for t in decoded(True)[0]]
    b = [q.rules._text(t) for t in q.token_ids(clips)]
    assert jiwer.wer(a, b) < 0.1  # int8 rounding moves a word here and there, no more


def test_convert_refuses_what_it_cannot_export(tmp_path, capsys):
    from sparkasr.convert.command import convert_main

    assert convert_main(["--model", str(tmp_path / "missing"), "--output", str(tmp_path / "o"), "--whisper"]) == 2
    assert "does not exist" in capsys.readouterr().err
    fake = tmp_path / "fake-whisper"  # says whisper, holds other weights
    fake.mkdir()
    (fake / "config.json").write_text(
        json.dumps({"model_type": "whisper", "d_model": 32, "encoder_attention_heads": 6})
    )
    (fake / "model.safetensors").write_bytes(b"\0" * 16)
    assert convert_main(["--model", str(fake), "--output", str(tmp_path / "o")]) == 2
    assert "could not be read as a Whisper model" in capsys.readouterr().err
    assert convert_main(["--model", "tiny.en", "--output", str(tmp_path / "o"), "--revision", "main"]) == 2
    assert "CTC checkpoints only" in capsys.readouterr().err
    with pytest.raises(ox.ExportError, match="--quantize"):
        ox.export_whisper("tiny.en", tmp_path / "o", quantize="int4")
    assert not (tmp_path / "o").exists()


def test_python_stage_keeps_an_export_as_its_model_but_refuses_to_run_it(export):
    """A Python pipeline can carry an ONNX export for the JVM stage (saved with its files); the Python
    stage itself runs CTranslate2 and says so instead of failing inside faster-whisper."""
    from sparkasr.spark.whisper import WhisperForCTC
    from sparkasr.whisper.models import resolve_whisper_model

    assert resolve_whisper_model(str(export)).kind == "onnx-export"
    stage = WhisperForCTC(modelSource=str(export), computeType="float32")
    with pytest.raises(ValueError, match="ONNX export .* JVM WhisperForCTC"):
        stage._check_model(stage._resolve_model()[1])
    with pytest.raises(ox.ExportError, match="already a Whisper ONNX export"):
        ox.export_whisper(str(export), export.parent / "again")
