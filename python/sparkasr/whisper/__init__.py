"""Whisper: the engine (CTranslate2 through faster-whisper), its options, and how it decodes.

* :mod:`.options`: :class:`WhisperOptions` (decoding) and :class:`RuntimeOptions` (device, threads);
* :mod:`.model`: the cached CTranslate2 model, the encoder call, word alignment;
* :mod:`.window`: one batch of ≤30-s windows decoded together, with Whisper's quality checks;
* :mod:`.engine`: :class:`WhisperEngine`: short rows batched, long rows by strategy;
* :mod:`.packing`: short utterances packed into shared windows (``strategy="pack"``);
* :mod:`.models`: where the weights come from (embedded, ``base``, local directories, a hub).

Nothing here imports pyspark or torch (the PyTorch backend is :mod:`sparkasr.convert.torch_whisper`).
"""

from .engine import WhisperEngine, get_engine
from .model import LOAD_COUNT, load_model
from .options import RuntimeOptions, WhisperOptions

__all__ = ["LOAD_COUNT", "RuntimeOptions", "WhisperEngine", "WhisperOptions", "get_engine", "load_model"]
