package sparkasr.ctc

import org.json4s._
import sparkasr.Records.SampleRate

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

/** float32 arithmetic as numpy does it, so that model inputs are bit-identical to the Python
  * engine's: `np.add.reduce` on a contiguous float32 array is a pairwise sum (blocks of 128, eight
  * accumulators), and `mean`/`var` divide that sum by the count in float32. */
object NumpyF32 {
  private val BlockSize = 128

  def pairwiseSum(a: Array[Float], from: Int, n: Int): Float =
    if (n < 8) {
      var res = 0f // numpy: -0.0 identity folded in by the caller (0 + x == x for non-zero x)
      var i = 0
      while (i < n) { res += a(from + i); i += 1 }
      res
    } else if (n <= BlockSize) {
      val r = new Array[Float](8)
      var j = 0
      while (j < 8) { r(j) = a(from + j); j += 1 }
      var i = 8
      val end = n - (n % 8)
      while (i < end) {
        j = 0
        while (j < 8) { r(j) += a(from + i + j); j += 1 }
        i += 8
      }
      var res = ((r(0) + r(1)) + (r(2) + r(3))) + ((r(4) + r(5)) + (r(6) + r(7)))
      while (i < n) { res += a(from + i); i += 1 }
      res
    } else {
      var n2 = n / 2
      n2 -= n2 % 8
      pairwiseSum(a, from, n2) + pairwiseSum(a, from + n2, n - n2)
    }

  def sum(a: Array[Float]): Float = 0f + pairwiseSum(a, 0, a.length)

  def mean(a: Array[Float]): Float = sum(a) / a.length.toFloat

  def variance(a: Array[Float]): Float = {
    val m = mean(a)
    val sq = new Array[Float](a.length)
    var i = 0
    while (i < a.length) { val d = a(i) - m; sq(i) = d * d; i += 1 }
    sum(sq) / a.length.toFloat
  }

  /** `Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm`: `(x - mean) / sqrt(var + 1e-7)` in float32. */
  def normalize(x: Array[Float]): Array[Float] = {
    val m = mean(x)
    val s = math.sqrt((variance(x) + 1e-7f).toDouble).toFloat // float32 sqrt is correctly rounded either way
    val out = new Array[Float](x.length)
    var i = 0
    while (i < x.length) { out(i) = (x(i) - m) / s; i += 1 }
    out
  }
}
