package sparkasr.spark.ctc

import java.io.File

import org.apache.spark.ml.util.{Identifiable, MLReadable, MLReader}
import org.apache.spark.sql.SparkSession
import sparkasr.spark.SpeechModelReader

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
