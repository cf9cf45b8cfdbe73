"""Where CTC models come from (driver side): a converted dir, an HF checkpoint dir, or a Hub id.

``resolve_ctc_model(name)`` returns a local directory the executors can run:

* a directory with ``model.onnx`` (from ``sparkasr convert``): used as is;
* a Hugging Face checkpoint directory (``model.safetensors``; pickle only with ``allow_pickle``):
  converted once to ONNX into the sparkasr cache (needs the ``convert`` extra on the driver);
* a Hub id (``facebook/wav2vec2-base-960h``): downloaded (online) and converted once; later calls
  use the cached conversion without network.

With ``backend="transformers"`` nothing is converted: the checkpoint directory itself is returned.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Optional

from ..paths import fingerprint
from ..whisper.models import models_cache_dir
from .checkpoint import ONNX_FILE, CheckpointError, is_hub_id, load_checkpoint, resolve, weights_file

LM_NAMES = ("lm.arpa", "lm.binary")


def _convert_into(src: str, target: Path, quantize: Optional[str], allow_pickle: bool) -> str:
    if (target / ONNX_FILE).is_file():
        return str(target)
    from ..convert.command import ConversionError, convert_checkpoint

    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        convert_checkpoint(src, tmp, quantize=quantize, allow_pickle=allow_pickle)
    except ConversionError as exc:
        raise CheckpointError(str(exc)) from exc
    try:
        os.replace(tmp, target)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def resolve_ctc_model(
    name: str, quantize: Optional[str] = None, allow_pickle: bool = False, backend: str = "onnx"
) -> str:
    """A local directory for ``name`` that :class:`~sparkasr.ctc.engine.CTCEngine` can load."""
    path_str = name
    if path_str.startswith("file:"):
        path_str = path_str[len("file:") :]
        if path_str.startswith("//"):
            path_str = path_str[2:]
    p = Path(os.path.expanduser(path_str))
    if p.is_dir():
        ckpt = load_checkpoint(p)  # validates
        if backend == "transformers":
            weights_file(p, allow_pickle=allow_pickle)
            return str(p.resolve())
        if ckpt.onnx_path is not None:
            return str(p.resolve())
        weights_file(p, allow_pickle=allow_pickle)
        target = models_cache_dir() / f"ctc-{p.name}-{fingerprint(str(p))}-{quantize or 'fp32'}"
        return _convert_into(str(p), target, quantize, allow_pickle)
    if not is_hub_id(name):
        raise CheckpointError(f"{name}: no such directory (and not a Hub id like 'facebook/wav2vec2-base-960h')")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "--", name)
    if backend == "transformers":
        return str(resolve(name, allow_pickle=allow_pickle))
    target = models_cache_dir() / f"ctc-hub-{safe}-{quantize or 'fp32'}"
    if (target / ONNX_FILE).is_file():  # converted before: works offline
        return str(target)
    local = resolve(name, allow_pickle=allow_pickle)
    return _convert_into(str(local), target, quantize, allow_pickle)


def with_lm(model_dir: str, lm_path: str) -> str:
    """A directory holding the model files and the KenLM file (``lm.arpa``/``lm.binary``), so that
    both are shipped to executors and saved with the stage together. Files are hard-linked when
    possible (no copy of the weights)."""
    lm = Path(os.path.expanduser(lm_path))
    if not lm.is_file():
        raise FileNotFoundError(f"{lm_path}: KenLM model not found")
    lm_name = "lm.arpa" if lm.suffix.lower() == ".arpa" else "lm.binary"
    src = Path(model_dir)
    target = models_cache_dir() / f"{src.name}-lm-{fingerprint(str(lm.resolve()), 12)}"
    if (target / lm_name).is_file():
        return str(target)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in LM_NAMES:
            _link_or_copy(f, tmp / f.name)
    _link_or_copy(lm, tmp / lm_name)
    try:
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def lm_in_dir(model_dir: str) -> Optional[str]:
    for n in LM_NAMES:
        p = os.path.join(model_dir, n)
        if os.path.isfile(p):
            return p
    return None
