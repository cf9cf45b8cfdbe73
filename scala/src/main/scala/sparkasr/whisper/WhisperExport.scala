package sparkasr.whisper

import java.io.File
import java.nio.charset.StandardCharsets
import java.nio.file.Files

import org.json4s._
import org.json4s.jackson.JsonMethods

/** A model directory written by `sparkasr convert --model <whisper>` (Python:
  * `sparkasr.convert.whisper_onnx`): the four graphs, `assets/` and `sparkasr_whisper.json`, read here
  * without loading any graph. */
final case class WhisperExport(
    dir: File,
    source: String,
    quantize: Option[String],
    nMels: Int,
    dModel: Int,
    nHeads: Int,
    decoderLayers: Int,
    nVocab: Int,
    nTextCtx: Int,
    nAudioCtx: Int,
    multilingual: Boolean,
    languages: Map[String, Int],
    tokens: WhisperExport.Tokens,
    suppressTokens: Array[Int],
    suppressTokensBegin: Array[Int],
    files: Map[String, String],
    vadFileName: String = SileroVad.FileName) {
  def graph(role: String): File = new File(dir, files(role))
  /** The word-alignment graph (`alignment_model.onnx`), which exports by an older `sparkasr convert` lack. */
  def alignmentFile: Option[File] = files.get("alignment").map(new File(dir, _)).filter(_.isFile)
  /** faster-whisper's Silero VAD, copied beside the graphs by `sparkasr convert` (vadGate needs it). */
  def vadFile: File = new File(dir, vadFileName)
  def tokenizerFile: File = new File(new File(dir, WhisperExport.AssetsDir), "tokenizer.json")
  /** `float32` or `int8`: what the export's weights are (the JVM has nothing else to choose). */
  def precision: String = quantize.getOrElse("float32")
  def headDim: Int = dModel / nHeads
  def languageToken(code: String): Option[Int] = languages.get(code)
  /** Language codes by token id (multilingual models). */
  lazy val languageOf: Map[Int, String] = languages.map(_.swap)
}

object WhisperExport {
  val MetaFile = "sparkasr_whisper.json"
  val AssetsDir = "assets"
  val Roles: Seq[String] = Seq("features", "encoder", "decoder", "decoder_with_past")

  final case class Tokens(
      eot: Int,
      sot: Int,
      sotPrev: Option[Int],
      sotLm: Option[Int],
      translate: Option[Int],
      transcribe: Option[Int],
      noSpeech: Option[Int],
      noTimestamps: Int,
      timestampBegin: Int)

  /** Whether `dir` holds an export (its metadata file and the four graphs). */
  def isExport(dir: File): Boolean =
    new File(dir, MetaFile).isFile && (try { load(dir); true } catch { case _: IllegalArgumentException => false })

  def load(dir: File): WhisperExport = {
    implicit val formats: Formats = DefaultFormats
    val metaFile = new File(dir, MetaFile)
    if (!metaFile.isFile)
      throw new IllegalArgumentException(s"$dir is not a Whisper ONNX export (no $MetaFile); write one with " +
        s"`sparkasr convert --model <tiny.en|base|a Whisper directory> --output $dir` (Python, sparkasr[convert])")
    val meta = JsonMethods.parse(new String(Files.readAllBytes(metaFile.toPath), StandardCharsets.UTF_8))
    if ((meta \ "format").extractOpt[Int] != Some(1) || (meta \ "kind").extractOpt[String] != Some("whisper"))
      throw new IllegalArgumentException(s"$metaFile: not a sparkasr Whisper ONNX export of format 1")
    val dims = meta \ "dims"
    val t = meta \ "tokens"
    def opt(name: String): Option[Int] = (t \ name).extractOpt[Int]
    val files = (meta \ "files").extract[Map[String, String]]
    val spec = WhisperExport(
      dir = dir.getAbsoluteFile,
      source = (meta \ "source").extractOrElse[String](""),
      quantize = (meta \ "quantize").extractOpt[String],
      nMels = (dims \ "n_mels").extract[Int],
      dModel = (dims \ "d_model").extract[Int],
      nHeads = (dims \ "n_heads").extract[Int],
      decoderLayers = (dims \ "decoder_layers").extract[Int],
      nVocab = (dims \ "n_vocab").extract[Int],
      nTextCtx = (dims \ "n_text_ctx").extract[Int],
      nAudioCtx = (dims \ "n_audio_ctx").extract[Int],
      multilingual = (meta \ "multilingual").extract[Boolean],
      languages = (meta \ "languages").extract[Map[String, Int]],
      tokens = Tokens(
        eot = (t \ "eot").extract[Int], sot = (t \ "sot").extract[Int], sotPrev = opt("sot_prev"), sotLm = opt("sot_lm"),
        translate = opt("translate"), transcribe = opt("transcribe"), noSpeech = opt("no_speech"),
        noTimestamps = (t \ "no_timestamps").extract[Int], timestampBegin = (t \ "timestamp_begin").extract[Int]),
      suppressTokens = (meta \ "suppress_tokens").extract[List[Int]].toArray,
      suppressTokensBegin = (meta \ "suppress_tokens_begin").extract[List[Int]].toArray,
      files = files,
      vadFileName = (meta \ "vad" \ "file").extractOpt[String].getOrElse(SileroVad.FileName))
    val missing = (Roles.filterNot(files.contains).map(r => s"($r)") ++
      Roles.filter(files.contains).map(spec.graph).filterNot(_.isFile).map(_.getName)) ++
      (if (spec.tokenizerFile.isFile) Nil else Seq(s"$AssetsDir/tokenizer.json"))
    if (missing.nonEmpty) throw new IllegalArgumentException(s"$dir: incomplete Whisper ONNX export, missing ${missing.mkString(", ")}")
    spec
  }
}
