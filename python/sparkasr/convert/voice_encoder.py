"""Resemblyzer's voice encoder → ONNX: ``voice_encoder.onnx`` (input ``mels`` [batch, frames, 40]
power-mel frames, :mod:`sparkasr.diarize.features`; output ``embeddings`` [batch, 256], L2-normed)
and ``voice_encoder.json`` (provenance).

The weights are ``resemblyzer/pretrained.pt`` from Resemblyzer's PyPI wheel (Apache-2.0; GE2E
speaker-verification training, a 3-layer LSTM of 256 units and a 256-unit projection). Only this
step needs torch; the wheel is installed with ``pip install --no-deps resemblyzer`` (its own
dependencies, librosa and webrtcvad, are not needed: the file is read here, never imported).
Executors run the ONNX file on ONNX Runtime."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Optional

ONNX_FILE = "voice_encoder.onnx"
META_FILE = "voice_encoder.json"
N_MELS, HIDDEN, LAYERS, EMBEDDING = 40, 256, 3, 256
OPSET = 17


class VoiceEncoderUnavailable(FileNotFoundError):
    """The voice encoder cannot be converted here (no weights or no torch); the message says why."""


def resemblyzer_weights() -> Optional[Path]:
    """``resemblyzer/pretrained.pt`` of the installed wheel, found without importing the package
    (its ``__init__`` imports librosa and webrtcvad, which are not installed), or None."""
    try:
        spec = importlib.util.find_spec("resemblyzer")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"
    return path if path.is_file() else None


def resemblyzer_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("resemblyzer")
    except PackageNotFoundError:
        return "unknown"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_voice_encoder(output: os.PathLike, weights: Optional[os.PathLike] = None) -> Path:
    """Write ``voice_encoder.onnx`` and ``voice_encoder.json`` into ``output`` (written beside it,
    then moved into place); returns ``output``. Checks the ONNX graph against torch on a batch."""
    weights = Path(weights) if weights else resemblyzer_weights()
    if weights is None or not weights.is_file():
        raise VoiceEncoderUnavailable(
            "Resemblyzer's voice encoder weights are not installed: pip install --no-deps resemblyzer==0.1.4 "
            "(the wheel holds resemblyzer/pretrained.pt)"
        )
    try:
        import numpy as np
        import torch
        from torch import nn
    except ImportError:
        raise VoiceEncoderUnavailable(
            "converting the voice encoder to ONNX needs torch (once, on any machine): pip install torch, then "
            "sparkasr convert --diarizer; executors only need the ONNX file"
        ) from None

    class VoiceEncoder(nn.Module):  # resemblyzer.VoiceEncoder's network
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(N_MELS, HIDDEN, LAYERS, batch_first=True)
            self.linear = nn.Linear(HIDDEN, EMBEDDING)

        def forward(self, mels):
            _, (hidden, _) = self.lstm(mels)
            raw = torch.relu(self.linear(hidden[-1]))
            return raw / torch.linalg.vector_norm(raw, dim=1, keepdim=True).clamp_min(1e-12)

    state = torch.load(str(weights), map_location="cpu", weights_only=True)["model_state"]
    model = VoiceEncoder()
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity_")})
    model.eval()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    example = torch.rand(3, 160, N_MELS, generator=gen) * 4.0
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(tmp / ONNX_FILE),
            input_names=["mels"],
            output_names=["embeddings"],
            dynamic_axes={"mels": {0: "batch", 1: "frames"}, "embeddings": {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        check = torch.rand(5, 120, N_MELS, generator=gen) * 4.0
        want = model(check).numpy()
    import onnxruntime as ort

    got = ort.InferenceSession(str(tmp / ONNX_FILE), providers=["CPUExecutionProvider"]).run(
        None, {"mels": check.numpy()}
    )[0]
    diff = float(np.abs(got - want).max())
    if diff > 1e-4:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"the exported voice encoder differs from torch by {diff:.2e}")
    meta = {
        "model": "resemblyzer-voice-encoder",
        "source": f"resemblyzer {resemblyzer_version()} (PyPI wheel), resemblyzer/pretrained.pt",
        "weights_sha256": sha256(weights),
        "licence": "Apache-2.0",
        "inputs": {
            "mels": f"[batch, frames, {N_MELS}] power mel spectrogram, 10-ms frames (sparkasr.diarize.features)"
        },
        "outputs": {"embeddings": f"[batch, {EMBEDDING}] L2-normalised speaker embeddings"},
        "max_abs_diff_vs_torch": diff,
        "opset": OPSET,
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out
