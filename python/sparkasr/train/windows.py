"""Training examples: which rows can teach (:func:`check_row`), the token sequences Whisper learns
(:class:`Labeler`), and short utterances packed several to a 30-s window with their texts joined
(:func:`plan_train_windows`, :func:`build_train_window`).

Whisper's encoder always sees a 30-s window, so a 2-s prompt trained on its own costs a whole
window. Windows are planned as inference packing plans them (:func:`sparkasr.whisper.packing.plan_windows`:
first-fit by decreasing duration, a ``gap_s`` of silence between utterances), so the model learns on
the kind of window ``strategy=pack`` decodes. A window's label is its utterances' texts in order,
joined by a space; with timestamps (a ``timestamp_fraction`` of windows) each utterance is framed by
the timestamp tokens of where its sound starts and ends in the window, as Whisper's own training
data is, so the fine-tuned model keeps predicting segment times.

Plain numpy and ``tokenizers``: no torch here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from ..audio import SAMPLE_RATE, speech_bounds
from ..whisper.packing import PackingOptions, build_window, plan_windows

WINDOW_S = 30.0
TEXT_CTX = 448  # Whisper's decoder positions
TIME_PRECISION = 0.02
IGNORE = -100  # label of a position that is not learned (the prompt)

# skip kinds: how a row that cannot teach is counted (its reason, naming the row, is kept as an example)
SKIP_AUDIO = "unreadable audio"
SKIP_EMPTY = "empty reference"
SKIP_LONG = "longer than 30 s"
SKIP_MISMATCH = "reference does not fit the audio"


@dataclass(frozen=True)
class Labeler:
    """The special tokens and text tokenisation of one Whisper model, for one language and task."""

    tokenizer_json: str  # the model's tokenizer.json, as text (small enough to travel in closures)
    multilingual: bool
    language: str = "en"
    task: str = "transcribe"

    @classmethod
    def for_model(cls, model_dir: str, language: Optional[str], task: str) -> Labeler:
        """The labeler of the CTranslate2 Whisper model in ``model_dir``. Raises ``ValueError`` for a
        multilingual model without ``language``, or a language or task the model lacks."""
        from pathlib import Path

        from ..whisper.models import whisper_languages

        langs = whisper_languages(model_dir)
        multilingual = langs != ("en",)
        if not multilingual:
            if language not in (None, "", "en"):
                raise ValueError(f"language {language!r}: {model_dir} is an English-only model (choices: en)")
            if task != "transcribe":
                raise ValueError(f"task {task!r} needs a multilingual model; {model_dir} is English-only")
        elif not language:
            raise ValueError(
                "language is needed to fine-tune a multilingual model: the language of the training text "
                f"(one of {', '.join(langs[:12])}, ...)"
            )
        elif language not in langs:
            raise ValueError(f"language {language!r} is not a language of {model_dir}")
        text = (Path(model_dir) / "tokenizer.json").read_text(encoding="utf-8")
        return cls(text, multilingual, language or "en", task)

    def __getstate__(self):  # the parsed tokenizer is rebuilt where the labeler lands
        return {k: v for k, v in self.__dict__.items() if k != "tokenizer"}

    def __setstate__(self, state):
        self.__dict__.update(state)

    @functools.cached_property
    def tokenizer(self):
        from tokenizers import Tokenizer

        return Tokenizer.from_str(self.tokenizer_json)

    def token_id(self, token: str) -> int:
        i = self.tokenizer.token_to_id(token)
        if i is None:
            raise ValueError(f"the model's tokenizer has no {token}")
        return i

    @property
    def eot(self) -> int:
        return self.token_id("<|endoftext|>")

    @property
    def timestamp_begin(self) -> int:
        return self.token_id("<|notimestamps|>") + 1

    def prompt(self, timestamps: bool) -> List[int]:
        """Whisper's start sequence: ``<|startoftranscript|>`` [language, task] [``<|notimestamps|>``]."""
        seq = [self.token_id("<|startoftranscript|>")]
        if self.multilingual:
            seq += [self.token_id(f"<|{self.language}|>"), self.token_id(f"<|{self.task}|>")]
        if not timestamps:
            seq.append(self.token_id("<|notimestamps|>"))
        return seq

    def text_ids(self, text: str) -> List[int]:
        """``text`` as Whisper writes it: a leading space, no special tokens."""
        return self.tokenizer.encode(" " + text.strip(), add_special_tokens=False).ids

    def time_id(self, seconds: float) -> int:
        return self.timestamp_begin + int(round(min(max(seconds, 0.0), WINDOW_S) / TIME_PRECISION))

    def max_text_tokens(self) -> int:
        """Text tokens one window may hold: the decoder's positions less the prompt, the two timestamp
        tokens of one utterance and the end of text."""
        return TEXT_CTX - len(self.prompt(True)) - 3


@dataclass(frozen=True)
class RowCheck:
    """What one row can teach: its length and text tokens, or the kind and reason of its skip."""

    duration_s: float
    n_tokens: int
    skip_kind: Optional[str] = None
    skip: Optional[str] = None


def check_row(
    samples: Optional[np.ndarray],
    error: Optional[str],
    text: Optional[str],
    labeler: Labeler,
    source: str = "",
    max_words_per_s: float = 8.0,
) -> RowCheck:
    """Whether a row (its decoded ``samples`` or decode ``error``, and its reference ``text``) can be
    trained on. Skipped: unreadable, empty or silent audio; an empty reference; audio longer than one
    30-s window; a reference that cannot be the audio's transcript (more than ``max_words_per_s``
    words per second, or more tokens than a window's decoder holds)."""
    where = source or "<row>"
    if error is not None or samples is None:
        return RowCheck(0.0, 0, SKIP_AUDIO, error or f"{where}: no audio")
    duration = len(samples) / SAMPLE_RATE
    if text is None or not str(text).strip():
        return RowCheck(duration, 0, SKIP_EMPTY, f"{where}: the reference is empty")
    if duration > WINDOW_S:
        return RowCheck(
            duration,
            0,
            SKIP_LONG,
            f"{where}: {duration:.1f} s of audio is longer than Whisper's 30-s window (cut it into rows of at most "
            "30 s, with their texts)",
        )
    n_words = len(str(text).split())
    if n_words > max_words_per_s * max(duration, 1.0):
        return RowCheck(
            duration,
            0,
            SKIP_MISMATCH,
            f"{where}: {n_words} words in {duration:.1f} s of audio (more than {max_words_per_s:g} a second)",
        )
    n_tokens = len(labeler.text_ids(str(text)))
    if n_tokens > labeler.max_text_tokens():
        return RowCheck(
            duration,
            n_tokens,
            SKIP_MISMATCH,
            f"{where}: {n_tokens} tokens, more than a window's decoder holds ({labeler.max_text_tokens()})",
        )
    return RowCheck(duration, n_tokens)


def plan_train_windows(
    durations: Sequence[float],
    n_tokens: Sequence[int],
    token_limit: int,
    pack: bool = True,
    options: PackingOptions = PackingOptions(),
) -> List[List[int]]:
    """Indices of the rows grouped into windows (each row in exactly one window, in input order
    within it). ``pack``: inference packing's plan, then any window whose texts (plus two timestamp
    tokens per utterance) pass ``token_limit`` tokens is split; else one row per window."""
    if not pack:
        return [[i] for i in range(len(durations))]
    out: List[List[int]] = []
    for window in plan_windows([min(float(d), options.window_s) for d in durations], options):
        current: List[int] = []
        used = 0
        for i in window:
            need = int(n_tokens[i]) + 2
            if current and used + need > token_limit:
                out.append(current)
                current, used = [], 0
            current.append(i)
            used += need
        out.append(current)
    return out


@dataclass
class TrainWindow:
    """One training example: up to 30 s of 16-kHz audio, the decoder's input tokens and the labels
    (the next token at each position; :data:`IGNORE` where nothing is learned)."""

    samples: np.ndarray
    decoder_input: List[int]
    labels: List[int]
    n_utterances: int
    timestamps: bool


def build_train_window(
    parts: Sequence[np.ndarray],
    texts: Sequence[str],
    labeler: Labeler,
    timestamps: bool,
    gap_s: float = PackingOptions().gap_s,
) -> TrainWindow:
    """The window of ``parts`` (utterances of at most 30 s together, with ``gap_s`` of silence between
    them) and its label: the texts in order, each framed by the timestamps of its sound
    (:func:`~sparkasr.audio.speech_bounds`) when ``timestamps``."""
    if not parts or len(parts) != len(texts):
        raise ValueError("a window needs one text per utterance")
    samples, spans = build_window(list(parts), gap_s)
    if len(samples) > int(WINDOW_S * SAMPLE_RATE):
        raise ValueError(f"the utterances of a window last {len(samples) / SAMPLE_RATE:.2f} s, more than 30 s")
    body: List[int] = []
    for part, (start, _end), text in zip(parts, spans, texts):
        ids = labeler.text_ids(text)
        if timestamps:
            a, b = speech_bounds(part)
            body += [labeler.time_id(start + a)] + ids + [labeler.time_id(start + b)]
        else:
            body += ids
    prompt = labeler.prompt(timestamps)
    seq = prompt + body + [labeler.eot]
    if len(seq) > TEXT_CTX + 1:
        raise ValueError(f"the window's label has {len(seq) - 1} tokens, more than the decoder's {TEXT_CTX}")
    decoder_input = seq[:-1]
    labels = [IGNORE] * (len(prompt) - 1) + seq[len(prompt) :]
    return TrainWindow(samples, decoder_input, labels, len(parts), timestamps)


def labels_text(labeler: Labeler, labels: Sequence[int]) -> str:
    """The text of a window's labels (timestamps and special tokens left out): what the model is taught."""
    ids = [t for t in labels if 0 <= t < labeler.eot]
    return labeler.tokenizer.decode(ids).strip()
