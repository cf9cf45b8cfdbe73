"""Whisper's options: how to decode (:class:`WhisperOptions`) and where the model runs
(:class:`RuntimeOptions`). Frozen and hashable: engines and models are cached per distinct value.

Options are validated up front: an option that CTranslate2 cannot honour is refused, never ignored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

WINDOW_S = 30.0
TIMESTAMP_MODES = ("none", "segment", "word")
COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")
DEVICES = ("cpu", "cuda", "auto")
TASKS = ("transcribe", "translate")
STRATEGIES = ("batch", "sequential", "pack")
PIECE_SEARCH_S = 5.0  # a long row's piece boundary moves back by up to this much to a quiet point


@dataclass(frozen=True)
class RuntimeOptions:
    """How to load the model: one cached instance per distinct value per Python worker."""

    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0  # 0 = CTranslate2's default (all cores); Spark stages set cores per task
    device_index: int = 0  # CUDA device (Spark stages: the GPU Spark assigned to the task); CPU: unused

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.compute_type not in COMPUTE_TYPES:
            raise ValueError(f"computeType must be one of {COMPUTE_TYPES}, got {self.compute_type!r}")
        if self.cpu_threads < 0:
            raise ValueError("cpuThreads must be >= 0")
        if self.device_index < 0:
            raise ValueError("device_index must be >= 0")


@dataclass(frozen=True)
class WhisperOptions:
    """Decoding options (each one honoured)."""

    language: Optional[str] = None  # None: detect (English-only models: "en")
    task: str = "transcribe"
    beam_size: int = 5
    best_of: int = 5
    patience: float = 1.0
    length_penalty: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    temperature: Tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    top_k: int = 0  # sampling: 0 = whole distribution
    top_p: float = 1.0  # nucleus sampling: CTranslate2's Whisper has none, so only 1.0 is accepted
    max_new_tokens: Optional[int] = None
    initial_prompt: Optional[str] = None
    timestamps: str = "segment"  # none | segment | word
    condition_on_previous_text: bool = True
    compression_ratio_threshold: Optional[float] = 2.4
    log_prob_threshold: Optional[float] = -1.0
    no_speech_threshold: Optional[float] = 0.6
    batch_size: int = 8
    vad_filter: bool = False
    seed: Optional[int] = None
    strategy: str = "batch"  # batch: rows batched, long rows cut into <=30-s pieces | sequential: long rows by faster-whisper's long-form algorithm | pack: short utterances packed into shared windows
    long_piece_s: float = 600.0  # strategy=sequential: rows longer than 1.5x this are decoded in pieces of this length (bounded memory)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.timestamps not in TIMESTAMP_MODES:
            raise ValueError(f"timestamps must be one of {TIMESTAMP_MODES}, got {self.timestamps!r}")
        if self.beam_size < 1 or self.best_of < 1 or self.batch_size < 1:
            raise ValueError("beamSize, bestOf and batchSize must be >= 1")
        if not self.temperature or any(t < 0 for t in self.temperature):
            raise ValueError("temperature must be a non-empty list of values >= 0")
        if self.top_k < 0:
            raise ValueError("topK must be >= 0 (0 samples from the whole distribution)")
        if not (0.0 < self.top_p <= 1.0):
            raise ValueError("topP must be in (0, 1]")
        if self.top_p < 1.0:
            raise ValueError(
                "topP < 1 (nucleus sampling) is not supported by CTranslate2's Whisper decoder; "
                "use topK to restrict sampling"
            )
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.long_piece_s < 60:
            raise ValueError("longPieceS must be >= 60 seconds")
        if self.max_new_tokens is not None and not (0 < self.max_new_tokens <= 440):
            raise ValueError("maxNewTokens must be in 1..440 (Whisper's decoder holds 448 tokens)")

    @property
    def sampling(self) -> bool:
        return any(t > 0 for t in self.temperature)

    def fw_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments for faster-whisper's ``WhisperModel.transcribe``."""
        return dict(
            language=self.language,
            task=self.task,
            beam_size=self.beam_size,
            best_of=self.best_of,
            patience=self.patience,
            length_penalty=self.length_penalty,
            repetition_penalty=self.repetition_penalty,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
            temperature=list(self.temperature),
            compression_ratio_threshold=self.compression_ratio_threshold,
            log_prob_threshold=self.log_prob_threshold,
            no_speech_threshold=self.no_speech_threshold,
            condition_on_previous_text=self.condition_on_previous_text,
            initial_prompt=self.initial_prompt,
            without_timestamps=self.timestamps == "none",
            word_timestamps=self.timestamps == "word",
            max_new_tokens=self.max_new_tokens,
            vad_filter=self.vad_filter,
        )

    def as_metadata(self) -> Dict[str, str]:
        d = asdict(self)
        return {k: ("" if v is None else (",".join(map(str, v)) if isinstance(v, tuple) else str(v))) for k, v in d.items()}


