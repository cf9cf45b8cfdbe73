"""Wav2Vec2-style feature handling from ``preprocessor_config.json`` and the conv config.

The model input is the raw 16 kHz waveform, optionally normalised to zero mean and unit variance
per utterance (``do_normalize``), exactly as ``Wav2Vec2FeatureExtractor`` computes it.

Padding: a batch of different lengths must be padded. Models whose feature extractor has
``return_attention_mask=True`` (layer-norm feature encoders, e.g. ``hubert-large-ls960-ft``,
``wav2vec2-large-960h-lv60-self``) get a mask and ignore the padding. Models trained without a mask
(group-norm feature encoders, e.g. ``wav2vec2-base-960h``) would see the padding (group norm over
time includes it) and give different logits, so for them :func:`length_groups` only batches rows
of identical length: every row is then computed exactly as if it were alone.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..audio import SAMPLE_RATE


@dataclass(frozen=True)
class FeatureConfig:
    """What the model's preprocessor and conv stack say about its input."""

    sampling_rate: int = SAMPLE_RATE
    do_normalize: bool = True
    return_attention_mask: bool = False
    padding_value: float = 0.0
    conv_kernel: Tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: Tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    adapter_strides: Tuple[int, ...] = ()  # wav2vec2 ``add_adapter``: extra stride-N convs

    @classmethod
    def from_configs(cls, preprocessor: Mapping[str, Any], config: Mapping[str, Any]) -> FeatureConfig:
        fe_type = preprocessor.get("feature_extractor_type", "Wav2Vec2FeatureExtractor")
        if fe_type not in ("Wav2Vec2FeatureExtractor", None):
            raise ValueError(
                f"unsupported feature extractor {fe_type!r}: only raw-waveform CTC models "
                "(Wav2Vec2FeatureExtractor) are supported"
            )
        if int(preprocessor.get("feature_size", 1)) != 1:
            raise ValueError("only mono raw-waveform input (feature_size=1) is supported")
        adapter: Tuple[int, ...] = ()
        if config.get("add_adapter"):
            adapter = (int(config.get("adapter_stride", 2)),) * int(config.get("num_adapter_layers", 3))
        return cls(
            sampling_rate=int(preprocessor.get("sampling_rate", SAMPLE_RATE)),
            do_normalize=bool(preprocessor.get("do_normalize", True)),
            return_attention_mask=bool(preprocessor.get("return_attention_mask", False)),
            padding_value=float(preprocessor.get("padding_value", 0.0)),
            conv_kernel=tuple(int(k) for k in config.get("conv_kernel", cls.conv_kernel)),
            conv_stride=tuple(int(s) for s in config.get("conv_stride", cls.conv_stride)),
            adapter_strides=adapter,
        )

    @property
    def inputs_to_logits_ratio(self) -> int:
        """Samples per logit frame: the product of the conv strides (20 ms for 320 at 16 kHz)."""
        ratio = functools.reduce(operator.mul, self.conv_stride, 1)
        for s in self.adapter_strides:
            ratio *= s
        return int(ratio)

    def output_length(self, n_samples: int) -> int:
        """Logit frames for ``n_samples`` (``_get_feat_extract_output_lengths``); 0 if too short."""
        length = int(n_samples)
        for k, s in zip(self.conv_kernel, self.conv_stride):
            length = (length - k) // s + 1
            if length <= 0:
                return 0
        for s in self.adapter_strides:
            length = (length - 1) // s + 1
            if length <= 0:
                return 0
        return max(length, 0)

    @property
    def min_samples(self) -> int:
        """Shortest input that yields one logit frame (the conv stack's receptive field)."""
        length = 1
        for s in reversed(self.adapter_strides):
            length = (length - 1) * s + 1
        for k, s in zip(reversed(self.conv_kernel), reversed(self.conv_stride)):
            length = (length - 1) * s + k
        return length


def normalize(x: np.ndarray) -> np.ndarray:
    """Zero-mean unit-variance, the formula of ``Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm``."""
    x = np.asarray(x, dtype=np.float32)
    return (x - x.mean()) / np.sqrt(x.var() + 1e-7)


def prepare(samples: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """One utterance -> model input values (float32, 1-D)."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    return normalize(x) if cfg.do_normalize else x


def pad_batch(inputs: Sequence[np.ndarray], cfg: FeatureConfig) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Already-prepared 1-D inputs -> (input_values [B, T], attention_mask [B, T] int64 or None).

    Each input is normalised on its own before padding (as transformers does when it builds an
    attention mask), so a row's values never depend on its batch-mates.
    """
    lengths = [len(x) for x in inputs]
    t = max(lengths) if lengths else 0
    values = np.full((len(inputs), t), cfg.padding_value, dtype=np.float32)
    mask = np.zeros((len(inputs), t), dtype=np.int64)
    for i, x in enumerate(inputs):
        values[i, : len(x)] = x
        mask[i, : len(x)] = 1
    return values, (mask if cfg.return_attention_mask else None)


def length_groups(
    lengths: Sequence[int],
    batch_size: int,
    exact: bool,
    max_padding_ratio: float = 0.25,
    max_batch_samples: Optional[int] = None,
) -> List[List[int]]:
    """Indices grouped into batches of similar length (longest first).

    ``exact``: only identical lengths share a batch (models without attention mask).
    Otherwise a batch is closed when padding would exceed ``max_padding_ratio`` of the longest
    row, when it has ``batch_size`` rows, or when ``rows * longest`` would pass
    ``max_batch_samples`` (bounded memory).
    """
    batch_size = max(1, int(batch_size))
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    groups: List[List[int]] = []
    cur: List[int] = []
    for i in order:
        if cur:
            longest = lengths[cur[0]]
            full = len(cur) >= batch_size
            if exact:
                mismatch = lengths[i] != longest
            else:
                mismatch = (longest - lengths[i]) > max_padding_ratio * longest
            too_big = max_batch_samples is not None and (len(cur) + 1) * longest > max_batch_samples
            if full or mismatch or too_big:
                groups.append(cur)
                cur = []
        cur.append(i)
    if cur:
        groups.append(cur)
    return groups
