package sparkasr.whisper

import scala.collection.mutable.ArrayBuffer

/** Decoding options of the JVM engine: the Python `WhisperOptions` that it honours (the stage
  * refuses the values it cannot honour before building this). */
final case class WhisperOptions(
    language: Option[String] = None,
    task: String = "transcribe",
    beamSize: Int = 5,
    bestOf: Int = 5,
    patience: Double = 1.0,
    lengthPenalty: Double = 1.0,
    repetitionPenalty: Double = 1.0,
    noRepeatNgramSize: Int = 0,
    temperature: Seq[Double] = Seq(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    topK: Int = 0,
    maxNewTokens: Option[Int] = None,
    initialPrompt: Option[String] = None,
    timestamps: String = "segment",
    conditionOnPreviousText: Boolean = true,
    batchSize: Int = 8,
    seed: Option[Long] = None,
    suppressTokens: Seq[Int] = Seq(-1),
    compressionRatioThreshold: Double = 2.4,
    logProbThreshold: Double = -1.0,
    noSpeechThreshold: Double = 0.6,
    vadGate: String = "auto",
    vadCheckNoSpeech: Double = 0.2,
    vadThreshold: Double = 0.5) {
  require(beamSize >= 1 && bestOf >= 1 && batchSize >= 1, "beamSize, bestOf and batchSize must be >= 1")
  require(temperature.nonEmpty && temperature.forall(_ >= 0), "temperature must be a non-empty list of values >= 0")
  require(maxNewTokens.forall(n => n >= 1 && n <= 440), "maxNewTokens must be in 1..440, or unset (0)")
  require(Seq("none", "segment").contains(timestamps), s"timestamps '$timestamps' is not decoded on the JVM")
  require(WhisperOptions.VadGates.contains(vadGate), s"vadGate must be one of ${WhisperOptions.VadGates.mkString(", ")}, got '$vadGate'")
}

object WhisperOptions {
  /** vadGate (Python: `options.VAD_GATES`): auto (Whisper's doubtful windows are checked by Silero
    * VAD), always (also every row and long-row piece, before decoding), off (Whisper's own rule). */
  val VadGates: Seq[String] = Seq("auto", "always", "off")
}

/** One finished hypothesis: its tokens (end-of-text excluded), the sum of their log-probabilities
  * (end-of-text included) and the length-normalised score the search ranks by. */
final case class Hypothesis(tokens: Array[Int], sumLogprob: Double, score: Double) {
  def avgLogprob: Double = sumLogprob / (tokens.length + 1)
}

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

/** Greedy search, beam search (CTranslate2's algorithm: 2 x beam candidates per step, finished
  * hypotheses replaced by the next candidates, stop after round(beam x patience) hypotheses, scores
  * divided by length^lengthPenalty) and sampling (bestOf samples, temperature, top-k) over a batch of
  * windows sharing one prompt length. Each batch item's rows are its beams (or samples); they share
  * the item's encoder keys/values. */
final class Search(onnx: WhisperOnnx, opts: WhisperOptions) {
  private val spec = onnx.spec
  private val eot = spec.tokens.eot
  private val v = onnx.vocab

  /** Per window the best hypothesis and the no-speech probability. `temperature` 0: beam search
    * (greedy for beamSize 1); above 0: sampling. */
  def generate(encoded: Encoded, prompts: Seq[Array[Int]], timestamps: Boolean, temperature: Double,
      rng: java.util.Random): Seq[(Hypothesis, Double)] = {
    val b = prompts.size
    val p = prompts.head.length
    val sotAt = prompts.head.indexOf(spec.tokens.sot)
    val (picked, cross0, cache0) = onnx.prompt(encoded, prompts, Seq(sotAt, p - 1).distinct)
    val lastAt = if (sotAt == p - 1) 0 else 1
    val noSpeech = picked.map { lg =>
      spec.tokens.noSpeech.map { ns =>
        val row = java.util.Arrays.copyOfRange(lg, 0, v)
        math.exp(TokenRules.logSoftmax(row)(ns))
      }.getOrElse(0.0)
    }
    val first = picked.map(lg => java.util.Arrays.copyOfRange(lg, lastAt * v, (lastAt + 1) * v))
    val maxNew = math.min(opts.maxNewTokens.getOrElse(spec.nTextCtx / 2), spec.nTextCtx - p)
    val rules = new TokenRules(spec, opts, timestamps)
    val sampling = temperature > 0
    val k = if (sampling) opts.bestOf else opts.beamSize
    val best =
      if (sampling) run(new Sampler(k, temperature, rng), b, first, cross0, cache0, rules, maxNew)
      else if (k == 1) run(new Sampler(1, 0.0, rng), b, first, cross0, cache0, rules, maxNew)
      else beam(k, b, first, cross0, cache0, rules, maxNew)
    best.zip(noSpeech)
  }

  /** Rows sampled (or argmax at temperature 0) independently, `k` rows per item; an item ends when
    * all its rows have ended. */
  private final class Sampler(val k: Int, val temperature: Double, rng: java.util.Random) {
    def pick(lp: Array[Double]): Int =
      if (temperature <= 0) argmax(lp)
      else {
        val order = if (opts.topK > 0) topIndices(lp, opts.topK) else lp.indices.toArray
        val w = order.map(i => if (lp(i) == Double.NegativeInfinity) 0.0 else math.exp(lp(i) / temperature))
        var u = rng.nextDouble() * w.sum
        var j = 0
        while (j < order.length - 1 && u >= w(j)) { u -= w(j); j += 1 }
        while (w(j) == 0.0 && j > 0) j -= 1
        order(j)
      }
  }

  private def run(s: Sampler, b: Int, first: Array[Array[Float]], cross0: Cross, cache0: SelfCache, rules: TokenRules,
      maxNew: Int): Seq[Hypothesis] = {
    val k = s.k
    val seqs = Array.fill(b, k)(ArrayBuffer.empty[Int])
    val sums = Array.fill(b, k)(0.0)
    val ended = Array.fill(b, k)(false)
    var live = (0 until b).toIndexedSeq // items still decoding, in cache/cross row order
    var cross = cross0
    var cache = cache0.select((0 until b).flatMap(i => Seq.fill(k)(i)))
    var logits: Int => Array[Float] = r => first(live(r / k)) // step 0: the prompt's last logits per item
    try {
      var step = 0
      while (step < maxNew && live.nonEmpty) {
        val next = new Array[Int](live.size * k)
        for ((item, li) <- live.zipWithIndex; j <- 0 until k) {
          val r = li * k + j
          if (ended(item)(j)) next(r) = eot
          else {
            val l = logits(r).clone()
            rules(l, seqs(item)(j))
            val lp = TokenRules.logSoftmax(l)
            val tok = s.pick(lp)
            sums(item)(j) += lp(tok)
            if (tok == eot) ended(item)(j) = true else seqs(item)(j) += tok
            next(r) = tok
          }
        }
        step += 1
        val keep = live.indices.filter(li => !(0 until k).forall(j => ended(live(li))(j)))
        if (step < maxNew && keep.nonEmpty) {
          if (keep.size < live.size) {
            cache = cache.select(keep.flatMap(li => (0 until k).map(j => li * k + j)))
            cross = onnx.selectCross(cross, keep)
          }
          val tokens = keep.flatMap(li => (0 until k).map(j => Array(next(li * k + j))))
          live = keep.map(live)
          val (lg, c) = onnx.step(cross, cache, tokens)
          cache = c
          logits = r => java.util.Arrays.copyOfRange(lg, r * v, (r + 1) * v)
        } else live = keep.map(live)
      }
    } finally cross.close()
    (0 until b).map { i =>
      (0 until k).map { j =>
        val toks = seqs(i)(j).toArray
        Hypothesis(toks, sums(i)(j), sums(i)(j) / math.pow(math.max(toks.length, 1), opts.lengthPenalty))
      }.maxBy(_.score)
    }
  }

  private def beam(k: Int, b: Int, first: Array[Array[Float]], cross0: Cross, cache0: SelfCache, rules: TokenRules,
      maxNew: Int): Seq[Hypothesis] = {
    val maxCandidates = math.round(k * opts.patience).toInt.max(1)
    val finished = Array.fill(b)(ArrayBuffer.empty[Hypothesis])
    // per live item its k beams: tokens and cumulative log-probabilities (one beam before step 0)
    var beams: IndexedSeq[IndexedSeq[(ArrayBuffer[Int], Double)]] = (0 until b).map(_ => IndexedSeq((ArrayBuffer.empty[Int], 0.0)))
    var live = (0 until b).toIndexedSeq
    var cross = cross0
    var cache = cache0
    var rowsPer = 1
    var logits: Int => Array[Float] = r => first(live(r))
    try {
      var step = 0
      while (step < maxNew && live.nonEmpty) {
        val last = step == maxNew - 1
        val nextBeams = ArrayBuffer.empty[IndexedSeq[(ArrayBuffer[Int], Double)]]
        val origins = ArrayBuffer.empty[Int]
        val keep = ArrayBuffer.empty[Int]
        for ((item, li) <- live.zipWithIndex) {
          val cands = ArrayBuffer.empty[(Double, Int, Int)] // (score, beam, token)
          for ((bm, j) <- beams(li).zipWithIndex) {
            val l = logits(li * rowsPer + j).clone()
            rules(l, bm._1)
            val lp = TokenRules.logSoftmax(l)
            topIndices(lp, 2 * k).foreach(tok => cands += ((bm._2 + lp(tok), j, tok)))
          }
          val sorted = cands.sortBy(c => -c._1).take(2 * k)
          var secondary = k
          val chosen = ArrayBuffer.empty[(Double, Int, Int)]
          for (c <- 0 until math.min(k, sorted.size)) {
            var cand = sorted(c)
            if (cand._3 == eot || last) {
              val toks = beams(li)(cand._2)._1.toArray ++ (if (cand._3 == eot) Array.empty[Int] else Array(cand._3))
              finished(item) += Hypothesis(toks, cand._1, cand._1 / math.pow(math.max(toks.length, 1), opts.lengthPenalty))
              var j = secondary
              var found = false
              while (j < sorted.size && !found) {
                if (sorted(j)._3 != eot) { cand = sorted(j); secondary = j + 1; found = true }
                j += 1
              }
            }
            chosen += cand
          }
          while (chosen.size < k) chosen += chosen.head // fewer finite candidates than beams (degenerate logits)
          val done = last || finished(item).size >= maxCandidates
          if (!done) {
            keep += li
            nextBeams += chosen.toIndexedSeq.map { case (score, j, tok) => (beams(li)(j)._1.clone() += tok, score) }
            chosen.foreach { case (_, j, _) => origins += li * rowsPer + j }
          }
        }
        step += 1
        if (keep.nonEmpty && step < maxNew) {
          if (keep.size < live.size) cross = onnx.selectCross(cross, keep.toSeq)
          cache = cache.select(origins.toSeq)
          live = keep.toIndexedSeq.map(live)
          beams = nextBeams.toIndexedSeq
          rowsPer = k
          val (lg, c) = onnx.step(cross, cache, beams.flatMap(_.map(bm => Array(bm._1.last))))
          cache = c
          logits = r => java.util.Arrays.copyOfRange(lg, r * v, (r + 1) * v)
        } else live = IndexedSeq.empty
      }
    } finally cross.close()
    finished.toIndexedSeq.map(hs => if (hs.isEmpty) Hypothesis(Array.empty, 0.0, 0.0) else hs.maxBy(_.score))
  }

  private def argmax(a: Array[Double]): Int = {
    var best = 0
    var i = 1
    while (i < a.length) { if (a(i) > a(best)) best = i; i += 1 }
    best
  }

  /** Indices of the `n` largest values, largest first (ties: lower index first). */
  private def topIndices(a: Array[Double], n: Int): Array[Int] = {
    val heap = new java.util.PriorityQueue[Integer](n + 1, (x: Integer, y: Integer) => {
      val c = java.lang.Double.compare(a(x), a(y))
      if (c != 0) c else Integer.compare(y, x)
    })
    var i = 0
    while (i < a.length) {
      if (a(i) > Double.NegativeInfinity) {
        if (heap.size < n) heap.add(i)
        else if (a(i) > a(heap.peek())) { heap.poll(); heap.add(i) }
      }
      i += 1
    }
    val out = new Array[Int](heap.size)
    var j = out.length - 1
    while (!heap.isEmpty) { out(j) = heap.poll(); j -= 1 }
    out
  }
}
