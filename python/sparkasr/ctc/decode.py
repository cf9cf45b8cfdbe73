"""CTC decoding without torch: greedy decoding, character/word offsets, chunk stitching.

Everything here reproduces transformers' ``Wav2Vec2CTCTokenizer`` (``decode`` / ``batch_decode``
with ``output_char_offsets`` / ``output_word_offsets``) and the chunking arithmetic of
``AutomaticSpeechRecognitionPipeline`` (``chunk_length_s`` / ``stride_length_s``), so that our text
is *exactly* the text transformers gives for the same logits:

* CTC collapse: consecutive identical tokens are merged **first**, then the blank (pad) token is
  dropped. ``M I D D <pad> D L E`` gives ``MIDDLE``: a blank between two identical letters keeps
  both (Spark NLP's Scala decoder drops blanks first and prints ``MIDLE``).
* The word delimiter token (``|``) becomes a space; the result is stripped; lower-cased only when
  the tokenizer says ``do_lower_case`` (the vocab's case is kept otherwise).
* Offsets are in logit frames; :func:`frames_to_seconds` turns them into seconds with the model's
  real stride (product of the conv strides, ``config.inputs_to_logits_ratio``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..audio import SAMPLE_RATE

# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CTCVocab:
    """The tokenizer facts CTC decoding needs (from vocab.json + tokenizer configs)."""

    tokens: Tuple[str, ...]  # tokens[id] == token string
    pad_token: str = "<pad>"  # the CTC blank
    word_delimiter_token: str = "|"
    replace_word_delimiter_char: str = " "
    unk_token: str = "<unk>"
    do_lower_case: bool = False
    clean_up_tokenization_spaces: bool = False
    special_tokens: Tuple[str, ...] = ("<s>", "</s>", "<unk>", "<pad>")

    def __post_init__(self):
        if self.pad_token not in self.tokens:
            raise ValueError(f"CTC blank/pad token {self.pad_token!r} is not in the vocabulary")

    @classmethod
    def from_vocab(cls, vocab: Mapping[str, int], **kwargs) -> CTCVocab:
        """From a ``token -> id`` mapping (vocab.json). Ids must be 0..n-1 (holes become unk)."""
        if not vocab:
            raise ValueError("empty vocabulary")
        n = max(vocab.values()) + 1
        unk = kwargs.get("unk_token", "<unk>")
        tokens = [unk] * n
        for tok, idx in vocab.items():
            if idx < 0:
                raise ValueError(f"negative token id {idx} for {tok!r}")
            tokens[int(idx)] = tok
        return cls(tokens=tuple(tokens), **kwargs)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def blank_id(self) -> int:
        return self.tokens.index(self.pad_token)

    def token(self, idx: int) -> str:
        return self.tokens[idx] if 0 <= idx < len(self.tokens) else self.unk_token


# ---------------------------------------------------------------------------------------------
# Greedy decoding with offsets (Wav2Vec2CTCTokenizer semantics)
# ---------------------------------------------------------------------------------------------


@dataclass
class CharOffset:
    char: str
    start_offset: int  # first logit frame of the (collapsed) run
    end_offset: int  # one past the last frame


@dataclass
class WordOffset:
    word: str
    start_offset: int
    end_offset: int


@dataclass
class Decoded:
    text: str
    char_offsets: List[CharOffset] = field(default_factory=list)
    word_offsets: List[WordOffset] = field(default_factory=list)


def clean_up_tokenization(text: str) -> str:
    """transformers' ``PreTrainedTokenizerBase.clean_up_tokenization`` (used only when asked)."""
    return (
        text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
    )


def group_runs(ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of identical consecutive ids: (run_ids, run_starts, run_ends) (ends exclusive)."""
    ids = np.asarray(ids).reshape(-1)
    if ids.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts = np.concatenate(([0], change)).astype(np.int64)
    ends = np.concatenate((change, [ids.size])).astype(np.int64)
    return ids[starts], starts, ends


def decode_ids(ids: Sequence[int], vocab: CTCVocab, offsets: bool = True) -> Decoded:
    """Greedy CTC decode of per-frame token ids: collapse repeats, then drop blanks.

    Same text as ``Wav2Vec2CTCTokenizer.decode(ids)`` (``skip_special_tokens=False``, i.e. what
    ``Wav2Vec2Processor.batch_decode`` does by default), same ``char_offsets`` / ``word_offsets``.
    """
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    n = len(vocab.tokens)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        # ids outside the vocab are the unk token (transformers groups them as such)
        unk = vocab.tokens.index(vocab.unk_token) if vocab.unk_token in vocab.tokens else n
        arr = np.where((arr < 0) | (arr >= n), unk, arr)
    run_ids, starts, ends = group_runs(arr)
    chars: List[str] = []
    char_offsets: List[CharOffset] = []
    for tid, s, e in zip(run_ids.tolist(), starts.tolist(), ends.tolist()):
        tok = vocab.token(tid)
        if tok == vocab.pad_token:
            continue
        if tok == vocab.word_delimiter_token:
            tok = vocab.replace_word_delimiter_char
        chars.append(tok)
        if offsets:
            char_offsets.append(CharOffset(tok, s, e))
    text = "".join(chars).strip()
    if vocab.do_lower_case:
        text = text.lower()
    if vocab.clean_up_tokenization_spaces:
        text = clean_up_tokenization(text)
    words = word_offsets(char_offsets, vocab.replace_word_delimiter_char) if offsets else []
    return Decoded(text=text, char_offsets=char_offsets, word_offsets=words)


def word_offsets(chars: Sequence[CharOffset], delimiter: str = " ") -> List[WordOffset]:
    """Words from character offsets (``Wav2Vec2CTCTokenizer._get_word_offsets``)."""
    out: List[WordOffset] = []
    last_state = "SPACE"
    word = ""
    start = end = 0
    for c in chars:
        state = "SPACE" if c.char == delimiter else "WORD"
        if state == last_state:
            end = c.end_offset
            word += c.char
        else:
            if state == "SPACE":
                out.append(WordOffset(word, start, end))
            else:
                start, end, word = c.start_offset, c.end_offset, c.char
        last_state = state
    if last_state == "WORD":
        out.append(WordOffset(word, start, end))
    return out


def greedy_decode(logits: np.ndarray, vocab: CTCVocab, offsets: bool = True) -> Decoded:
    """Argmax per frame, then :func:`decode_ids`. ``logits``: (frames, vocab)."""
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"expected (frames, vocab) logits, got shape {logits.shape}")
    return decode_ids(np.argmax(logits, axis=-1), vocab, offsets=offsets)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float32)
    m = np.max(x, axis=-1, keepdims=True)
    y = x - m
    return y - np.log(np.sum(np.exp(y), axis=-1, keepdims=True))


def frame_confidences(logits: np.ndarray) -> np.ndarray:
    """Per-frame probability of the argmax token (softmax max)."""
    if len(logits) == 0:
        return np.zeros(0, dtype=np.float32)
    return np.exp(np.max(log_softmax(logits), axis=-1))


def frames_to_seconds(frame: int, inputs_to_logits_ratio: int, sampling_rate: int = SAMPLE_RATE) -> float:
    """A logit frame index -> seconds (HF pipeline: ``offset * ratio / sampling_rate``)."""
    return float(frame) * inputs_to_logits_ratio / sampling_rate


# ---------------------------------------------------------------------------------------------
# Long audio: overlapping chunks, logits of the strides dropped, concatenated
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkSpan:
    """One chunk of a long input, in samples: ``samples[start:end]``; ``left``/``right`` are the
    stride samples whose logits are dropped after inference."""

    start: int
    end: int
    left: int
    right: int

    @property
    def length(self) -> int:
        return self.end - self.start


def chunk_sizes(
    chunk_length_s: float,
    stride_length_s: Optional[Tuple[float, float]],
    inputs_to_logits_ratio: int,
    sampling_rate: int = SAMPLE_RATE,
) -> Tuple[int, int, int]:
    """(chunk_len, stride_left, stride_right) in samples, aligned to the model stride (HF)."""
    if chunk_length_s <= 0:
        raise ValueError("chunk_length_s must be > 0")
    if stride_length_s is None:
        stride_length_s = (chunk_length_s / 6, chunk_length_s / 6)
    left_s, right_s = stride_length_s
    align = max(1, int(inputs_to_logits_ratio))
    chunk_len = int(round(chunk_length_s * sampling_rate / align) * align)
    left = int(round(left_s * sampling_rate / align) * align)
    right = int(round(right_s * sampling_rate / align) * align)
    if chunk_len < left + right:
        raise ValueError("chunk length must be greater than stride_left + stride_right")
    if chunk_len - left - right <= 0:
        raise ValueError("chunk length minus strides must be > 0")
    return chunk_len, left, right


def plan_chunks(n_samples: int, chunk_len: int, stride_left: int, stride_right: int) -> List[ChunkSpan]:
    """The chunks of ``AutomaticSpeechRecognitionPipeline``'s ``chunk_iter`` for one input."""
    step = chunk_len - stride_left - stride_right
    if step <= 0:
        raise ValueError("chunk length must be greater than the strides")
    out: List[ChunkSpan] = []
    for start in range(0, max(n_samples, 1), step):
        end_nominal = start + chunk_len
        end = min(end_nominal, n_samples)
        left = 0 if start == 0 else stride_left
        is_last = end_nominal >= n_samples
        right = 0 if is_last else stride_right
        if end - start > left:
            out.append(ChunkSpan(start, end, left, right))
        if is_last:
            break
    return out


def stride_frames(span: ChunkSpan, inputs_to_logits_ratio: int) -> Tuple[int, int, int]:
    """HF ``rescale_stride``: (token_n, left_frames, right_frames) for a chunk."""
    ratio = 1.0 / inputs_to_logits_ratio
    n = span.length
    token_n = int(round(n * ratio))
    left = int(round(span.left / n * token_n))
    right = int(round(span.right / n * token_n))
    return token_n, left, right


def stitch(chunk_logits: Sequence[np.ndarray], spans: Sequence[ChunkSpan], inputs_to_logits_ratio: int) -> np.ndarray:
    """Drop each chunk's stride frames and concatenate (HF pipeline postprocess for CTC).

    ``chunk_logits[i]`` are the logits (frames, vocab) of ``spans[i]``. Slicing is done exactly as
    transformers does (``items[left : token_n - right]`` with ``token_n = round(n / ratio)``).
    """
    if len(chunk_logits) != len(spans):
        raise ValueError("one logits array per chunk span is needed")
    parts = []
    for lg, span in zip(chunk_logits, spans):
        token_n, left, right = stride_frames(span, inputs_to_logits_ratio)
        parts.append(lg[left : token_n - right])
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(parts, axis=0)


def stitch_offsets(spans: Sequence[ChunkSpan], inputs_to_logits_ratio: int, n_frames: Sequence[int]) -> List[int]:
    """Frame offset of each chunk's kept part in the stitched sequence (for tests/diagnostics)."""
    out, pos = [], 0
    for span, n in zip(spans, n_frames):
        token_n, left, right = stride_frames(span, inputs_to_logits_ratio)
        out.append(pos)
        pos += len(range(n)[left : token_n - right])
    return out


def decoded_to_dict(d: Decoded) -> Dict[str, object]:
    return {
        "text": d.text,
        "char_offsets": [c.__dict__ for c in d.char_offsets],
        "word_offsets": [w.__dict__ for w in d.word_offsets],
    }
