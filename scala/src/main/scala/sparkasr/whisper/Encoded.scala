package sparkasr.whisper

import ai.onnxruntime.OnnxTensor

/** Encoder states (owned by the run's result). */
final case class Encoded(states: OnnxTensor, owner: AutoCloseable) extends AutoCloseable {
  def close(): Unit = owner.close()
}
