package sparkasr.spark

import org.apache.spark.ml.sparkasr.MLBridge
import org.apache.spark.ml.util.MLReader
import org.json4s.JString

/** Loads a stage saved by [[SpeechModelWriter]] or by the Python stage of the same name. */
final class SpeechModelReader[M <: SpeechAnnotatorModel[M]](make: String => M, className: String) extends MLReader[M] {
  override def load(path: String): M = {
    val meta = MLBridge.loadMetadata(path, sparkSession, className)
    val instance = make(meta.uid)
    meta.setParams(instance)
    instance.restoreJvmDefaults()
    (meta.metadata \ "weights") match {
      case JString(w) if w.nonEmpty => instance.setModelSource(path.stripSuffix("/") + "/" + w)
      case _ =>
    }
    instance
  }
}
