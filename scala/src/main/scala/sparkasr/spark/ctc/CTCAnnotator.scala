package sparkasr.spark.ctc

import java.io.File

import sparkasr.ctc.{CTCOptions, Checkpoint, CheckpointError}
import sparkasr.spark.{EngineFactory, ModelCache, SpeechAnnotatorModel}
import sparkasr.spark.params.CTCAnnotatorParams

/** The wiring `Wav2Vec2ForCTC` and `HubertForCTC` share (Python: `_CTCAnnotator`; their params are
  * generated from the Python option table: [[CTCAnnotatorParams]] and each stage's own trait). The
  * JVM stage runs ONNX Runtime with greedy decoding; the Python-only values (`backend=transformers`,
  * KenLM beam search through `lmPath`/`beamWidth`/`hotwords`) keep their params, so pipelines load in
  * both languages, but are refused with an error naming the param. */
abstract class CTCAnnotator[M <: CTCAnnotator[M]](uid: String) extends SpeechAnnotatorModel[M](uid) with CTCAnnotatorParams {
  protected def modelTypes: Seq[String]
  protected def stageName: String = getClass.getSimpleName

  /** The values the JVM stage cannot honour are refused as soon as they are set, naming the param. */
  override protected def validateParams(): Unit = options()

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
