package sparkasr.spark.whisper

import java.io.File

import org.apache.spark.ml.param._
import org.apache.spark.ml.util.{Identifiable, MLReadable, MLReader}
import org.apache.spark.sql.SparkSession
import sparkasr.SpeechEngine
import sparkasr.spark.{Choices, EngineFactory, ModelCache, SpeechAnnotatorModel, SpeechModelReader}
import sparkasr.whisper.{WhisperEngine, WhisperExport, WhisperOptions}

/** Builds the Whisper engine on an executor (cached per JVM by export directory, options, threads). */
final case class WhisperEngineFactory(options: WhisperOptions, threads: Int) extends EngineFactory {
  override def build(modelDir: String, taskCpus: Int): SpeechEngine =
    WhisperEngine.get(modelDir, options, if (threads == 0) taskCpus else threads)
}

/** Whisper speech recognition on ONNX Runtime Java, over a directory written by
  * `sparkasr convert --model <whisper>` (Python: `sparkasr.spark.whisper.WhisperForCTC`, same class
  * path, params, defaults and output). Rows of any length (longer than 30 s: cut at quiet points),
  * batched across rows, beam search and the temperature fallback, segment timestamps, language
  * detection, `vadGate` (the export's Silero VAD confirms speech where Whisper is unsure). The Python stage's values that the JVM engine cannot honour are refused, naming the
  * param: `timestamps=word`, `vadFilter`, `strategy` other than `batch`, `device=cuda`, a
  * `computeType` other than the export's precision, `topP < 1`.
  * {{{
  * val asr = WhisperForCTC.loadSavedModel("/models/whisper-tiny.en-onnx", spark)
  *   .setInputCols("audio_assembler").setOutputCol("transcription")
  * }}} */
class WhisperForCTC(uid: String) extends SpeechAnnotatorModel[WhisperForCTC](uid) {
  def this() = this(Identifiable.randomUID("WhisperForCTC"))

  final val language: Param[String] = new Param[String](this, "language",
    "language code ('' = detect: language and language_probability in the metadata; English-only models: en)")
  final val task: Param[String] = Choices.param(this, "task", "transcribe, or translate (to English; multilingual models)",
    Seq("transcribe", "translate"))
  final val beamSize: IntParam = new IntParam(this, "beamSize", "beam size for temperature-0 decoding (1 = greedy)", ParamValidators.gtEq(1))
  final val bestOf: IntParam = new IntParam(this, "bestOf", "candidates sampled at temperature > 0", ParamValidators.gtEq(1))
  final val patience: DoubleParam = new DoubleParam(this, "patience", "beam search patience factor", ParamValidators.gtEq(0.0))
  final val lengthPenalty: DoubleParam = new DoubleParam(this, "lengthPenalty", "beam search length penalty")
  final val repetitionPenalty: DoubleParam = new DoubleParam(this, "repetitionPenalty",
    "penalty on repeated tokens (> 1 penalises)", ParamValidators.gtEq(0.0))
  final val noRepeatNgramSize: IntParam = new IntParam(this, "noRepeatNgramSize",
    "forbid repeating n-grams of this size (0 = off)", ParamValidators.gtEq(0))
  final val temperature: DoubleArrayParam = new DoubleArrayParam(this, "temperature",
    "temperatures tried in order when a decode fails the compression-ratio / log-prob checks")
  final val topK: IntParam = new IntParam(this, "topK", "sampling at temperature > 0 from the K most likely tokens (0 = all)",
    ParamValidators.gtEq(0))
  final val topP: DoubleParam = new DoubleParam(this, "topP", "nucleus sampling; values < 1 are refused", ParamValidators.ltEq(1.0))
  final val maxNewTokens: IntParam = new IntParam(this, "maxNewTokens", "max tokens generated per 30-s window (0 = the model's maximum)",
    ParamValidators.inRange(0, 440))
  final val initialPrompt: Param[String] = new Param[String](this, "initialPrompt", "text given to the decoder as previous context")
  final val timestamps: Param[String] = Choices.param(this, "timestamps",
    "none, segment or word: chunk annotations with start/end seconds (the JVM stage: none or segment)", Seq("none", "segment", "word"))
  final val conditionOnPreviousText: BooleanParam = new BooleanParam(this, "conditionOnPreviousText",
    "long audio: prompt each window with the previous text")
  final val suppressTokens: IntArrayParam = new IntArrayParam(this, "suppressTokens",
    "token ids the decoder never generates; -1 stands for Whisper's default set (symbols and special tokens)")
  final val vadFilter: BooleanParam = new BooleanParam(this, "vadFilter", "skip non-speech with Silero VAD (Python stage only)")
  final val vadGate: Param[String] = Choices.param(this, "vadGate",
    "empty transcripts, not hallucinated text, for near-silence, noise and tones: audio in which Silero VAD finds no speech " +
      "gives no text. auto: Whisper's doubtful windows (no-speech probability over 0.2, or failing its checks) are checked, " +
      "and with strategy=pack every clip; always: also every row and long-row piece, before decoding (silent ones are not " +
      "decoded); off: Whisper's own no-speech rule only", WhisperOptions.VadGates)
  final val seed: IntParam = new IntParam(this, "seed", "random seed for sampling (-1 = unset)", ParamValidators.gtEq(-1))
  final val strategy: Param[String] = Choices.param(this, "strategy",
    "batch (the JVM stage's); sequential and pack run in the Python stage only", Seq("batch", "sequential", "pack"))
  final val longPieceS: DoubleParam = new DoubleParam(this, "longPieceS",
    "strategy=sequential: rows longer than 1.5x this many seconds are decoded in pieces of this length", ParamValidators.gtEq(60.0))
  final val device: Param[String] = Choices.param(this, "device", "cpu, cuda or auto (the JVM stage runs on the CPU)",
    Seq("cpu", "cuda", "auto"))
  final val computeType: Param[String] = Choices.param(this, "computeType",
    "the weights' precision: the JVM stage runs the export's (int8 or float32; default/auto = the export's)",
    Seq("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32"))
  final val cpuThreads: IntParam = new IntParam(this, "cpuThreads",
    "threads per task for the model; 0 = spark.task.cpus inside Spark, all cores outside it", ParamValidators.gtEq(0))

  setDefault(modelSource -> "tiny.en", language -> "", task -> "transcribe", beamSize -> 5, bestOf -> 5, patience -> 1.0,
    lengthPenalty -> 1.0, repetitionPenalty -> 1.0, noRepeatNgramSize -> 0, temperature -> Array(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    topK -> 0, topP -> 1.0, maxNewTokens -> 0, initialPrompt -> "", timestamps -> "segment", conditionOnPreviousText -> true,
    suppressTokens -> Array(-1), vadFilter -> false, vadGate -> "auto", seed -> -1, strategy -> "batch", longPieceS -> 600.0, device -> "cpu", computeType -> "int8", cpuThreads -> 0)

  private def checked(f: => Any): this.type = { f; options(); this }
  def setLanguage(v: String): this.type = checked(set(language, v))
  def getLanguage: String = $(language)
  def setTask(v: String): this.type = checked(set(task, v))
  def getTask: String = $(task)
  def setBeamSize(v: Int): this.type = checked(set(beamSize, v))
  def getBeamSize: Int = $(beamSize)
  def setBestOf(v: Int): this.type = checked(set(bestOf, v))
  def getBestOf: Int = $(bestOf)
  def setPatience(v: Double): this.type = checked(set(patience, v))
  def getPatience: Double = $(patience)
  def setLengthPenalty(v: Double): this.type = checked(set(lengthPenalty, v))
  def getLengthPenalty: Double = $(lengthPenalty)
  def setRepetitionPenalty(v: Double): this.type = checked(set(repetitionPenalty, v))
  def getRepetitionPenalty: Double = $(repetitionPenalty)
  def setNoRepeatNgramSize(v: Int): this.type = checked(set(noRepeatNgramSize, v))
  def getNoRepeatNgramSize: Int = $(noRepeatNgramSize)
  def setTemperature(v: Array[Double]): this.type = checked(set(temperature, v))
  def setTemperature(v: Double): this.type = setTemperature(Array(v))
  def getTemperature: Array[Double] = $(temperature)
  def setTopK(v: Int): this.type = checked(set(topK, v))
  def getTopK: Int = $(topK)
  def setTopP(v: Double): this.type = checked(set(topP, v))
  def getTopP: Double = $(topP)
  def setMaxNewTokens(v: Int): this.type = checked(set(maxNewTokens, v))
  def getMaxNewTokens: Int = $(maxNewTokens)
  def setInitialPrompt(v: String): this.type = checked(set(initialPrompt, v))
  def getInitialPrompt: String = $(initialPrompt)
  def setTimestamps(v: String): this.type = checked(set(timestamps, v))
  def getTimestamps: String = $(timestamps)
  def setConditionOnPreviousText(v: Boolean): this.type = checked(set(conditionOnPreviousText, v))
  def getConditionOnPreviousText: Boolean = $(conditionOnPreviousText)
  def setSuppressTokens(v: Array[Int]): this.type = checked(set(suppressTokens, v))
  def getSuppressTokens: Array[Int] = $(suppressTokens)
  def setVadFilter(v: Boolean): this.type = checked(set(vadFilter, v))
  def getVadFilter: Boolean = $(vadFilter)
  def setVadGate(v: String): this.type = checked(set(vadGate, v))
  def getVadGate: String = $(vadGate)
  def setSeed(v: Int): this.type = checked(set(seed, v))
  def getSeed: Int = $(seed)
  def setStrategy(v: String): this.type = checked(set(strategy, v))
  def getStrategy: String = $(strategy)
  def setLongPieceS(v: Double): this.type = checked(set(longPieceS, v))
  def getLongPieceS: Double = $(longPieceS)
  def setDevice(v: String): this.type = checked(set(device, v))
  def getDevice: String = $(device)
  def setComputeType(v: String): this.type = set(computeType, v) // checked against the export when resolved
  def getComputeType: String = $(computeType)
  def setCpuThreads(v: Int): this.type = checked(set(cpuThreads, v))
  def getCpuThreads: Int = $(cpuThreads)

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
