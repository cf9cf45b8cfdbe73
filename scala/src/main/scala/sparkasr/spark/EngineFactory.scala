package sparkasr.spark

import sparkasr.SpeechEngine

/** How an executor builds the engine of a stage (serializable, small): given the local model
  * directory and the task's CPU count. The engine is cached per executor JVM by the factory. */
trait EngineFactory extends Serializable {
  def build(modelDir: String, taskCpus: Int): SpeechEngine
}
