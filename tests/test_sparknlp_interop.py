"""Interop with the real Spark NLP jar, in the shared local[2] session.

* Spark NLP's ``AudioAssembler`` output feeds our ``WhisperForCTC`` (one Pipeline);
* our ``AudioAssembler`` -> ``WhisperForCTC`` output feeds Spark NLP's ``SentenceDetector`` and
  ``Tokenizer`` (one Pipeline);
* the column contract behind both: our annotation types are the ones Spark NLP writes and reads.

The jar comes from Maven Central (``com.johnsnowlabs.nlp:spark-nlp_2.13:7.0.0`` for Spark 4.0.1+;
Spark 4.0.0 needs ``spark-nlp-spark400_2.13``, Spark 3.x ``spark-nlp_2.12``) with its runtime
dependencies; put it on the session's classpath with::

    export SPARKASR_TEST_JARS="$(scripts/fetch_sparknlp_jar.sh)"   # conftest adds it to spark.jars
    pip install --no-deps spark-nlp==7.0.0

Every test here skips, naming the reason, when the ``sparknlp`` package is missing or the jar is
not on the classpath (the fetch script could not get it: CI passes its message in
``SPARKASR_SPARKNLP_FETCH_ERROR``); with both present nothing is skipped, and a jar built for
another Scala version fails the tests instead of skipping them.
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
FETCH_HINT = (
    'fetch it with SPARKASR_TEST_JARS="$(scripts/fetch_sparknlp_jar.sh)" '
    "(Maven Central com.johnsnowlabs.nlp:spark-nlp_2.13:7.0.0 plus its runtime dependencies)"
)


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
        pytest.skip(f"Spark NLP Python package not importable ({exc}): pip install --no-deps spark-nlp==7.0.0")
    location = _jvm_class_location(spark, SPARKNLP_CLASS)
    if location is None:
        jars = os.environ.get("SPARKASR_TEST_JARS")
        where = f"SPARKASR_TEST_JARS={jars[:200]!r}" if jars else "SPARKASR_TEST_JARS is not set"
        fetch_error = os.environ.get("SPARKASR_SPARKNLP_FETCH_ERROR")  # set by CI when the fetch failed
        if fetch_error:
            where += f"; the fetch failed: {fetch_error[:300]}"
        pytest.skip(f"Spark NLP jar not on the session classpath ({SPARKNLP_CLASS} not found; {where}): {FETCH_HINT}")
    mismatch = _scala_binary_mismatch(spark, location)
    if mismatch:  # a wrong jar is a setup error, not a reason to skip
        pytest.fail(f"wrong Spark NLP jar for this session: {mismatch} ({location}); {FETCH_HINT}", pytrace=False)
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
# (a) Spark NLP AudioAssembler -> our WhisperForCTC
# ---------------------------------------------------------------------------------------------


def test_sparknlp_audio_assembler_feeds_our_whisper(snlp, clips_df):
    import jiwer
    from pyspark.ml import Pipeline
    from sparknlp.base import AudioAssembler as SnlpAudioAssembler

    from sparkasr import WhisperForCTC

    pipeline = Pipeline(
        stages=[
            SnlpAudioAssembler().setInputCol("audio").setOutputCol("audio_assembler"),
            WhisperForCTC.pretrained().setInputCols(["audio_assembler"]).setOutputCol("transcription"),
        ]
    )
    out = pipeline.fit(clips_df).transform(clips_df)
    assert _annotator_type_meta(out, "transcription") == "document"
    rows = out.select("name", "reference", "transcription").orderBy("name").collect()
    assert [r["name"] for r in rows] == [p.name for p in LIBRIVOX]

    refs, hyps = [], []
    for r in rows:
        docs = r["transcription"]
        assert docs, f"{r['name']}: no annotation"
        for d in docs:
            assert d["annotatorType"] == "document"
            assert not d["metadata"].get("error"), f"{r['name']}: {d['metadata']['error']}"
        hyp = _doc_text(docs)
        assert hyp, f"{r['name']}: empty transcript"
        refs.append(_norm(r["reference"]))
        hyps.append(_norm(hyp))
        clip_wer = jiwer.wer(refs[-1], hyps[-1])
        assert clip_wer < 0.5, f"{r['name']}: WER {clip_wer:.3f}: {refs[-1]!r} vs {hyps[-1]!r}"
    wer = jiwer.wer(refs, hyps)
    assert wer < 0.35, f"WER {wer:.3f} over {len(refs)} clips: {list(zip(refs, hyps))}"


# ---------------------------------------------------------------------------------------------
# (b) our AudioAssembler -> our WhisperForCTC -> Spark NLP SentenceDetector -> Tokenizer
# ---------------------------------------------------------------------------------------------


def test_our_whisper_feeds_sparknlp_sentence_detector_and_tokenizer(snlp, clips_df):
    from pyspark.ml import Pipeline
    from sparknlp.annotator import SentenceDetector, Tokenizer

    from sparkasr import AudioAssembler, WhisperForCTC

    pipeline = Pipeline(
        stages=[
            AudioAssembler().setInputCol("audio").setOutputCol("audio_assembler").setSampleRate(16000),
            WhisperForCTC.pretrained().setInputCols(["audio_assembler"]).setOutputCol("transcription"),
            SentenceDetector().setInputCols(["transcription"]).setOutputCol("sentence"),
            Tokenizer().setInputCols(["sentence"]).setOutputCol("token"),
        ]
    )
    out = pipeline.fit(clips_df).transform(clips_df)
    assert _annotator_type_meta(out, "sentence") == "document"
    assert _annotator_type_meta(out, "token") == "token"
    rows = out.select("name", "transcription", "sentence", "token").orderBy("name").collect()
    assert len(rows) == len(LIBRIVOX)
    for r in rows:
        docs = r["transcription"]
        assert len(docs) == 1, f"{r['name']}: expected one document annotation, got {len(docs)}"
        text = docs[0]["result"]
        assert text.strip(), f"{r['name']}: empty transcript"
        sentences, tokens = r["sentence"], r["token"]
        assert sentences and tokens, f"{r['name']}: Spark NLP produced no sentence/token for {text!r}"
        # Sentences cover the transcript; tokens point back into it and, glued at their offsets,
        # give back exactly its words.
        assert "".join(s["result"] for s in sentences).replace(" ", "") == text.replace(" ", "")
        for t in tokens:
            assert t["annotatorType"] == "token"
            assert text[t["begin"] : t["end"] + 1] == t["result"], (r["name"], t["result"], t["begin"], t["end"])
        assert _group_tokens_into_words(tokens) == text.split(), (r["name"], text, [t["result"] for t in tokens])
        assert re.search(r"\w", " ".join(t["result"] for t in tokens))
