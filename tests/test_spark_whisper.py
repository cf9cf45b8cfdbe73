"""WhisperForCTC / AudioAssembler / read_audio on the shared local[2] session, on real speech."""

from __future__ import annotations

import os
import shutil
import wave

import jiwer
import numpy as np
import pytest
import soundfile as sf
from whisper_normalizer.english import EnglishTextNormalizer

from sparkasr import AudioAssembler, LightPipeline, WhisperForCTC, read_audio
from sparkasr.annotation import annotation_struct_type

pytestmark = pytest.mark.spark
NORM = EnglishTextNormalizer()


def corpus_wer(pairs):
    refs = [NORM(r) for r, _ in pairs]
    hyps = [NORM(h) for _, h in pairs]
    return jiwer.wer(refs, hyps)


@pytest.fixture(scope="module")
def audio_df(spark, clips):
    rows = []
    for path, ref in clips:
        samples, sr = sf.read(str(path), dtype="float32")
        rows.append((str(path), ref, samples.tolist()))
    return spark.createDataFrame(rows, "path string, reference string, audio array<float>")


@pytest.fixture(scope="module")
def pipeline_model(audio_df):
    from pyspark.ml import Pipeline

    asm = AudioAssembler().setInputCol("audio").setOutputCol("audio_assembler")
    asr = WhisperForCTC.pretrained().setInputCols(["audio_assembler"]).setOutputCol("transcription")
    return Pipeline(stages=[asm, asr]).fit(audio_df)


@pytest.fixture(scope="module")
def transcribed(pipeline_model, audio_df):
    return (
        pipeline_model.transform(audio_df)
        .select("path", "reference", "transcription", "transcription_chunks")
        .collect()
    )


def test_pipeline_wer_on_real_speech(transcribed):
    pairs = [(r["reference"], r["transcription"][0]["result"]) for r in transcribed]
    wer = corpus_wer(pairs)
    print(f"\nWER tiny.en (Spark pipeline, {len(pairs)} vendored clips): {wer:.4f}")
    assert len(pairs) == 10
    assert wer <= 0.15, pairs


def test_output_schema_is_spark_nlp_annotation(pipeline_model, audio_df, transcribed):
    out = pipeline_model.transform(audio_df)
    field = out.schema["transcription"]
    assert field.dataType.elementType == annotation_struct_type()
    assert field.metadata["annotatorType"] == "document"
    assert out.schema["audio_assembler"].metadata["annotatorType"] == "audio"
    assert out.schema["transcription_chunks"].metadata["annotatorType"] == "chunk"
    doc = transcribed[0]["transcription"][0]
    assert doc["annotatorType"] == "document" and doc["begin"] == 0 and doc["end"] == len(doc["result"]) - 1
    assert doc["metadata"]["language"] == "en" and float(doc["metadata"]["duration_s"]) > 0
    assert "error" not in doc["metadata"]


def test_segment_timestamps_cover_audio(transcribed):
    for r in transcribed:
        doc = r["transcription"][0]
        chunks = r["transcription_chunks"]
        assert chunks, r["path"]
        dur = float(doc["metadata"]["duration_s"])
        starts = [float(c["metadata"]["start"]) for c in chunks]
        ends = [float(c["metadata"]["end"]) for c in chunks]
        assert starts == sorted(starts) and all(s <= e for s, e in zip(starts, ends))
        assert ends[-1] <= dur + 0.5
        # chunk char offsets point into the document text
        for c in chunks:
            assert doc["result"][c["begin"] : c["end"] + 1] == c["result"]


def test_light_pipeline_matches_spark(pipeline_model, audio_df, clips):
    """Same engine, same options. Spark's Python workers run with OMP_NUM_THREADS=spark.task.cpus,
    and CTranslate2's int8 GEMMs round differently with another OpenMP thread count, so the
    driver-side LightPipeline may differ by a word on a clip ("And Mr." vs "Mr."): compared on
    normalised text with a tight bound."""
    few = audio_df.limit(3)
    # one row per engine call (strategy=pack would share windows between rows: their texts could
    # then depend on which rows are decoded together)
    stage = pipeline_model.stages[1].copy().setBatchSize(1).setStrategy("batch")
    from pyspark.ml import PipelineModel

    model = PipelineModel([pipeline_model.stages[0], stage])
    by_path = {r["path"]: r["transcription"][0]["result"] for r in model.transform(few).collect()}
    light = LightPipeline(model)
    paths = sorted(by_path)
    res = light.annotate(paths)
    assert len(res) == len(paths)
    light_wer = corpus_wer([(by_path[p], row["transcription"][0]) for p, row in zip(paths, res)])
    assert light_wer <= 0.05, (res, by_path)
    full = light.fullAnnotate(paths[0])[0]
    assert full["transcription"][0]["metadata"]["language"] == "en"
    assert full["transcription_chunks"] and full["transcription_chunks"][0]["annotatorType"] == "chunk"
    t = light.transcribe(paths[0])
    assert t.text == res[0]["transcription"][0] and t.language == "en"


def test_light_pipeline_refuses_stages_it_cannot_run(spark, pipeline_model):
    """Only an assembler, speech annotators and then Spark NLP annotators run without a Spark job."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import SQLTransformer

    asm, asr = pipeline_model.stages
    sql = SQLTransformer(statement="SELECT * FROM __THIS__")
    for stages, refused in (
        ([asm, asr, sql], "SQLTransformer"),
        ([sql, asm, asr], "SQLTransformer"),
        ([asm, asr, asm], "AudioAssembler"),
    ):
        with pytest.raises(TypeError, match=f"; {refused} here needs a Spark job"):
            LightPipeline(PipelineModel(stages))
    with pytest.raises(ValueError, match="no speech annotator"):
        LightPipeline(PipelineModel([asm]))


def test_keyword_constructor_and_params():
    asr = WhisperForCTC(inputCols=["a"], outputCol="t", beamSize=2, timestamps="word", temperature=0.0, language="en")
    assert asr.getBeamSize() == 2 and asr.getTimestamps() == "word" and asr.getTemperature() == [0.0]
    assert asr.getInputCols() == ["a"] and asr.getOutputCol() == "t"
    with pytest.raises(ValueError, match="topP"):
        WhisperForCTC(topP=0.9)
    with pytest.raises(ValueError, match="timestamps"):
        WhisperForCTC().setTimestamps("sentence")


def _write_bad_inputs(d):
    d.mkdir()
    (d / "empty.wav").write_bytes(b"")
    (d / "truncated.wav").write_bytes(open(os.environ["SPARKASR_GOOD_WAV"], "rb").read()[:30])
    (d / "notaudio.wav").write_bytes(os.urandom(4000))
    sf.write(str(d / "nan.wav"), np.array([0.1, np.nan, np.inf, 0.2] * 4000, dtype=np.float32), 16000, subtype="FLOAT")
    sf.write(str(d / "silent.wav"), np.zeros(16000, dtype=np.float32), 16000)
    with wave.open(str(d / "zero.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"")


def test_bad_inputs_give_error_rows_and_job_goes_on(spark, tmp_path, clips):
    os.environ["SPARKASR_GOOD_WAV"] = str(clips[0][0])
    bad = tmp_path / "bad"
    _write_bad_inputs(bad)
    shutil.copy(clips[0][0], bad / "good.wav")
    # Path mode (what `sparkasr transcribe` uses for local files): every file gives a row.
    df = spark.createDataFrame([(str(p),) for p in sorted(bad.iterdir())], "path string")
    asr = WhisperForCTC.pretrained().setInputCols(["path"]).setOutputCol("t").setTimestamps("none")
    rows = {r["path"].rsplit("/", 1)[-1]: r["t"] for r in asr.transform(df).select("path", "t").collect()}
    assert set(rows) == {"empty.wav", "truncated.wav", "notaudio.wav", "nan.wav", "silent.wav", "zero.wav", "good.wav"}
    expected = {
        "empty.wav": "empty",
        "truncated.wav": "",
        "notaudio.wav": "",
        "nan.wav": "NaN",
        "silent.wav": "silent",
        "zero.wav": "zero length",
    }
    for name, needle in expected.items():
        (doc,) = rows[name]
        err = doc["metadata"].get("error")
        assert err and name in err and needle in err, (name, err)
        assert doc["result"] == ""
    assert "error" not in rows["good.wav"][0]["metadata"]
    assert len(rows["good.wav"][0]["result"]) > 20
    # Content mode (binaryFile bytes). Spark's file scan itself skips 0-byte files, which is why the
    # job builds its input rows from the file listing instead.
    content = spark.read.format("binaryFile").load(str(bad))
    asr.setInputCols(["content"])
    rows = {r["path"].rsplit("/", 1)[-1]: r["t"][0] for r in asr.transform(content).select("path", "t").collect()}
    assert {"truncated.wav", "notaudio.wav", "nan.wav", "silent.wav", "zero.wav", "good.wav"} <= set(rows)
    for name in ("truncated.wav", "notaudio.wav", "nan.wav", "silent.wav", "zero.wav"):
        assert name in rows[name]["metadata"]["error"]
    assert rows["good.wav"]["result"]


def test_read_audio_segments_long_files_and_reports_errors(spark, tmp_path, clips):
    # 3 clips back to back (~16 s) read with 6-s segments: several rows, offsets increasing, nothing lost.
    parts = [sf.read(str(p), dtype="float32")[0] for p, _ in clips[:3]]
    long = np.concatenate(parts)
    sf.write(str(tmp_path / "long.flac"), long, 16000)
    (tmp_path / "broken.mp3").write_bytes(b"ID3" + os.urandom(100))
    df = read_audio(spark, str(tmp_path), segment_s=6.0).orderBy("path", "segment").collect()
    segs = [r for r in df if r["path"].endswith("long.flac")]
    assert len(segs) >= 3
    assert [r["segment"] for r in segs] == list(range(len(segs)))
    total = sum(len(r["audio"]) for r in segs)
    assert total == len(long)
    assert all(r["duration_s"] <= 6.0 + 1e-6 for r in segs)
    assert segs[1]["offset_s"] == pytest.approx(len(segs[0]["audio"]) / 16000, abs=1e-3)
    (bad,) = [r for r in df if r["path"].endswith("broken.mp3")]
    assert bad["error"] and "broken.mp3" in bad["error"] and len(bad["audio"]) == 0


def test_read_audio_segments_keep_file_times_and_reader_errors(spark, tmp_path, clips):
    """Long files read as segments: every segment's chunks are timed from the start of its file
    (read_audio's offset_s), through AudioAssembler and fed directly alike; a file the reader could
    not read reports the reader's own error, not a "zero length" found later."""
    parts = [sf.read(str(p), dtype="float32")[0] for p, _ in clips[:3]]
    sf.write(str(tmp_path / "long.flac"), np.concatenate(parts), 16000)
    (tmp_path / "broken.mp3").write_bytes(b"ID3" + os.urandom(100))
    df = read_audio(spark, str(tmp_path), segment_s=6.0)
    read_error = df.where("error IS NOT NULL").first()["error"]
    assert "broken.mp3" in read_error
    asm = AudioAssembler(inputCol="audio", outputCol="a")
    asr = WhisperForCTC.pretrained().setOutputCol("t").setTimestamps("segment").setBeamSize(1)
    via_assembler = (
        asr.setInputCols(["a"])
        .transform(asm.transform(df))
        .select("path", "segment", "offset_s", "duration_s", "a", "t", "t_chunks")
        .collect()
    )
    direct = (
        asr.setInputCols(["audio"])
        .transform(df)
        .select("path", "segment", "offset_s", "duration_s", "t", "t_chunks")
        .collect()
    )
    for rows in (via_assembler, direct):
        segs = sorted((r for r in rows if r["path"].endswith("long.flac")), key=lambda r: r["segment"])
        assert len(segs) >= 3 and segs[-1]["offset_s"] > 10.0
        for r in segs:
            doc = r["t"][0]
            assert "error" not in doc["metadata"] and doc["result"], r["segment"]
            if r["offset_s"] > 0:
                assert float(doc["metadata"]["offset_s"]) == pytest.approx(r["offset_s"], abs=1e-3)
            chunks = r["t_chunks"]
            assert chunks
            for c in chunks:  # within this segment, on the file's clock
                start, end = float(c["metadata"]["start"]), float(c["metadata"]["end"])
                assert r["offset_s"] - 0.01 <= start <= end <= r["offset_s"] + r["duration_s"] + 0.01, (r["segment"], c)
        (bad,) = [r for r in rows if r["path"].endswith("broken.mp3")]
        assert bad["t"][0]["metadata"]["error"] == read_error and bad["t"][0]["result"] == ""
    (bad_ann,) = [r["a"][0] for r in via_assembler if r["path"].endswith("broken.mp3")]
    assert bad_ann["metadata"]["error"] == read_error
    # An explicit column overrides the default, and is checked.
    with pytest.raises(ValueError, match="offsetCol"):
        asr.setOffsetCol("nope").transform(df)


def test_read_audio_references_transcribe_like_samples(spark, tmp_path, clips):
    """read_audio(samples=False): the same segments without their samples, decoded by seeking
    where they are transcribed. Through a repartition, WhisperForCTC on the path column gives each
    segment the text it gives the decoded samples and AudioAssembler the same samples (lossless
    16-kHz FLAC; 44.1-kHz stereo WAV within float rounding, and nearly the same text); reader errors and a file that changed after
    it was read give error rows naming the file, and the other rows go on."""
    import soxr

    parts = [sf.read(str(p), dtype="float32")[0] for p, _ in clips[:3]]
    long = np.concatenate(parts)
    sf.write(str(tmp_path / "long.flac"), long, 16000)
    sf.write(str(tmp_path / "stereo44.wav"), np.stack([soxr.resample(long, 16000, 44100)] * 2, axis=1), 44100)
    sf.write(str(tmp_path / "shrinks.wav"), long, 16000)
    (tmp_path / "broken.mp3").write_bytes(b"ID3" + os.urandom(100))
    samples = read_audio(spark, str(tmp_path), segment_s=6.0)
    refs = read_audio(spark, str(tmp_path), segment_s=6.0, samples=False)
    assert "audio" not in refs.columns and refs.columns == [c for c in samples.columns if c != "audio"]
    key = ["path", "segment"]
    ref_rows = {tuple(r[k] for k in key): r for r in refs.collect()}
    sample_rows = {tuple(r[k] for k in key): r for r in samples.collect()}
    assert set(ref_rows) == set(sample_rows) and len(ref_rows) >= 3 * 3 + 1
    for k, r in ref_rows.items():
        s_row = sample_rows[k]
        assert bool(r["error"]) == bool(s_row["error"]) == k[0].endswith("broken.mp3")
        if not r["error"]:
            assert round(r["duration_s"] * 16000) == len(s_row["audio"])  # exact to the sample
            assert (r["offset_s"], r["duration_s"]) == (s_row["offset_s"], s_row["duration_s"])
    # The rows as planned (Spark would plan again from the file), then the file is rewritten shorter.
    refs = spark.createDataFrame(list(ref_rows.values()), refs.schema)
    sf.write(str(tmp_path / "shrinks.wav"), long[: 8 * 16000], 16000)  # rewritten with its first 8 s

    asm = AudioAssembler(inputCol="path", outputCol="a")
    got = {(r["path"], r["segment"]): r["a"][0] for r in asm.transform(refs.repartition(4)).select(*key, "a").collect()}
    for k, ann in got.items():
        name = k[0].rsplit("/", 1)[-1]
        if name in ("long.flac", "stereo44.wav"):
            assert "error" not in ann["metadata"], ann["metadata"]
            want = np.asarray(sample_rows[k]["audio"], np.float32)
            np.testing.assert_allclose(
                np.asarray(ann["result"], np.float32), want, atol=0 if name == "long.flac" else 1e-5
            )
            assert float(ann["metadata"]["offset_s"]) == pytest.approx(sample_rows[k]["offset_s"], abs=1e-4)
    # One row per engine call (batch, not pack, which shares windows between rows): the text does not
    # depend on which rows share a batch.
    asr = (
        WhisperForCTC.pretrained()
        .setOutputCol("t")
        .setBeamSize(1)
        .setTimestamps("segment")
        .setBatchSize(1)
        .setStrategy("batch")
    )
    by_ref = {
        (r["path"], r["segment"]): r
        for r in asr.setInputCols(["path"])
        .transform(refs.repartition(4))
        .select(*key, "offset_s", "t", "t_chunks")
        .collect()
    }
    by_samples = {
        (r["path"], r["segment"]): r for r in asr.setInputCols(["audio"]).transform(samples).select(*key, "t").collect()
    }
    assert set(by_ref) == set(ref_rows)
    for k, r in by_ref.items():
        name, doc = k[0].rsplit("/", 1)[-1], r["t"][0]
        if name in ("long.flac", "stereo44.wav"):
            want = by_samples[k]["t"][0]["result"]
            assert "error" not in doc["metadata"] and doc["result"] and want, k
            if name == "long.flac":  # the same samples: the same text
                assert doc["result"] == want, k
            else:  # samples within 1e-5: int8 decoding may spell a word differently
                assert jiwer.cer(NORM(want), NORM(doc["result"])) <= 0.1, (k, want, doc["result"])
            for c in r["t_chunks"]:  # on the file's clock
                assert float(c["metadata"]["start"]) >= r["offset_s"] - 0.01
        elif name == "broken.mp3":
            assert (
                doc["metadata"]["error"] == ref_rows[k]["error"]
                and "broken.mp3" in doc["result"] + doc["metadata"]["error"]
            )
        elif ref_rows[k]["offset_s"] + ref_rows[k]["duration_s"] > 8.0:  # shrinks.wav: past its new end
            assert "shrinks.wav" in doc["metadata"]["error"] and "ends before the slice" in doc["metadata"]["error"], (
                doc
            )
        else:
            assert "error" not in doc["metadata"] and doc["result"]
    with pytest.raises(ValueError, match="durationCol column 'nope' not found"):
        asr.setInputCols(["path"]).setDurationCol("nope").transform(refs)
    with pytest.raises(ValueError, match="samples=False.*s3a://bucket/audio"):
        read_audio(spark, "s3a://bucket/audio", samples=False)


def test_path_col_names_the_source_and_is_checked(spark, clips):
    """``pathCol`` (shared by AudioAssembler and the annotators with offsetCol/errorCol): unset, a
    'path' column when present; set, that column, which must exist and hold strings."""
    path, _ = clips[5]
    samples = sf.read(str(path), dtype="float32")[0].tolist()
    df = spark.createDataFrame(
        [("a/file.wav", "b/other.wav", 7, samples)], "path string, file string, n int, audio array<float>"
    )
    asm = AudioAssembler(inputCol="audio", outputCol="a")
    asr = WhisperForCTC.pretrained().setInputCols(["a"]).setOutputCol("t").setBeamSize(1).setTimestamps("none")
    assert asm.getPathCol() == "" and asr.getPathCol() == ""
    row = asr.transform(asm.transform(df)).first()
    assert row["a"][0]["metadata"]["source"] == "a/file.wav" and row["t"][0]["metadata"]["source"] == "a/file.wav"
    row = asr.setPathCol("file").transform(asm.setPathCol("file").transform(df)).first()
    assert row["a"][0]["metadata"]["source"] == "b/other.wav" and row["t"][0]["metadata"]["source"] == "b/other.wav"
    assert row["t"][0]["result"]
    for stage, frame in ((asm, df), (asr, asm.setPathCol("").transform(df))):
        with pytest.raises(ValueError, match="pathCol column 'nope' not found"):
            stage.copy().setPathCol("nope").transform(frame)
        with pytest.raises(TypeError, match="pathCol column 'n' has type int"):
            stage.copy().setPathCol("n").transform(frame)


def test_assembler_resamples_and_downmixes(spark, clips):
    samples, sr = sf.read(str(clips[0][0]), dtype="float32")
    import soxr

    hi = soxr.resample(samples, 16000, 44100)
    stereo = np.stack([hi, hi * 0.5], axis=1).reshape(-1)  # interleaved
    df = spark.createDataFrame([(stereo.astype(float).tolist(), 44100)], "audio array<double>, sr int")
    asm = AudioAssembler(inputCol="audio", outputCol="a", sampleRateCol="sr", channels=2)
    (ann,) = asm.transform(df).select("a").first()["a"]
    out = np.asarray(ann["result"])
    assert ann["metadata"]["sample_rate"] == "16000" and ann["metadata"]["original_sample_rate"] == "44100"
    assert abs(len(out) - len(samples)) <= 2
    n = min(len(out), len(samples))
    # mean of (x, 0.5x) = 0.75x; soxr round trip keeps the waveform
    assert np.corrcoef(out[:n], samples[:n] * 0.75)[0, 1] > 0.99


def test_save_load_travels_without_original_model_dir(spark, tmp_path, audio_df):
    """A non-embedded model's weights are saved with the stage; loading works after the source is gone."""
    from pyspark.ml import Pipeline, PipelineModel

    from sparkasr.whisper.models import resolve_whisper_model

    src = tmp_path / "my-whisper-ct2"
    shutil.copytree(resolve_whisper_model(None).path, src)
    asr = (
        WhisperForCTC.loadSavedModel(str(src), spark).setInputCols(["audio_assembler"]).setOutputCol("t").setBeamSize(2)
    )
    model = Pipeline(stages=[AudioAssembler(inputCol="audio"), asr]).fit(audio_df)
    few = audio_df.limit(2)
    before = [r["t"][0]["result"] for r in model.transform(few).orderBy("path").collect()]
    model.write().overwrite().save(str(tmp_path / "saved"))
    shutil.rmtree(src)
    loaded = PipelineModel.load(str(tmp_path / "saved"))
    stage = loaded.stages[1]
    assert stage.getBeamSize() == 2 and "weights" in stage.getModelSource()
    after = [r["t"][0]["result"] for r in loaded.transform(few).orderBy("path").collect()]
    assert after == before and all(after)


def test_embedded_model_saved_by_name(spark, tmp_path):
    asr = WhisperForCTC.pretrained().setLanguage("en")
    asr.write().overwrite().save(str(tmp_path / "s"))
    assert not (tmp_path / "s" / "weights").exists()  # every node resolves the embedded package
    back = WhisperForCTC.load(str(tmp_path / "s"))
    assert back.getModelSource() == "tiny.en" and back.getLanguage() == "en"


def test_model_loaded_once_per_worker(spark, audio_df, pipeline_model):
    """With worker reuse, repeated jobs reuse the cached model in each Python worker."""
    pipeline_model.transform(audio_df).select("transcription").collect()
    pipeline_model.transform(audio_df).select("transcription").collect()

    def counts(it):
        import os

        import pandas as pd

        import sparkasr.whisper as w

        for _ in it:
            yield pd.DataFrame({"pid": [os.getpid()], "loads": [max(w.LOAD_COUNT.values(), default=0)]})

    rows = spark.range(0, 8, numPartitions=4).mapInPandas(counts, "pid long, loads long").collect()
    # Every model path was loaded at most once in each worker process, across all jobs so far.
    assert max(r["loads"] for r in rows) == 1, rows
