package sparkasr.spark.ctc

import sparkasr.SpeechEngine
import sparkasr.ctc.{CTCEngine, CTCOptions}
import sparkasr.spark.EngineFactory

/** Builds the CTC engine on an executor (cached per JVM by model directory and options). */
final case class CTCEngineFactory(options: CTCOptions) extends EngineFactory {
  override def build(modelDir: String, taskCpus: Int): SpeechEngine =
    CTCEngine.get(modelDir, if (options.numThreads == 0) options.copy(numThreads = taskCpus) else options)
}
