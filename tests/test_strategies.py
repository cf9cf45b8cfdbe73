"""Engine strategies: long rows in bounded pieces, and packing of short utterances (opt-in)."""

from __future__ import annotations

import jiwer
import numpy as np
import pytest
import soundfile as sf
from whisper_normalizer.english import EnglishTextNormalizer

from sparkasr.models import resolve_whisper_model
from sparkasr.types import AudioItem
from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions

NORM = EnglishTextNormalizer()


def test_very_long_rows_are_decoded_in_pieces(clips):
    gap = np.zeros(8000, dtype=np.float32)
    parts, refs = [], []
    for _ in range(3):
        for p, ref in clips:
            parts += [sf.read(str(p), dtype="float32")[0], gap]
            refs.append(ref)
    audio = np.concatenate(parts)
    assert len(audio) / 16000 > 90
    eng = WhisperEngine(resolve_whisper_model(None).path, WhisperOptions(long_piece_s=60.0, beam_size=2), RuntimeOptions(cpu_threads=2))
    (t,) = eng.transcribe_batch([AudioItem(audio, source="long.wav")])
    assert t.extra["path"] == "sequential-pieces" and t.extra["pieces"] >= 2
    wer = jiwer.wer(NORM(" ".join(refs)), NORM(t.text))
    print(f"\nWER over {len(audio) / 16000:.0f} s decoded in {t.extra['pieces']} pieces: {wer:.4f}")
    assert wer <= 0.15
    ends = [c.end for c in t.chunks]
    assert ends == sorted(ends) and ends[-1] > len(audio) / 16000 - 10


def test_pack_strategy_option_through_the_stage(spark, clips):
    from sparkasr import WhisperForCTC

    with pytest.raises(ValueError, match="strategy"):
        WhisperForCTC(strategy="cram")
    df = spark.createDataFrame([(str(p), r) for p, r in clips], "path string, reference string")
    asr = WhisperForCTC.pretrained().setInputCols(["path"]).setOutputCol("t").setStrategy("pack").setBatchSize(16)
    rows = asr.transform(df.coalesce(1)).select("reference", "t").collect()
    assert len(rows) == len(clips)
    wer = jiwer.wer([NORM(r["reference"]) for r in rows], [NORM(r["t"][0]["result"]) for r in rows])
    print(f"\nWER with strategy=pack on {len(rows)} clips: {wer:.4f}")
    assert wer <= 0.15
