"""Helpers shared by the tests/test_ctc_*.py modules (not a conftest: tests/conftest.py is shared).

* :func:`tiny_models` builds the tiny random wav2vec2/HuBERT CTC checkpoints + ONNX conversions
  once per test process (needs torch + transformers, the ``convert`` extra; skips otherwise).
* :func:`write_checkpoint_dir` writes a weight-less checkpoint directory (config, vocab,
  preprocessor) for engine tests with a fake backend, no torch needed.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Dict, Optional

import pytest

_CACHE: Dict[str, object] = {}


def _root() -> Path:
    if "root" not in _CACHE:
        root = Path(tempfile.mkdtemp(prefix="sparkasr-ctc-models-"))
        atexit.register(shutil.rmtree, root, True)
        _CACHE["root"] = root
    return _CACHE["root"]  # type: ignore[return-value]


def tiny_models() -> Dict[str, Dict[str, Path]]:
    """{"wav2vec2"|"hubert": {"hf": dir, "onnx": dir}}, built once per process, or the ones
    ``tests/fixtures/make_ctc_models.py`` built under ``$SPARKASR_TEST_CTC_MODELS`` in another
    environment (``scripts/test_spark35.sh``: its pyspark 3.5 environment has no torch)."""
    prebuilt = os.environ.get("SPARKASR_TEST_CTC_MODELS")
    if prebuilt:
        models = {kind: {f: Path(prebuilt) / kind / f for f in ("hf", "onnx")} for kind in ("wav2vec2", "hubert")}
        missing = [str(p) for m in models.values() for p in m.values() if not (p / "config.json").is_file()]
        if missing:
            pytest.fail(f"SPARKASR_TEST_CTC_MODELS={prebuilt}: no model in {missing}", pytrace=False)
        return models
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("onnx")
    if "models" not in _CACHE:
        from fixtures.make_ctc_models import build

        _CACHE["models"] = build(_root() / "models")
    return _CACHE["models"]  # type: ignore[return-value]


def tiny_other(kind: str) -> Dict[str, Path]:
    """data2vec-audio / WavLM tiny checkpoints + ONNX (built on first use)."""
    tiny_models()
    key = f"other-{kind}"
    if key not in _CACHE:
        from fixtures.make_ctc_models import make_checkpoint
        from sparkasr.convert.command import convert_checkpoint

        hf = make_checkpoint(kind, _root() / kind / "hf")
        _CACHE[key] = {"hf": hf, "onnx": convert_checkpoint(hf, _root() / kind / "onnx")}
    return _CACHE[key]  # type: ignore[return-value]


def tiny_int8(kind: str) -> Path:
    """An int8-quantised conversion of a tiny model (built on first use)."""
    models = tiny_models()
    key = f"int8-{kind}"
    if key not in _CACHE:
        from sparkasr.convert.command import convert_checkpoint

        _CACHE[key] = convert_checkpoint(models[kind]["hf"], _root() / kind / "int8", quantize="int8")
    return _CACHE[key]  # type: ignore[return-value]


VOCAB = {
    "<pad>": 0,
    "<s>": 1,
    "</s>": 2,
    "<unk>": 3,
    "|": 4,
    "E": 5,
    "T": 6,
    "A": 7,
    "O": 8,
    "N": 9,
    "I": 10,
    "H": 11,
    "S": 12,
    "R": 13,
    "D": 14,
    "L": 15,
    "U": 16,
    "M": 17,
    "W": 18,
    "C": 19,
    "F": 20,
    "G": 21,
    "Y": 22,
    "P": 23,
    "B": 24,
    "V": 25,
    "K": 26,
    "'": 27,
    "X": 28,
    "J": 29,
    "Q": 30,
    "Z": 31,
}


def write_checkpoint_dir(
    path: Path,
    *,
    do_normalize: bool = True,
    return_attention_mask: bool = False,
    conv_stride=(5, 2, 2, 2, 2, 2, 2),
    conv_kernel=(10, 3, 3, 3, 3, 2, 2),
    model_type: str = "wav2vec2",
    do_lower_case: bool = False,
    vocab: Optional[Dict[str, int]] = None,
) -> Path:
    """A checkpoint directory without weights (what the torch-free code reads)."""
    vocab = vocab or VOCAB
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(
        json.dumps(
            {
                "model_type": model_type,
                "architectures": [
                    {"wav2vec2": "Wav2Vec2ForCTC", "hubert": "HubertForCTC"}.get(model_type, "Wav2Vec2ForCTC")
                ],
                "conv_stride": list(conv_stride),
                "conv_kernel": list(conv_kernel),
                "vocab_size": len(vocab),
                "pad_token_id": 0,
            }
        )
    )
    (path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "feature_extractor_type": "Wav2Vec2FeatureExtractor",
                "feature_size": 1,
                "sampling_rate": 16000,
                "padding_value": 0.0,
                "do_normalize": do_normalize,
                "return_attention_mask": return_attention_mask,
            }
        )
    )
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "Wav2Vec2CTCTokenizer",
                "pad_token": "<pad>",
                "unk_token": "<unk>",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "word_delimiter_token": "|",
                "do_lower_case": do_lower_case,
            }
        )
    )
    return path


def write_arpa(text: str, path: Path) -> Path:
    """A small bigram ARPA model (add-one unigrams, discounted bigrams with back-off)."""
    sents = [["<s>"] + line.split() + ["</s>"] for line in text.strip().splitlines()]
    uni = Counter(w for s in sents for w in s)
    bi = Counter((a, b) for s in sents for a, b in zip(s, s[1:]))
    vocab = sorted(set(uni) | {"<unk>"})
    total = sum(uni.values()) + len(vocab)
    lines = ["", "\\data\\", f"ngram 1={len(vocab)}", f"ngram 2={len(bi)}", "", "\\1-grams:"]
    for w in vocab:
        p = -99.0 if w == "<s>" else math.log10((uni[w] + 1) / total)
        lines.append(f"{p:.6f}\t{w}\t{math.log10(0.3):.6f}")
    lines += ["", "\\2-grams:"]
    for (a, b), c in sorted(bi.items()):
        lines.append(f"{math.log10(0.7 * c / uni[a]):.6f}\t{a} {b}")
    lines += ["", "\\end\\", ""]
    path.write_text("\n".join(lines))
    return path
