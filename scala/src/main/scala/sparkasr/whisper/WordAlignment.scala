package sparkasr.whisper

import scala.collection.mutable.ArrayBuffer

import sparkasr.Constants
import sparkasr.annotation.PyFormat

/** faster-whisper's word timestamps of one window's text (`WhisperModel.add_word_timestamps` over
  * `find_alignment`, which is CTranslate2's `Whisper.align`), from the alignment heads' cross-attention
  * scores (`alignment_model.onnx`, written by `sparkasr convert`):
  *
  *  1. per head, the softmax over the window's first `frames / 2` encoder frames; standardised over
  *     the tokens (mean 0, variance 1, as CTranslate2's LayerNorm without epsilon); a median filter of
  *     width 7 over the frames (reflected at the ends); the mean over heads;
  *  2. the rows of the text tokens and the end of text, and the monotonic path through their negated
  *     scores (CTranslate2's `negative_dtw`, its tie rules); each token starts at the frame where the
  *     path first reaches its row (frames of 20 ms);
  *  3. tokens grouped into words (`split_tokens_on_spaces`: a new word at a leading space, a
  *     punctuation mark or a special token; tokens that do not decode to whole characters stay with
  *     the next), word times from their tokens, then faster-whisper's fix-ups: words at sentence ends
  *     and the first word after a pause at most twice the median word duration (itself at most
  *     0.7 s), punctuation merged into the neighbouring word, the segment's start and end preferred
  *     to a first or last word that runs 0.5 s past them.
  *
  * The same path as CTranslate2's on the vendored clips (float32); where a batch holds windows of one
  * length, CTranslate2 standardises over the batch's padded token rows too, this over each window's
  * own tokens. */
object WordAlignment {
  /** faster-whisper's defaults for attaching punctuation to the neighbouring word. */
  val PrependPunctuations = "\"'“¿([{-"
  val AppendPunctuations = "\"'.。,，!！?？:：”)]}、"
  val MedianFilterWidth = 7
  private val SentenceEndMarks = ".。!！?？"
  private val Punctuation = """!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~""" // Python's string.punctuation
  private val TokensPerSecond = 50.0

  /** The words of a window whose text tokens are `text`: `scores` is the row's cross-attention
    * scores [A, T, S] (`tokens` rows used of `T`, `S` frames) for the tokens
    * `sotSequence :+ noTimestamps ++ text :+ eot`; `frames` the window's frames holding audio (10 ms
    * each); `durationS` its length; `decodeRaw` the tokenizer's decode keeping special tokens. */
  def words(scores: Array[Float], heads: Int, rowTokens: Int, frameCount: Int, sotLength: Int, text: Array[Int],
      eot: Int, frames: Int, durationS: Double, decodeRaw: Seq[Int] => String): Seq[Word] = {
    if (text.isEmpty) return Nil
    val f = frames / 2 // the encoder's second convolution has stride 2
    if (f == 0) return Nil
    val (wordTexts, wordTokens) = splitOnSpaces(text.toSeq :+ eot, eot, decodeRaw)
    if (wordTokens.size <= 1) return Nil
    val matrix = alignmentMatrix(scores, heads, rowTokens, frameCount, sotLength + 1 + text.length + 1, f, sotLength, text.length + 1)
    val path = negativeDtw(matrix)
    // the frame where the path first reaches each row: one per text token and the end of text
    val jumpTimes = ArrayBuffer.empty[Double]
    var previous = -1
    path.foreach { case (i, j) => if (i != previous) { jumpTimes += j / TokensPerSecond; previous = i } }
    val boundaries = wordTokens.dropRight(1).scanLeft(0)(_ + _.size)
    val alignment = ArrayBuffer.empty[Aligned]
    for (w <- 0 until boundaries.size - 1)
      alignment += new Aligned(wordTexts(w), wordTokens(w), jumpTimes(boundaries(w)), jumpTimes(boundaries(w + 1)))
    fixUp(alignment, durationS)
  }

  private final class Aligned(var word: String, var tokens: Seq[Int], var start: Double, var end: Double)

  /** Steps 1-2 up to the path: the mean over heads of the filtered, standardised attention
    * probabilities, rows `from until from + rows` of the `tokens` token rows, the first `f` frames. */
  private[whisper] def alignmentMatrix(scores: Array[Float], heads: Int, rowTokens: Int, frameCount: Int, tokens: Int, f: Int,
      from: Int, rows: Int): Array[Array[Float]] = {
    val out = Array.fill(rows)(new Array[Float](f))
    val w = new Array[Float](tokens * f)
    for (a <- 0 until heads) {
      // softmax over the window's frames
      for (i <- 0 until tokens) {
        val base = (a * rowTokens + i) * frameCount
        var mx = Float.NegativeInfinity
        for (j <- 0 until f) mx = math.max(mx, scores(base + j))
        var sum = 0.0f
        for (j <- 0 until f) { val e = math.exp((scores(base + j) - mx).toDouble).toFloat; w(i * f + j) = e; sum += e }
        for (j <- 0 until f) w(i * f + j) /= sum
      }
      // standardised over the tokens, per frame
      for (j <- 0 until f) {
        var mean = 0.0
        for (i <- 0 until tokens) mean += w(i * f + j)
        mean /= tokens
        var v = 0.0
        for (i <- 0 until tokens) { val d = w(i * f + j) - mean; v += d * d }
        val sd = math.sqrt(v / tokens)
        for (i <- 0 until tokens) w(i * f + j) = ((w(i * f + j) - mean) / sd).toFloat
      }
      // median filter over the frames, mean over heads (only the rows the path needs)
      for (r <- 0 until rows) {
        val filtered = medianFilter(w, (from + r) * f, f, MedianFilterWidth)
        for (j <- 0 until f) out(r)(j) += filtered(j) / heads
      }
    }
    out
  }

  /** CTranslate2's median filter of `x(offset until offset + n)`: width `width`, the ends reflected
    * (`abs(j + k)`, `2n - 2 - (j + k)`); unchanged where `n <= width / 2`. */
  private[whisper] def medianFilter(x: Array[Float], offset: Int, n: Int, width: Int): Array[Float] = {
    val rank = width / 2
    if (n <= rank) return java.util.Arrays.copyOfRange(x, offset, offset + n)
    val window = new Array[Float](width)
    Array.tabulate(n) { j =>
      for (k <- -rank to rank) {
        var read = math.abs(j + k)
        if (read >= n) read = n - (read - n) - 2
        window(k + rank) = x(offset + read)
      }
      java.util.Arrays.sort(window)
      window(rank)
    }
  }

  /** CTranslate2's `negative_dtw`: the monotonic path (row, column) from (0, 0) to the last cell
    * through `-x` of least cost, float32 costs, ties to the left (column - 1). */
  private[whisper] def negativeDtw(x: Array[Array[Float]]): Seq[(Int, Int)] = {
    val n = x.length
    val m = if (n == 0) 0 else x(0).length
    val cost = Array.fill(n + 1)(Array.fill(m + 1)(Float.PositiveInfinity))
    val trace = Array.fill(n + 1)(Array.fill(m + 1)(-1))
    cost(0)(0) = 0f
    for (j <- 1 to m; i <- 1 to n) {
      val c0 = cost(i - 1)(j - 1)
      val c1 = cost(i - 1)(j)
      val c2 = cost(i)(j - 1)
      val (c, t) = if (c0 < c1 && c0 < c2) (c0, 0) else if (c1 < c0 && c1 < c2) (c1, 1) else (c2, 2)
      cost(i)(j) = -x(i - 1)(j - 1) + c
      trace(i)(j) = t
    }
    for (k <- 0 to m) trace(0)(k) = 2
    for (k <- 0 to n) trace(k)(0) = 1
    val result = ArrayBuffer.empty[(Int, Int)]
    var i = n
    var j = m
    while (i > 0 || j > 0) {
      result += ((i - 1, j - 1))
      trace(i)(j) match {
        case 0 => i -= 1; j -= 1
        case 1 => i -= 1
        case 2 => j -= 1
        case t => throw new IllegalStateException(s"unexpected DTW trace $t")
      }
    }
    result.reverse.toSeq
  }

  /** faster-whisper's `split_tokens_on_unicode`: tokens grouped until they decode to whole characters. */
  private[whisper] def splitOnUnicode(tokens: Seq[Int], decodeRaw: Seq[Int] => String): (Seq[String], Seq[Seq[Int]]) = {
    val full = decodeRaw(tokens)
    val words = ArrayBuffer.empty[String]
    val wordTokens = ArrayBuffer.empty[Seq[Int]]
    val current = ArrayBuffer.empty[Int]
    var offset = 0
    for (t <- tokens) {
      current += t
      val decoded = decodeRaw(current.toSeq)
      val at = decoded.indexOf('\ufffd')
      if (at < 0 || (at + offset < full.length && full.charAt(at + offset) == '\ufffd')) {
        words += decoded
        wordTokens += current.toList
        current.clear()
        offset += decoded.length
      }
    }
    (words.toSeq, wordTokens.toSeq)
  }

  /** faster-whisper's `split_tokens_on_spaces` (languages written with spaces between words). */
  private[whisper] def splitOnSpaces(tokens: Seq[Int], eot: Int, decodeRaw: Seq[Int] => String): (Seq[String], Seq[Seq[Int]]) = {
    val (subwords, subwordTokens) = splitOnUnicode(tokens, decodeRaw)
    val words = ArrayBuffer.empty[String]
    val wordTokens = ArrayBuffer.empty[Seq[Int]]
    subwords.zip(subwordTokens).foreach { case (sub, toks) =>
      val special = toks.head >= eot
      if (special || sub.startsWith(" ") || Punctuation.contains(sub.strip()) || words.isEmpty) {
        words += sub
        wordTokens += toks
      } else {
        words(words.size - 1) = words.last + sub
        wordTokens(wordTokens.size - 1) = wordTokens.last ++ toks
      }
    }
    (words.toSeq, wordTokens.toSeq)
  }

  /** numpy's median. */
  private def median(xs: Seq[Double]): Double = {
    val s = xs.sorted
    val n = s.size
    if (n % 2 == 1) s(n / 2) else (s(n / 2 - 1) + s(n / 2)) / 2
  }

  /** Step 3 after the word times: faster-whisper's fix-ups for one window decoded as one segment
    * (from 0 to `durationS`, no speech before it). */
  private def fixUp(alignment: ArrayBuffer[Aligned], durationS: Double): Seq[Word] = {
    val durations = alignment.map(a => a.end - a.start).filter(_ != 0.0)
    val medianDuration = if (durations.nonEmpty) math.min(0.7, median(durations.toSeq)) else 0.0
    val maxDuration = medianDuration * 2
    if (durations.nonEmpty) for (i <- 1 until alignment.size) {
      val a = alignment(i)
      if (a.end - a.start > maxDuration) {
        if (SentenceEndMarks.contains(a.word)) a.end = a.start + maxDuration
        else if (SentenceEndMarks.contains(alignment(i - 1).word)) a.start = a.end - maxDuration
      }
    }
    mergePunctuations(alignment)
    val words = alignment.filter(_.word.nonEmpty).map(a => new Aligned(a.word, a.tokens, PyFormat.round(a.start, 2), PyFormat.round(a.end, 2)))
    if (words.nonEmpty) {
      val lastSpeech = 0.0
      val w0 = words.head
      if (w0.end - lastSpeech > medianDuration * 4 &&
          (w0.end - w0.start > maxDuration || (words.size > 1 && words(1).end - w0.start > maxDuration * 2))) {
        if (words.size > 1 && words(1).end - words(1).start > maxDuration) {
          val boundary = math.max(words(1).end / 2, words(1).end - maxDuration)
          w0.end = boundary
          words(1).start = boundary
        }
        w0.start = math.max(0.0, w0.end - maxDuration)
      }
      // the segment runs from 0 (no first-word fix-up applies) to durationS
      val last = words.last
      if (durationS > last.start && durationS + 0.5 < last.end) last.end = math.max(last.start + medianDuration, durationS)
    }
    words.map(a => Word(a.word, a.start, a.end)).toSeq
  }

  /** faster-whisper's `merge_punctuations`: prepended marks join the next word, appended ones the
    * previous word (`Python's `in` on strings: a substring test). */
  private def mergePunctuations(alignment: ArrayBuffer[Aligned]): Unit = {
    var i = alignment.size - 2
    var j = alignment.size - 1
    while (i >= 0) {
      val previous = alignment(i)
      val following = alignment(j)
      if (previous.word.startsWith(" ") && PrependPunctuations.contains(previous.word.strip())) {
        following.word = previous.word + following.word
        following.tokens = previous.tokens ++ following.tokens
        previous.word = ""
        previous.tokens = Nil
      } else j = i
      i -= 1
    }
    i = 0
    j = 1
    while (j < alignment.size) {
      val previous = alignment(i)
      val following = alignment(j)
      if (!previous.word.endsWith(" ") && AppendPunctuations.contains(following.word)) {
        previous.word = previous.word + following.word
        previous.tokens = previous.tokens ++ following.tokens
        following.word = ""
        following.tokens = Nil
      } else i = j
      j += 1
    }
  }

  /** The most sound, in seconds, in one stretch of `samples(from until until)` before `untilS` that no
    * word accounts for (Python: `decoded.unheard_s`): before the first word, between two words, or
    * inside a word aligned over more than `wordS` (only such a word's last `wordS` count as heard). */
  def unheardS(loud: Array[Boolean], words: Seq[Word], untilS: Double, wordS: Double = Constants.WordS, frameS: Double = 0.02): Double = {
    val heard = new Array[Boolean](loud.length)
    words.foreach { w =>
      val b = math.max(0.0, w.end)
      val a = math.max(math.max(0.0, w.start), b - wordS)
      val hi = math.min(loud.length, math.ceil(b / frameS).toInt)
      for (k <- (a / frameS).toInt until hi) heard(k) = true
    }
    val n = math.min(loud.length, (untilS / frameS).toInt)
    var best = 0
    var run = 0
    for (k <- 0 until n) {
      run = if (heard(k)) 0 else run + (if (loud(k)) 1 else 0)
      best = math.max(best, run)
    }
    best * frameS
  }
}
