"""Fine-tuning Whisper on Spark: ``WhisperFineTuner``, a pyspark.ml Estimator whose ``fit`` trains on
a DataFrame of (audio, reference text) with pyspark's TorchDistributor and returns a ``WhisperForCTC``
carrying the new weights (CTranslate2, as every Whisper stage runs).

Modules, one concern each: :mod:`.options` (what the training processes do), :mod:`.windows` (which
rows can teach, labels, packing utterances into 30-s windows), :mod:`.staging` (the Spark job that
stages the rows as Parquet), :mod:`.shards` (the staged rows in the training processes: shards and
epoch plans), :mod:`.weights` (CTranslate2 → transformers → CTranslate2), :mod:`.checkpoints`,
:mod:`.loop` (the torch training process), :mod:`.metrics` (what a fit reports) and
:mod:`.estimator`. Only :mod:`.weights`, :mod:`.checkpoints` and :mod:`.loop` import torch, inside
their functions: ``pip install 'sparkasr[train]'`` on the machines that train; executors that only
transcribe stay torch-free.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainOptions", "TrainingMetrics", "WhisperFineTuner"]


def __getattr__(name: str) -> Any:
    if name == "WhisperFineTuner":  # needs pyspark
        from .estimator import WhisperFineTuner

        return WhisperFineTuner
    if name == "TrainOptions":
        from .options import TrainOptions

        return TrainOptions
    if name == "TrainingMetrics":
        from .metrics import TrainingMetrics

        return TrainingMetrics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
