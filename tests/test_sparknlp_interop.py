"""Interop with the real Spark NLP jar, in the shared local[2] session, both ways:

* Spark NLP's ``AudioAssembler`` feeds our ``WhisperForCTC``, ``Wav2Vec2ForCTC`` and ``HubertForCTC``;
* our ``WhisperForCTC`` output feeds Spark NLP's ``SentenceDetector``, ``Tokenizer``, ``Normalizer``
  and ``StopWordsCleaner`` (annotators that need no downloaded model);
* that mixed pipeline (Spark NLP -> ours -> Spark NLP) saved and loaded, and run on the driver by
  our ``LightPipeline`` (its Spark NLP stages through Spark NLP's own LightPipeline);
* the column contract behind all of it: our annotation types are the ones Spark NLP writes and reads.

CI runs this module in the pyspark 3.5.9 leg (``scripts/test_spark35.sh``) against
``com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3``: the Spark 4 builds (``spark-nlp_2.13:7.0.0``) are not on
the Maven Central CI reaches. By hand::

    export SPARKASR_TEST_JARS="$(SPARKNLP_VERSION=5.5.3 SPARKNLP_ARTIFACT=spark-nlp_2.12 scripts/fetch_sparknlp_jar.sh)"
    pip install spark-nlp==5.5.3    # the Python package matching the jar (7.0.0 with the _2.13 jar on Spark 4)

Outside CI every test here skips, naming the reason, when the ``sparknlp`` package is missing or
the jar is not on the classpath; in CI (``CI=true``) that fails the run instead. A jar built for
another Scala version always fails.
"""

from __future__ import annotations

import os
import re
import string
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.spark

DATA = Path(__file__).resolve().parent / "data"
LIBRIVOX = sorted((DATA / "librivox").glob("*.wav"))
SPARKNLP_CLASS = "com.johnsnowlabs.nlp.AudioAssembler"
TEXT_COLS = ["sentence", "token", "normalized", "clean"]  # the Spark NLP columns after our transcription


def _fetch_hint(spark) -> str:
    """How to get the Spark NLP jar for this session's Spark."""
    if spark.version.startswith("3."):
        return (
            'fetch it with SPARKASR_TEST_JARS="$(SPARKNLP_VERSION=5.5.3 SPARKNLP_ARTIFACT=spark-nlp_2.12 '
            'scripts/fetch_sparknlp_jar.sh)" (Maven Central com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3 and its dependencies)'
        )
    return (
        'on Spark 4 that is SPARKASR_TEST_JARS="$(scripts/fetch_sparknlp_jar.sh)" (com.johnsnowlabs.nlp:spark-nlp_2.13:7.0.0, '
        "which the Maven Central CI reaches does not serve: CI runs these tests in its pyspark 3.5 leg, scripts/test_spark35.sh)"
    )


def _unavailable(reason: str):
    """Skip with ``reason``; in CI (``CI=true``) fail: there the interop tests must run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def _jvm_class_location(spark, name: str):
    """Where the JVM loads class ``name`` from (a jar URL), or None when it is not on the classpath."""
    jvm = spark.sparkContext._jvm
    try:
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        cls = jvm.java.lang.Class.forName(name, False, loader)
    except Exception:
        return None
    try:
        return str(cls.getProtectionDomain().getCodeSource().getLocation().toString())
    except Exception:
        return "<unknown location>"


def _scala_binary_mismatch(spark, jar_url: str):
    """'2.12 jar on Scala 2.13' style message when the jar is built for another Scala, else None."""
    m = re.search(r"_(2\.1[0-9])[-/]", jar_url)
    try:
        session_scala = ".".join(
            str(spark.sparkContext._jvm.scala.util.Properties.versionNumberString()).split(".")[:2]
        )
    except Exception:
        return None
    if m and m.group(1) != session_scala:
        return f"Scala {m.group(1)} jar on a Scala {session_scala} Spark {spark.version}"
    return None


@pytest.fixture(scope="module")
def snlp(spark):
    """The shared session, once the Spark NLP Python package and jar are both usable."""
    try:
        import sparknlp  # noqa: F401
    except ImportError as exc:
        _unavailable(f"Spark NLP Python package not importable ({exc}): pip install spark-nlp")
    location = _jvm_class_location(spark, SPARKNLP_CLASS)
    if location is None:
        jars = os.environ.get("SPARKASR_TEST_JARS")
        where = f"SPARKASR_TEST_JARS={jars[:200]!r}" if jars else "SPARKASR_TEST_JARS is not set"
        fetch_error = os.environ.get("SPARKASR_SPARKNLP_FETCH_ERROR")  # set by the test script when the fetch failed
        if fetch_error:
            where += f"; the fetch failed: {fetch_error[:300]}"
        _unavailable(
            f"Spark NLP jar not on the session classpath ({SPARKNLP_CLASS} not found; {where}): {_fetch_hint(spark)}"
        )
    mismatch = _scala_binary_mismatch(spark, location)
    if mismatch:  # a wrong jar is a setup error, not a reason to skip
        pytest.fail(
            f"wrong Spark NLP jar for this session: {mismatch} ({location}); {_fetch_hint(spark)}", pytrace=False
        )
    return spark


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

_PUNCT = str.maketrans({c: " " for c in string.punctuation if c != "'"})


def _norm(text: str) -> str:
    """Lower-case, punctuation to spaces ("cold-hearted" -> "cold hearted"), apostrophes dropped."""
    return " ".join(text.lower().translate(_PUNCT).replace("'", "").split())


def _load_clips():
    import soundfile as sf

    out = []
    for wav in LIBRIVOX:
        samples, rate = sf.read(str(wav), dtype="float32", always_2d=False)
        assert rate == 16000 and samples.ndim == 1, f"{wav.name}: expected 16 kHz mono, got {rate} Hz {samples.shape}"
        out.append((wav.name, samples.astype(np.float32).tolist(), wav.with_suffix(".txt").read_text().strip()))
    return out


@pytest.fixture(scope="module")
def clips_df(snlp):
    """LibriVox clips as (name, audio array<float> at 16 kHz, reference)."""
    assert LIBRIVOX, "tests/data/librivox/*.wav missing"
    return snlp.createDataFrame(_load_clips(), "name string, audio array<float>, reference string").repartition(2)


def _doc_text(docs) -> str:
    return " ".join(d["result"] for d in (docs or []) if d["result"]).strip()


def _group_tokens_into_words(tokens):
    """Tokens that touch (begin == previous end + 1) belong to one whitespace-separated word."""
    words, prev_end = [], None
    for t in tokens:
        if prev_end is not None and t["begin"] == prev_end + 1 and words:
            words[-1] += t["result"]
        else:
            words.append(t["result"])
        prev_end = t["end"]
    return words


def _annotator_type_meta(df, col):
    return (df.schema[col].metadata or {}).get("annotatorType")


# ---------------------------------------------------------------------------------------------
# The jar itself works on this Spark (Scala binary version, dependencies)
# ---------------------------------------------------------------------------------------------


def test_sparknlp_text_pipeline_runs(snlp):
    from pyspark.ml import Pipeline
    from sparknlp.annotator import SentenceDetector, Tokenizer
    from sparknlp.base import DocumentAssembler

    df = snlp.createDataFrame([("He was not an ill disposed young man. Nobody was sorry!",)], ["text"])
    out = (
        Pipeline(
            stages=[
                DocumentAssembler().setInputCol("text").setOutputCol("document"),
                SentenceDetector().setInputCols(["document"]).setOutputCol("sentence"),
                Tokenizer().setInputCols(["sentence"]).setOutputCol("token"),
            ]
        )
        .fit(df)
        .transform(df)
    )
    row = out.select("sentence.result", "token.result").first()
    assert row[0] == ["He was not an ill disposed young man.", "Nobody was sorry!"]
    assert row[1] == ["He", "was", "not", "an", "ill", "disposed", "young", "man", ".", "Nobody", "was", "sorry", "!"]


# ---------------------------------------------------------------------------------------------
# The column contract (no model needed)
# ---------------------------------------------------------------------------------------------


def test_sparknlp_audio_assembler_schema_is_ours(snlp):
    """Spark NLP's AudioAssembler writes exactly our audio annotation layout (names, types, order)."""
    from sparknlp.base import AudioAssembler as SnlpAudioAssembler

    from sparkasr.annotation import audio_annotation_array_type

    for element in ("float", "double"):
        df = snlp.createDataFrame([([0.25, -0.5, 0.125],)], f"audio array<{element}>")
        out = SnlpAudioAssembler().setInputCol("audio").setOutputCol("audio_assembler").transform(df)
        got = out.schema["audio_assembler"].dataType
        assert got.simpleString() == audio_annotation_array_type().simpleString()
        assert (
            got.simpleString() == "array<struct<annotatorType:string,result:array<float>,metadata:map<string,string>>>"
        )
        assert _annotator_type_meta(out, "audio_assembler") == "audio"
        ann = out.first()["audio_assembler"]
        assert len(ann) == 1 and ann[0]["annotatorType"] == "audio"
        assert ann[0]["result"] == pytest.approx([0.25, -0.5, 0.125])
        assert ann[0]["metadata"]["length"] == "3"


def test_our_document_column_feeds_sparknlp(snlp):
    """A document column built with sparkasr.annotation feeds SentenceDetector and Tokenizer."""
    from pyspark.ml import Pipeline
    from pyspark.sql.types import StructField, StructType
    from sparknlp.annotator import SentenceDetector, Tokenizer

    from sparkasr.annotation import DOCUMENT, annotation, annotation_array_type, with_annotator_type_metadata

    text = "the dashwoods were now settled at barton. nobody was sorry to leave norland"
    schema = StructType([StructField("transcription", annotation_array_type(), True)])
    rows = [([annotation(DOCUMENT, 0, len(text) - 1, text, {"audio": 0, "sentence": 0, "language": "en"})],), ([],)]
    df = with_annotator_type_metadata(snlp.createDataFrame(rows, schema), "transcription", DOCUMENT)
    out = (
        Pipeline(
            stages=[
                SentenceDetector().setInputCols(["transcription"]).setOutputCol("sentence"),
                Tokenizer().setInputCols(["sentence"]).setOutputCol("token"),
            ]
        )
        .fit(df)
        .transform(df)
    )
    first, empty = out.select("sentence", "token").collect()
    assert [s["result"] for s in first["sentence"]] == [
        "the dashwoods were now settled at barton.",
        "nobody was sorry to leave norland",
    ]
    assert _group_tokens_into_words(first["token"]) == text.split()
    assert all(text[t["begin"] : t["end"] + 1] == t["result"] for t in first["token"])
    assert empty["sentence"] == [] and empty["token"] == []


# ---------------------------------------------------------------------------------------------
# The mixed pipeline: Spark NLP AudioAssembler -> our WhisperForCTC -> Spark NLP text annotators
# ---------------------------------------------------------------------------------------------


def _text_stages():
    """Spark NLP annotators that need no downloaded model, reading our ``transcription`` column."""
    from sparknlp.annotator import Normalizer, SentenceDetector, StopWordsCleaner, Tokenizer

    return [
        SentenceDetector().setInputCols(["transcription"]).setOutputCol("sentence"),
        Tokenizer().setInputCols(["sentence"]).setOutputCol("token"),
        Normalizer().setInputCols(["token"]).setOutputCol("normalized").setLowercase(True),
        StopWordsCleaner().setInputCols(["normalized"]).setOutputCol("clean").setCaseSensitive(False),
    ]


@pytest.fixture(scope="module")
def mixed_model(clips_df):
    from pyspark.ml import Pipeline
    from sparknlp.base import AudioAssembler as SnlpAudioAssembler

    from sparkasr import WhisperForCTC

    stages = [
        SnlpAudioAssembler().setInputCol("audio").setOutputCol("audio_assembler"),
        WhisperForCTC.pretrained().setInputCols(["audio_assembler"]).setOutputCol("transcription"),
        *_text_stages(),
    ]
    return Pipeline(stages=stages).fit(clips_df)


def _collect(model, df):
    cols = ["transcription", "transcription_chunks", *TEXT_COLS]
    return model.transform(df).select("name", "reference", *cols).orderBy("name").collect()


@pytest.fixture(scope="module")
def mixed_rows(mixed_model, clips_df):
    return _collect(mixed_model, clips_df)


def _check_transcripts(names, refs, texts):
    """Per-clip and corpus WER of ``texts`` against the references."""
    import jiwer

    refs, hyps = [_norm(r) for r in refs], [_norm(t) for t in texts]
    for name, ref, hyp in zip(names, refs, hyps):
        assert hyp, f"{name}: empty transcript"
        clip_wer = jiwer.wer(ref, hyp)
        assert clip_wer < 0.5, f"{name}: WER {clip_wer:.3f}: {ref!r} vs {hyp!r}"
    wer = jiwer.wer(refs, hyps)
    assert wer < 0.35, f"WER {wer:.3f} over {len(refs)} clips: {list(zip(refs, hyps))}"


def test_sparknlp_audio_assembler_feeds_our_whisper(mixed_model, clips_df, mixed_rows):
    out = mixed_model.transform(clips_df)
    assert _annotator_type_meta(out, "transcription") == "document"
    assert _annotator_type_meta(out, "transcription_chunks") == "chunk"
    assert [r["name"] for r in mixed_rows] == [p.name for p in LIBRIVOX]
    for r in mixed_rows:
        docs = r["transcription"]
        assert len(docs) == 1, f"{r['name']}: expected one document annotation, got {len(docs)}"
        assert docs[0]["annotatorType"] == "document"
        assert not docs[0]["metadata"].get("error"), f"{r['name']}: {docs[0]['metadata']['error']}"
        assert docs[0]["metadata"]["language"] == "en"
        assert r["transcription_chunks"], f"{r['name']}: no segment chunks"
    _check_transcripts(
        [r["name"] for r in mixed_rows],
        [r["reference"] for r in mixed_rows],
        [_doc_text(r["transcription"]) for r in mixed_rows],
    )


def test_sparknlp_audio_assembler_feeds_our_ctc(snlp, clips_df, tmp_path, monkeypatch):
    """Spark NLP's audio annotations into our Wav2Vec2ForCTC and HubertForCTC: the text of each row
    is exactly the CTC engine's on the same samples."""
    from pyspark.ml import Pipeline
    from sparknlp.base import AudioAssembler as SnlpAudioAssembler

    from ctc_support import tiny_models
    from sparkasr import HubertForCTC, Wav2Vec2ForCTC
    from sparkasr.ctc.engine import CTCEngine, CTCOptions

    monkeypatch.setenv("SPARKASR_CACHE", str(tmp_path / "cache"))  # model dirs are staged there for addFile
    models = tiny_models()
    stages = [SnlpAudioAssembler().setInputCol("audio").setOutputCol("audio_assembler")]
    for cls, kind in ((Wav2Vec2ForCTC, "wav2vec2"), (HubertForCTC, "hubert")):
        stages.append(
            cls.loadSavedModel(str(models[kind]["onnx"]), snlp).setInputCols(["audio_assembler"]).setOutputCol(kind)
        )
    rows = Pipeline(stages=stages).fit(clips_df).transform(clips_df).select("name", "wav2vec2", "hubert").collect()
    got = {r["name"]: r for r in rows}
    assert sorted(got) == [p.name for p in LIBRIVOX]
    for kind in ("wav2vec2", "hubert"):
        engine = CTCEngine(models[kind]["onnx"], CTCOptions(num_threads=1))
        texts = set()
        for name, samples, _ in _load_clips():
            (doc,) = got[name][kind]
            assert doc["annotatorType"] == "document" and "error" not in doc["metadata"], (kind, name)
            assert doc["result"] == engine.transcribe(np.asarray(samples, dtype=np.float32)).text, (kind, name)
            texts.add(doc["result"])
        assert len(texts) == len(LIBRIVOX) and all(texts), (kind, texts)  # one distinct, non-empty text per clip


def test_our_whisper_feeds_sparknlp_text_annotators(snlp, mixed_model, clips_df, mixed_rows):
    """SentenceDetector, Tokenizer, Normalizer and StopWordsCleaner on our transcripts: every
    annotation points back into the transcript, and each stage does what it does on plain text."""
    from sparknlp.annotator import StopWordsCleaner

    out = mixed_model.transform(clips_df)
    assert [_annotator_type_meta(out, c) for c in TEXT_COLS] == ["document", "token", "token", "token"]
    stop_words = {w.lower() for w in StopWordsCleaner().getStopWords()}
    for r in mixed_rows:
        text = r["transcription"][0]["result"]
        sentences, tokens, normalized, clean = (r[c] for c in TEXT_COLS)
        assert sentences and tokens, f"{r['name']}: Spark NLP produced no sentence/token for {text!r}"
        # Sentences cover the transcript; tokens point back into it and, glued at their offsets,
        # give back exactly its words.
        assert "".join(s["result"] for s in sentences).replace(" ", "") == text.replace(" ", "")
        for t in tokens:
            assert t["annotatorType"] == "token"
            assert text[t["begin"] : t["end"] + 1] == t["result"], (r["name"], t["result"], t["begin"], t["end"])
        assert _group_tokens_into_words(tokens) == text.split(), (r["name"], text, [t["result"] for t in tokens])
        # Normalizer (default cleanup pattern [^\pL+]): each token's letters lower-cased, from the
        # token's begin (its end shrinks with what was removed); tokens with none (punctuation, digits) dropped
        letters = ["".join(ch for ch in t["result"] if ch.isalpha() or ch == "+").lower() for t in tokens]
        kept_tokens = [(w, t) for w, t in zip(letters, tokens) if w]
        assert [(n["result"], n["begin"]) for n in normalized] == [(w, t["begin"]) for w, t in kept_tokens], r["name"]
        assert all(n["begin"] <= n["end"] <= t["end"] for n, (_, t) in zip(normalized, kept_tokens)), r["name"]
        # StopWordsCleaner: the normalized tokens without its English stop words
        kept = [(n["result"], n["begin"], n["end"]) for n in normalized if n["result"] not in stop_words]
        assert [(c["result"], c["begin"], c["end"]) for c in clean] == kept, r["name"]
        assert 0 < len(clean) < len(normalized), (r["name"], [c["result"] for c in clean])


def test_mixed_pipeline_saved_and_loaded(mixed_model, clips_df, mixed_rows, tmp_path):
    """The Spark NLP stages and ours round-trip through PipelineModel.save/load together."""
    from pyspark.ml import PipelineModel

    path = str(tmp_path / "mixed")
    mixed_model.write().overwrite().save(path)
    loaded = PipelineModel.load(path)
    assert [type(s).__name__ for s in loaded.stages] == [type(s).__name__ for s in mixed_model.stages]
    assert [type(s).__module__.split(".")[0] for s in loaded.stages] == ["sparknlp", "sparkasr"] + ["sparknlp"] * 4
    assert loaded.stages[1].getModelSource() == "tiny.en" and loaded.stages[3].getOutputCol() == "token"
    assert _collect(loaded, clips_df) == mixed_rows


def test_light_pipeline_runs_the_mixed_pipeline(mixed_model, clips_df, snlp):
    """sparkasr's LightPipeline on the mixed pipeline, without a Spark job: our stages transcribe on
    the driver and the Spark NLP ones run in Spark NLP's LightPipeline on the transcripts, giving
    exactly what those stages give in a DataFrame on the same transcripts."""
    from pyspark.ml import PipelineModel
    from pyspark.sql.types import IntegerType, StructField, StructType

    from sparkasr import LightPipeline
    from sparkasr.annotation import DOCUMENT, annotation_array_type, with_annotator_type_metadata

    clips = _load_clips()
    light = LightPipeline(mixed_model)
    bad = np.full(1600, np.nan, dtype=np.float32)
    full = light.fullAnnotate([np.asarray(samples, dtype=np.float32) for _, samples, _ in clips] + [bad])
    assert [sorted(row) for row in full] == [sorted(["transcription", "transcription_chunks", *TEXT_COLS])] * len(full)
    *good, broken = full
    assert broken["transcription"][0]["result"] == "" and broken["transcription"][0]["metadata"]["error"]
    assert all(broken[c] == [] for c in TEXT_COLS)
    _check_transcripts(
        [n for n, _, _ in clips], [ref for _, _, ref in clips], [r["transcription"][0]["result"] for r in good]
    )

    # the same Spark NLP stages in a DataFrame, on the LightPipeline's own transcription annotations
    schema = StructType([StructField("id", IntegerType()), StructField("transcription", annotation_array_type())])
    docs = snlp.createDataFrame([(i, row["transcription"]) for i, row in enumerate(full)], schema)
    docs = with_annotator_type_metadata(docs, "transcription", DOCUMENT)
    text_model = PipelineModel(stages=mixed_model.stages[2:])
    in_spark = text_model.transform(docs).orderBy("id").collect()
    fields = ("annotatorType", "begin", "end", "result", "metadata")
    for row, spark_row in zip(full, in_spark):
        for c in TEXT_COLS:
            assert [tuple(a[f] for f in fields) for a in row[c]] == [
                tuple(a[f] for f in fields) for a in spark_row[c]
            ], c
    simple = light.annotate([np.asarray(clips[0][1], dtype=np.float32)])[0]
    assert simple["token"] == [t["result"] for t in good[0]["token"]]
