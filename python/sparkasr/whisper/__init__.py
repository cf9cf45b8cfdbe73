"""Whisper: the engine (CTranslate2 through faster-whisper), its options, and how it decodes.

* :mod:`.options`: :class:`WhisperOptions` (decoding) and :class:`RuntimeOptions` (device, threads);
* :mod:`.rules`: the long-form rules' thresholds and rounds (``docs/long_form.md``);
* :mod:`.model`: the cached CTranslate2 model, the encoder call, word alignment;
* :mod:`.window`: one batch of ≤30-s windows decoded together, with Whisper's quality checks;
* :mod:`.decoder`: one call's model, options, VAD gate and progress callback: windows and words;
* :mod:`.decoded`: the typed record of a decoded stretch, and the measures the repairs take of it;
* :mod:`.batched`: stretches of ≤30 s batched, with rests of early-stopped windows in rounds;
* :mod:`.sequential`: faster-whisper's own long-form algorithm (and the temperature fallback);
* :mod:`.pieces`: long rows as ≤30-s pieces, re-heard and continued in bounded rounds;
* :mod:`.gate`: the VAD gate; :mod:`.vad`: Silero VAD's speech map;
* :mod:`.engine`: :class:`WhisperEngine`: checks each item and sends it down its path;
* :mod:`.packing`: short utterances packed into shared windows (``strategy="pack"``);
* :mod:`.models`: where the weights come from (embedded, ``base``, local directories, a hub).

Nothing here imports pyspark, torch or the job package (the PyTorch backend is
:mod:`sparkasr.convert.torch_whisper`; progress is a callback the Spark stage passes in).
"""

from .engine import WhisperEngine, get_engine
from .model import LOAD_COUNT, load_model
from .options import RuntimeOptions, WhisperOptions

__all__ = ["LOAD_COUNT", "RuntimeOptions", "WhisperEngine", "WhisperOptions", "get_engine", "load_model"]
