"""Beam search with a KenLM n-gram LM (pyctcdecode): an ARPA file is built here from a few
sentences, and hand-made logits are made acoustically ambiguous so the LM / hotwords must decide."""

from __future__ import annotations

import numpy as np
import pytest

from ctc_support import VOCAB, write_arpa, write_checkpoint_dir
from sparkasr.ctc import decode as D
from sparkasr.ctc.engine import CTCEngine, CTCOptions
from sparkasr.ctc.lm import BeamDecoder, BeamOptions, labels_for
from sparkasr.records import AudioItem

pytest.importorskip("pyctcdecode")
pytest.importorskip("kenlm")

V = D.CTCVocab.from_vocab(VOCAB)
N = len(VOCAB)

CORPUS = """THE CAT SAT ON THE MAT
THE CAT ATE THE RAT
A CAT SAT ON A HAT
THE DOG SAT ON THE LOG"""


def frames(spec):
    """Logits from a list of frames; a frame is a token or {token: prob, ...} (rest ~0)."""
    lg = np.full((len(spec), N), 1e-4, dtype=np.float32)
    for i, f in enumerate(spec):
        for tok, p in ({f: 0.99} if isinstance(f, str) else f).items():
            lg[i, VOCAB[tok]] = p
    lg /= lg.sum(axis=1, keepdims=True)
    return np.log(lg)


def word(w):
    out = []
    for ch in w:
        out += [ch, "<pad>"]
    return out


# "THE ?AT SAT": the first letter of the 2nd word is C (0.45) or K (0.55) acoustically
AMBIGUOUS = (
    ["<pad>"] + word("THE") + ["|"] + [{"K": 0.55, "C": 0.45}, "<pad>"] + word("AT") + ["|"] + word("SAT") + ["<pad>"]
)


@pytest.fixture(scope="module")
def arpa(tmp_path_factory):
    return write_arpa(CORPUS, tmp_path_factory.mktemp("lm") / "bigram.arpa")


def test_greedy_takes_the_acoustic_best():
    assert D.greedy_decode(frames(AMBIGUOUS), V).text == "THE KAT SAT"


def test_lm_fixes_the_ambiguous_word(arpa):
    dec = BeamDecoder(V, BeamOptions(kenlm_model_path=str(arpa), alpha=0.5, beta=1.0, beam_width=32))
    res = dec.decode(frames(AMBIGUOUS))
    assert res.text == "THE CAT SAT"
    # word timestamps (frame offsets) come with the beam
    assert [w.word for w in res.words] == ["THE", "CAT", "SAT"]
    starts = [w.start_offset for w in res.words]
    assert starts == sorted(starts) and res.words[0].start_offset == 1
    assert res.words[1].start_offset == AMBIGUOUS.index({"K": 0.55, "C": 0.45})
    # without LM, beam search agrees with greedy
    assert BeamDecoder(V, BeamOptions(beam_width=32)).decode(frames(AMBIGUOUS)).text == "THE KAT SAT"


def test_hotwords_steer_the_beam():
    spec = ["<pad>"] + [{"B": 0.6, "P": 0.4}, "<pad>"] + word("AT") + ["<pad>"]
    dec = BeamDecoder(V, BeamOptions(beam_width=16))
    assert dec.decode(frames(spec)).text == "BAT"
    assert dec.decode(frames(spec), hotwords=["PAT"]).text == "PAT"
    hot = BeamDecoder(V, BeamOptions(beam_width=16, hotwords=("PAT",), hotword_weight=10.0))
    assert hot.decode(frames(spec)).text == "PAT"


def test_labels_map_blank_delimiter_and_unk():
    labels = labels_for(V)
    assert labels[VOCAB["<pad>"]] == "" and labels[VOCAB["|"]] == " " and labels[VOCAB["<unk>"]] == "⁇"
    assert labels[VOCAB["E"]] == "E" and len(labels) == N


def test_missing_lm_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="KenLM"):
        BeamDecoder(V, BeamOptions(kenlm_model_path=str(tmp_path / "nope.arpa")))


class _Fixed:
    has_attention_mask = False

    def __init__(self, cfg, lg):
        self.cfg, self.lg = cfg, lg

    def __call__(self, values, mask=None):
        n = self.cfg.output_length(values.shape[1])
        pad = np.tile(frames(["<pad>"]), (max(0, n - len(self.lg)), 1))
        return np.stack([np.concatenate([self.lg, pad])[:n]] * len(values))


def test_engine_with_lm(tmp_path, arpa):
    ckpt = write_checkpoint_dir(tmp_path / "ckpt")
    from sparkasr.ctc.checkpoint import load_checkpoint

    cfg = load_checkpoint(ckpt).features
    audio = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)  # 49 frames
    backend = _Fixed(cfg, frames(AMBIGUOUS))
    greedy = CTCEngine(ckpt, CTCOptions(), backend=backend)
    assert greedy.transcribe(audio).text == "THE KAT SAT"
    beam = CTCEngine(ckpt, CTCOptions(beam=BeamOptions(kenlm_model_path=str(arpa), beam_width=32)), backend=backend)
    t = beam.transcribe_batch([AudioItem(audio, source="a.wav", offset_s=2.0)])[0]
    assert t.text == "THE CAT SAT" and t.extra["decoder"] == "beam"
    assert [c.text for c in t.chunks] == ["THE", "CAT", "SAT"]
    assert t.chunks[0].start == pytest.approx(2.0 + 1 * 0.02)
    assert all(c.kind == "word" for c in t.chunks)
