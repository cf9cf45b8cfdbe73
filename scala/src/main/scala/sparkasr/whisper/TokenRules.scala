package sparkasr.whisper

import scala.collection.mutable.ArrayBuffer

/** Whisper's token rules on one row's logits (in place): suppressed tokens, a blank first, the
  * timestamp rules (pairs, non-decreasing, the first within 1 s, timestamps when their total
  * probability beats any text token), CTranslate2's repetition penalty and no-repeat n-grams. */
final class TokenRules(spec: WhisperExport, opts: WhisperOptions, timestamps: Boolean) {
  private val t = spec.tokens
  private val ts0 = t.timestampBegin
  private val eot = t.eot
  private val maxInitial = ts0 + 50 // max_initial_timestamp 1.0 s / 0.02 s
  private val NegInf = Float.NegativeInfinity
  /** faster-whisper's `get_suppressed_tokens`: -1 = the model's default set, plus the special tokens. */
  private val suppress: Array[Int] = {
    val given = opts.suppressTokens
    val base = if (given.contains(-1)) spec.suppressTokens.toSeq ++ given.filter(_ >= 0) else given
    (base ++ Seq(t.transcribe, t.translate, Some(t.sot), t.sotPrev, t.sotLm, t.noSpeech).flatten).distinct.toArray
  }

  def apply(l: Array[Float], seq: ArrayBuffer[Int]): Unit = {
    val v = l.length
    if (opts.repetitionPenalty != 1.0) {
      val p = opts.repetitionPenalty.toFloat
      seq.distinct.foreach { id => if (id < v) l(id) = if (l(id) < 0) l(id) * p else l(id) / p }
    }
    val n = opts.noRepeatNgramSize
    if (n > 0 && seq.length + 1 >= n) {
      val prefix = seq.slice(seq.length - (n - 1), seq.length)
      var i = 0
      while (i + n - 1 < seq.length) {
        if ((0 until n - 1).forall(j => seq(i + j) == prefix(j))) l(seq(i + n - 1)) = NegInf
        i += 1
      }
    }
    suppress.foreach(id => if (id >= 0 && id < v) l(id) = NegInf)
    if (seq.isEmpty) spec.suppressTokensBegin.foreach(id => if (id < v) l(id) = NegInf)
    if (!timestamps) return
    l(t.noTimestamps) = NegInf
    if (seq.isEmpty) {
      var i = 0
      while (i < v) { if (i < ts0 || i > maxInitial) l(i) = NegInf; i += 1 }
    } else {
      val lastIsTs = seq.last >= ts0
      val penultIsTs = seq.length < 2 || seq(seq.length - 2) >= ts0
      if (lastIsTs && penultIsTs) fill(l, ts0, v)
      else if (lastIsTs) fill(l, 0, eot)
      val lastTs = seq.reverseIterator.find(_ >= ts0)
      lastTs.foreach { tok => fill(l, ts0, math.min(v, tok + (if (lastIsTs && !penultIsTs) 0 else 1))) }
    }
    // timestamps when their summed probability exceeds every other token's
    val lp = TokenRules.logSoftmax(l)
    var mx = Double.NegativeInfinity
    var i = ts0
    while (i < v) { if (lp(i) > mx) mx = lp(i); i += 1 }
    var s = 0.0
    if (mx > Double.NegativeInfinity) { i = ts0; while (i < v) { s += math.exp(lp(i) - mx); i += 1 } }
    val tsMass = if (mx == Double.NegativeInfinity) mx else mx + math.log(s)
    var textBest = Double.NegativeInfinity
    i = 0
    while (i < ts0) { if (lp(i) > textBest) textBest = lp(i); i += 1 }
    if (tsMass > textBest) fill(l, 0, ts0)
  }

  private def fill(l: Array[Float], from: Int, until: Int): Unit = {
    var i = from
    while (i < until) { l(i) = NegInf; i += 1 }
  }
}

object TokenRules {
  /** log_softmax in double precision of float32 logits. */
  def logSoftmax(l: Array[Float]): Array[Double] = {
    var mx = Double.NegativeInfinity
    var i = 0
    while (i < l.length) { if (l(i) > mx) mx = l(i); i += 1 }
    var s = 0.0
    i = 0
    while (i < l.length) { if (l(i) != Float.NegativeInfinity) s += math.exp(l(i) - mx); i += 1 }
    val z = mx + math.log(s)
    val out = new Array[Double](l.length)
    i = 0
    while (i < l.length) { out(i) = l(i) - z; i += 1 }
    out
  }
}
