"""SpeakerDiarizer and SpeakerIdentity on Spark: chained after WhisperForCTC on two English
conversations of the same two people (Allison's English prompts and the LibriVox reader) and a
broken file; turns on the file's clock, transcript chunks with a speaker, an error row for the
broken file, one label per person across the files, DER summed over partitions, persistence."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import conversations  # noqa: E402
import eval_corpus  # noqa: E402

MISSING = eval_corpus.missing_reason()
pytestmark = [pytest.mark.spark, pytest.mark.skipif(MISSING is not None, reason=str(MISSING))]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("conv")
    pool = conversations.voices()
    pool = {
        "allison": conversations.Voice("allison", [p for p in pool["allison"].clips if "en_US" in p]),
        conversations.LIBRIVOX: pool[conversations.LIBRIVOX],
    }
    convs = [
        conversations.build(f"en{i}", pool, 2, 25.0, 40 + i, speakers=["allison", conversations.LIBRIVOX])
        for i in range(2)
    ]
    paths = [str(c.save(d)) for c in convs]
    broken = d / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    return convs, paths, str(broken)


@pytest.fixture(scope="module")
def diarized(spark, files):
    from sparkasr import SpeakerDiarizer, WhisperForCTC

    convs, paths, broken = files
    rttm = {p: Path(p).with_suffix(".rttm").read_text() for p in paths}
    df = spark.createDataFrame([(p, rttm.get(p)) for p in paths + [broken]], "path string, reference string")
    asr = WhisperForCTC.pretrained().setInputCols(["path"]).setTimestamps("segment").setOutputCol("transcription")
    diarizer = SpeakerDiarizer(inputCols=["path"], transcriptChunksCol="transcription_chunks")
    out = diarizer.transform(asr.transform(df)).cache()
    return diarizer, out, out.orderBy("path").collect()


def test_turns_chunks_and_error_rows(diarized, files):
    from sparkasr.spark.evaluation import evaluate_der

    convs, paths, broken = files
    _, out, rows = diarized
    by = {r["path"]: r for r in rows}
    assert out.schema["speakers"].metadata["annotatorType"] == "chunk"
    err = by[broken]["speakers"]
    assert len(err) == 1 and err[0]["metadata"]["error"].startswith(broken)
    for c, p in zip(convs, paths):
        r = by[p]
        turns = [(float(a["metadata"]["start"]), float(a["metadata"]["end"]), a["result"]) for a in r["speakers"]]
        assert turns and all(0 <= s < e <= c.duration_s + 0.01 for s, e, _ in turns)
        assert {a["result"] for a in r["speakers"]} == {a["result"] for a in r["speakers_voices"]}
        assert all(len(a["embeddings"]) == 256 for a in r["speakers_voices"])
        chunks = r["transcription_chunks"]
        assert chunks and all(ch["metadata"].get("speaker") in {t[2] for t in turns} for ch in chunks)
    res = evaluate_der(out.where("reference IS NOT NULL"), "reference", "speakers")
    assert res["files"] == 2 and res["der"] < 0.2, res


def test_one_label_per_person_across_files(diarized, files, tmp_path):
    from sparkasr import SpeakerIdentity
    from sparkasr.spark.diarizer import SpeakerIdentityModel
    from sparkasr.spark.evaluation import evaluate_der

    _, out, _ = diarized
    model = SpeakerIdentity(transcriptChunksCol="transcription_chunks").fit(out.repartition(2))
    voices = model.voices()
    assert len(voices) == 2 and {v["label"] for v in voices} == {"SPK1", "SPK2"}
    labelled = model.transform(out)
    assert "speakers_voices" not in labelled.columns  # voiceprints are kept only when asked
    res = evaluate_der(labelled.where("reference IS NOT NULL"), "reference", "speakers", global_labels=True)
    assert res["der"] < 0.2, res
    for r in labelled.where("reference IS NOT NULL").collect():
        assert {a["result"] for a in r["speakers"]} <= {"SPK1", "SPK2"}
        assert {c["metadata"]["speaker"] for c in r["transcription_chunks"]} <= {"SPK1", "SPK2"}
    model.write().overwrite().save(str(tmp_path / "identity"))
    again = SpeakerIdentityModel.load(str(tmp_path / "identity"))
    assert again.voices() == voices
    kept = SpeakerIdentity(keepVoiceprints=True).fit(out).transform(out)
    assert "speakers_voices" in kept.columns


def test_stage_params_and_persistence(diarized, tmp_path):
    from sparkasr import SpeakerDiarizer

    diarizer, _, _ = diarized
    with pytest.raises(ValueError, match="SpeakerDiarizer: numSpeakers must be an integer >= 0"):
        SpeakerDiarizer(numSpeakers=-2)
    d = SpeakerDiarizer(numSpeakers=2, speakerThreshold=0.25)
    d.write().overwrite().save(str(tmp_path / "d"))
    loaded = SpeakerDiarizer.load(str(tmp_path / "d"))
    assert loaded.getNumSpeakers() == 2 and loaded.getSpeakerThreshold() == 0.25
    assert loaded._options().num_speakers == 2


def test_a_long_file_split_into_rows_keeps_the_files_clock(spark, files):
    """read_audio's segments of one file (samples, and path references): each row's turns lie on
    the file's clock within its own segment, and together they cover the file's speech."""
    from sparkasr import SpeakerDiarizer, read_audio
    from sparkasr.evaluation import diarization_stats

    convs, paths, _ = files
    for samples in (True, False):
        df = read_audio(spark, paths[0], segment_s=12.0, samples=samples)
        col = "audio" if samples else "path"
        rows = SpeakerDiarizer(inputCols=[col]).transform(df).orderBy("offset_s").collect()
        assert len(rows) >= 2
        turns = []
        for r in rows:
            for a in r["speakers"]:
                s, e = float(a["metadata"]["start"]), float(a["metadata"]["end"])
                assert r["offset_s"] - 0.01 <= s < e <= r["offset_s"] + r["duration_s"] + 0.01
                turns.append((s, e, f"{r['offset_s']}/{a['result']}"))
        # labels are per row here, so only detection is scored: missed speech and false alarm
        c = diarization_stats(convs[0].turns, turns).counts()
        assert (c.missed + c.false_alarm) / c.total < 0.15, c.to_dict()
