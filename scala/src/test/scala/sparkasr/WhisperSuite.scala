package sparkasr

import java.io.File
import java.nio.charset.StandardCharsets
import java.nio.file.Files

import org.apache.spark.ml.{Pipeline, PipelineModel}
import org.apache.spark.ml.param.ParamMap
import org.json4s._
import org.json4s.jackson.JsonMethods
import org.scalatest.funsuite.AnyFunSuite
import sparkasr.audio.QuietCuts
import sparkasr.evaluation.{ErrorCounts, Normalizers}
import sparkasr.spark.assembler.AudioAssembler
import sparkasr.spark.whisper.WhisperForCTC
import sparkasr.whisper.{WhisperEngine, WhisperExport, WhisperOptions}

/** What tests/fixtures/make_jvm_whisper_fixtures.py computes (the tiny.en ONNX export, faster-whisper's
  * features, CTranslate2's greedy tokens, the Python engine's default-option transcripts), made once
  * per change of its inputs into target/jvm-whisper-fixtures (`$SPARKASR_WHISPER_FIXTURES`: use a
  * directory made before). */
object WhisperFixtures {
  implicit val formats: Formats = DefaultFormats
  private def stamp: String = {
    val md = java.security.MessageDigest.getInstance("SHA-256")
    def walk(f: File): Seq[File] = if (f.isDirectory) Option(f.listFiles()).toSeq.flatten.sortBy(_.getName).flatMap(walk) else Seq(f)
    (walk(new File(Fixtures.repo, "python/sparkasr/whisper")) ++ walk(new File(Fixtures.repo, "tests/data")) ++
      Seq("tests/fixtures/make_jvm_whisper_fixtures.py", "tests/whisper_support.py", "python/sparkasr/audio.py").map(new File(Fixtures.repo, _)))
      .filter(f => f.isFile && !f.getPath.contains("__pycache__")).foreach { f => md.update(f.getPath.getBytes); md.update(Files.readAllBytes(f.toPath)) }
    md.digest().map("%02x".format(_)).mkString
  }
  lazy val dir: File = sys.env.get("SPARKASR_WHISPER_FIXTURES").map(new File(_)).getOrElse {
    val d = new File(Fixtures.repo, "target/jvm-whisper-fixtures")
    val s = stamp
    val sf = new File(d, ".stamp")
    if (!(sf.isFile && new String(Files.readAllBytes(sf.toPath), StandardCharsets.UTF_8) == s)) {
      if (d.exists()) Fixtures.deleteRecursively(d)
      d.getParentFile.mkdirs()
      val log = new File(Fixtures.repo, "target/jvm-whisper-fixtures.log")
      val rc = Fixtures.runPython(Seq("tests/fixtures/make_jvm_whisper_fixtures.py", d.getPath), log)
      if (rc != 0) throw new IllegalStateException(s"make_jvm_whisper_fixtures.py failed ($rc); see $log")
      Files.write(sf.toPath, s.getBytes(StandardCharsets.UTF_8))
    }
    d
  }
  def json(name: String): JValue = JsonMethods.parse(new String(Files.readAllBytes(new File(dir, name).toPath), StandardCharsets.UTF_8))
  lazy val clips: List[JValue] = json("clips.json").extract[List[JValue]]
  def exportDir: String = new File(dir, "tiny.en-onnx").getPath
  def samples(path: String): Array[Float] = sparkasr.audio.AudioDecoder.decodePath(path)

  /** Corpus WER under the whisper_en normaliser. */
  def wer(refs: Seq[String], hyps: Seq[String]): Double =
    refs.zip(hyps).map { case (r, h) => ErrorCounts.pair(r, h, Normalizers.get("whisper_en")) }.reduce(_ + _).wer
}

class WhisperSuite extends AnyFunSuite with SparkTest {
  import WhisperFixtures._

  private lazy val spec = WhisperExport.load(new File(exportDir))
  private def engine(o: WhisperOptions) = WhisperEngine.get(exportDir, o, 2)
  private lazy val audio: List[Array[Float]] = clips.map(c => samples((c \ "path").extract[String]))

  test("the front-end graph computes faster-whisper's features on every clip (batched, one batch of mixed lengths)") {
    val e = engine(WhisperOptions(beamSize = 1, temperature = Seq(0.0)))
    val ours = e.onnx.featureArray(audio)
    val frame = 80 * 3000
    clips.zipWithIndex.foreach { case (c, i) =>
      val ref = Fixtures.floats(new File(dir, (c \ "features").extract[String]))
      var mx = 0.0
      for (j <- 0 until frame) mx = math.max(mx, math.abs(ours(i * frame + j) - ref(j)))
      assert(mx < 1e-4, s"clip $i: max |diff| $mx")
    }
  }

  test("greedy float32 token ids equal CTranslate2 float32 beam 1 on every clip, with and without timestamps") {
    val e = engine(WhisperOptions(beamSize = 1, temperature = Seq(0.0)))
    for ((key, noTs) <- Seq("greedy_timestamps" -> false, "greedy_text" -> true)) {
      val ours = e.decodeWindows(audio, withoutTimestamps = noTs).map(_.tokens.toList)
      val theirs = clips.map(c => (c \ key).extract[List[Int]])
      ours.zip(theirs).zipWithIndex.foreach { case ((o, t), i) => assert(o == t, s"$key, clip $i") }
    }
  }

  test("default options (beam 5, temperature fallback): WER on the clips within 0.5 points of the Python engine") {
    val e = engine(WhisperOptions())
    val ts = e.transcribeBatch(audio.zip(clips).map { case (x, c) => AudioItem(x, (c \ "path").extract[String]) })
    val refs = clips.map(c => (c \ "reference").extract[String])
    val ours = wer(refs, ts.map(_.text))
    val python = wer(refs, clips.map(c => (c \ "default_text").extract[String]))
    info(f"WER JVM $ours%.4f, Python $python%.4f")
    assert(math.abs(ours - python) <= 0.005, s"JVM $ours vs Python $python")
    assert(ts.forall(t => t.error.isEmpty && t.chunks.nonEmpty && t.chunks.forall(c => c.start <= c.end && c.end <= t.durationS + 1e-6)))
  }

  test("a >= 10-minute row: cut at Python's quiet points, transcribed completely, WER within 0.5 points of Python") {
    val long = json("long.json")
    val x = Fixtures.floats(new File(dir, "long.f32"))
    assert(x.length / 16000.0 >= 600)
    val pieces = QuietCuts.cutPieces(x, 30.0, 5.0).map { case (a, b) => List(a, b) }.toList
    assert(pieces == (long \ "pieces").extract[List[List[Int]]])
    val t = engine(WhisperOptions()).transcribeBatch(Seq(AudioItem(x, "long", offsetS = 100.0))).head
    val ref = (long \ "reference").extract[String]
    val ours = wer(Seq(ref), Seq(t.text))
    val python = wer(Seq(ref), Seq((long \ "default_text").extract[String]))
    info(f"long WER JVM $ours%.4f, Python $python%.4f, ${t.chunks.size} segments")
    assert(math.abs(ours - python) <= 0.005, s"JVM $ours vs Python $python")
    assert(t.chunks.size == pieces.size && t.chunks.head.start >= 100.0 && t.chunks.last.end <= 100.0 + x.length / 16000.0 + 1e-6)
  }

  test("the stage: AudioAssembler -> WhisperForCTC on binary files, an error row for a bad file, saved and loaded") {
    val bad = Fixtures.tempDir("whisper-bad")
    Files.write(new File(bad, "not-audio.wav").toPath, "this is not audio".getBytes)
    val paths = clips.take(3).map(c => (c \ "path").extract[String]) :+ new File(bad, "not-audio.wav").getPath
    val df = spark.read.format("binaryFile").load(paths: _*).orderBy("path").coalesce(1)
    val asr = WhisperForCTC.loadSavedModel(exportDir, spark).setInputCols("audio_assembler").setOutputCol("transcription")
      .setBeamSize(1).setCpuThreads(2)
    assert(asr.getComputeType == "float32")
    val model = new Pipeline().setStages(Array(new AudioAssembler().setInputCol("content").setOutputCol("audio_assembler"), asr)).fit(df)
    val rows = model.transform(df).selectExpr("path", "transcription[0].result AS text", "transcription[0].metadata AS meta",
      "size(transcription_chunks) AS n").collect()
    assert(rows.length == 4)
    val (errs, ok) = rows.partition(_.getAs[Map[String, String]]("meta").contains("error"))
    assert(errs.length == 1 && errs.head.getString(0).endsWith("not-audio.wav"))
    assert(errs.head.getAs[Map[String, String]]("meta")("error").contains("not-audio.wav"))
    assert(ok.forall(r => r.getString(1).split(" ").length > 3 && r.getAs[Int]("n") >= 1))
    val saved = new File(Fixtures.tempDir("whisper-pipeline"), "p").getPath
    model.write.overwrite().save(saved)
    val loaded = PipelineModel.load(saved)
    val again = loaded.transform(df).selectExpr("path", "transcription[0].result AS text").collect()
    assert(again.map(r => (r.getString(0), r.getString(1))).toSeq == rows.map(r => (r.getString(0), r.getString(1))).toSeq)
    val stage = loaded.stages(1).asInstanceOf[WhisperForCTC]
    assert(stage.getModelSource.startsWith(saved) && WhisperExport.isExport(new File(stage.getModelSource)))
  }

  test("a pipeline saved by pyspark whose WhisperForCTC points at the export loads and runs in Scala") {
    val model = sparkasr.spark.Pipelines.load(new File(dir, "py_pipeline").getPath, spark)
    val stage = model.stages(1).asInstanceOf[WhisperForCTC]
    assert(stage.getBeamSize == 1 && stage.getComputeType == "float32" && stage.getModelSource.contains("/weights/"))
    val paths = clips.take(3).map(c => (c \ "path").extract[String])
    val df = spark.read.format("binaryFile").load(paths: _*).orderBy("path").coalesce(1)
    val got = model.transform(df).selectExpr("path", "transcription[0].result AS text").collect().map(r => r.getString(0) -> r.getString(1)).toMap
    val direct = engine(WhisperOptions(beamSize = 1)).transcribeBatch(paths.map(p => AudioItem(samples(p), p)))
    paths.zip(direct).foreach { case (p, t) => assert(got.find(_._1.endsWith(p)).map(_._2).contains(t.text), p) }
  }

  test("values the JVM engine cannot honour are refused, naming the param") {
    val asr = WhisperForCTC.loadSavedModel(exportDir, spark)
    val schema = new AudioAssembler().setInputCol("content").transformSchema(
      spark.read.format("binaryFile").load((clips.head \ "path").extract[String]).schema)
    val cases = Seq[(String, () => Any)](
      "timestamps 'word'" -> (() => asr.copy(ParamMap.empty).setTimestamps("word")),
      "vadFilter" -> (() => asr.copy(ParamMap.empty).setVadFilter(true)),
      "strategy 'pack'" -> (() => asr.copy(ParamMap.empty).setStrategy("pack")),
      "device 'cuda'" -> (() => asr.copy(ParamMap.empty).setDevice("cuda")),
      "computeType 'float16'" -> (() => asr.copy(ParamMap.empty).setComputeType("float16").transformSchema(schema)),
      "language 'de'" -> (() => asr.copy(ParamMap.empty).setLanguage("de").transformSchema(schema)))
    for ((what, f) <- cases) {
      val e = intercept[IllegalArgumentException](f())
      assert(e.getMessage.startsWith("WhisperForCTC: ") && e.getMessage.contains(what.split(" ").head), s"$what: ${e.getMessage}")
    }
    val missing = intercept[IllegalArgumentException](WhisperForCTC.pretrained("no-such-model"))
    assert(missing.getMessage.contains("sparkasr convert --model no-such-model"))
  }
}
