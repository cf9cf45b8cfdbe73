package sparkasr.whisper

import scala.collection.mutable.ArrayBuffer

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
