"""Reading Hugging Face CTC checkpoint directories without torch: vocab, special tokens, feature
config, stride, and the refusal of pickled weights."""

from __future__ import annotations

import json

import pytest

from ctc_support import VOCAB, write_checkpoint_dir
from sparkasr.ctc.checkpoint import CheckpointError, is_hub_id, load_checkpoint, weights_file
from sparkasr.ctc.decode import decode_ids


def test_reads_vocab_special_tokens_and_features(tmp_path):
    d = write_checkpoint_dir(tmp_path / "c", return_attention_mask=True, conv_stride=(5, 2, 2, 2, 2, 2, 1))
    ck = load_checkpoint(d)
    assert ck.model_type == "wav2vec2" and ck.architecture == "Wav2Vec2ForCTC"
    assert len(ck.vocab) == 32 and ck.vocab.blank_id == 0 and ck.vocab.word_delimiter_token == "|"
    assert ck.features.return_attention_mask and ck.features.do_normalize
    assert ck.inputs_to_logits_ratio == 160
    assert ck.onnx_path is None


def test_special_tokens_map_with_added_token_dicts(tmp_path):
    vocab = {"[PAD]": 0, "[UNK]": 1, " ": 2, "a": 3, "b": 4}
    d = write_checkpoint_dir(tmp_path / "c", vocab=vocab)
    (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    (d / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "pad_token": {"content": "[PAD]", "lstrip": True},
                "unk_token": "[UNK]",
                "word_delimiter_token": " ",
            }
        )
    )
    v = load_checkpoint(d).vocab
    assert v.pad_token == "[PAD]" and v.unk_token == "[UNK]" and v.word_delimiter_token == " "
    assert decode_ids([0, 3, 3, 0, 3, 2, 4, 0], v).text == "aa b"


def test_multilingual_vocab_needs_target_lang(tmp_path):
    d = write_checkpoint_dir(tmp_path / "c")
    (d / "vocab.json").write_text(json.dumps({"eng": VOCAB, "fra": {"<pad>": 0, "|": 1, "é": 2}}))
    with pytest.raises(CheckpointError, match="target_lang"):
        load_checkpoint(d)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["target_lang"] = "eng"
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert len(load_checkpoint(d).vocab) == 32


def test_do_lower_case_from_tokenizer_config(tmp_path):
    v = load_checkpoint(write_checkpoint_dir(tmp_path / "c", do_lower_case=True)).vocab
    assert decode_ids([VOCAB["H"], VOCAB["I"]], v).text == "hi"


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda d: (d / "vocab.json").unlink(), "vocab.json"),
        (lambda d: (d / "config.json").write_text(json.dumps({"model_type": "whisper"})), "not a supported CTC model"),
        (
            lambda d: (d / "config.json").write_text(
                json.dumps({"model_type": "wav2vec2", "architectures": ["Wav2Vec2Model"]})
            ),
            "CTC head",
        ),
        (
            lambda d: (d / "preprocessor_config.json").write_text(
                json.dumps({"feature_extractor_type": "WhisperFeatureExtractor"})
            ),
            "raw-waveform",
        ),
        (lambda d: (d / "config.json").write_text("{not json"), "invalid JSON"),
    ],
)
def test_bad_checkpoints_are_refused_with_a_reason(tmp_path, edit, match):
    d = write_checkpoint_dir(tmp_path / "c")
    edit(d)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(d)


def test_pickle_weights_need_opt_in(tmp_path):
    d = write_checkpoint_dir(tmp_path / "c")
    with pytest.raises(CheckpointError, match="no model weights"):
        weights_file(d)
    (d / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match="allow_pickle"):
        weights_file(d)
    assert weights_file(d, allow_pickle=True).name == "pytorch_model.bin"
    (d / "model.safetensors").write_bytes(b"x")
    assert weights_file(d).name == "model.safetensors"  # safetensors preferred when both exist


def test_hub_ids(tmp_path):
    assert is_hub_id("facebook/wav2vec2-base-960h")
    assert not is_hub_id(str(tmp_path))
    assert not is_hub_id("./x/y") and not is_hub_id("a/b/c") and not is_hub_id("plain")


def test_executor_modules_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; import sparkasr.ctc, sparkasr.ctc.engine, sparkasr.ctc.onnx_backend, sparkasr.ctc.lm, "
        "sparkasr.convert.command, sparkasr.spark.ctc; "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
