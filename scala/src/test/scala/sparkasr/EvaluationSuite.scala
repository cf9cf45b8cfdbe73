package sparkasr

import org.apache.spark.ml.{Pipeline, PipelineModel}
import org.apache.spark.ml.tuning.{CrossValidator, ParamGridBuilder}
import org.apache.spark.sql.functions._
import org.json4s._
import org.scalatest.funsuite.AnyFunSuite
import sparkasr.evaluation.{ErrorCounts, Normalizers, PyStr}
import sparkasr.spark.assembler.AudioAssembler
import sparkasr.spark.ctc.Wav2Vec2ForCTC
import sparkasr.spark.evaluation.WerEvaluator

/** WER/CER on the JVM against the Python evaluator and jiwer (tests/fixtures/make_jvm_fixtures.py). */
class EvaluationSuite extends AnyFunSuite with SparkTest {
  implicit val formats: Formats = DefaultFormats

  test("normalisers give the Python normalisers' output on every test string (whisper_en included)") {
    val fx = Fixtures.json("normalizers.json")
    val strings = (fx \ "strings").extract[List[String]]
    val outputs = (fx \ "outputs").extract[Map[String, List[String]]]
    val names = (fx \ "names").extract[Map[String, String]]
    assert(outputs.size >= 10 && strings.size > 60)
    for ((name, expected) <- outputs) {
      val n = Normalizers.get(name)
      assert(n.name == names(name), name)
      strings.zip(expected).foreach { case (s, e) => assert(n(s) == e, s"$name(${s.take(60)})") }
    }
    assert(intercept[IllegalArgumentException](Normalizers.get("basic+nope")).getMessage.contains("unknown normaliser 'nope'"))
  }

  private lazy val fx = Fixtures.json("wer.json")
  private lazy val pairs: Seq[(String, String)] = (fx \ "pairs").extract[List[JValue]].map { p =>
    ((p \ "reference").extract[Option[String]].orNull, (p \ "prediction").extract[Option[String]].orNull)
  }

  test("WerEvaluator: counts equal the Python evaluator's and rates within 1e-12, on 1, 3 and 17 partitions") {
    import spark.implicits._
    val df = pairs.toDF("reference", "prediction").cache()
    val py = (fx \ "python").extract[Map[String, JValue]]
    assert(py.size == 30)
    // nullPrediction=empty on the basic normaliser only: one Spark job per case keeps the suite short
    for ((key, exp) <- py; Array(norm, parts, nullPrediction) = key.split('|') if nullPrediction == "skip" || norm == "basic") {
      val d = if (parts.toInt == 1) df.coalesce(1) else df.repartition(parts.toInt)
      val ev = new WerEvaluator().setNormalizer(norm).setNullPrediction(nullPrediction)
      val c = ev.counts(d) // one Spark job; evaluate() derives its metric from these counts
      assert(c.toMap == (exp \ "counts").extract[Map[String, Long]], key)
      for (m <- Seq("wer", "cer", "mer", "wil")) {
        val v = c.metric(m)
        val e = (exp \ m).extract[Double]
        assert(math.abs(v - e) <= 1e-12 || (v.isNaN && e.isNaN), s"$key $m: $v")
      }
      if (parts == "3" && nullPrediction == "skip") assert(math.abs(ev.setMetricName("cer").evaluate(d) - c.cer) <= 1e-12)
    }
  }

  test("WER and CER equal jiwer's on the same normalised pairs within 1e-12") {
    for ((norm, exp) <- (fx \ "jiwer").extract[Map[String, JValue]]) {
      val n = Normalizers.get(norm)
      val scored = pairs.filter { case (r, h) => r != null && h != null && PyStr.strip(n(r)).nonEmpty }
      assert(scored.size == (exp \ "n").extract[Int])
      val total = scored.map { case (r, h) => ErrorCounts.pair(r, h, n) }.reduce(_ + _)
      assert(math.abs(total.wer - (exp \ "wer").extract[Double]) <= 1e-12, s"$norm wer")
      assert(math.abs(total.cer - (exp \ "cer").extract[Double]) <= 1e-12, s"$norm cer")
    }
  }

  test("alignment counts follow rapidfuzz's editops on long random sequences (multi-word bit vectors)") {
    val rnd = new scala.util.Random(7)
    val a = Array.fill(300)(rnd.nextInt(5))
    val b = a.map(x => if (rnd.nextDouble() < 0.2) rnd.nextInt(5) else x).filter(_ => rnd.nextDouble() > 0.05)
    val (h, s, d, i) = evaluation.Levenshtein.counts(a, b)
    // the edit distance by plain dynamic programming
    val dp = Array.tabulate(a.length + 1, b.length + 1)((x, y) => if (x == 0) y else if (y == 0) x else 0)
    for (x <- 1 to a.length; y <- 1 to b.length)
      dp(x)(y) = Seq(dp(x - 1)(y) + 1, dp(x)(y - 1) + 1, dp(x - 1)(y - 1) + (if (a(x - 1) == b(y - 1)) 0 else 1)).min
    assert(s + d + i == dp(a.length)(b.length))
    assert(h + s + d == a.length && h + s + i == b.length)
  }

  test("WerEvaluator reads Spark NLP annotation columns and tunes a pipeline in CrossValidator") {
    import spark.implicits._
    val refs = Fixtures.json("clips.json").extract[List[Map[String, String]]].filter(_("path").endsWith(".wav"))
      .map(m => "file:" + m("path") -> m("reference")).toDF("path", "reference")
    val df = spark.read.format("binaryFile").load(Fixtures.wavPaths: _*).join(refs, "path")
    val asm = new AudioAssembler().setInputCol("content")
    val asr = Wav2Vec2ForCTC.loadSavedModel(Fixtures.model("wav2vec2"), spark).setCpuThreads(1)
    val ev = new WerEvaluator().setPredictionCol("transcription").setReferenceCol("reference").setMetricName("cer")
    val grid = new ParamGridBuilder().addGrid(asr.chunkLengthS, Array(0.0, 1.0)).build()
    val cv = new CrossValidator().setEstimator(new Pipeline().setStages(Array(asm, asr))).setEvaluator(ev)
      .setEstimatorParamMaps(grid).setNumFolds(2).setSeed(3)
    val model = cv.fit(df)
    assert(model.avgMetrics.length == 2 && model.avgMetrics.forall(m => m > 0 && m < 10))
    val best = model.bestModel.asInstanceOf[PipelineModel].stages(1).asInstanceOf[Wav2Vec2ForCTC]
    assert(best.getChunkLengthS == Seq(0.0, 1.0)(model.avgMetrics.indexOf(model.avgMetrics.min)))
    // the annotation column scored directly equals scoring its text
    val out = model.bestModel.transform(df).cache()
    val asText = out.withColumn("t", expr("array_join(transform(transcription, a -> a.result), ' ')"))
    assert(ev.evaluate(out) == ev.copy(org.apache.spark.ml.param.ParamMap(ev.predictionCol -> "t")).evaluate(asText))
  }
}
