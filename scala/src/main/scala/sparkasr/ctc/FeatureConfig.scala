package sparkasr.ctc

import org.json4s._
import sparkasr.Constants.SampleRate

/** What the model's preprocessor and conv stack say about its input (Python: `FeatureConfig`). */
final case class FeatureConfig(
    samplingRate: Int = SampleRate,
    doNormalize: Boolean = true,
    returnAttentionMask: Boolean = false,
    paddingValue: Float = 0f,
    convKernel: Seq[Int] = Seq(10, 3, 3, 3, 3, 2, 2),
    convStride: Seq[Int] = Seq(5, 2, 2, 2, 2, 2, 2),
    adapterStrides: Seq[Int] = Nil
) {

  /** Samples per logit frame: the product of the conv (and adapter) strides. */
  def inputsToLogitsRatio: Int = (convStride ++ adapterStrides).product

  /** Logit frames for `n` samples (`_get_feat_extract_output_lengths`); 0 when too short. */
  def outputLength(n: Int): Int = {
    var length = n
    for ((k, s) <- convKernel.zip(convStride)) {
      length = Math.floorDiv(length - k, s) + 1
      if (length <= 0) return 0
    }
    for (s <- adapterStrides) {
      length = Math.floorDiv(length - 1, s) + 1
      if (length <= 0) return 0
    }
    math.max(length, 0)
  }

  /** The shortest input that yields one logit frame (the receptive field). */
  def minSamples: Int = {
    var length = 1
    for (s <- adapterStrides.reverse) length = (length - 1) * s + 1
    for ((k, s) <- convKernel.zip(convStride).reverse) length = (length - 1) * s + k
    length
  }
}

object FeatureConfig {
  def fromConfigs(pre: JObject, config: JObject): FeatureConfig = {
    val feType = Checkpoint.str(pre \ "feature_extractor_type").getOrElse("Wav2Vec2FeatureExtractor")
    if (feType != "Wav2Vec2FeatureExtractor")
      throw new IllegalArgumentException(
        s"unsupported feature extractor '$feType': only raw-waveform CTC models (Wav2Vec2FeatureExtractor) are supported")
    if (Checkpoint.featureInt(pre \ "feature_size", 1) != 1)
      throw new IllegalArgumentException("only mono raw-waveform input (feature_size=1) is supported")
    val adapter =
      if (Checkpoint.featureBool(config \ "add_adapter", default = false))
        Seq.fill(Checkpoint.featureInt(config \ "num_adapter_layers", 3))(Checkpoint.featureInt(config \ "adapter_stride", 2))
      else Nil
    val d = FeatureConfig()
    val padding = (pre \ "padding_value") match {
      case JDouble(x) => x.toFloat
      case JInt(x) => x.toFloat
      case _ => 0f
    }
    FeatureConfig(
      samplingRate = Checkpoint.featureInt(pre \ "sampling_rate", SampleRate),
      doNormalize = Checkpoint.featureBool(pre \ "do_normalize", default = true),
      returnAttentionMask = Checkpoint.featureBool(pre \ "return_attention_mask", default = false),
      paddingValue = padding,
      convKernel = Checkpoint.featureInts(config \ "conv_kernel", d.convKernel),
      convStride = Checkpoint.featureInts(config \ "conv_stride", d.convStride),
      adapterStrides = adapter
    )
  }
}
