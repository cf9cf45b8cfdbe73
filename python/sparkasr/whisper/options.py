"""Whisper's options: how to decode (:class:`WhisperOptions`) and where the model runs
(:class:`RuntimeOptions`). Frozen and hashable: engines and models are cached per distinct value.

Options are validated up front: an option that CTranslate2 cannot honour is refused, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from ..options import BOOL, FLOAT, INT, LIST_FLOAT, LIST_INT, STRING, option, validate

TIMESTAMP_MODES = ("none", "segment", "word")
COMPUTE_TYPES = (
    "default",
    "auto",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)
DEVICES = ("cpu", "cuda", "auto")
TASKS = ("transcribe", "translate")
STRATEGIES = ("batch", "sequential", "pack")
VAD_GATES = ("auto", "always", "off")
# Bounds of the options (every option is bounded: a request, job file or param cannot ask for an
# unbounded decode): beams and sampled candidates, temperatures, prompt, token ids, batch, threads
MAX_BEAMS = 16
MAX_TEMPERATURE = 2.0
MAX_PROMPT_CHARS = 2000
MAX_TOKEN_ID = 51865  # the largest Whisper vocabulary (large-v3) has 51866 tokens
MAX_BATCH = 1024
MAX_THREADS = 1024


@dataclass(frozen=True)
class RuntimeOptions:
    """How to load the model: one cached instance per distinct value per Python worker."""

    device: str = option(
        "device",
        STRING,
        "cpu",
        "cpu, cuda or auto; cuda/auto open the GPU Spark assigned to the task",
        choices=DEVICES,
    )
    compute_type: str = option(
        "computeType",
        STRING,
        "int8",
        "CTranslate2 compute type (int8, float16, float32, ...)",
        choices=COMPUTE_TYPES,
    )
    cpu_threads: int = option(
        "cpuThreads",
        INT,
        0,
        "threads per task for the model; 0 = spark.task.cpus inside Spark (the job shares the idle cores out when it "
        "has fewer tasks than cores: one long file uses them all), all cores outside it",
        minimum=0,
        maximum=MAX_THREADS,
        key="threads",
    )
    device_index: int = 0  # CUDA device (Spark stages: the GPU Spark assigned to the task); CPU: unused

    def __post_init__(self):
        validate(self)
        if self.device_index < 0:
            raise ValueError("device_index must be >= 0")


@dataclass(frozen=True)
class WhisperOptions:
    """Decoding options (each one honoured; a value CTranslate2 cannot honour is refused)."""

    language: Optional[str] = option(
        "language",
        STRING,
        "",
        "language code ('' = detect: language and language_probability in the metadata; English-only models: en)",
        null="",
        max_length=16,
    )
    task: str = option(
        "task", STRING, "transcribe", "transcribe, or translate (to English; multilingual models)", choices=TASKS
    )
    beam_size: int = option(
        "beamSize", INT, 5, "beam size for temperature-0 decoding (1 = greedy)", minimum=1, maximum=MAX_BEAMS
    )
    best_of: int = option("bestOf", INT, 5, "candidates sampled at temperature > 0", minimum=1, maximum=MAX_BEAMS)
    patience: float = option("patience", FLOAT, 1.0, "beam search patience factor", minimum=0.0, maximum=10.0)
    length_penalty: float = option(
        "lengthPenalty", FLOAT, 1.0, "beam search length penalty", minimum=-10.0, maximum=10.0
    )
    repetition_penalty: float = option(
        "repetitionPenalty", FLOAT, 1.0, "penalty on repeated tokens (> 1 penalises)", minimum=0.0, maximum=10.0
    )
    no_repeat_ngram_size: int = option(
        "noRepeatNgramSize", INT, 0, "forbid repeating n-grams of this size (0 = off)", minimum=0, maximum=64
    )
    temperature: Tuple[float, ...] = option(
        "temperature",
        LIST_FLOAT,
        [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
        "temperatures tried in order when a decode fails the compression-ratio / log-prob checks",
        minimum=0.0,
        maximum=MAX_TEMPERATURE,
        max_items=10,
    )
    top_k: int = option(
        "topK", INT, 0, "sampling at temperature > 0 from the K most likely tokens (0 = all)", minimum=0, maximum=1000
    )
    top_p: float = option(
        "topP",
        FLOAT,
        1.0,
        "nucleus sampling; CTranslate2's Whisper decoder has none, so values < 1 are refused",
        minimum=0.0,
        maximum=1.0,
    )
    max_new_tokens: Optional[int] = option(
        "maxNewTokens",
        INT,
        0,
        "max tokens generated per 30-s window (0 = the model's maximum)",
        minimum=0,
        maximum=440,
        null=0,
    )
    initial_prompt: Optional[str] = option(
        "initialPrompt",
        STRING,
        "",
        "text given to the decoder as previous context",
        null="",
        max_length=MAX_PROMPT_CHARS,
    )
    timestamps: str = option(
        "timestamps",
        STRING,
        "segment",
        "none, segment or word: chunk annotations with start/end seconds",
        choices=TIMESTAMP_MODES,
    )
    condition_on_previous_text: bool = option(
        "conditionOnPreviousText",
        BOOL,
        True,
        "long audio: prompt each window with the previous text",
    )
    suppress_tokens: Tuple[int, ...] = option(
        "suppressTokens",
        LIST_INT,
        [-1],
        "token ids the decoder never generates; -1 stands for Whisper's default set (symbols and special tokens)",
        minimum=-1,
        maximum=MAX_TOKEN_ID,
        max_items=MAX_TOKEN_ID + 1,
    )
    compression_ratio_threshold: Optional[float] = 2.4
    log_prob_threshold: Optional[float] = -1.0
    no_speech_threshold: Optional[float] = 0.6
    batch_size: int = option(
        "batchSize", INT, 8, "short rows (<= 30 s) decoded together in one model call", minimum=1, maximum=MAX_BATCH
    )
    vad_filter: bool = option("vadFilter", BOOL, False, "skip non-speech with Silero VAD (sequential path)")
    vad_gate: str = option(
        "vadGate",
        STRING,
        "auto",
        "empty transcripts, not hallucinated text, for near-silence, noise and tones: audio in which Silero VAD finds "
        "no speech gives no text. auto: Whisper's doubtful windows (no-speech probability over 0.2, or failing its "
        "checks) are checked, and with strategy=pack every row of up to 30 s; always: also every row and long-row piece, before "
        "decoding (silent ones are not decoded); off: Whisper's own no-speech rule only",
        choices=VAD_GATES,
    )
    vad_check_no_speech: float = 0.2  # vadGate=auto: windows over this no-speech probability are checked
    vad_threshold: float = 0.5  # Silero's speech probability threshold (faster-whisper's default)
    seed: Optional[int] = option(
        "seed", INT, -1, "random seed for sampling (-1 = unset)", minimum=-1, maximum=2**32 - 1, null=-1
    )
    strategy: str = option(
        "strategy",
        STRING,
        "pack",
        "batch: short rows batched, long rows cut at quiet points into <= 30-s pieces decoded batched (one segment per "
        "piece); sequential: long rows by faster-whisper's long-form algorithm (Whisper's sentence segments); pack: "
        "rows up to 30 s packed several to a 30-s window (fastest on short clips); longer rows as batch",
        choices=STRATEGIES,
        jvm_default="batch",
    )
    long_piece_s: float = option(
        "longPieceS",
        FLOAT,
        600.0,
        "strategy=sequential: rows longer than 1.5x this many seconds are decoded in pieces of this length (bounded memory)",
        minimum=60.0,
        maximum=3600.0,
    )

    def __post_init__(self):
        if self.max_new_tokens is not None and not (0 < self.max_new_tokens <= 440):
            raise ValueError("maxNewTokens must be in 1..440 (Whisper's decoder holds 448 tokens), or unset (0)")
        if not self.temperature:
            raise ValueError("temperature must be a non-empty list of values >= 0")
        if not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"topP must be in (0, 1] (got {self.top_p!r})")
        if self.top_p < 1.0:
            raise ValueError(
                "topP < 1 (nucleus sampling) is not supported by CTranslate2's Whisper decoder; "
                "use topK to restrict sampling"
            )
        validate(self)

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
            suppress_tokens=list(self.suppress_tokens),
            without_timestamps=self.timestamps == "none",
            word_timestamps=self.timestamps == "word",
            max_new_tokens=self.max_new_tokens,
            vad_filter=self.vad_filter,
        )
