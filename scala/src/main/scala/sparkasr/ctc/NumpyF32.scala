package sparkasr.ctc

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
