package sparkasr.onnx

import java.nio.{FloatBuffer, IntBuffer, LongBuffer}
import java.util.concurrent.ConcurrentHashMap

import scala.jdk.CollectionConverters._

import ai.onnxruntime.{OnnxTensor, OrtEnvironment, OrtSession, TensorInfo}

/** An ONNX Runtime session, shared by every task of an executor JVM that uses the same model file
  * and thread count (sessions are thread-safe for concurrent runs). Same settings as the Python
  * engine's: all graph optimisations, CPU, `threads` intra-op threads and one inter-op thread when
  * `threads` > 0, ONNX Runtime's defaults otherwise. Not CTC-specific: Whisper's encoder and decoders
  * open their sessions here too.
  *
  * Each session keeps its own memory arena at the largest call it has made (a Whisper encoder call
  * of 8 windows: over 1 GB of attention scores). With the JVM system property
  * `sparkasr.onnx.arena=false` (e.g. in `spark.executor.extraJavaOptions`) a session frees each
  * call's memory instead: for a JVM that opens many sessions (several models, thread counts or
  * copies of an export), at some cost in speed. */
final class OnnxModel private (val path: String, val threads: Int) {
  val env: OrtEnvironment = OrtEnvironment.getEnvironment()
  val session: OrtSession = {
    val opts = new OrtSession.SessionOptions()
    opts.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT)
    if (threads > 0) {
      opts.setIntraOpNumThreads(threads)
      opts.setInterOpNumThreads(1)
    }
    if (!OnnxModel.arena) opts.setCPUArenaAllocator(false)
    env.createSession(path, opts)
  }
  val inputNames: Seq[String] = session.getInputNames.asScala.toSeq
  val outputNames: Seq[String] = session.getOutputNames.asScala.toSeq

  /** The element type of an input (e.g. INT32 or INT64 for an attention mask). */
  def inputType(name: String): Option[ai.onnxruntime.OnnxJavaType] =
    Option(session.getInputInfo.get(name)).map(_.getInfo).collect { case t: TensorInfo => t.`type` }

  def floatTensor(data: Array[Float], shape: Array[Long]): OnnxTensor = OnnxTensor.createTensor(env, FloatBuffer.wrap(data), shape)
  def longTensor(data: Array[Long], shape: Array[Long]): OnnxTensor = OnnxTensor.createTensor(env, LongBuffer.wrap(data), shape)
  def intTensor(data: Array[Int], shape: Array[Long]): OnnxTensor = OnnxTensor.createTensor(env, IntBuffer.wrap(data), shape)

  /** Run with named inputs (closed afterwards); returns the first output as flat float32 + shape. */
  def runFloat(inputs: Map[String, OnnxTensor], output: String): (Array[Float], Array[Long]) =
    try {
      val result = session.run(inputs.asJava, java.util.Collections.singleton(output))
      try {
        val t = result.get(0).asInstanceOf[OnnxTensor]
        val shape = t.getInfo.getShape
        val buf = t.getFloatBuffer
        val out = new Array[Float](buf.remaining())
        buf.get(out)
        (out, shape)
      } finally result.close()
    } finally inputs.values.foreach(_.close())
}

object OnnxModel {
  /** Whether sessions keep a memory arena (ONNX Runtime's default); see the class doc. */
  def arena: Boolean = !sys.props.get("sparkasr.onnx.arena").contains("false")

  private val cache = new ConcurrentHashMap[(String, Int), OnnxModel]()

  /** The session for a model file and thread count, created once per JVM. */
  def get(path: String, threads: Int): OnnxModel = cache.computeIfAbsent((path, threads), k => new OnnxModel(k._1, k._2))
}
