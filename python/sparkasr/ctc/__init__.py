"""CTC speech recognition (Wav2Vec2 / HuBERT / Data2Vec-Audio / WavLM ``...ForCTC``) on ONNX Runtime.

Plain Python, no Spark and no torch needed: ``CTCEngine(model_dir).transcribe_batch(items)``.
Checkpoints are converted once with ``sparkasr convert`` (torch/transformers, the convert extra).
"""

from .checkpoint import CheckpointError, CTCCheckpoint, load_checkpoint
from .decode import CTCVocab, greedy_decode
from .engine import CTCEngine, CTCOptions, get_engine
from .lm import BeamOptions

__all__ = [
    "BeamOptions",
    "CTCCheckpoint",
    "CTCEngine",
    "CTCOptions",
    "CTCVocab",
    "CheckpointError",
    "get_engine",
    "greedy_decode",
    "load_checkpoint",
]
