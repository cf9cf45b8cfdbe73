"""WER/CER on Spark: distributed totals equal jiwer's across partitionings; Evaluator in model
selection; annotation columns; nulls; report. Uses the one shared local[2] session."""

from __future__ import annotations

import json

import jiwer
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("pyspark")

from pyspark import keyword_only  # noqa: E402
from pyspark.ml import Estimator, Model  # noqa: E402
from pyspark.ml.param import Param, Params, TypeConverters  # noqa: E402
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder, TrainValidationSplit  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

from sparkasr.annotation import annotation, annotation_array_type  # noqa: E402
from sparkasr.evaluation import ErrorCounts, evaluate_pairs, get_normalizer  # noqa: E402
from sparkasr.spark.evaluation import (  # noqa: E402
    WerEvaluator,
    error_counts,
    evaluate_and_report,
    evaluate_wer,
    has_references,
    text_column,
    with_error_counts,
)

pytestmark = pytest.mark.spark

PARTITIONINGS = (1, 3, 17)
SCHEMA = T.StructType(
    [
        T.StructField("speaker", T.StringType(), True),
        T.StructField("reference", T.StringType(), True),
        T.StructField("prediction", T.StringType(), True),
    ]
)

WORDS = ["a", "b", "the", "cat", "Ça", "日本", "x-y", "don't", "B."]
word_text = st.lists(st.sampled_from(WORDS), max_size=7).map(" ".join)
texts = st.one_of(word_text, st.text(alphabet="ab \tçé日", max_size=10))
rows = st.lists(st.tuples(st.sampled_from(["s1", "s2", "s3"]), texts, texts), min_size=1, max_size=25)


def _df(spark, data, n):
    df = spark.createDataFrame(spark.sparkContext.parallelize(data, n), SCHEMA)
    assert df.rdd.getNumPartitions() == n
    return df


def _jiwer_check(c: ErrorCounts, refs, hyps):
    o = jiwer.process_words(refs, hyps)
    oc = jiwer.process_characters(refs, hyps)
    assert (c.hits, c.substitutions, c.deletions, c.insertions) == (
        o.hits,
        o.substitutions,
        o.deletions,
        o.insertions,
    )
    assert (c.char_hits, c.char_substitutions, c.char_deletions, c.char_insertions) == (
        oc.hits,
        oc.substitutions,
        oc.deletions,
        oc.insertions,
    )
    for ours, theirs in [(c.wer, o.wer), (c.mer, o.mer), (c.wil, o.wil), (c.cer, oc.cer)]:
        assert abs(ours - theirs) <= 1e-12


# ---------------------------------------------------------------------------------------------
# Distributed totals == jiwer, whatever the partitioning
# ---------------------------------------------------------------------------------------------


# Spark jobs cost seconds on a 2-core machine, so each hypothesis example packs several corpora
# into one DataFrame (a ``corpus`` column) and checks every corpus (a group) and their union
# against jiwer in one job per partitioning: examples x corpora pairs lists are compared.
corpora = st.lists(rows, min_size=1, max_size=6)


def _tagged(cs):
    return [(f"c{i}", r, h) for i, c in enumerate(cs) for _, r, h in c]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cs=corpora)
def test_distributed_totals_equal_jiwer_across_partitionings(spark, cs):
    data = _tagged(cs)
    refs = [r for _, r, _ in data]
    hyps = [h for _, _, h in data]
    for n in PARTITIONINGS:
        df = _df(spark, data, n)
        # ungrouped (the Evaluator's path)
        c = error_counts(df, "prediction", "reference", "none")
        assert c.n_rows == len(data) and c.n_null == 0
        _jiwer_check(c, refs, hyps)
        # grouped: every corpus separately
        res = evaluate_wer(df, "prediction", "reference", group_by="speaker", normalizer="none", top_substitutions=0)
        assert res.overall == c
        assert len(res.groups) == len(cs)
        for i, corpus in enumerate(cs):
            _jiwer_check(res.groups[(f"c{i}",)], [r for _, r, _ in corpus], [h for _, _, h in corpus])


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cs=corpora)
def test_grouped_normalised_totals_and_substitutions_across_partitionings(spark, cs):
    data = _tagged(cs)
    norm = get_normalizer("basic")
    local = evaluate_pairs(
        [r for _, r, _ in data],
        [h for _, _, h in data],
        "basic",
        groups=[(s,) for s, _, _ in data],
        group_by=["speaker"],
        top_substitutions=3,
    )
    for n in PARTITIONINGS:
        res = evaluate_wer(
            _df(spark, data, n),
            "prediction",
            "reference",
            group_by=["speaker"],
            normalizer="basic",
            top_substitutions=3,
        )
        assert res.groups == local.groups and res.overall == local.overall
        assert res.substitutions == local.substitutions
        assert res.group_substitutions == local.group_substitutions
        _jiwer_check(res.overall, [norm(r) for _, r, _ in data], [norm(h) for _, _, h in data])


def test_same_result_as_pure_python_including_substitutions(spark):
    data = [
        ("s1", "the cat sat on the mat", "the cat sat on a mat"),
        ("s1", "hello world", "hello word"),
        ("s2", "hello world again", "hello word again"),
        ("s2", "the end", "a end"),
        ("s3", "", "noise"),
    ] * 3
    local = evaluate_pairs(
        [r for _, r, _ in data],
        [h for _, _, h in data],
        "basic",
        groups=[(s,) for s, _, _ in data],
        group_by=["speaker"],
        top_substitutions=2,
    )
    for n in PARTITIONINGS:
        res = evaluate_wer(_df(spark, data, n), "prediction", "reference", group_by="speaker", top_substitutions=2)
        assert res.overall == local.overall
        assert res.groups == local.groups
        assert res.substitutions == local.substitutions == [("the", "a", 6), ("world", "word", 6)]
        assert res.group_substitutions == local.group_substitutions
        assert set(res.group_substitutions) == {("s1",), ("s2",)}  # s3 has none
    pdf = res.to_pandas()
    assert list(pdf.columns[:1]) == ["speaker"] and len(pdf) == 3


def test_group_by_keeps_types_nulls_and_multiple_columns(spark):
    schema = "ds string, lang string, year int, x double, reference string, prediction string"
    data = [
        ("libri", "en", 2020, 1.0, "a b", "a b"),
        ("libri", "en", None, None, "a b", "a c"),
        (None, "en", None, None, "a b c d", "a"),
        ("cards", None, 2021, float("nan"), "x", "y"),
    ]
    df = spark.createDataFrame(data, schema).repartition(3)
    res = evaluate_wer(df, "prediction", "reference", group_by=["ds", "lang", "year", "x"], top_substitutions=0)
    keys = set(res.groups)
    assert ("libri", "en", 2020, 1.0) in keys
    assert ("libri", "en", None, None) in keys
    assert (None, "en", None, None) in keys
    nan_key = [k for k in keys if k[0] == "cards"][0]
    assert nan_key[1] is None and nan_key[2] == 2021 and nan_key[3] != nan_key[3]  # NaN kept
    assert res.groups[(None, "en", None, None)].deletions == 3
    assert res.substitutions == []


# ---------------------------------------------------------------------------------------------
# Inputs: annotation columns, nulls, empty frames
# ---------------------------------------------------------------------------------------------


def test_annotation_prediction_column(spark):
    schema = T.StructType(
        [
            T.StructField("reference", T.StringType(), True),
            T.StructField("transcription", annotation_array_type(), True),
        ]
    )
    data = [
        (
            "hello big world",
            [
                annotation("document", 0, 4, "Hello"),
                annotation("chunk", 0, 2, "ignored"),
                annotation("document", 6, 14, "big world.", {"start": 0.5}),
            ],
        ),
        ("go forward", [annotation("document", 0, 9, "go forward", embeddings=[0.1, 0.2])]),
        ("nothing", []),  # empty annotation array -> empty hypothesis
        ("null", None),  # null column -> null prediction (skipped, counted)
        ("blank", [annotation("document", 0, 0, "")]),
    ]
    df = spark.createDataFrame(data, schema)
    got = [r[0] for r in df.select(text_column(df, "transcription")).collect()]
    assert got == ["Hello big world.", "go forward", "", None, ""]
    c = error_counts(df, "transcription", "reference", "basic")
    assert c.n_rows == 5 and c.n_null == 1 and c.n_null_prediction == 1
    assert (c.hits, c.deletions) == (5, 2) and c.wer == pytest.approx(2 / 7)
    ev = WerEvaluator(predictionCol="transcription", referenceCol="reference")
    assert ev.evaluate(df) == pytest.approx(2 / 7)
    with pytest.raises(TypeError, match="annotation"):
        text_column(spark.createDataFrame([(1,)], "n int"), "n")


def test_nulls_counted_not_crashing(spark):
    data = [("s1", None, "x"), ("s1", "a b", None), ("s2", None, None), ("s2", "a b", "a b")]
    df = _df(spark, data, 3)
    res = evaluate_wer(df, "prediction", "reference", group_by="speaker")
    assert res.overall.n_rows == 4 and res.overall.n_null == 3
    assert res.overall.n_null_reference == 2 and res.overall.n_null_prediction == 2
    assert res.wer == 0.0
    assert res.groups[("s1",)].n_scored == 0
    empty = evaluate_wer(df, "prediction", "reference", null_prediction="empty", top_substitutions=0)
    assert empty.overall.deletions == 2 and empty.wer == pytest.approx(0.5)


def test_empty_dataframe(spark):
    df = spark.createDataFrame([], SCHEMA)
    c = error_counts(df, "prediction", "reference")
    assert c.n_rows == 0
    res = evaluate_wer(df, "prediction", "reference", group_by="speaker")
    assert res.groups == {} and res.overall == ErrorCounts()


def test_with_error_counts_per_row_sums_to_corpus(spark):
    data = [("s1", "a b c", "a x c d"), ("s2", "hello", ""), ("s2", None, "x")]
    df = with_error_counts(_df(spark, data, 2), "prediction", "reference", "counts")
    rows = df.select("speaker", "counts.*").collect()
    per = {r["speaker"]: r for r in rows if r["n_null"] == 0}
    assert per["s1"]["substitutions"] == 1 and per["s1"]["insertions"] == 1
    assert per["s1"]["wer"] == pytest.approx(2 / 3)
    assert [r["wer"] for r in rows if r["n_null"] == 1] == [None]
    summed = df.agg(
        *[F.sum(f"counts.{k}").alias(k) for k in ("hits", "substitutions", "deletions", "insertions")]
    ).first()
    c = error_counts(_df(spark, data, 2), "prediction", "reference")
    assert (summed.hits, summed.substitutions, summed.deletions, summed.insertions) == (
        c.hits,
        c.substitutions,
        c.deletions,
        c.insertions,
    )


def test_whisper_normaliser_on_executors(spark):
    pytest.importorskip("whisper_normalizer")
    data = [("s1", "I have twenty one apples.", "i have 21 apples"), ("s1", "Colour", "color")]
    res = evaluate_wer(_df(spark, data, 2), "prediction", "reference", normalizer="whisper_en")
    assert res.wer == 0.0 and res.normalizer == "whisper_en"
    assert evaluate_wer(_df(spark, data, 2), "prediction", "reference", normalizer="basic").wer > 0
    custom = evaluate_wer(_df(spark, data, 2), "prediction", "reference", normalizer=lambda s: "same")
    assert custom.wer == 0.0 and custom.normalizer == "<lambda>"


# ---------------------------------------------------------------------------------------------
# Evaluator
# ---------------------------------------------------------------------------------------------


def test_evaluator_params_and_metrics(spark, tmp_path):
    data = [("s1", "the cat sat", "the cat sit down"), ("s1", "今日は", "今日わ")]
    df = _df(spark, data, 2)
    ev = WerEvaluator(predictionCol="prediction", referenceCol="reference", normalizer="none")
    assert ev.isLargerBetter() is False
    refs, hyps = [r for _, r, _ in data], [h for _, _, h in data]
    assert ev.evaluate(df) == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    assert ev.evaluate(df, {ev.metricName: "cer"}) == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    assert ev.setMetricName("mer").evaluate(df) == pytest.approx(jiwer.mer(refs, hyps), abs=1e-12)
    assert ev.setMetricName("wil").evaluate(df) == pytest.approx(jiwer.wil(refs, hyps), abs=1e-12)
    with pytest.raises(ValueError):
        ev.setMetricName("bleu")
    with pytest.raises(ValueError):
        WerEvaluator(metricName="accuracy")
    with pytest.raises(ValueError):
        ev.setNormalizer("nope")
    # persistence
    ev.save(str(tmp_path / "ev"))
    loaded = WerEvaluator.load(str(tmp_path / "ev"))
    assert loaded.getMetricName() == "wil" and loaded.getNormalizer() == "none"
    assert loaded.getPredictionCol() == "prediction" and loaded.getReferenceCol() == "reference"


class _BeamParams(Params):
    beamSize = Param(Params._dummy(), "beamSize", "toy beam size", typeConverter=TypeConverters.toInt)


class ToyTranscriberModel(Model, _BeamParams):
    """Pretends to transcribe: a beam < 3 drops the last word of the reference; >= 3 is perfect."""

    def __init__(self, beamSize: int = 1):
        super().__init__()
        self._set(beamSize=beamSize)

    def _transform(self, dataset):
        beam = self.getOrDefault(self.beamSize)
        if beam >= 3:
            return dataset.withColumn("prediction", F.col("reference"))
        return dataset.withColumn("prediction", F.regexp_replace("reference", r"\s*\S+$", ""))


class ToyTranscriber(Estimator, _BeamParams):
    @keyword_only
    def __init__(self, *, beamSize: int = 1):
        super().__init__()
        self._setDefault(beamSize=1)
        self._set(**self._input_kwargs)

    def _fit(self, dataset):
        return ToyTranscriberModel(self.getOrDefault(self.beamSize))


def _selection_df(spark):
    data = [(f"s{i % 3}", f"utterance number {i} with some words", None) for i in range(24)]
    return _df(spark, data, 3)


def test_evaluator_in_cross_validator_picks_the_better_beam(spark):
    est = ToyTranscriber()
    grid = ParamGridBuilder().addGrid(est.beamSize, [1, 5]).build()
    cv = CrossValidator(
        estimator=est,
        estimatorParamMaps=grid,
        numFolds=2,
        seed=7,
        evaluator=WerEvaluator(predictionCol="prediction", referenceCol="reference"),
    )
    m = cv.fit(_selection_df(spark))
    assert m.avgMetrics[1] == 0.0 < m.avgMetrics[0]
    assert m.bestModel.getOrDefault("beamSize") == 5


def test_evaluator_in_train_validation_split(spark):
    est = ToyTranscriber()
    grid = ParamGridBuilder().addGrid(est.beamSize, [5, 1]).build()
    tvs = TrainValidationSplit(
        estimator=est, estimatorParamMaps=grid, trainRatio=0.5, seed=3, evaluator=WerEvaluator(metricName="cer")
    )
    m = tvs.fit(_selection_df(spark))
    assert m.validationMetrics[0] == 0.0 < m.validationMetrics[1]
    assert m.bestModel.getOrDefault("beamSize") == 5


# ---------------------------------------------------------------------------------------------
# Report entry point (what `sparkasr transcribe` calls)
# ---------------------------------------------------------------------------------------------


def test_evaluate_and_report(spark, tmp_path):
    data = [
        ("a.wav", "s1", "hello world", "hello word"),
        ("b.wav", "s2", "good morning", "good morning"),
        ("c.wav", "s2", "bad", None),
    ]
    df = spark.createDataFrame(data, "path string, speaker string, reference string, text string")
    assert has_references(df) and not has_references(df, "nope")
    assert not has_references(df.withColumn("reference", F.lit(None).cast("string")))
    res = evaluate_and_report(df, tmp_path / "eval", group_by=["speaker"], model="tiny.en", options={"beam_size": 5})
    payload = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert payload["model"] == "tiny.en" and payload["normalizer"] == "basic"
    assert payload["overall"]["wer"] == pytest.approx(res.wer) == pytest.approx(0.25)
    assert payload["overall"]["n_null_prediction"] == 1
    assert payload["options"]["beam_size"] == 5 and payload["options"]["prediction_col"] == "text"
    assert payload["top_substitutions"] == [{"reference": "world", "hypothesis": "word", "count": 1}]
    by_speaker = {g["key"]["speaker"]: g for g in payload["groups"]}
    assert by_speaker["s1"]["top_substitutions"] == payload["top_substitutions"]
    assert by_speaker["s2"]["top_substitutions"] == [] and by_speaker["s2"]["n_null"] == 1
    assert (tmp_path / "eval" / "report.md").exists()


# ---------------------------------------------------------------------------------------------
# Real speech: the vendored clips through the Whisper pipeline (tiny.en, embedded)
# ---------------------------------------------------------------------------------------------


def test_whisper_pipeline_on_vendored_clips(spark, clips, tmp_path):
    pytest.importorskip("whisper_normalizer")
    sf = pytest.importorskip("soundfile")
    from pyspark.ml import Pipeline

    from sparkasr.spark.assembler import AudioAssembler
    from sparkasr.spark.whisper import WhisperForCTC

    rows = []
    for path, ref in clips:
        samples, _ = sf.read(str(path), dtype="float32")
        rows.append((str(path), path.parent.name, ref, samples.tolist()))
    df = spark.createDataFrame(rows, "path string, dataset string, reference string, audio array<float>")
    asm = AudioAssembler().setInputCol("audio").setOutputCol("audio_assembler")
    asr = WhisperForCTC.pretrained().setInputCols(["audio_assembler"]).setOutputCol("transcription")
    out = Pipeline(stages=[asm, asr]).fit(df).transform(df).select("path", "dataset", "reference", "transcription")
    out = out.persist()
    try:
        got = out.select("dataset", "reference", F.col("transcription")[0]["result"].alias("hyp")).collect()
        assert len(got) == len(clips) == 10
        norm = get_normalizer("whisper_en")
        res = evaluate_and_report(
            out.repartition(3),
            tmp_path / "eval",
            prediction_col="transcription",
            group_by="dataset",
            normalizer="whisper_en",
            model="tiny.en",
        )
        wer_evaluator = WerEvaluator(predictionCol="transcription", referenceCol="reference", normalizer="whisper_en")
        metric = wer_evaluator.evaluate(out)
    finally:
        out.unpersist()
    refs = [norm(r["reference"]) for r in got]
    hyps = [norm(r["hyp"]) for r in got]
    print(
        f"\nWER tiny.en on {len(got)} vendored clips (whisper_en normaliser): {res.wer:.4f}; "
        f"per dataset: { {k[0]: round(c.wer, 4) for k, c in res.groups.items()} }"
    )
    assert res.wer == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    assert res.cer == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    assert metric == pytest.approx(res.wer, abs=1e-12)
    assert set(res.groups) == {("librivox",), ("cards",)}
    assert res.wer <= 0.15
    for (ds,), c in res.groups.items():
        _jiwer_check(
            c,
            [norm(r["reference"]) for r in got if r["dataset"] == ds],
            [norm(r["hyp"]) for r in got if r["dataset"] == ds],
        )
    payload = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert payload["model"] == "tiny.en" and payload["normalizer"] == "whisper_en"
    assert (tmp_path / "eval" / "report.md").exists()
