package sparkasr.spark.whisper

import sparkasr.SpeechEngine
import sparkasr.spark.EngineFactory
import sparkasr.whisper.{WhisperEngine, WhisperOptions}

/** Builds the Whisper engine on an executor (cached per JVM by export directory, options, threads). */
final case class WhisperEngineFactory(options: WhisperOptions, threads: Int) extends EngineFactory {
  override def build(modelDir: String, taskCpus: Int): SpeechEngine =
    WhisperEngine.get(modelDir, options, if (threads == 0) taskCpus else threads)
}
