package sparkasr

import java.io.File
import java.nio.charset.StandardCharsets
import java.nio.file.Files

import org.json4s._
import org.json4s.jackson.JsonMethods
import sparkasr.evaluation.{ErrorCounts, Normalizers}

/** What tests/fixtures/make_jvm_whisper_fixtures.py computes (the tiny.en ONNX export, faster-whisper's
  * features, CTranslate2's greedy tokens, the Python engine's default-option transcripts), made once
  * per change of its inputs into target/jvm-whisper-fixtures (`$SPARKASR_WHISPER_FIXTURES`: use a
  * directory made before). */
object WhisperFixtures {
  implicit val formats: Formats = DefaultFormats
  lazy val dir: File = sys.env.get("SPARKASR_WHISPER_FIXTURES").map(new File(_)).getOrElse(
    Fixtures.made("jvm-whisper-fixtures", "tests/fixtures/make_jvm_whisper_fixtures.py", Fixtures.files("python/sparkasr/whisper",
      "tests/data", "tests/fixtures/make_jvm_whisper_fixtures.py", "tests/whisper_support.py", "tests/conftest.py",
      "python/sparkasr/audio.py", "python/sparkasr/convert/command.py", "python/sparkasr/whisper/models.py")))
  def json(name: String): JValue = JsonMethods.parse(new String(Files.readAllBytes(new File(dir, name).toPath), StandardCharsets.UTF_8))
  lazy val clips: List[JValue] = json("clips.json").extract[List[JValue]]
  def exportDir: String = new File(dir, "tiny.en-onnx").getPath
  def samples(path: String): Array[Float] = sparkasr.audio.AudioDecoder.decodePath(path)

  /** Corpus WER under the whisper_en normaliser. */
  def wer(refs: Seq[String], hyps: Seq[String]): Double =
    refs.zip(hyps).map { case (r, h) => ErrorCounts.pair(r, h, Normalizers.get("whisper_en")) }.reduce(_ + _).wer
}
