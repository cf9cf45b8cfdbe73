package sparkasr

import java.io.File
import java.nio.file.Files

import org.apache.spark.ml.{Pipeline, PipelineModel}
import org.apache.spark.sql.{DataFrame, Row}
import org.apache.spark.sql.functions._
import org.apache.spark.sql.types._
import org.json4s._
import org.json4s.jackson.JsonMethods
import org.scalatest.funsuite.AnyFunSuite
import sparkasr.spark.Pipelines
import sparkasr.spark.assembler.AudioAssembler
import sparkasr.spark.ctc.{HubertForCTC, Wav2Vec2ForCTC}

/** The Spark stages end to end on the vendored clips: pipelines moving between Python and Scala,
  * the annotation schema, bad input, arrays, `pretrained`, and the values the JVM refuses. */
class SparkStagesSuite extends AnyFunSuite with SparkTest {
  implicit val formats: Formats = DefaultFormats
  private val cols = Seq("transcription", "transcription_chunks", "hubert", "hubert_chunks")

  override def beforeAll(): Unit = { super.beforeAll(); spark; Fixtures.ready }

  private def clipsDf(): DataFrame = spark.read.format("binaryFile").load(Fixtures.wavPaths: _*).orderBy("path").coalesce(1)

  /** Rows as the Python side writes them (tests/fixtures/make_jvm_fixtures.py: pipeline_output). */
  private def rowsJson(df: DataFrame, columns: Seq[String]): List[JValue] = {
    df.select((Seq("path") ++ columns).map(col): _*).toJSON.collect().toList.map(JsonMethods.parse(_)).sortBy(r => (r \ "path").extract[String])
  }

  /** Annotations equal: every field, metadata exactly but `probability` (within 1e-6). */
  private def sameRows(a: List[JValue], b: List[JValue], columns: Seq[String]): Unit = {
    assert(a.size == b.size && a.size == Fixtures.wavPaths.size)
    var compared = 0
    a.zip(b).foreach { case (x, y) =>
      assert((x \ "path") == (y \ "path"))
      for (c <- columns) {
        val xs = (x \ c).extract[List[JValue]]
        val ys = (y \ c).extract[List[JValue]]
        assert(xs.size == ys.size, s"$c of ${(x \ "path").extract[String]}")
        xs.zip(ys).foreach { case (p, q) =>
          for (f <- Seq("annotatorType", "begin", "end", "result")) assert((p \ f) == (q \ f), s"$c.$f")
          val pm = (p \ "metadata").extract[Map[String, String]]
          val qm = (q \ "metadata").extract[Map[String, String]]
          assert(pm.keySet == qm.keySet, s"$c metadata keys")
          pm.foreach { case (k, v) =>
            // probabilities are printed to 6 decimals: float32 softmax last bits can flip the 6th
            if (k == "probability") assert(math.abs(v.toDouble - qm(k).toDouble) <= 1.001e-6, s"$c probability $v vs ${qm(k)}")
            else assert(v == qm(k), s"$c metadata $k")
          }
          compared += 1
        }
      }
    }
    assert(compared > 100)
  }

  test("a PipelineModel saved by pyspark (AudioAssembler -> Wav2Vec2ForCTC -> HubertForCTC) loads and runs in Scala with the same output") {
    val saved = Fixtures.file("py_pipeline").getPath
    val meta = new String(Files.readAllBytes(new File(saved, "metadata").listFiles().find(_.getName.startsWith("part-")).get.toPath), "UTF-8")
    assert(meta.contains("\"pyspark.ml.pipeline.PipelineModel\"") && meta.contains("\"language\":\"Python\""))
    intercept[IllegalArgumentException](PipelineModel.load(saved)) // Spark's own reader refuses the Python class name
    val model = Pipelines.load(saved)
    assert(model.stages.map(_.getClass.getName).toSeq ==
      Seq("sparkasr.spark.assembler.AudioAssembler", "sparkasr.spark.ctc.Wav2Vec2ForCTC", "sparkasr.spark.ctc.HubertForCTC"))
    val out = model.transform(clipsDf())
    sameRows(Fixtures.json("py_pipeline_out.json").extract[List[JValue]], rowsJson(out, cols), cols)
  }

  test("a PipelineModel saved in Scala loads in pyspark (PipelineModel.load) and gives the same output") {
    val df = clipsDf()
    val stages = Array(
      new AudioAssembler().setInputCol("content").setOutputCol("audio_assembler"),
      Wav2Vec2ForCTC.loadSavedModel(Fixtures.model("wav2vec2"), spark).setInputCols("audio_assembler").setOutputCol("transcription").setCpuThreads(1),
      HubertForCTC.loadSavedModel(Fixtures.model("hubert"), spark).setInputCols("audio_assembler").setOutputCol("hubert")
        .setCpuThreads(1).setTimestamps("char"))
    val model = new Pipeline().setStages(stages.map(s => s: org.apache.spark.ml.PipelineStage)).fit(df)
    val dir = new File(Fixtures.tempDir("scala-pipeline"), "saved").getPath
    model.write.overwrite().save(dir)
    assert(new File(dir, "stages/1_" + stages(1).uid + "/weights/" + stages(1).uid + "/model.onnx").isFile)
    val reloaded = PipelineModel.load(dir) // Spark's own Scala reader reads it too
    val scalaRows = rowsJson(reloaded.transform(df), cols)
    val outJson = new File(dir + ".python.json")
    val log = new File(dir + ".python.log")
    val rc = Fixtures.runPython(Seq("tests/fixtures/make_jvm_fixtures.py", "--load-pipeline", dir, outJson.getPath), log)
    assert(rc == 0, s"Python could not load the Scala pipeline; see $log")
    val py = JsonMethods.parse(new String(Files.readAllBytes(outJson.toPath), "UTF-8"))
    assert((py \ "stages").extract[List[String]] ==
      List("sparkasr.spark.assembler.AudioAssembler", "sparkasr.spark.ctc.Wav2Vec2ForCTC", "sparkasr.spark.ctc.HubertForCTC"))
    sameRows((py \ "rows").extract[List[JValue]], scalaRows, cols)
  }

  test("Spark NLP's annotation schema, with annotatorType in the column metadata") {
    val asr = Wav2Vec2ForCTC.loadSavedModel(Fixtures.model("wav2vec2"), spark).setCpuThreads(1)
    val out = asr.transform(new AudioAssembler().setInputCol("content").transform(clipsDf().limit(2)))
    val s = out.schema
    assert(annotation.Annotations.annotatorTypeOf(s, "audio_assembler").contains("audio"))
    assert(annotation.Annotations.annotatorTypeOf(s, "transcription").contains("document"))
    assert(annotation.Annotations.annotatorTypeOf(s, "transcription_chunks").contains("chunk"))
    val doc = s("transcription").dataType.asInstanceOf[ArrayType].elementType.asInstanceOf[StructType]
    assert(doc.fieldNames.toSeq == Seq("annotatorType", "begin", "end", "result", "metadata", "embeddings"))
    assert(doc("metadata").dataType == MapType(StringType, StringType, valueContainsNull = true))
    val audio = s("audio_assembler").dataType.asInstanceOf[ArrayType].elementType.asInstanceOf[StructType]
    assert(audio.fieldNames.toSeq == Seq("annotatorType", "result", "metadata") && audio("result").dataType == ArrayType(FloatType, true))
    assert(asr.transformSchema(new AudioAssembler().setInputCol("content").transformSchema(clipsDf().schema)) == s)
  }

  test("bad input: one row each with an error naming the file and the reason, never a failed job") {
    val d = Fixtures.tempDir("bad-input")
    val good = Files.readAllBytes(new File(Fixtures.wavPaths.head).toPath)
    def write(name: String, bytes: Array[Byte]) = { val f = new File(d, name); Files.write(f.toPath, bytes); f }
    val expected = Map(
      write("empty.wav", Array.emptyByteArray) -> "empty file \\(0 bytes\\)",
      write("truncated.wav", good.take(good.length / 3)) -> "file is truncated",
      write("notaudio.wav", "<html>this is not audio</html>\n".getBytes("UTF-8")) -> "not an audio format we read \\(detected: HTML\\)",
      write("nan.wav", AudioSuiteData.floatWav(Array.tabulate(16000)(i => if (i == 500) Float.NaN else math.sin(i / 10.0).toFloat * 0.3f))) ->
        "audio contains NaN or infinite samples",
      write("zero.wav", AudioSuiteData.wavHeader(0)) -> "audio has zero length",
      write("silent.wav", AudioSuiteData.floatWav(new Array[Float](16000))) -> "audio is silent",
      write("good.wav", good) -> "")
    val asr = Wav2Vec2ForCTC.loadSavedModel(Fixtures.model("wav2vec2"), spark).setCpuThreads(1).setBatchSize(4)
    val binary = spark.read.format("binaryFile").load(d.getPath)
    import spark.implicits._
    val paths = expected.keys.map(_.getPath).toSeq.toDF("path_in")
    for ((name, df) <- Seq(
        "binary content via AudioAssembler" -> new AudioAssembler().setInputCol("content").transform(binary),
        "binary content directly" -> binary.withColumnRenamed("content", "audio_assembler"),
        "paths directly" -> paths.withColumn("audio_assembler", col("path_in")))) {
      // Spark's binaryFile source lists no zero-byte files: the empty file is a path-input case only
      val files = if (name.startsWith("paths")) expected else expected.filter(_._1.length > 0)
      val rows = asr.transform(df).select(expr("transcription[0]").as("t")).collect()
      assert(rows.length == files.size, name)
      val byFile = rows.map(r => r.getStruct(0)).map(a => a.getAs[scala.collection.Map[String, String]]("metadata")).map(m =>
        files.keys.find(f => m.get("error").exists(_.contains(f.getName)) || m.get("source").exists(_.endsWith(f.getName))).get -> m).toMap
      for ((f, reason) <- files) {
        val m = byFile(f)
        if (reason.isEmpty) assert(!m.contains("error"), s"$name ${f.getName}: ${m.get("error")}")
        else {
          val err = m.getOrElse("error", fail(s"$name: no error for ${f.getName}"))
          assert(err.contains(f.getName) && (".*(" + reason + ").*").r.matches(err), s"$name ${f.getName}: $err")
        }
      }
    }
  }

  test("AudioAssembler over arrays: sampleRate/channels, a per-row sampleRateCol, and 16-kHz doubles (pure SQL)") {
    val stereo = Fixtures.floats(Fixtures.file("audio/array22050x2.f32"))
    val mono16 = audio.AudioDecoder.decodePath(Fixtures.wavPaths.head)
    val df = spark.createDataFrame(java.util.Arrays.asList(Row(stereo.toSeq, 22050, "a.wav"), Row(Seq(0.1f, Float.NaN), 8000, "b.wav")),
      StructType(Seq(StructField("samples", ArrayType(FloatType)), StructField("rate", IntegerType), StructField("path", StringType))))
    val asm = new AudioAssembler().setInputCol("samples").setChannels(2).setSampleRateCol("rate")
    val out = asm.transform(df.limit(1)).select("audio_assembler").head().getSeq[Row](0).head
    assert(out.getSeq[Float](1).toArray.sameElements(audio.Audio.toMono16k(stereo, 22050, 2)))
    assert(out.getMap[String, String](2) == Map("sample_rate" -> "16000", "source" -> "a.wav", "original_sample_rate" -> "22050",
      "channels" -> "2", "duration_s" -> annotation.PyFormat.roundRepr(audio.Audio.toMono16k(stereo, 22050, 2).length / 16000.0, 3)))
    val bad = new AudioAssembler().setInputCol("samples").setSampleRate(8000).transform(df.select("samples", "path").where("path = 'b.wav'"))
    assert(bad.head().getAs[Seq[Row]]("audio_assembler").head.getMap[String, String](2)("error") ==
      "b.wav: audio contains NaN or infinite samples")
    val doubles = spark.createDataFrame(java.util.Arrays.asList(Row(mono16.map(_.toDouble).toSeq)), StructType(Seq(StructField("x", ArrayType(DoubleType)))))
    val sql = new AudioAssembler().setInputCol("x").transform(doubles)
    assert(!sql.queryExecution.executedPlan.toString.contains("MapPartitions")) // already 16 kHz mono: Spark SQL only
    val ann = sql.head().getAs[Seq[Row]]("audio_assembler").head
    assert(ann.getSeq[Float](1).toArray.sameElements(mono16))
    assert(ann.getMap[String, String](2) == Map("sample_rate" -> "16000", "duration_s" -> f"${mono16.length / 16000.0}%.3f"))
  }

  test("pretrained(name) resolves a local directory or a conversion in the sparkasr cache; nothing is fetched") {
    val cache = new File(sys.env("SPARKASR_CACHE"), "models/ctc-hub-facebook--wav2vec2-base-960h-fp32")
    Fixtures.deleteRecursively(cache)
    assert(intercept[IllegalArgumentException](Wav2Vec2ForCTC.pretrained()).getMessage.contains("sparkasr convert --model facebook/wav2vec2-base-960h"))
    cache.mkdirs()
    new File(Fixtures.model("wav2vec2")).listFiles().foreach(f => Files.copy(f.toPath, new File(cache, f.getName).toPath))
    assert(Wav2Vec2ForCTC.pretrained().getModelSource == cache.getAbsolutePath)
    assert(HubertForCTC.pretrained(Fixtures.model("hubert")).getModelSource == new File(Fixtures.model("hubert")).getAbsolutePath)
    val e = intercept[IllegalArgumentException](HubertForCTC.loadSavedModel(Fixtures.model("wav2vec2"), spark))
    assert(e.getMessage.contains("is a 'wav2vec2' model; use Wav2Vec2ForCTC"))
  }

  test("Python-only values are refused with an error naming the param, never accepted and ignored") {
    val asr = Wav2Vec2ForCTC.loadSavedModel(Fixtures.model("wav2vec2"), spark)
    def refused(f: => Any) = intercept[IllegalArgumentException](f).getMessage
    assert(refused(asr.copy(org.apache.spark.ml.param.ParamMap.empty).setBackend("transformers")).contains("backend 'transformers'"))
    assert(refused(asr.copy(org.apache.spark.ml.param.ParamMap.empty).setLmPath("/models/4gram.arpa")).contains("lmPath"))
    assert(refused(asr.copy(org.apache.spark.ml.param.ParamMap.empty).setBeamWidth(100)).contains("beamWidth"))
    assert(refused(asr.copy(org.apache.spark.ml.param.ParamMap.empty).setHotwords(Array("SPARK"))).contains("hotwords"))
    // a value set without the setter (e.g. loaded from a Python pipeline) is refused when the stage runs
    val loaded = asr.copy(org.apache.spark.ml.param.ParamMap(asr.lmPath -> "/models/4gram.arpa"))
    assert(refused(loaded.transformSchema(StructType(Seq(StructField("audio_assembler", BinaryType))))).contains("Wav2Vec2ForCTC: lmPath"))
  }
}
