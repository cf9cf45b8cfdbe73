"""Beam-search CTC decoding with an n-gram language model (KenLM ARPA or binary) via pyctcdecode.

Greedy decoding (:mod:`sparkasr.ctc.decode`) stays the default; this is used when
:class:`BeamOptions` is given. pyctcdecode and kenlm are imported lazily (the ``ctc`` extra).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..options import FLOAT, INT, LIST_STRING, option, validate
from .decode import CTCVocab, WordOffset

UNK_LABEL = "⁇"  # pyctcdecode's representation of the unknown token


def _default_width(width: int) -> int:
    """beamWidth → the beam's width: 0 (the param's default) is 100."""
    return int(width) or 100


@dataclass(frozen=True)
class BeamOptions:
    """Beam search settings. ``kenlm_model_path=None`` gives beam search without LM (hotwords still apply)."""

    kenlm_model_path: Optional[str] = None  # .arpa (slow to load) or KenLM binary (the stage's lmPath)
    unigrams: Optional[Tuple[str, ...]] = None  # known words; read from the ARPA file when None
    alpha: float = option("lmAlpha", FLOAT, 0.5, "LM weight (shallow fusion)", minimum=0.0, maximum=10.0)
    beta: float = option("lmBeta", FLOAT, 1.5, "word insertion bonus", minimum=-20.0, maximum=20.0)
    beam_width: int = option(
        "beamWidth",
        INT,
        0,
        "beam width of the LM beam search (0 = greedy decoding unless lmPath or hotwords are set, then 100)",
        minimum=0,
        maximum=1024,
        convert=_default_width,
    )
    beam_prune_logp: float = -10.0
    token_min_logp: float = -5.0
    hotwords: Tuple[str, ...] = option(
        "hotwords",
        LIST_STRING,
        [],
        "words to favour in beam search (set lmPath or beamWidth > 0 to enable)",
        max_items=1000,
        max_length=100,
    )
    hotword_weight: float = option("hotwordWeight", FLOAT, 10.0, "weight of the hotwords", minimum=0.0, maximum=100.0)
    unk_score_offset: float = -10.0

    def __post_init__(self):
        validate(self)


def labels_for(vocab: CTCVocab) -> List[str]:
    """pyctcdecode labels from a HF CTC vocab: blank -> '', word delimiter -> ' ', unk -> '⁇'."""
    out = []
    for tok in vocab.tokens:
        if tok == vocab.pad_token:
            out.append("")
        elif tok == vocab.word_delimiter_token:
            out.append(" ")
        elif tok == vocab.unk_token:
            out.append(UNK_LABEL)
        else:
            out.append(tok)
    return out


@dataclass
class BeamResult:
    text: str
    words: List[WordOffset] = field(default_factory=list)  # frame offsets, end exclusive
    logit_score: float = 0.0
    lm_score: float = 0.0


class BeamDecoder:
    """A pyctcdecode decoder for one vocabulary + LM; build once, reuse for every row."""

    def __init__(self, vocab: CTCVocab, options: BeamOptions):
        try:
            from pyctcdecode import build_ctcdecoder
        except ImportError as exc:  # pragma: no cover - environment dependent
            raise ImportError(
                "beam search needs the ctc extra: pip install 'sparkasr[ctc]' (pyctcdecode, kenlm)"
            ) from exc
        self.vocab = vocab
        self.options = options
        path = options.kenlm_model_path
        if path is not None:
            path = os.fspath(path)
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path}: KenLM model not found")
        self.decoder = build_ctcdecoder(
            labels_for(vocab),
            kenlm_model_path=path,
            unigrams=list(options.unigrams) if options.unigrams is not None else None,
            alpha=options.alpha,
            beta=options.beta,
            unk_score_offset=options.unk_score_offset,
        )

    def decode(self, logits: np.ndarray, hotwords: Optional[Sequence[str]] = None) -> BeamResult:
        """Best beam for one row's logits (frames, vocab)."""
        o = self.options
        logits = np.asarray(logits, dtype=np.float32)
        if logits.shape[0] == 0:
            return BeamResult(text="")
        hw = list(hotwords if hotwords is not None else o.hotwords) or None
        beams = self.decoder.decode_beams(
            logits,
            beam_width=o.beam_width,
            beam_prune_logp=o.beam_prune_logp,
            token_min_logp=o.token_min_logp,
            prune_history=True,
            hotwords=hw,
            hotword_weight=o.hotword_weight,
        )
        text, _state, word_frames, logit_score, lm_score = beams[0]
        words = [WordOffset(w, int(s), int(e)) for w, (s, e) in word_frames]
        if self.vocab.do_lower_case:
            text = text.lower()
            words = [WordOffset(w.word.lower(), w.start_offset, w.end_offset) for w in words]
        return BeamResult(text=text, words=words, logit_score=float(logit_score), lm_score=float(lm_score))
