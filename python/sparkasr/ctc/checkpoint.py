"""Hugging Face CTC checkpoint directories: reading them without torch.

A checkpoint directory (as ``save_pretrained`` writes it, or as on the Hub) holds ``config.json``,
``preprocessor_config.json``, ``vocab.json``, ``tokenizer_config.json`` (+ ``special_tokens_map.json``,
``added_tokens.json``) and the weights. Weights are read only from ``model.safetensors`` (possibly
sharded); a pickled ``pytorch_model.bin`` can run arbitrary code when loaded and is refused unless
the caller opts in with ``allow_pickle=True``.

A directory converted by ``sparkasr convert`` has the same files plus ``model.onnx`` and
``sparkasr_ctc.json``; that is all an executor needs (no torch, no transformers).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from .decode import CTCVocab
from .features import FeatureConfig

# model_type -> transformers CTC class
SUPPORTED_MODEL_TYPES: Dict[str, str] = {
    "wav2vec2": "Wav2Vec2ForCTC",
    "hubert": "HubertForCTC",
    "data2vec-audio": "Data2VecAudioForCTC",
    "wavlm": "WavLMForCTC",
    "wav2vec2-conformer": "Wav2Vec2ConformerForCTC",
}

TOKENIZER_FILES = (
    "vocab.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
CONFIG_FILES = ("config.json", "preprocessor_config.json") + TOKENIZER_FILES
ONNX_FILE = "model.onnx"
META_FILE = "sparkasr_ctc.json"
SAFETENSORS_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be used; the message says why."""


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: invalid JSON ({exc})") from exc


def _token_str(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, dict):  # AddedToken serialised as {"content": ...}
        return value.get("content")
    return str(value)


@dataclass
class CTCCheckpoint:
    """The parsed (torch-free) content of a CTC checkpoint or converted directory."""

    path: Path
    config: Dict[str, Any]
    preprocessor: Dict[str, Any]
    vocab: CTCVocab
    features: FeatureConfig
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", ""))

    @property
    def architecture(self) -> str:
        archs = self.config.get("architectures") or []
        return archs[0] if archs else SUPPORTED_MODEL_TYPES.get(self.model_type, "")

    @property
    def onnx_path(self) -> Optional[Path]:
        p = self.path / ONNX_FILE
        return p if p.exists() else None

    @property
    def inputs_to_logits_ratio(self) -> int:
        return self.features.inputs_to_logits_ratio

    @property
    def name(self) -> str:
        return str(self.meta.get("source") or self.config.get("_name_or_path") or self.path.name)


def load_vocab(path: Union[str, Path], config: Optional[Dict[str, Any]] = None) -> CTCVocab:
    """The CTC vocabulary of a checkpoint dir (``Wav2Vec2CTCTokenizer`` defaults for missing keys)."""
    path = Path(path)
    vocab = _read_json(path / "vocab.json")
    if not vocab:
        raise CheckpointError(f"{path}: no vocab.json (a CTC checkpoint needs its character vocabulary)")
    tok_cfg = _read_json(path / "tokenizer_config.json")
    special = _read_json(path / "special_tokens_map.json")
    if any(isinstance(v, dict) for v in vocab.values()):  # multi-lingual (MMS) vocab
        lang = tok_cfg.get("target_lang")
        if not lang or lang not in vocab:
            raise CheckpointError(
                f"{path}: vocab.json holds one vocabulary per language; set target_lang in "
                f"tokenizer_config.json to one of {sorted(vocab)[:10]}..."
            )
        vocab = vocab[lang]
    vocab = {str(k): int(v) for k, v in vocab.items()}
    # added tokens (added_tokens.json, or added_tokens_decoder in tokenizer_config.json)
    for tok, idx in _read_json(path / "added_tokens.json").items():
        vocab.setdefault(tok, int(idx))
    for idx, spec in (tok_cfg.get("added_tokens_decoder") or {}).items():
        content = _token_str(spec)
        if content is not None and content not in vocab:
            vocab[content] = int(idx)

    def pick(key: str, default: str) -> str:
        value = _token_str(special.get(key)) or _token_str(tok_cfg.get(key))
        return value if value is not None else default

    pad = pick("pad_token", "<pad>")
    if pad not in vocab and config and config.get("pad_token_id") is not None:
        inv = {v: k for k, v in vocab.items()}
        pad = inv.get(int(config["pad_token_id"]), pad)
    specials = tuple(
        t for t in (pick("bos_token", "<s>"), pick("eos_token", "</s>"), pick("unk_token", "<unk>"), pad) if t
    )
    try:
        return CTCVocab.from_vocab(
            vocab,
            pad_token=pad,
            word_delimiter_token=pick("word_delimiter_token", "|"),
            replace_word_delimiter_char=str(tok_cfg.get("replace_word_delimiter_char", " ")),
            unk_token=pick("unk_token", "<unk>"),
            do_lower_case=bool(tok_cfg.get("do_lower_case", False)),
            clean_up_tokenization_spaces=bool(tok_cfg.get("clean_up_tokenization_spaces", False)),
            special_tokens=specials,
        )
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def load_checkpoint(path: Union[str, os.PathLike]) -> CTCCheckpoint:
    """Parse a local checkpoint or converted directory (no weights are read)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a directory")
    config = _read_json(path / "config.json")
    if not config:
        raise CheckpointError(f"{path}: no config.json")
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise CheckpointError(
            f"{path}: model_type {model_type!r} is not a supported CTC model "
            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    archs = config.get("architectures") or []
    if archs and not any(a.endswith("ForCTC") for a in archs):
        raise CheckpointError(
            f"{path}: architectures {archs} has no CTC head (a ...ForCTC fine-tuned checkpoint is needed)"
        )
    preprocessor = _read_json(path / "preprocessor_config.json")
    try:
        features = FeatureConfig.from_configs(preprocessor, config)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    vocab = load_vocab(path, config)
    vocab_size = config.get("vocab_size")
    if vocab_size is not None and len(vocab) > int(vocab_size):
        raise CheckpointError(f"{path}: vocab.json has {len(vocab)} tokens but the model's vocab_size is {vocab_size}")
    meta = _read_json(path / META_FILE)
    return CTCCheckpoint(path=path, config=config, preprocessor=preprocessor, vocab=vocab, features=features, meta=meta)


def weights_file(path: Union[str, os.PathLike], allow_pickle: bool = False) -> Path:
    """The weights file to load: safetensors; pickle only with ``allow_pickle``."""
    path = Path(path)
    for name in SAFETENSORS_FILES:
        if (path / name).exists():
            return path / name
    for name in PICKLE_FILES:
        if (path / name).exists():
            if not allow_pickle:
                raise CheckpointError(
                    f"{path}: only a pickled {name} is present. Loading pickle files can execute "
                    "arbitrary code; convert the checkpoint to model.safetensors, or pass "
                    "allow_pickle=True (--allow-pickle) if you trust its source"
                )
            return path / name
    raise CheckpointError(f"{path}: no model weights (model.safetensors) found")


def is_hub_id(name: str) -> bool:
    """``org/name`` that is not an existing local path."""
    if os.path.exists(name):
        return False
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def resolve(name_or_path: Union[str, os.PathLike], allow_pickle: bool = False, revision: Optional[str] = None) -> Path:
    """A local directory for ``name_or_path``: the path itself, or a Hub snapshot (online only).

    Only the files we read are downloaded; ``pytorch_model.bin`` only when ``allow_pickle``.
    """
    p = Path(os.path.expanduser(os.fspath(name_or_path)))
    if p.is_dir():
        return p
    name = os.fspath(name_or_path)
    if not is_hub_id(name):
        raise CheckpointError(f"{name}: no such directory (and not a Hub id like 'facebook/wav2vec2-base-960h')")
    from ..whisper.models import hub_reachable

    if not hub_reachable():
        raise CheckpointError(
            f"{name} is not a local directory and the Hugging Face Hub cannot be reached from this "
            "machine (offline or HF_HUB_OFFLINE=1). Run `sparkasr convert --model "
            f"{name} --output DIR` once where it is online and pass DIR instead."
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CheckpointError(f"{name}: downloading from the Hub needs huggingface_hub") from exc
    patterns: List[str] = list(CONFIG_FILES) + [
        "model.safetensors",
        "model-*.safetensors",
        "model.safetensors.index.json",
    ]
    if allow_pickle:
        patterns += ["pytorch_model.bin", "pytorch_model-*.bin", "pytorch_model.bin.index.json"]
    try:
        local = snapshot_download(repo_id=name, revision=revision, allow_patterns=patterns)
    except Exception as exc:  # network errors, missing repo, gated repo
        raise CheckpointError(f"{name}: could not download from the Hugging Face Hub ({exc})") from exc
    return Path(local)
