package sparkasr.spark.whisper

import java.io.File

import org.apache.spark.ml.param.ParamMap
import org.apache.spark.ml.util.{Identifiable, MLReadable, MLReader}
import org.apache.spark.sql.SparkSession
import sparkasr.spark.{EngineFactory, ModelCache, SpeechAnnotatorModel, SpeechModelReader}
import sparkasr.spark.params.WhisperForCTCParams
import sparkasr.whisper.{WhisperEngine, WhisperExport, WhisperOptions}

/** Whisper speech recognition on ONNX Runtime Java, over a directory written by
  * `sparkasr convert --model <whisper>` (Python: `sparkasr.spark.whisper.WhisperForCTC`, same class
  * path, params, defaults and output). Rows of any length (longer than 30 s: cut at quiet points),
  * batched across rows, beam search and the temperature fallback, segment timestamps, language
  * detection, `vadGate` (the export's Silero VAD confirms speech where Whisper is unsure). Its params
  * are generated from the Python option table ([[WhisperForCTCParams]]); the Python stage's values
  * that the JVM engine cannot honour are refused, naming the param: `timestamps=word`, `vadFilter`,
  * `strategy` other than `batch` (the JVM stage's default; the Python stage's is `pack`), `device=cuda`,
  * a `computeType` other than the export's precision, `topP < 1`.
  * {{{
  * val asr = WhisperForCTC.loadSavedModel("/models/whisper-tiny.en-onnx", spark)
  *   .setInputCols("audio_assembler").setOutputCol("transcription")
  * }}} */
class WhisperForCTC(uid: String) extends SpeechAnnotatorModel[WhisperForCTC](uid) with WhisperForCTCParams {
  def this() = this(Identifiable.randomUID("WhisperForCTC"))

  /** The values the JVM engine cannot honour are refused as soon as they are set, naming the param. */
  override protected def validateParams(): Unit = options()

  override protected def wantsChunks: Boolean = getTimestamps != "none"

  private def fail(msg: String): Nothing = throw new IllegalArgumentException(s"WhisperForCTC: $msg")

  /** The engine options; refuses (naming the param) what the JVM engine cannot honour. */
  def options(): WhisperOptions = {
    if (getTimestamps == "word")
      fail("timestamps 'word' needs cross-attention word alignment, which runs in the Python stage only; the JVM stage " +
        "writes segment timestamps (timestamps must be 'none' or 'segment')")
    if (getVadFilter) fail("vadFilter (Silero VAD) runs in the Python stage only (vadFilter must be false)")
    if (getStrategy != "batch")
      fail(s"strategy '$getStrategy' runs in the Python stage only; the JVM stage decodes strategy 'batch' (strategy must be 'batch')")
    if (getDevice == "cuda") fail("device 'cuda': the JVM stage runs ONNX Runtime on the CPU (device must be 'cpu' or 'auto')")
    if (getTopP < 1.0) fail(s"topP ${getTopP} < 1 (nucleus sampling) is not supported, as in the Python stage; use topK")
    val temps = getTemperature
    if (temps.isEmpty || temps.exists(_ < 0)) fail("temperature must be a non-empty list of values >= 0")
    try WhisperOptions(language = Some(getLanguage).filter(_.nonEmpty), task = getTask, beamSize = getBeamSize, bestOf = getBestOf,
      patience = getPatience, lengthPenalty = getLengthPenalty, repetitionPenalty = getRepetitionPenalty,
      noRepeatNgramSize = getNoRepeatNgramSize, temperature = temps.toSeq, topK = getTopK,
      maxNewTokens = Some(getMaxNewTokens).filter(_ > 0), initialPrompt = Some(getInitialPrompt).filter(_.nonEmpty),
      timestamps = getTimestamps, conditionOnPreviousText = getConditionOnPreviousText, batchSize = getBatchSize,
      seed = Some(getSeed.toLong).filter(_ >= 0), suppressTokens = getSuppressTokens.toSeq, vadGate = getVadGate)
    catch { case e: IllegalArgumentException => fail(e.getMessage.stripPrefix("requirement failed: ")) }
  }

  override protected def engineFactory(): EngineFactory = {
    val o = options()
    val dir = localModelDir()
    if (!SpeechAnnotatorModel.isRemote(dir)) WhisperForCTC.checkModel(WhisperExport.load(new File(dir)), this, o)
    WhisperEngineFactory(o, getCpuThreads)
  }

  override protected def localModelDir(): String = {
    val name = getModelSource
    if (SpeechAnnotatorModel.isRemote(name)) name
    else WhisperForCTC.resolve(name, getComputeType)
  }

  override def copy(extra: ParamMap): WhisperForCTC = defaultCopy(extra)
}

object WhisperForCTC extends MLReadable[WhisperForCTC] {
  val ClassName = "sparkasr.spark.whisper.WhisperForCTC"

  override def read: MLReader[WhisperForCTC] = new SpeechModelReader[WhisperForCTC](new WhisperForCTC(_), ClassName)

  /** A directory written by `sparkasr convert --model <whisper>`; `computeType` is set to its precision. */
  def loadSavedModel(path: String, spark: SparkSession): WhisperForCTC = {
    val dir = new File(sparkasr.audio.AudioDecoder.localPath(path)).getAbsoluteFile
    val spec = try WhisperExport.load(dir) catch { case e: IllegalArgumentException => throw new IllegalArgumentException(s"WhisperForCTC: ${e.getMessage}") }
    new WhisperForCTC().setModelSource(dir.getPath).setComputeType(spec.precision)
  }

  def pretrained(): WhisperForCTC = pretrained("tiny.en")

  /** An export by path, or a model name exported before into the sparkasr cache
    * (`<cache>/models/whisper-onnx-<name>[-int8]`, see [[cacheDir]]). */
  def pretrained(name: String): WhisperForCTC = {
    val m = new WhisperForCTC().setModelSource(name)
    m.resolveModelDir()
    m
  }

  /** Where `sparkasr convert` should write a named model's export for `pretrained(name)` to find it. */
  def cacheDir(name: String, precision: String): File = {
    val safe = name.replaceAll("[^A-Za-z0-9_.-]+", "--")
    new File(ModelCache.root("models"), s"whisper-onnx-$safe${if (precision == "int8") "-int8" else ""}")
  }

  private val Int8Types = Set("int8", "int8_float32")

  /** A model source -> an export directory: an export by path, or a name converted into the cache. */
  def resolve(name: String, computeType: String): String = {
    val direct = new File(sparkasr.audio.AudioDecoder.localPath(name))
    if (direct.isDirectory) {
      try WhisperExport.load(direct.getAbsoluteFile) catch { case e: IllegalArgumentException => throw new IllegalArgumentException(
        s"WhisperForCTC: ${e.getMessage} (the JVM stage runs ONNX exports, not CTranslate2 or Hugging Face directories)") }
      return direct.getAbsolutePath
    }
    val wanted = computeType match {
      case t if Int8Types(t) => Seq("int8")
      case "float32" => Seq("float32")
      case "default" | "auto" => Seq("int8", "float32")
      case other => Seq(other)
    }
    wanted.map(cacheDir(name, _)).find(d => new File(d, WhisperExport.MetaFile).isFile).map(_.getAbsolutePath).getOrElse {
      val target = cacheDir(name, wanted.head)
      throw new IllegalArgumentException(
        s"WhisperForCTC: '$name' is neither a Whisper ONNX export directory nor exported in the sparkasr cache ($target). Export " +
          s"it once with Python: `sparkasr convert --model $name --output $target${if (wanted.head == "int8") " --quantize int8" else ""}` " +
          "(pip install 'sparkasr[ctc,convert]'), or pass an export directory")
    }
  }

  /** The model-dependent checks, on the driver: computeType against the export, language and task. */
  def checkModel(spec: WhisperExport, stage: WhisperForCTC, o: WhisperOptions): Unit = {
    val ct = stage.getComputeType
    val ok = ct == "default" || ct == "auto" || (spec.precision == "int8" && Int8Types(ct)) || (spec.precision == "float32" && ct == "float32")
    if (!ok)
      throw new IllegalArgumentException(s"WhisperForCTC: computeType '$ct' cannot be honoured: the JVM stage runs the export's " +
        s"${spec.precision} weights (${spec.dir}); set computeType '${spec.precision}' (or 'default'), or export the model " +
        s"again${if (spec.precision == "int8") " without --quantize" else " with --quantize int8"}")
    try {
      WhisperEngine.checkLanguage(spec, o)
      if (o.vadGate != "off") WhisperEngine.loadVad(spec, o.vadGate)
    } catch { case e: IllegalArgumentException => throw new IllegalArgumentException(s"WhisperForCTC: ${e.getMessage}") }
  }
}
