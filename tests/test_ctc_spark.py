"""Wav2Vec2ForCTC and HubertForCTC in a Spark Pipeline on the real clips (tiny random-weight models
converted to ONNX at test time): same text as the plain engine, error rows kept, chunk
annotations, save/load, LM beam search, and driver-side conversion of a Hugging Face directory."""

from __future__ import annotations

import numpy as np
import pytest

from ctc_support import tiny_models
from sparkasr.audio import decode_audio
from sparkasr.ctc.engine import CTCEngine, CTCOptions
from sparkasr.ctc.lm import BeamOptions


@pytest.fixture(scope="module")
def models():
    return tiny_models()


@pytest.fixture(scope="module")
def expected(models, clips):
    """Texts of the plain engine (no Spark) per kind and file name."""
    out = {}
    for kind, ts in (("wav2vec2", "word"), ("hubert", "char")):
        eng = CTCEngine(models[kind]["onnx"], CTCOptions(num_threads=1, timestamps=ts))
        out[kind] = {p.name: eng.transcribe(decode_audio(str(p))) for p, _ in clips}
    return out


def _rows(df, col):
    return {r["path"].rsplit("/", 1)[-1]: r for r in df.select("path", col, col + "_chunks").collect()}


@pytest.mark.spark
def test_pipeline_on_real_audio(spark, models, clips, expected, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKASR_CACHE", str(tmp_path / "cache"))  # model dirs are staged there for addFile
    from pyspark.ml import Pipeline, PipelineModel

    from sparkasr import AudioAssembler, HubertForCTC, Wav2Vec2ForCTC
    from sparkasr.spark.reader import read_binary

    bad = tmp_path / "in" / "broken.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio")
    df = read_binary(spark, [str(p) for p, _ in clips] + [str(bad)])
    w2v = (
        Wav2Vec2ForCTC.loadSavedModel(str(models["wav2vec2"]["onnx"]), spark)
        .setInputCols(["audio_assembler"])
        .setOutputCol("w2v")
        .setBatchSize(4)
    )
    hub = (
        HubertForCTC.loadSavedModel(str(models["hubert"]["onnx"]), spark)
        .setInputCols(["audio_assembler"])
        .setOutputCol("hub")
        .setTimestamps("char")
    )
    pipeline = Pipeline(stages=[AudioAssembler(inputCol="content", outputCol="audio_assembler"), w2v, hub])
    model = pipeline.fit(df)
    out = model.transform(df).cache()
    assert out.schema["w2v"].metadata.get("annotatorType") == "document"
    assert out.schema["w2v_chunks"].metadata.get("annotatorType") == "chunk"

    for kind, col in (("wav2vec2", "w2v"), ("hubert", "hub")):
        rows = _rows(out, col)
        assert len(rows) == len(clips) + 1
        for name, ref in expected[kind].items():
            (doc,) = rows[name][col]
            assert doc["result"] == ref.text, (kind, name)
            assert doc["annotatorType"] == "document" and "error" not in doc["metadata"]
            chunks = rows[name][col + "_chunks"]
            assert [c["result"] for c in chunks] == [c.text for c in ref.chunks]
            assert [float(c["metadata"]["start"]) for c in chunks] == [c.start for c in ref.chunks]
            assert [float(c["metadata"]["end"]) for c in chunks] == [c.end for c in ref.chunks]
        assert len({d[col][0]["result"] for d in rows.values()}) == len(clips) + 1  # distinct texts
        (err,) = rows["broken.wav"][col]
        assert err["result"] == "" and "broken.wav" in err["metadata"]["error"]
    hub_chunks = _rows(out, "hub")[clips[0][0].name]["hub_chunks"]
    assert all(c["metadata"]["kind"] == "char" for c in hub_chunks)

    # save / load the fitted pipeline: the model files travel with it
    path = str(tmp_path / "pipeline")
    model.write().overwrite().save(path)
    loaded = PipelineModel.load(path)
    again = _rows(loaded.transform(df), "w2v")
    assert {k: v["w2v"][0]["result"] for k, v in again.items()} == {
        k: v["w2v"][0]["result"] for k, v in _rows(out, "w2v").items()
    }
    assert loaded.stages[1].getModelSource().startswith(path)
    out.unpersist()

    # read_audio segments fed directly: each segment's chunks are the engine's on that segment,
    # shifted to the file's clock by the row's offset_s
    from sparkasr.spark.reader import read_audio

    segs = read_audio(spark, str(clips[0][0]), segment_s=2.5)
    rows = (
        w2v.setInputCols(["audio"])
        .transform(segs)
        .select("segment", "offset_s", "audio", "w2v", "w2v_chunks")
        .collect()
    )
    assert len(rows) >= 2 and max(r["offset_s"] for r in rows) > 2.0
    eng = CTCEngine(models["wav2vec2"]["onnx"], CTCOptions(num_threads=1, timestamps="word"))
    for r in rows:
        ref = eng.transcribe(np.asarray(r["audio"], dtype=np.float32))
        assert r["w2v"][0]["result"] == ref.text
        got = [float(c["metadata"]["start"]) for c in r["w2v_chunks"]]
        assert got == pytest.approx([c.start + r["offset_s"] for c in ref.chunks], abs=1e-3)
    assert any(r["w2v_chunks"] and r["offset_s"] > 0 for r in rows)


@pytest.mark.spark
def test_lm_beam_search_in_spark(spark, models, clips, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKASR_CACHE", str(tmp_path / "cache"))  # the model+LM dir is staged there
    pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    from ctc_support import write_arpa
    from sparkasr import AudioAssembler, Wav2Vec2ForCTC
    from sparkasr.spark.reader import read_binary

    arpa = write_arpa("THE CAT SAT\nA DOG SAT ON THE MAT", tmp_path / "lm.arpa")
    few = [p for p, _ in clips][-3:]
    df = AudioAssembler(inputCol="content", outputCol="audio_assembler").transform(
        read_binary(spark, [str(p) for p in few])
    )
    asr = (
        Wav2Vec2ForCTC.loadSavedModel(str(models["wav2vec2"]["onnx"]), spark)
        .setInputCols(["audio_assembler"])
        .setOutputCol("text")
        .setLmPath(str(arpa))
        .setBeamWidth(8)
        .setHotwords(["CAT"])
    )
    got = {
        r["path"].rsplit("/", 1)[-1]: r["text"][0]["result"] for r in asr.transform(df).select("path", "text").collect()
    }
    eng = CTCEngine(
        models["wav2vec2"]["onnx"],
        CTCOptions(
            num_threads=1,
            beam=BeamOptions(kenlm_model_path=str(arpa), beam_width=8, alpha=0.5, beta=1.5, hotwords=("CAT",)),
        ),
    )
    greedy = CTCEngine(models["wav2vec2"]["onnx"], CTCOptions(num_threads=1))
    for p in few:
        x = decode_audio(str(p))
        assert got[p.name] == eng.transcribe(x).text
    assert any(got[p.name] != greedy.transcribe(decode_audio(str(p))).text for p in few)


def test_load_saved_model_converts_a_hf_checkpoint(models, monkeypatch, tmp_path, clips):
    pytest.importorskip("pyspark")
    monkeypatch.setenv("SPARKASR_CACHE", str(tmp_path / "cache"))
    from sparkasr import HubertForCTC, Wav2Vec2ForCTC
    from sparkasr.records import AudioItem

    stage = Wav2Vec2ForCTC.loadSavedModel(str(models["wav2vec2"]["hf"]))
    src = stage.getModelSource()
    assert src.startswith(str(tmp_path / "cache")) and (tmp_path / "cache").exists()
    # cached: a second load does not convert again
    assert Wav2Vec2ForCTC.loadSavedModel(str(models["wav2vec2"]["hf"])).getModelSource() == src
    x = decode_audio(str(clips[0][0]))
    ref = CTCEngine(models["wav2vec2"]["onnx"], CTCOptions(num_threads=1)).transcribe(x).text
    (t,) = stage.transcribe_items([AudioItem(x, source="a.wav")])  # LightPipeline path, no Spark job
    assert t.text == ref
    with pytest.raises(ValueError, match="HubertForCTC"):
        Wav2Vec2ForCTC.loadSavedModel(str(models["hubert"]["onnx"]))
    with pytest.raises(ValueError, match="timestamps"):
        HubertForCTC(timestamps="segment")


def test_pretrained_offline_fails_fast_with_a_clear_message(monkeypatch, tmp_path):
    pytest.importorskip("pyspark")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SPARKASR_CACHE", str(tmp_path / "cache"))
    from sparkasr import HubertForCTC, Wav2Vec2ForCTC
    from sparkasr.ctc.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="facebook/wav2vec2-base-960h.*cannot be reached"):
        Wav2Vec2ForCTC.pretrained()
    with pytest.raises(CheckpointError, match="facebook/hubert-large-ls960-ft"):
        HubertForCTC.pretrained()
    with pytest.raises(CheckpointError, match="no such directory"):
        Wav2Vec2ForCTC.loadSavedModel(str(tmp_path / "missing"))
