package sparkasr.ctc

import java.io.File
import java.nio.charset.StandardCharsets
import java.nio.file.Files

import org.json4s._
import org.json4s.jackson.JsonMethods

/** A directory written by `sparkasr convert` (Python: `sparkasr.ctc.checkpoint`): config.json,
  * preprocessor_config.json, the tokenizer files and model.onnx. Read without weights. */
final case class Checkpoint(path: File, config: JObject, vocab: Vocab, features: FeatureConfig, meta: JObject) {
  def modelType: String = Checkpoint.str(config \ "model_type").getOrElse("")
  def onnxPath: Option[File] = Some(new File(path, Checkpoint.OnnxFile)).filter(_.isFile)
  def name: String =
    Checkpoint.str(meta \ "source").filter(_.nonEmpty)
      .orElse(Checkpoint.str(config \ "_name_or_path").filter(_.nonEmpty))
      .getOrElse(path.getName)
}

object Checkpoint {
  val OnnxFile = "model.onnx"
  val MetaFile = "sparkasr_ctc.json"
  val SupportedModelTypes: Map[String, String] = Map(
    "wav2vec2" -> "Wav2Vec2ForCTC",
    "hubert" -> "HubertForCTC",
    "data2vec-audio" -> "Data2VecAudioForCTC",
    "wavlm" -> "WavLMForCTC",
    "wav2vec2-conformer" -> "Wav2Vec2ConformerForCTC"
  )

  private[ctc] def str(v: JValue): Option[String] = v match {
    case JString(s) => Some(s)
    case JNothing | JNull => None
    case JObject(fields) => fields.collectFirst { case ("content", JString(s)) => s } // AddedToken
    case other => Some(JsonMethods.compact(JsonMethods.render(other)))
  }
  private def bool(v: JValue, default: Boolean): Boolean = v match {
    case JBool(b) => b
    case JNothing | JNull => default
    case other => throw new CheckpointError(s"expected a boolean, got ${JsonMethods.compact(JsonMethods.render(other))}")
  }
  private def int(v: JValue, default: Int): Int = v match {
    case JInt(i) => i.toInt
    case JDouble(d) => d.toInt
    case JLong(l) => l.toInt
    case JNothing | JNull => default
    case other => throw new CheckpointError(s"expected a number, got ${JsonMethods.compact(JsonMethods.render(other))}")
  }
  private def ints(v: JValue, default: Seq[Int]): Seq[Int] = v match {
    case JArray(items) => items.map(i => int(i, 0))
    case _ => default
  }

  private def readJson(f: File): JObject =
    if (!f.isFile) JObject()
    else
      try JsonMethods.parse(new String(Files.readAllBytes(f.toPath), StandardCharsets.UTF_8)) match {
        case o: JObject => o
        case _ => throw new CheckpointError(s"$f: not a JSON object")
      }
      catch { case e: com.fasterxml.jackson.core.JsonProcessingException => throw new CheckpointError(s"$f: invalid JSON (${e.getOriginalMessage})") }

  /** Parse a converted (or Hugging Face) CTC directory; no weights are read. */
  def load(dir: File): Checkpoint = {
    if (!dir.isDirectory) throw new CheckpointError(s"$dir: not a directory")
    val config = readJson(new File(dir, "config.json"))
    if (config.obj.isEmpty) throw new CheckpointError(s"$dir: no config.json")
    val modelType = str(config \ "model_type").orNull
    if (!SupportedModelTypes.contains(modelType))
      throw new CheckpointError(
        s"$dir: model_type '$modelType' is not a supported CTC model (supported: ${SupportedModelTypes.keys.toSeq.sorted.mkString(", ")})")
    val archs = (config \ "architectures") match { case JArray(a) => a.flatMap(str); case _ => Nil }
    if (archs.nonEmpty && !archs.exists(_.endsWith("ForCTC")))
      throw new CheckpointError(s"$dir: architectures ${archs.mkString("[", ", ", "]")} has no CTC head (a ...ForCTC fine-tuned checkpoint is needed)")
    val pre = readJson(new File(dir, "preprocessor_config.json"))
    val features =
      try FeatureConfig.fromConfigs(pre, config)
      catch { case e: IllegalArgumentException => throw new CheckpointError(s"$dir: ${e.getMessage}") }
    val vocab = loadVocab(dir, config)
    (config \ "vocab_size") match {
      case JInt(n) if vocab.size > n.toInt =>
        throw new CheckpointError(s"$dir: vocab.json has ${vocab.size} tokens but the model's vocab_size is $n")
      case _ =>
    }
    Checkpoint(dir, config, vocab, features, readJson(new File(dir, MetaFile)))
  }

  /** `Wav2Vec2CTCTokenizer`'s vocabulary and special tokens (its defaults for missing keys). */
  def loadVocab(dir: File, config: JObject): Vocab = {
    val raw = readJson(new File(dir, "vocab.json"))
    if (raw.obj.isEmpty) throw new CheckpointError(s"$dir: no vocab.json (a CTC checkpoint needs its character vocabulary)")
    val tokCfg = readJson(new File(dir, "tokenizer_config.json"))
    val special = readJson(new File(dir, "special_tokens_map.json"))
    val flat: Seq[(String, JValue)] =
      if (raw.obj.exists(_._2.isInstanceOf[JObject])) { // one vocabulary per language (MMS)
        val lang = str(tokCfg \ "target_lang").getOrElse("")
        raw.obj.collectFirst { case (`lang`, o: JObject) => o.obj }.getOrElse(
          throw new CheckpointError(s"$dir: vocab.json holds one vocabulary per language; set target_lang in tokenizer_config.json to one of " +
            raw.obj.map(_._1).sorted.take(10).mkString("[", ", ", "]") + "..."))
      } else raw.obj
    val vocab = scala.collection.mutable.LinkedHashMap[String, Int]()
    flat.foreach { case (k, v) => vocab(k) = int(v, 0) }
    readJson(new File(dir, "added_tokens.json")).obj.foreach { case (k, v) => if (!vocab.contains(k)) vocab(k) = int(v, 0) }
    (tokCfg \ "added_tokens_decoder") match {
      case JObject(entries) => entries.foreach { case (idx, spec) => str(spec).foreach(c => if (!vocab.contains(c)) vocab(c) = idx.toInt) }
      case _ =>
    }
    def pick(key: String, default: String): String = str(special \ key).orElse(str(tokCfg \ key)).getOrElse(default)
    var pad = pick("pad_token", "<pad>")
    if (!vocab.contains(pad)) (config \ "pad_token_id") match {
      case JInt(id) => vocab.collectFirst { case (t, i) if i == id.toInt => t }.foreach(pad = _)
      case _ =>
    }
    val specials = Seq(pick("bos_token", "<s>"), pick("eos_token", "</s>"), pick("unk_token", "<unk>"), pad).filter(_.nonEmpty)
    try
      Vocab.fromMap(
        vocab.toSeq,
        padToken = pad,
        wordDelimiterToken = pick("word_delimiter_token", "|"),
        replaceWordDelimiterChar = str(tokCfg \ "replace_word_delimiter_char").getOrElse(" "),
        unkToken = pick("unk_token", "<unk>"),
        doLowerCase = bool(tokCfg \ "do_lower_case", default = false),
        cleanUpTokenizationSpaces = bool(tokCfg \ "clean_up_tokenization_spaces", default = false),
        specialTokens = specials
      )
    catch { case e: IllegalArgumentException => throw new CheckpointError(s"$dir: ${e.getMessage}") }
  }

  private[ctc] def featureInts(v: JValue, default: Seq[Int]): Seq[Int] = ints(v, default)
  private[ctc] def featureInt(v: JValue, default: Int): Int = int(v, default)
  private[ctc] def featureBool(v: JValue, default: Boolean): Boolean = bool(v, default)
}
