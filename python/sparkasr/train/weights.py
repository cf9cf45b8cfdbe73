"""Whisper weights across the fine-tuning round trip: a CTranslate2 model → transformers'
``WhisperForConditionalGeneration`` (what torch trains) → a CTranslate2 model again, written by
ctranslate2's own converter with the base model's tokenizer, special tokens, suppressed tokens,
language ids and alignment heads, so the result runs wherever a Whisper model runs (the Spark stage,
``LightPipeline``, ``sparkasr transcribe --model DIR``, ``sparkasr serve``, ``sparkasr convert``).

The CTranslate2 weights are read by :mod:`sparkasr.convert.torch_whisper` (int8 matrices
de-quantised with their scales). Needs torch and transformers (the ``train`` extra).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from .metrics import METRICS_FILE

# files of a CTranslate2 Whisper directory the converter writes itself
_CONVERTER_FILES = ("model.bin", "config.json", "vocabulary.json", "vocabulary.txt", "tokenizer.json")


@dataclass(frozen=True)
class BaseWhisper:
    """A CTranslate2 Whisper directory and what its ``config.json`` and tokenizer say."""

    path: str
    config: Dict[str, Any]  # CTranslate2's config.json: alignment_heads, lang_ids, suppress_ids, suppress_ids_begin
    special: Dict[str, int]  # special token -> id

    @classmethod
    def open(cls, path: str) -> BaseWhisper:
        p = Path(path)
        config = json.loads((p / "config.json").read_text(encoding="utf-8"))
        tok = json.loads((p / "tokenizer.json").read_text(encoding="utf-8"))
        special = {a["content"]: int(a["id"]) for a in tok.get("added_tokens", [])}
        for t in ("<|startoftranscript|>", "<|endoftext|>", "<|notimestamps|>"):
            if t not in special:
                raise ValueError(f"{path}/tokenizer.json has no {t}: not a Whisper tokenizer")
        return cls(str(p), config, special)

    def token_ids(self) -> Dict[str, Any]:
        """transformers' token-id fields of the model's config."""
        eot = self.special["<|endoftext|>"]
        return dict(
            decoder_start_token_id=self.special["<|startoftranscript|>"],
            bos_token_id=eot,
            eos_token_id=eot,
            pad_token_id=eot,
            suppress_tokens=list(self.config.get("suppress_ids", [])),
            begin_suppress_tokens=list(self.config.get("suppress_ids_begin", [])),
        )

    def generation_config(self):
        """transformers' ``GenerationConfig`` carrying what ctranslate2's converter writes back into
        ``config.json`` (suppressed tokens, alignment heads, language ids)."""
        import transformers

        by_id = {i: t for t, i in self.special.items()}
        lang_to_id = {by_id[i]: i for i in self.config.get("lang_ids", []) if i in by_id}
        ids = self.token_ids()
        return transformers.GenerationConfig(
            decoder_start_token_id=ids["decoder_start_token_id"],
            bos_token_id=ids["bos_token_id"],
            eos_token_id=ids["eos_token_id"],
            pad_token_id=ids["pad_token_id"],
            suppress_tokens=ids["suppress_tokens"],
            begin_suppress_tokens=ids["begin_suppress_tokens"],
            alignment_heads=[list(h) for h in self.config.get("alignment_heads", [])] or None,
            lang_to_id=lang_to_id,
            no_timestamps_token_id=self.special["<|notimestamps|>"],
            max_length=448,
        )


def load_hf_whisper(base: BaseWhisper):
    """transformers' ``WhisperForConditionalGeneration`` (float32, CPU, train mode) holding the
    weights of the CTranslate2 model ``base``, loaded strictly."""
    import torch
    import transformers

    from ..convert.torch_whisper import Dims, hf_config, load_weights, to_hf_state_dict

    weights, _ = load_weights(base.path)
    model = transformers.WhisperForConditionalGeneration(hf_config(Dims.of(weights), **base.token_ids()))
    model.load_state_dict(
        {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in to_hf_state_dict(weights).items()}
    )
    model.generation_config = base.generation_config()
    return model.train()


def write_hf_side(base: BaseWhisper, directory: str) -> str:
    """The small files of a Hugging Face Whisper directory (config, generation config, tokenizer), no
    weights: what ctranslate2's converter reads besides the model, written once per fit."""
    import transformers

    from ..convert.torch_whisper import Dims, hf_config, load_weights

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    weights, _ = load_weights(base.path)
    hf_config(Dims.of(weights), **base.token_ids()).save_pretrained(d)
    base.generation_config().save_pretrained(d)
    transformers.WhisperTokenizerFast(tokenizer_file=str(Path(base.path) / "tokenizer.json")).save_pretrained(d)
    return str(d)


def export_ct2(model, hf_side: str, base: BaseWhisper, output_dir: str, quantization: str = "int8") -> str:
    """Write ``model`` (a ``WhisperForConditionalGeneration``, e.g. mid-training) as a CTranslate2
    Whisper directory at ``output_dir`` with ctranslate2's ``TransformersConverter`` (quantised to
    ``quantization``), the base model's ``tokenizer.json`` and its other files (a
    ``preprocessor_config.json``); replaced atomically."""
    import torch
    from ctranslate2.converters import TransformersConverter

    # The converter changes the weights it is given in place (it folds and quantises them): it gets a copy.
    twin = type(model)(model.config)
    twin.load_state_dict({k: v.detach().to("cpu", torch.float32, copy=True) for k, v in model.state_dict().items()})
    twin.generation_config = model.generation_config
    twin.eval()

    class _InMemory(TransformersConverter):
        def load_model(self, model_class, model_name_or_path, **kwargs):
            return twin

    out = Path(output_dir)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with torch.no_grad(), _quiet_transformers():
        _InMemory(hf_side, copy_files=None).convert(str(tmp), quantization=quantization, force=True)
    for f in Path(base.path).iterdir():
        keep = f.suffix == ".json" and f.name not in _CONVERTER_FILES + (METRICS_FILE,)
        if f.is_file() and keep and not (tmp / f.name).exists():
            shutil.copy2(f, tmp / f.name)
    shutil.copy2(Path(base.path) / "tokenizer.json", tmp / "tokenizer.json")
    old = out.with_name(out.name + f".old{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return str(out)


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' notices while the converter reloads the config (deprecations it cannot act on)."""
    import transformers

    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(level)


def trainable_parameters(model, freeze_encoder: bool) -> List[Any]:
    """The parameters to train (the encoder's are frozen with ``freeze_encoder``); the rest get
    ``requires_grad=False``."""
    if freeze_encoder:
        for p in model.model.encoder.parameters():
            p.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]
