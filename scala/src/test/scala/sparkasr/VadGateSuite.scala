package sparkasr

import java.io.File
import java.nio.file.Files

import org.apache.spark.ml.Pipeline
import org.json4s._
import org.scalatest.funsuite.AnyFunSuite
import sparkasr.spark.assembler.AudioAssembler
import sparkasr.spark.whisper.WhisperForCTC
import sparkasr.whisper.{SileroVad, WhisperExport}

/** vadGate on the JVM: the export's Silero VAD against the Python side's speech spans
  * (`sparkasr.whisper.vad.speech_spans`, in target/jvm-whisper-fixtures/vad.json), and the stage on
  * generated near-silence, noise and a tone next to the real clips. */
class VadGateSuite extends AnyFunSuite with SparkTest {
  import WhisperFixtures._

  private lazy val vadJson = json("vad.json")
  private lazy val spanRows: List[JValue] = (vadJson \ "spans").extract[List[JValue]]
  /** The Python engine's text per file name under `gate`. */
  private def pyTexts(gate: String): String => String = {
    val m = (vadJson \ "texts" \ gate).extract[Map[String, List[Option[String]]]].map { case (k, v) => k -> v.head.getOrElse("") }
    p => m(new File(p).getName)
  }
  private lazy val vad = SileroVad.load(WhisperExport.load(new File(exportDir)).vadFile)
  private val signalNames = Seq("near-silence", "white-noise", "tone-1khz")
  private def signalPath(n: String) = new File(dir, s"signals/$n.wav").getPath
  private lazy val clipPaths: List[String] = clips.map(c => (c \ "path").extract[String])
  /** Every third clip, the ones the fixture decoded under each gate (each run decodes them with beam 5). */
  private lazy val gateClips: List[String] = clipPaths.zipWithIndex.collect { case (p, i) if i % 3 == 0 => p }

  test("speech spans equal the Python side's (faster-whisper's get_speech_timestamps) on the clips, a 10.5-min row and signals") {
    var maxDiff = 0.0
    var n = 0
    val (rows, _) = (spanRows, vad) // the fixtures made and the model loaded before the clock starts
    val t0 = System.nanoTime()
    rows.foreach { row =>
      val name = (row \ "name").extract[String]
      val x = Fixtures.floats(new File(dir, (row \ "samples").extract[String]))
      val py = (row \ "spans").extract[List[List[Double]]].map(s => (s(0), s(1)))
      val ours = vad.speechSpans(x)
      assert(ours.size == py.size, s"$name: ${ours.size} spans, Python ${py.size}: $ours vs $py")
      ours.zip(py).foreach { case ((a, b), (c, d)) =>
        maxDiff = math.max(maxDiff, math.max(math.abs(a - c), math.abs(b - d)))
        n += 1
      }
      assert(maxDiff <= SileroVad.Frame / 16000.0, s"$name: boundary off by ${maxDiff} s: $ours vs $py")
      if (signalNames.contains(name)) assert(ours.isEmpty, s"$name: speech found: $ours")
      else assert(ours.nonEmpty, s"$name: no speech found")
    }
    info(f"${spanRows.size} inputs, $n spans, max boundary difference $maxDiff%.6f s (${(System.nanoTime() - t0) / 1e9}%.1f s)")
  }

  /** The clips and signals interleaved in one DataFrame (one partition, batchSize 1, as the Python
    * fixture decoded them): per path its text, metadata and number of chunks. */
  private def run(gate: Option[String]): Map[String, (String, Map[String, String], Int)] = {
    import spark.implicits._
    val paths = gateClips.zipAll(signalNames.map(signalPath), "", "").flatMap { case (a, b) => Seq(a, b) }.filter(_.nonEmpty)
    val df = paths.zipWithIndex.toDF("path", "i").coalesce(1)
    val base = WhisperForCTC.loadSavedModel(exportDir, spark).setInputCols("audio_assembler").setOutputCol("transcription")
      .setCpuThreads(2).setBatchSize(1)
    val asr = gate.map(base.setVadGate).getOrElse(base)
    new Pipeline().setStages(Array(new AudioAssembler().setInputCol("path").setOutputCol("audio_assembler"), asr)).fit(df)
      .transform(df).selectExpr("path", "transcription[0].result", "transcription[0].metadata", "size(transcription_chunks)")
      .collect().map(r => r.getString(0).stripPrefix("file:") -> ((r.getString(1), r.getAs[Map[String, String]](2), r.getInt(3)))).toMap
  }
  private lazy val off = run(Some("off"))

  test("default vadGate (auto): empty transcripts, no error, for near-silence, noise and a tone; the clips' texts unchanged") {
    val stage = WhisperForCTC.loadSavedModel(exportDir, spark)
    assert(stage.getVadGate == "auto")
    val got = run(None)
    val py = pyTexts("auto")
    for (n <- signalNames) {
      val (text, meta, chunks) = got(signalPath(n))
      assert(text == "" && !meta.contains("error") && chunks == 0, s"$n: '$text' $meta")
      assert(py(signalPath(n)) == "", s"Python on $n: ${py(signalPath(n))}")
    }
    gateClips.foreach { p =>
      assert(got(p)._1.nonEmpty && !got(p)._2.contains("error"), p)
      assert(got(p)._1 == off(p)._1, s"$p: the gate changed a clip's text")
    }
    // Next to the Python engine: equal on AVX2 machines; on AVX-512 ones CTranslate2's kernels
    // decide a close call of the beam otherwise (a comma), so the words are compared, normalised
    val (jvm, python) = (gateClips.map(got(_)._1), gateClips.map(py))
    assert(wer(python, jvm) <= 0.05, s"JVM ${jvm.mkString(" | ")}; Python ${python.mkString(" | ")}")
  }

  test("vadGate off keeps Whisper's own rule (text on the signals as Python gives with off); always gives empty texts too") {
    val pyOff = pyTexts("off")
    val hallucinated = signalNames.filter(n => off(signalPath(n))._1.nonEmpty)
    info(s"off: JVM ${signalNames.map(n => n -> off(signalPath(n))._1)}, Python ${signalNames.map(n => n -> pyOff(signalPath(n)))}")
    assert(hallucinated.nonEmpty, "with the gate off Whisper wrote nothing on any signal: the test shows nothing")
    assert(hallucinated.forall(n => pyOff(signalPath(n)).nonEmpty), s"JVM text where Python has none: $hallucinated")
    val always = run(Some("always"))
    for (n <- signalNames) {
      val (text, meta, chunks) = always(signalPath(n))
      assert(text == "" && !meta.contains("error") && chunks == 0 && meta.get("language").contains("en"), s"$n: '$text' $meta")
    }
    gateClips.foreach(p => assert(always(p)._1 == off(p)._1, s"$p: vadGate always changed a clip's text"))
  }

  test("vadGate always on a long row: pieces without speech are not decoded, the speech is kept") {
    val e = sparkasr.whisper.WhisperEngine.get(exportDir, sparkasr.whisper.WhisperOptions(vadGate = "always", beamSize = 1,
      temperature = Seq(0.0)), 2)
    val speech = clipPaths.take(4).map(samples).reduce(_ ++ _)
    val silence = Fixtures.floats(new File(dir, "vad/near-silence.f32"))
    val row = speech ++ silence ++ silence ++ speech // > 30 s: pieces
    val t = e.transcribeBatch(Seq(AudioItem(row, "long"))).head
    val alone = e.transcribeBatch(Seq(AudioItem(speech, "speech"))).head
    assert(t.error.isEmpty && t.text.nonEmpty)
    val (from, to) = (speech.length / 16000.0, (speech.length + 2 * silence.length) / 16000.0)
    assert(!t.chunks.exists(c => c.start > from + 1 && c.end < to - 1), t.chunks)
    val words = (s: String) => s.split("\\s+").count(_.nonEmpty)
    assert(math.abs(words(t.text) - 2 * words(alone.text)) <= 0.1 * words(alone.text), (t.text, alone.text))
  }

  test("a vadGate other than off needs the export's Silero VAD file; its absence is an error naming vadGate and the file") {
    val copy = Fixtures.tempDir("whisper-no-vad")
    val src = new File(exportDir)
    def cp(f: File, to: File): Unit =
      if (f.isDirectory) { to.mkdirs(); f.listFiles().foreach(c => cp(c, new File(to, c.getName))) }
      else if (f.getName != SileroVad.FileName) Files.createSymbolicLink(to.toPath, f.getAbsoluteFile.toPath)
    cp(src, new File(copy, "e"))
    val d = new File(copy, "e").getPath
    val schema = new AudioAssembler().setInputCol("content").transformSchema(
      new org.apache.spark.sql.types.StructType().add("content", "binary"))
    for (g <- Seq("auto", "always")) {
      val e = intercept[IllegalArgumentException](
        WhisperForCTC.loadSavedModel(d, spark).setInputCols("audio_assembler").setVadGate(g).transformSchema(schema))
      assert(e.getMessage.startsWith(s"WhisperForCTC: vadGate '$g' needs the Silero VAD model ${SileroVad.FileName}"), e.getMessage)
    }
    WhisperForCTC.loadSavedModel(d, spark).setInputCols("audio_assembler").setVadGate("off").transformSchema(schema)
    intercept[IllegalArgumentException](WhisperForCTC.loadSavedModel(d, spark).setVadGate("sometimes"))
  }
}
