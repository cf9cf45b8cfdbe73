"""The voice encoder on ONNX Runtime: windows of mel frames → L2-normalised 256-dimensional speaker
embeddings (Resemblyzer's GE2E encoder, :mod:`sparkasr.convert.voice_encoder`). No torch."""

from __future__ import annotations

import os
from typing import Sequence, Tuple

import numpy as np

from ..convert.voice_encoder import EMBEDDING, ONNX_FILE
from .features import FRAMES_PER_S, N_MELS

BATCH = 64  # windows per ONNX Runtime call (the LSTM's step is a [batch, 256] x [256, 1024] product)


class VoiceEncoder:
    """One ONNX Runtime session of the voice encoder in ``model_dir``, ``threads`` intra-op
    threads (0: ONNX Runtime's default, every core)."""

    def __init__(self, model_dir: str, threads: int = 0):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.path = os.path.join(model_dir, ONNX_FILE)
        self.session = ort.InferenceSession(self.path, so, providers=["CPUExecutionProvider"])

    def embed(self, mels: np.ndarray) -> np.ndarray:
        """``[n, frames, 40]`` mel windows → ``[n, 256]`` embeddings."""
        mels = np.ascontiguousarray(mels, dtype=np.float32)
        if mels.ndim != 3 or mels.shape[2] != N_MELS:
            raise ValueError(f"mel windows must be [n, frames, {N_MELS}], got {mels.shape}")
        if len(mels) == 0:
            return np.zeros((0, EMBEDDING), np.float32)
        out = [self.session.run(None, {"mels": mels[a : a + BATCH]})[0] for a in range(0, len(mels), BATCH)]
        return np.concatenate(out).astype(np.float32)

    def embed_spans(
        self, mel: np.ndarray, spans: Sequence[Tuple[int, int]], gains: Sequence[float], frames: int
    ) -> np.ndarray:
        """Embeddings of the frame ranges ``spans`` of the item's spectrogram ``mel`` (``[frames, 40]``),
        each scaled by its loudness gain squared (power) and made ``frames`` long: longer spans keep
        their last ``frames``, shorter ones are zero-padded in front (silence before the voice, so
        the encoder's last state, which it reads the voice from, follows the speech)."""
        batch = np.zeros((len(spans), frames, N_MELS), np.float32)
        for i, ((a, b), g) in enumerate(zip(spans, gains)):
            part = mel[max(a, b - frames) : b]
            batch[i, frames - len(part) :] = part * np.float32(g * g)
        return self.embed(batch)


def frames_of(seconds: float) -> int:
    return int(round(seconds * FRAMES_PER_S))
