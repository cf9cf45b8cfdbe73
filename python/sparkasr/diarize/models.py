"""Where the voice encoder comes from: a directory holding ``voice_encoder.onnx`` (Resemblyzer's
encoder converted by :mod:`sparkasr.convert.voice_encoder`).

* ``"resemblyzer"`` (the default): ``<cache>/models/voice-encoder-resemblyzer``. When it is not
  there yet it is converted at first use, on the driver, if the machine has the Resemblyzer wheel
  and torch (``scripts/setup.sh --all`` and ``sparkasr convert --diarizer`` do it ahead of time);
  executors are sent the converted directory and need neither.
* a local directory with ``voice_encoder.onnx``: used as is (a copy made elsewhere).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from ..convert.voice_encoder import META_FILE, ONNX_FILE, VoiceEncoderUnavailable, resemblyzer_weights
from ..whisper.models import ModelNotFoundError, models_cache_dir

DEFAULT_ENCODER = "resemblyzer"
_ALIASES = {"", "default", "resemblyzer"}


def is_encoder_dir(path: os.PathLike) -> bool:
    return (Path(path) / ONNX_FILE).is_file()


def default_encoder_dir() -> Path:
    return models_cache_dir() / "voice-encoder-resemblyzer"


def _stale(target: Path, weights: Optional[Path]) -> bool:
    """Whether the cached conversion was made from other weights than the installed wheel's."""
    if weights is None:
        return False
    try:
        meta = json.loads((target / META_FILE).read_text())
    except (OSError, ValueError):
        return True
    from ..convert.voice_encoder import sha256

    return meta.get("weights_sha256") != sha256(weights)


def resolve_voice_encoder(name: Optional[str] = None, convert: bool = True) -> str:
    """The local directory of the voice encoder ``name`` (see the module docstring); converts
    Resemblyzer's weights at first use when ``convert`` and the machine can."""
    name = (name or "").strip()
    if name.lower() in _ALIASES:
        target = default_encoder_dir()
        weights = resemblyzer_weights()
        if is_encoder_dir(target) and not _stale(target, weights):
            return str(target)
        if not convert:
            raise ModelNotFoundError(f"the voice encoder is not converted yet ({target})")
        try:
            from ..convert.voice_encoder import export_voice_encoder

            return str(export_voice_encoder(target, weights))
        except VoiceEncoderUnavailable as exc:
            if is_encoder_dir(target):
                return str(target)
            raise ModelNotFoundError(
                f"the speaker model (Resemblyzer's voice encoder as ONNX) is not in {target}: {exc}"
            ) from None
    path = Path(os.path.expanduser(name))
    if is_encoder_dir(path):
        return str(path)
    raise ModelNotFoundError(
        f"speaker model {name!r} is neither 'resemblyzer' nor a directory holding {ONNX_FILE} "
        "(sparkasr convert --diarizer --output DIR writes one)"
    )
