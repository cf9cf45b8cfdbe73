"""``sparkasr transcribe --diarize`` end to end on two English conversations of the same two people
(Allison's English prompts and the LibriVox reader): records with speakers and chunk speakers,
labels shared across the files, subtitles marking speakers, one RTTM file per input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import conversations  # noqa: E402
import eval_corpus  # noqa: E402

MISSING = eval_corpus.missing_reason()
pytestmark = [pytest.mark.spark, pytest.mark.skipif(MISSING is not None, reason=str(MISSING))]


def test_transcribe_diarize(spark, tmp_path):
    from sparkasr.cli import main
    from sparkasr.evaluation import corpus_der, diarization_stats, read_rttm

    pool = conversations.voices()
    pool = {
        "allison": conversations.Voice("allison", [p for p in pool["allison"].clips if "en_US" in p]),
        conversations.LIBRIVOX: pool[conversations.LIBRIVOX],
    }
    src = tmp_path / "in"
    convs = {}
    for i in range(2):
        c = conversations.build(f"job{i}", pool, 2, 25.0, 50 + i, speakers=["allison", conversations.LIBRIVOX])
        c.save(tmp_path / "ref")
        c.samples, path = c.samples, src / f"job{i}.wav"
        src.mkdir(exist_ok=True)
        (tmp_path / "ref" / f"job{i}.wav").rename(path)
        convs[str(path)] = c
    out = tmp_path / "out"
    args = ["transcribe", str(src), "--output", str(out), "--diarize", "--subtitles", "srt,vtt", "--rttm", "--quiet"]
    assert main(args) == 0
    rows = [json.loads(x) for f in (out / "current").glob("part-*.json") for x in f.read_text().splitlines()]
    assert len(rows) == 2
    stats = []
    for r in rows:
        c = convs[r["path"]]
        assert r["error"] is None and r["speakers"]
        assert "speaker_embeddings" not in r  # voiceprints only when asked
        labels = {s["speaker"] for s in r["speakers"]}
        assert labels <= {"SPK1", "SPK2"} and all(ch["speaker"] in labels for ch in r["chunks"])
        stats.append(diarization_stats(c.turns, [(s["start"], s["end"], s["speaker"]) for s in r["speakers"]]))
    counts, mapping = corpus_der(stats)  # one mapping for both files: labels are the same people
    assert counts.der < 0.2, counts.to_dict()
    srts = list((out / "subtitles").glob("*.srt"))
    vtts = list((out / "subtitles").glob("*.vtt"))
    assert len(srts) == 2 and all("[SPK" in s.read_text() for s in srts)
    assert all("<v SPK" in v.read_text() for v in vtts)
    rttms = list((out / "rttm").glob("*.rttm"))
    assert len(rttms) == 2
    for f in rttms:
        (turns,) = read_rttm(f.read_text()).values()
        assert {s for _, _, s in turns} <= {"SPK1", "SPK2"}
    # --rttm without --diarize is refused before Spark starts
    assert main(["transcribe", str(src), "--output", str(tmp_path / "o2"), "--rttm"]) == 2
