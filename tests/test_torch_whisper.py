"""The PyTorch Whisper window decoder (``sparkasr.convert.torch_whisper``) against CTranslate2 and transformers,
on the real vendored clips (single clips and clips packed into ~28-s windows)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ALL_CLIPS
from whisper_support import ct2_greedy

torch = pytest.importorskip("torch")
tw = pytest.importorskip("sparkasr.convert.torch_whisper")


@pytest.fixture(scope="module")
def model_path():
    from sparkasr.whisper.models import resolve_whisper_model

    return resolve_whisper_model(None).path


@pytest.fixture(scope="module")
def clips():
    import soundfile as sf

    return [sf.read(str(p), dtype="float32")[0] for p, _ in ALL_CLIPS]


@pytest.fixture(scope="module")
def windows(clips):
    """Four windows of 25-29.5 s: the clips in seeded orders with 0.5-1.0 s of silence between."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(4):
        parts, n = [], 0
        for i in rng.permutation(len(clips)):
            gap = np.zeros(int(16000 * rng.uniform(0.5, 1.0)), np.float32)
            if n + len(clips[i]) + len(gap) > 29.5 * 16000:
                break
            parts += [clips[i], gap]
            n += len(clips[i]) + len(gap)
        out.append(np.concatenate(parts))
    return out


@pytest.fixture(scope="module")
def model(model_path):
    return tw.TorchWhisper(model_path)


@pytest.fixture(scope="module")
def ct2(model_path):
    from faster_whisper import WhisperModel

    return WhisperModel(model_path, device="cpu", compute_type="float32", cpu_threads=2)


def test_log_mel_equals_faster_whisper_features_per_window(clips, windows):
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor

    fe = FeatureExtractor()
    batch = clips + windows + [np.resize(np.concatenate(clips), 16000 * 30)]  # exactly 30 s too
    ref = np.stack([pad_or_trim(fe(x)[..., :-1], 3000) for x in batch])
    ours = tw.log_mel(batch).numpy()  # one batch of mixed lengths: padding must not leak across rows
    assert ours.shape == ref.shape == (len(batch), 80, 3000)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


@pytest.mark.parametrize("timestamps", [True, False])
def test_greedy_tokens_equal_ctranslate2_on_packed_windows(model, ct2, windows, timestamps):
    """Two of the windows, in one batch (rows decoded together: what packing relies on; the log-mel
    test above takes all four)."""
    windows = windows[:2]
    ours = model.transcribe(windows, batch_size=len(windows), timestamps=timestamps)
    theirs = ct2_greedy(ct2, windows, timestamps)
    for o, t in zip(ours, theirs):
        toks = t.sequences_ids[0]
        assert o.tokens == toks
        assert len(toks) > 50
        assert o.avg_logprob == pytest.approx(t.scores[0] * len(toks) / (len(toks) + 1), abs=2e-3)
        assert o.no_speech_prob == pytest.approx(t.no_speech_prob, abs=2e-3)
    if timestamps:
        for o, x in zip(ours, windows):
            segs = o.segments
            assert len(segs) >= 4  # several utterances per window, each its own segment
            starts = [s for s, _, _ in segs]
            assert starts == sorted(starts) and all(s < e <= len(x) / 16000 + 0.02 for s, e, _ in segs)
            assert " ".join(t for _, _, t in segs).split() == o.text.split()


@pytest.fixture(scope="module")
def single(model, clips):
    """Every clip through the float32 model, three batches, the last one short."""
    return model.transcribe(clips, batch_size=4)


def test_single_clips_batched_equal_ctranslate2_and_match_references(single, ct2, clips):
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    ours = single
    theirs = ct2_greedy(ct2, clips, True)
    assert [o.tokens for o in ours] == [t.sequences_ids[0] for t in theirs]
    norm = EnglishTextNormalizer()
    refs = [" ".join(norm(r).split()) for _, r in ALL_CLIPS]
    hyps = [" ".join(norm(o.text).split()) for o in ours]
    assert jiwer.wer(refs, hyps) < 0.25


def test_logits_equal_transformers_whisper(model_path, clips):
    """The converted weights in transformers' own Whisper give the same logits as this module: the
    name mapping (``to_hf_state_dict``) and the architecture agree."""
    pytest.importorskip("transformers")
    w, _ = tw.load_weights(model_path)
    d = tw.Dims.of(w)
    hf = tw.hf_whisper(w)  # strict load: every transformers parameter is mapped, nothing left over
    m = tw.TorchWhisper(model_path)
    mel = tw.log_mel(clips[:2])
    tokens = torch.tensor([[50257, 50363, 400, 1770, 13, 50400]] * 2)
    with torch.no_grad():
        ref = hf(input_features=mel, decoder_input_ids=tokens).logits
        enc = m.module.encode(mel)
        caches = [
            (torch.empty(2, d.n_heads, 8, d.d_model // d.n_heads), torch.empty(2, d.n_heads, 8, d.d_model // d.n_heads))
            for _ in range(d.decoder_layers)
        ]
        # the prompt in one call, then one token at a time through the cache, as generate does
        full = m.module.decode(tokens[:, :3], 0, caches, [layer.cross_kv(enc) for layer in m.module.dec_layers])
        steps = [
            m.module.decode(tokens[:, k : k + 1], k, caches, [layer.cross_kv(enc) for layer in m.module.dec_layers])
            for k in range(3, tokens.shape[1])
        ]
        ours = torch.cat([full] + steps, dim=1)
    assert ref.abs().max() > 5
    torch.testing.assert_close(ours, ref, atol=1e-3, rtol=1e-4)


def test_compact_int8_file_is_smaller_and_transcribes_alike(model_path, single, clips, tmp_path):
    """The int8 file's text against the float32 model's (the ``single`` decode, shared)."""
    import jiwer

    w, cfg = tw.load_weights(model_path)
    out = tmp_path / "tiny.npz"
    tw.save_compact(w, out, cfg)
    from pathlib import Path

    assert out.stat().st_size < 0.6 * (Path(model_path) / "model.bin").stat().st_size
    small = tw.TorchWhisper(out, tokenizer=model_path)
    assert small.config == cfg
    a = [r.text for r in single]
    b = [r.text for r in small.transcribe(clips, batch_size=4)]
    assert jiwer.wer(a, b) < 0.1  # int8 rounding moves a word here and there, no more


def test_refusals(model, tmp_path):
    with pytest.raises(ValueError, match="longer than 30 s"):
        model.transcribe([np.zeros(16000 * 31, np.float32)])
    bad = tmp_path / "model.bin"
    import struct

    name = b"TransformerSpec"
    bad.write_bytes(struct.pack("I", 6) + struct.pack("H", len(name) + 1) + name + b"\0")
    with pytest.raises(ValueError, match="not a Whisper model"):
        tw.read_ct2_model(tmp_path)


def test_gpu_benchmark_runs_here_and_its_transformers_baseline_decodes_the_same(model_path, tmp_path):
    """bench/run_gpu.py end to end on the CPU (2 windows; ours in batches of 1, so its warm-ups decode
    one window, not two): both pipelines run on the same weights and, both greedy without timestamps,
    write the same text, so the GPU comparison is like for like. The over-budget run decodes nothing,
    so it calls the script's ``main`` in this process (no second torch/transformers start-up)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("transformers")
    out = tmp_path / "gpu.json"
    script = Path(__file__).resolve().parents[1] / "bench" / "run_gpu.py"
    common = ["--device", "cpu", "--model", model_path, "--windows", "2", "--hf-batches", "2", "--repeats", "1"]
    subprocess.run(
        [sys.executable, str(script), *common, "--hf-windows", "2", "--batches", "1", "--out", str(out)],
        check=True,
        timeout=600,
    )
    result = json.loads(out.read_text())
    runs = {(r["pipeline"], r["timestamps"]): r for r in result["runs"]}
    ours, hf = runs[("sparkasr_torch", False)], runs[("transformers_generate", False)]
    assert ours["hyps"] == hf["hyps"] and all(len(h.split()) > 30 for h in ours["hyps"])
    assert ours["wer"]["wer"] < 0.2 and runs[("sparkasr_torch", True)]["tokens"] > ours["tokens"]
    assert result["audio_s"] > 50 and set(result["summary"]["best"]) == {
        "sparkasr_torch",
        "sparkasr_torch_timestamps",
        "transformers_generate",
    }
    assert result["finished_utc"] and result["skipped"] == []
    # Over its time budget it starts nothing more, says what it skipped, and still writes the file.
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_gpu", script)
    run_gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_gpu)
    assert run_gpu.main([*common, "--batches", "2,1", "--budget-s", "0", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["runs"] == [] and result["summary"]["best"] == {}
    assert [(k["pipeline"], k["batch"], k["timestamps"]) for k in result["skipped"]] == [
        ("ours", 2, False),
        ("ours", 1, False),
        ("hf", 2, False),
        ("ours", 2, True),
        ("ours", 1, True),
    ]
