package sparkasr.spark.ctc

import org.apache.spark.ml.param.ParamMap
import org.apache.spark.ml.util.Identifiable
import sparkasr.spark.params.CTCModelParams

/** Wav2Vec2 CTC speech recognition on ONNX Runtime Java (also data2vec-audio, WavLM and
  * wav2vec2-conformer CTC checkpoints). Its JVM class name is the Python class path, so a stage saved
  * in one language loads in the other.
  * {{{
  * val asr = Wav2Vec2ForCTC.loadSavedModel("/models/w2v2-base-960h", spark)
  *   .setInputCols("audio_assembler").setOutputCol("text")
  * }}} */
class Wav2Vec2ForCTC(uid: String) extends CTCAnnotator[Wav2Vec2ForCTC](uid) with CTCModelParams {
  def this() = this(Identifiable.randomUID("Wav2Vec2ForCTC"))
  override protected def modelTypes: Seq[String] = Seq("wav2vec2", "data2vec-audio", "wavlm", "wav2vec2-conformer")
  override def copy(extra: ParamMap): Wav2Vec2ForCTC = defaultCopy(extra)
}

object Wav2Vec2ForCTC
    extends CTCCompanion[Wav2Vec2ForCTC](new Wav2Vec2ForCTC(_), "sparkasr.spark.ctc.Wav2Vec2ForCTC", "facebook/wav2vec2-base-960h")
