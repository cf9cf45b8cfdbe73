package sparkasr.whisper

import ai.onnxruntime.OnnxTensor

/** Per decoder layer the encoder keys/values [B, H, 1500, Dh], kept as ONNX Runtime tensors. */
final case class Cross(kv: Seq[(OnnxTensor, OnnxTensor)], owner: AutoCloseable, rows: Int) extends AutoCloseable {
  def close(): Unit = owner.close()
}
