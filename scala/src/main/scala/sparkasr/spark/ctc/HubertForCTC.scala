package sparkasr.spark.ctc

import org.apache.spark.ml.param.ParamMap
import org.apache.spark.ml.util.Identifiable
import sparkasr.spark.params.CTCModelParams

/** HuBERT CTC speech recognition on ONNX Runtime Java (meant for facebook/hubert-large-ls960-ft,
  * converted with `sparkasr convert`). */
class HubertForCTC(uid: String) extends CTCAnnotator[HubertForCTC](uid) with CTCModelParams {
  def this() = this(Identifiable.randomUID("HubertForCTC"))
  override protected def modelTypes: Seq[String] = Seq("hubert")
  override def copy(extra: ParamMap): HubertForCTC = defaultCopy(extra)
}

object HubertForCTC
    extends CTCCompanion[HubertForCTC](new HubertForCTC(_), "sparkasr.spark.ctc.HubertForCTC", "facebook/hubert-large-ls960-ft")
