"""How a fine-tuning run trains (:class:`TrainOptions`): the user-facing options of
``WhisperFineTuner`` and ``sparkasr finetune`` that reach the training processes, declared once with
:func:`sparkasr.options.option`. Plain Python: no torch, no Spark."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..options import BOOL, FLOAT, INT, STRING, option, validate
from ..whisper.options import MAX_THREADS

#: CTranslate2 compute types a fine-tuned model can be written in (ctranslate2's converter's quantizations).
EXPORT_COMPUTE_TYPES = (
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)
TASKS = ("transcribe", "translate")


@dataclass(frozen=True)
class TrainOptions:
    """What the training processes do. Batches are counted in 30-s windows per training process: the
    effective batch of one optimizer step is ``batch_size * gradient_accumulation * numProcesses``."""

    epochs: int = option("epochs", INT, 3, "passes over the training rows", minimum=1, maximum=1000)
    max_steps: Optional[int] = option(
        "maxSteps",
        INT,
        0,
        "stop after this many optimizer steps (0 = the epochs decide)",
        minimum=0,
        maximum=10**7,
        null=0,
    )
    learning_rate: float = option(
        "learningRate",
        FLOAT,
        1e-5,
        "peak AdamW learning rate (linear warm-up, then linear decay to 0 at the last step)",
        minimum=0.0,
        maximum=1.0,
    )
    batch_size: int = option(
        "batchSize",
        INT,
        8,
        "30-s windows per training process per forward pass (a window holds several packed utterances)",
        minimum=1,
        maximum=256,
    )
    gradient_accumulation: int = option(
        "gradientAccumulation",
        INT,
        1,
        "forward passes whose gradients make one optimizer step",
        minimum=1,
        maximum=1024,
    )
    warmup_steps: int = option(
        "warmupSteps", INT, 10, "optimizer steps of linear learning-rate warm-up", minimum=0, maximum=10**6
    )
    weight_decay: float = option(
        "weightDecay", FLOAT, 0.01, "AdamW weight decay (not on biases and layer norms)", minimum=0.0, maximum=1.0
    )
    freeze_encoder: bool = option(
        "freezeEncoder",
        BOOL,
        False,
        "train the decoder only (several times cheaper per step; the encoder keeps its weights)",
    )
    language: Optional[str] = option(
        "language",
        STRING,
        "",
        "language of the training text ('' = en for an English-only model; a multilingual model needs it); "
        "the fitted model transcribes in it",
        null="",
        max_length=16,
    )
    task: str = option("task", STRING, "transcribe", "transcribe, or translate (text in English)", choices=TASKS)
    validation_fraction: float = option(
        "validationFraction",
        FLOAT,
        0.0,
        "share of the rows held out for validation, chosen by reference text (rows with the same text fall on one "
        "side) and seed; not used when validationIndicatorCol is set",
        minimum=0.0,
        maximum=0.9,
    )
    early_stopping_patience: int = option(
        "earlyStoppingPatience",
        INT,
        2,
        "with validation rows: stop after this many epochs without a lower validation WER (0 = run every epoch); "
        "the model of the epoch with the lowest WER is the result",
        minimum=0,
        maximum=1000,
    )
    normalizer: str = option(
        "normalizer", STRING, "basic", "text normaliser of the validation WER (as WerEvaluator's)", max_length=200
    )
    seed: int = option("seed", INT, 0, "seed of the shuffles and of the validation split", minimum=0, maximum=2**31 - 1)
    pack: bool = option(
        "pack",
        BOOL,
        True,
        "pack short utterances several to a 30-s window, texts joined (--no-pack: one utterance per window)",
    )
    checkpoint_steps: int = option(
        "checkpointSteps",
        INT,
        50,
        "with checkpointDir: save a checkpoint every this many optimizer steps, and at the end of every epoch "
        "(0 = at epoch ends only)",
        minimum=0,
        maximum=10**7,
    )
    compute_type: str = option(
        "computeType",
        STRING,
        "int8",
        "CTranslate2 compute type of the fine-tuned model",
        choices=EXPORT_COMPUTE_TYPES,
    )
    cpu_threads: int = option(
        "cpuThreads",
        INT,
        0,
        "torch threads per training process (0 = the machine's cores / numProcesses)",
        minimum=0,
        maximum=MAX_THREADS,
        key="threads",
    )
    # tuned in code, not by users
    timestamp_fraction: float = 0.5  # windows whose labels carry timestamp tokens (Whisper keeps predicting times)
    max_grad_norm: float = 1.0  # gradient clipping
    bucket_rows: int = 256  # rows pooled (decoded together) to pack windows from: bounds memory
    max_words_per_s: float = 8.0  # a reference with more words per second of audio is not its transcript
    validation_batch: int = 32  # validation rows read from the staged copy at a time

    def __post_init__(self):
        validate(self)
        if not (0.0 <= self.timestamp_fraction <= 1.0):
            raise ValueError("timestamp_fraction must be in [0, 1]")
        if self.bucket_rows < 1:
            raise ValueError("bucket_rows must be >= 1")
