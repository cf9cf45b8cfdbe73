package sparkasr.spark.ctc

import java.io.File

import org.apache.spark.ml.param._
import org.apache.spark.ml.util.{Identifiable, MLReadable, MLReader}
import org.apache.spark.sql.SparkSession
import sparkasr.SpeechEngine
import sparkasr.ctc.{CTCEngine, CTCOptions, Checkpoint, CheckpointError}
import sparkasr.spark.{Choices, EngineFactory, ModelCache, SpeechAnnotatorModel, SpeechModelReader}

/** Builds the CTC engine on an executor (cached per JVM by model directory and options). */
final case class CTCEngineFactory(options: CTCOptions) extends EngineFactory {
  override def build(modelDir: String, taskCpus: Int): SpeechEngine =
    CTCEngine.get(modelDir, if (options.numThreads == 0) options.copy(numThreads = taskCpus) else options)
}

/** The params and wiring `Wav2Vec2ForCTC` and `HubertForCTC` share (Python: `_CTCAnnotator`). The
  * JVM stage runs ONNX Runtime with greedy decoding; the Python-only values (`backend=transformers`,
  * KenLM beam search through `lmPath`/`beamWidth`/`hotwords`) keep their params, so pipelines load in
  * both languages, but are refused with an error naming the param. */
abstract class CTCAnnotator[M <: CTCAnnotator[M]](uid: String) extends SpeechAnnotatorModel[M](uid) {
  protected def modelTypes: Seq[String]
  protected def stageName: String = getClass.getSimpleName

  final val timestamps: Param[String] = Choices.param(this, "timestamps", "none, word or char: chunk annotations with times", CTCOptions.TimestampModes)
  final val chunkLengthS: DoubleParam = new DoubleParam(this, "chunkLengthS",
    "long audio: chunk length in seconds (0 = only rows longer than maxUnchunkedS are chunked)", ParamValidators.gtEq(0.0))
  final val strideLengthS: DoubleArrayParam = new DoubleArrayParam(this, "strideLengthS",
    "overlap dropped on each side of a chunk, [left, right] seconds ([] = chunkLengthS/6)")
  final val maxUnchunkedS: DoubleParam = new DoubleParam(this, "maxUnchunkedS", "rows longer than this are always chunked (bounded memory)")
  final val lmPath: Param[String] = new Param[String](this, "lmPath",
    "KenLM n-gram model (.arpa or binary) for beam search ('' = greedy decoding; Python stage only)")
  final val beamWidth: IntParam = new IntParam(this, "beamWidth", "beam width of the LM beam search (Python stage only)")
  final val lmAlpha: DoubleParam = new DoubleParam(this, "lmAlpha", "LM weight (shallow fusion)")
  final val lmBeta: DoubleParam = new DoubleParam(this, "lmBeta", "word insertion bonus")
  final val hotwords: StringArrayParam = new StringArrayParam(this, "hotwords",
    "words to favour in beam search (set lmPath or beamWidth > 0 to enable; Python stage only)")
  final val hotwordWeight: DoubleParam = new DoubleParam(this, "hotwordWeight", "weight of the hotwords")
  final val cpuThreads: IntParam = new IntParam(this, "cpuThreads", "ONNX Runtime threads per task; 0 = spark.task.cpus inside Spark",
    ParamValidators.gtEq(0))
  final val backend: Param[String] = Choices.param(this, "backend",
    "onnx (default; no torch on executors) or transformers (Python stage only: needs torch on executors)", CTCAnnotator.Backends)
  final val quantize: Param[String] = Choices.param(this, "quantize",
    "when a Hugging Face checkpoint is converted on the driver: '' or 'int8' (conversion is Python's `sparkasr convert`)", Seq("", "int8"))
  final val allowPickle: BooleanParam = new BooleanParam(this, "allowPickle",
    "accept a pickled pytorch_model.bin checkpoint (trusted sources only; only read when converting, in Python)")

  setDefault(timestamps -> "word", chunkLengthS -> 0.0, strideLengthS -> Array.emptyDoubleArray, maxUnchunkedS -> 60.0, lmPath -> "",
    beamWidth -> 0, lmAlpha -> 0.5, lmBeta -> 1.5, hotwords -> Array.empty[String], hotwordWeight -> 10.0, cpuThreads -> 0,
    backend -> "onnx", quantize -> "", allowPickle -> false)

  private def checked(f: => Any): this.type = { f; options(); this }
  def setTimestamps(value: String): this.type = checked(set(timestamps, value))
  def getTimestamps: String = $(timestamps)
  def setChunkLengthS(value: Double): this.type = checked(set(chunkLengthS, value))
  def getChunkLengthS: Double = $(chunkLengthS)
  def setStrideLengthS(value: Array[Double]): this.type = checked(set(strideLengthS, value))
  def setStrideLengthS(value: Double): this.type = setStrideLengthS(Array(value))
  def getStrideLengthS: Array[Double] = $(strideLengthS)
  def setMaxUnchunkedS(value: Double): this.type = checked(set(maxUnchunkedS, value))
  def getMaxUnchunkedS: Double = $(maxUnchunkedS)
  def setLmPath(value: String): this.type = checked(set(lmPath, value))
  def getLmPath: String = $(lmPath)
  def setBeamWidth(value: Int): this.type = checked(set(beamWidth, value))
  def setLmAlpha(value: Double): this.type = checked(set(lmAlpha, value))
  def setLmBeta(value: Double): this.type = checked(set(lmBeta, value))
  def setHotwords(value: Array[String]): this.type = checked(set(hotwords, value))
  def setHotwordWeight(value: Double): this.type = checked(set(hotwordWeight, value))
  def setCpuThreads(value: Int): this.type = checked(set(cpuThreads, value))
  def getCpuThreads: Int = $(cpuThreads)
  def setBackend(value: String): this.type = checked(set(backend, value))
  def setQuantize(value: String): this.type = checked(set(quantize, value))
  def setAllowPickle(value: Boolean): this.type = checked(set(allowPickle, value))

  override protected def wantsChunks: Boolean = getTimestamps != "none"

  /** The engine options; refuses (naming the param) what the JVM stage cannot honour. */
  def options(): CTCOptions =
    try {
      if ($(backend) != "onnx")
        throw new IllegalArgumentException(s"backend '${$(backend)}' runs the checkpoint on transformers/torch in Python workers; " +
          "the JVM stage runs ONNX Runtime only (backend must be 'onnx')")
      if ($(lmPath).nonEmpty)
        throw new IllegalArgumentException(s"lmPath '${$(lmPath)}': KenLM beam search (pyctcdecode) runs in the Python stage only; " +
          "the JVM stage decodes greedily (lmPath must be '')")
      if ($(beamWidth) > 0)
        throw new IllegalArgumentException(s"beamWidth ${$(beamWidth)} asks for beam search, which runs in the Python stage only; " +
          "the JVM stage decodes greedily (beamWidth must be 0)")
      if ($(hotwords).nonEmpty)
        throw new IllegalArgumentException("hotwords need beam search, which runs in the Python stage only (hotwords must be [])")
      val stride = $(strideLengthS) match {
        case Array() => None
        case Array(x) => Some((x, x))
        case Array(l, r) => Some((l, r))
        case other => throw new IllegalArgumentException(s"strideLengthS must be two values >= 0 (left, right), got ${other.mkString("[", ", ", "]")}")
      }
      CTCOptions(batchSize = getBatchSize, timestamps = $(timestamps), chunkLengthS = $(chunkLengthS), strideLengthS = stride,
        maxUnchunkedS = $(maxUnchunkedS), numThreads = $(cpuThreads))
    } catch { case e: IllegalArgumentException => throw new IllegalArgumentException(s"$stageName: ${e.getMessage.stripPrefix("requirement failed: ")}") }

  override protected def engineFactory(): EngineFactory = CTCEngineFactory(options())

  override protected def localModelDir(): String = {
    val name = getModelSource
    if (name.isEmpty) throw new IllegalArgumentException(s"$stageName: no model; use loadSavedModel(path, spark) or pretrained(name)")
    if (SpeechAnnotatorModel.isRemote(name)) name
    else {
      val dir = new File(sparkasr.audio.AudioDecoder.localPath(name)).getAbsoluteFile
      CTCAnnotator.checkDir(dir, modelTypes, stageName)
      dir.getPath
    }
  }
}

object CTCAnnotator {
  val Backends: Seq[String] = Seq("onnx", "transformers")

  /** A converted CTC directory of a model type this stage runs. */
  def checkDir(dir: File, modelTypes: Seq[String], stageName: String): Checkpoint = {
    val ckpt = try Checkpoint.load(dir) catch { case e: CheckpointError => throw new IllegalArgumentException(s"$stageName: ${e.getMessage}") }
    if (!modelTypes.contains(ckpt.modelType)) {
      val other = if (ckpt.modelType == "hubert") "HubertForCTC" else "Wav2Vec2ForCTC"
      throw new IllegalArgumentException(s"$stageName: $dir is a '${ckpt.modelType}' model; use $other")
    }
    if (ckpt.onnxPath.isEmpty)
      throw new IllegalArgumentException(s"$stageName: $dir has no model.onnx; convert the checkpoint once with " +
        s"`sparkasr convert --model $dir --output DIR` (Python, sparkasr[convert]) and load DIR")
    ckpt
  }

  /** A local name -> its converted directory: an existing directory, or the conversion that
    * Python's `pretrained(name)` / `sparkasr convert` left in the sparkasr cache
    * (`<cache>/models/ctc-hub-<name>-<fp32|int8>`). The JVM converts nothing and fetches nothing. */
  def resolvePretrained(name: String, quantize: String, stageName: String): String = {
    val direct = new File(sparkasr.audio.AudioDecoder.localPath(name))
    if (direct.isDirectory) return direct.getAbsolutePath
    val safe = name.replaceAll("[^A-Za-z0-9_.-]+", "--")
    val cached = new File(ModelCache.root("models"), s"ctc-hub-$safe-${if (quantize.isEmpty) "fp32" else quantize}")
    if (new File(cached, Checkpoint.OnnxFile).isFile) cached.getAbsolutePath
    else throw new IllegalArgumentException(
      s"$stageName.pretrained: '$name' is neither a directory nor converted in the sparkasr cache ($cached). Convert it once where " +
        s"it can be downloaded: `sparkasr convert --model $name --output DIR` (or Python's $stageName.pretrained(\"$name\")), then " +
        "pass DIR")
  }
}

/** Shared companion behaviour: Spark NLP's constructors and Spark ML's reader. */
abstract class CTCCompanion[M <: CTCAnnotator[M]](make: String => M, className: String, defaultPretrained: String) extends MLReadable[M] {
  override def read: MLReader[M] = new SpeechModelReader[M](make, className)

  /** A directory written by `sparkasr convert` (model.onnx + config and tokenizer files). */
  def loadSavedModel(path: String, spark: SparkSession): M = {
    val m = make(Identifiable.randomUID(className.split('.').last))
    m.setModelSource(new File(sparkasr.audio.AudioDecoder.localPath(path)).getAbsolutePath)
    m.resolveModelDir()
    m
  }

  def pretrained(): M = pretrained(defaultPretrained)
  def pretrained(name: String): M = pretrained(name, "")

  /** A converted directory by path, or a Hub name converted before into the sparkasr cache. */
  def pretrained(name: String, quantize: String): M = {
    val m = make(Identifiable.randomUID(className.split('.').last))
    m.setQuantize(quantize)
    m.setModelSource(CTCAnnotator.resolvePretrained(name, quantize, className.split('.').last))
    m.resolveModelDir()
    m
  }
}
