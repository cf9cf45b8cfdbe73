package sparkasr

import java.io.File

import sparkasr.whisper.{WhisperEngine, WhisperOptions}

/** The JVM Whisper engine's speed on the vendored clips and a long row (bench/scala_whisper.py runs
  * it beside the Python engine): `Test/runMain sparkasr.WhisperBench EXPORT_DIR THREADS LONG.f32 CLIP.wav...`.
  * Prints one JSON line: audio seconds and wall seconds per corpus (after one warm-up call). */
object WhisperBench {
  def main(args: Array[String]): Unit = {
    val Array(exportDir, threads, longF32) = args.take(3)
    val clips = args.drop(3).toSeq.map(p => AudioItem(sparkasr.audio.AudioDecoder.decodePath(p), p))
    val engine = WhisperEngine.get(exportDir, WhisperOptions(), threads.toInt)
    engine.transcribeBatch(clips.take(1))
    def timed(items: Seq[AudioItem]): (Double, Double, Seq[String]) = {
      val t0 = System.nanoTime()
      val out = engine.transcribeBatch(items)
      (items.map(_.durationS).sum, (System.nanoTime() - t0) / 1e9, out.map(_.text))
    }
    val (ca, cw, ct) = timed(clips)
    def q(s: String) = "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\""
    val clipsJson = s""""clips": {"audio_s": $ca, "wall_s": $cw, "texts": [${ct.map(q).mkString(", ")}]}"""
    val longJson = if (longF32 == "-") "" else {
      val (la, lw, lt) = timed(Seq(AudioItem(Fixtures.floats(new File(longF32)), "long")))
      s""", "long": {"audio_s": $la, "wall_s": $lw, "text": ${q(lt.head)}}"""
    }
    println("WHISPER-BENCH {" + clipsJson + longJson + "}")
  }
}
