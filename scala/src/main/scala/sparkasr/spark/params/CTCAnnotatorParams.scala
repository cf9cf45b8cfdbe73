// Generated from the option table (python/sparkasr/params.py) by `python -m sparkasr.generated --write`: do not edit.
// Change the Python side and regenerate; `python -m sparkasr.generated --check` fails on a stale copy.

package sparkasr.spark.params

import org.apache.spark.ml.param._

/** The params the CTC annotators share (`sparkasr.spark.ctc.CTCAnnotator`). */
trait CTCAnnotatorParams extends StageParams {
  /** rows decoded together in one model call (in 1..1024) */
  final val batchSize: IntParam = new IntParam(this, "batchSize",
    "rows decoded together in one model call",
    (x: Int) => x >= 1 && x <= 1024)
  def setBatchSize(value: Int): this.type = { set(batchSize, value); validateParams(); this }
  def getBatchSize: Int = $(batchSize)

  /** none, word or char: chunk annotations with start/end seconds (none, word, char) */
  final val timestamps: Param[String] = new Param[String](this, "timestamps",
    "none, word or char: chunk annotations with start/end seconds",
    (x: String) => Array("none", "word", "char").contains(x))
  def setTimestamps(value: String): this.type = { set(timestamps, value); validateParams(); this }
  def getTimestamps: String = $(timestamps)

  /** long audio: chunk length in seconds (0 = only rows longer than maxUnchunkedS are chunked) (in 0..600) */
  final val chunkLengthS: DoubleParam = new DoubleParam(this, "chunkLengthS",
    "long audio: chunk length in seconds (0 = only rows longer than maxUnchunkedS are chunked)",
    (x: Double) => x >= 0.0 && x <= 600.0)
  def setChunkLengthS(value: Double): this.type = { set(chunkLengthS, value); validateParams(); this }
  def getChunkLengthS: Double = $(chunkLengthS)

  /** overlap dropped on each side of a chunk, [left, right] seconds ([] = chunkLengthS/6) (in 0..300, at most 2
    * values) */
  final val strideLengthS: DoubleArrayParam = new DoubleArrayParam(this, "strideLengthS",
    "overlap dropped on each side of a chunk, [left, right] seconds ([] = chunkLengthS/6)",
    (v: Array[Double]) => v.length <= 2 && v.forall((x: Double) => x >= 0.0 && x <= 300.0))
  def setStrideLengthS(value: Array[Double]): this.type = { set(strideLengthS, value); validateParams(); this }
  def setStrideLengthS(value: Double): this.type = setStrideLengthS(Array(value))
  def getStrideLengthS: Array[Double] = $(strideLengthS)

  /** rows longer than this are always chunked (bounded memory) (in 1..3600) */
  final val maxUnchunkedS: DoubleParam = new DoubleParam(this, "maxUnchunkedS",
    "rows longer than this are always chunked (bounded memory)",
    (x: Double) => x >= 1.0 && x <= 3600.0)
  def setMaxUnchunkedS(value: Double): this.type = { set(maxUnchunkedS, value); validateParams(); this }
  def getMaxUnchunkedS: Double = $(maxUnchunkedS)

  /** ONNX Runtime threads per task; 0 = spark.task.cpus inside Spark, all cores outside it (in 0..1024) */
  final val cpuThreads: IntParam = new IntParam(this, "cpuThreads",
    "ONNX Runtime threads per task; 0 = spark.task.cpus inside Spark, all cores outside it",
    (x: Int) => x >= 0 && x <= 1024)
  def setCpuThreads(value: Int): this.type = { set(cpuThreads, value); validateParams(); this }
  def getCpuThreads: Int = $(cpuThreads)

  /** onnx (default; no torch on executors) or transformers (needs torch on executors) (onnx, transformers) */
  final val backend: Param[String] = new Param[String](this, "backend",
    "onnx (default; no torch on executors) or transformers (needs torch on executors)",
    (x: String) => Array("onnx", "transformers").contains(x))
  def setBackend(value: String): this.type = { set(backend, value); validateParams(); this }
  def getBackend: String = $(backend)

  /** accept a pickled pytorch_model.bin checkpoint (trusted sources only) */
  final val allowPickle: BooleanParam = new BooleanParam(this, "allowPickle",
    "accept a pickled pytorch_model.bin checkpoint (trusted sources only)")
  def setAllowPickle(value: Boolean): this.type = { set(allowPickle, value); validateParams(); this }
  def getAllowPickle: Boolean = $(allowPickle)

  /** LM weight (shallow fusion) (in 0..10) */
  final val lmAlpha: DoubleParam = new DoubleParam(this, "lmAlpha",
    "LM weight (shallow fusion)",
    (x: Double) => x >= 0.0 && x <= 10.0)
  def setLmAlpha(value: Double): this.type = { set(lmAlpha, value); validateParams(); this }
  def getLmAlpha: Double = $(lmAlpha)

  /** word insertion bonus (in -20..20) */
  final val lmBeta: DoubleParam = new DoubleParam(this, "lmBeta",
    "word insertion bonus",
    (x: Double) => x >= -20.0 && x <= 20.0)
  def setLmBeta(value: Double): this.type = { set(lmBeta, value); validateParams(); this }
  def getLmBeta: Double = $(lmBeta)

  /** beam width of the LM beam search (0 = greedy decoding unless lmPath or hotwords are set, then 100) (in 0..1024) */
  final val beamWidth: IntParam = new IntParam(this, "beamWidth",
    "beam width of the LM beam search (0 = greedy decoding unless lmPath or hotwords are set, then 100)",
    (x: Int) => x >= 0 && x <= 1024)
  def setBeamWidth(value: Int): this.type = { set(beamWidth, value); validateParams(); this }
  def getBeamWidth: Int = $(beamWidth)

  /** words to favour in beam search (set lmPath or beamWidth > 0 to enable) (at most 1000 values, at most 100
    * characters) */
  final val hotwords: StringArrayParam = new StringArrayParam(this, "hotwords",
    "words to favour in beam search (set lmPath or beamWidth > 0 to enable)",
    (v: Array[String]) => v.length <= 1000 && v.forall((x: String) => x.codePointCount(0, x.length) <= 100))
  def setHotwords(value: Array[String]): this.type = { set(hotwords, value); validateParams(); this }
  def setHotwords(value: String*): this.type = setHotwords(value.toArray)
  def getHotwords: Array[String] = $(hotwords)

  /** weight of the hotwords (in 0..100) */
  final val hotwordWeight: DoubleParam = new DoubleParam(this, "hotwordWeight",
    "weight of the hotwords",
    (x: Double) => x >= 0.0 && x <= 100.0)
  def setHotwordWeight(value: Double): this.type = { set(hotwordWeight, value); validateParams(); this }
  def getHotwordWeight: Double = $(hotwordWeight)

  /** KenLM n-gram model (.arpa or binary) for beam search ('' = greedy decoding) */
  final val lmPath: Param[String] = new Param[String](this, "lmPath",
    "KenLM n-gram model (.arpa or binary) for beam search ('' = greedy decoding)")
  def setLmPath(value: String): this.type = { set(lmPath, value); validateParams(); this }
  def getLmPath: String = $(lmPath)

  /** when a Hugging Face checkpoint is converted on the driver: '' or 'int8' (, int8) */
  final val quantize: Param[String] = new Param[String](this, "quantize",
    "when a Hugging Face checkpoint is converted on the driver: '' or 'int8'",
    (x: String) => Array("", "int8").contains(x))
  def setQuantize(value: String): this.type = { set(quantize, value); validateParams(); this }
  def getQuantize: String = $(quantize)
}
