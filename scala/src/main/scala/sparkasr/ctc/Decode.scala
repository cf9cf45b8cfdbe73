package sparkasr.ctc

import scala.collection.mutable.ArrayBuffer

import sparkasr.Constants.SampleRate
import sparkasr.evaluation.PyStr

/** Greedy CTC decoding with offsets and long-audio chunking (Python: `sparkasr.ctc.decode`), i.e.
  * transformers' `Wav2Vec2CTCTokenizer.decode` and the chunk arithmetic of its ASR pipeline:
  * consecutive repeats are collapsed first, then blanks dropped, so `M I D D <pad> D L E` gives
  * `MIDDLE`; the word delimiter becomes a space; the text is stripped. */
object Decode {

  /** Python's `round()` of a float: to the nearest integer, ties to even. */
  def pyRound(x: Double): Long = math.rint(x).toLong

  def argmax(logits: Array[Float], frames: Int, vocab: Int): Array[Int] = {
    val ids = new Array[Int](frames)
    var f = 0
    while (f < frames) {
      var best = 0
      var bv = logits(f * vocab)
      var v = 1
      while (v < vocab) {
        val x = logits(f * vocab + v)
        if (x > bv) { bv = x; best = v }
        v += 1
      }
      ids(f) = best
      f += 1
    }
    ids
  }

  /** Collapse repeats, then drop blanks (`Wav2Vec2CTCTokenizer.decode`, special tokens kept). */
  def decodeIds(ids: Array[Int], vocab: Vocab, offsets: Boolean = true): Decoded = {
    val n = vocab.size
    val unk = { val u = vocab.tokens.indexOf(vocab.unkToken); if (u >= 0) u else n }
    val arr = ids.map(i => if (i < 0 || i >= n) unk else i)
    val chars = new StringBuilder
    val charOffsets = ArrayBuffer.empty[CharOffset]
    var s = 0
    while (s < arr.length) {
      var e = s + 1
      while (e < arr.length && arr(e) == arr(s)) e += 1
      var tok = vocab.token(arr(s))
      if (tok != vocab.padToken) {
        if (tok == vocab.wordDelimiterToken) tok = vocab.replaceWordDelimiterChar
        chars ++= tok
        if (offsets) charOffsets += CharOffset(tok, s, e)
      }
      s = e
    }
    var text = PyStr.strip(chars.toString)
    if (vocab.doLowerCase) text = text.toLowerCase(java.util.Locale.ROOT)
    if (vocab.cleanUpTokenizationSpaces) text = cleanUpTokenization(text)
    val words = if (offsets) wordOffsets(charOffsets.toSeq, vocab.replaceWordDelimiterChar) else Nil
    Decoded(text, charOffsets.toSeq, words)
  }

  def greedyDecode(logits: Array[Float], frames: Int, vocabSize: Int, vocab: Vocab, offsets: Boolean = true): Decoded =
    decodeIds(argmax(logits, frames, vocabSize), vocab, offsets)

  /** Words from character offsets (`Wav2Vec2CTCTokenizer._get_word_offsets`). */
  def wordOffsets(chars: Seq[CharOffset], delimiter: String = " "): Seq[WordOffset] = {
    val out = ArrayBuffer.empty[WordOffset]
    var lastState = "SPACE"
    var word = ""
    var start = 0
    var end = 0
    for (c <- chars) {
      val state = if (c.char == delimiter) "SPACE" else "WORD"
      if (state == lastState) { end = c.endOffset; word += c.char }
      else if (state == "SPACE") out += WordOffset(word, start, end)
      else { start = c.startOffset; end = c.endOffset; word = c.char }
      lastState = state
    }
    if (lastState == "WORD") out += WordOffset(word, start, end)
    out.toSeq
  }

  /** transformers' `clean_up_tokenization` (only when the tokenizer asks for it). */
  def cleanUpTokenization(t: String): String =
    t.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",").replace(" ' ", "'")
      .replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s").replace(" 've", "'ve").replace(" 're", "'re")

  /** Per-frame probability of the argmax token (softmax max), in float32 like numpy. */
  def frameConfidences(logits: Array[Float], frames: Int, vocab: Int): Array[Float] = {
    val out = new Array[Float](frames)
    val y = new Array[Float](vocab)
    var f = 0
    while (f < frames) {
      var m = Float.NegativeInfinity
      var v = 0
      while (v < vocab) { m = math.max(m, logits(f * vocab + v)); v += 1 }
      v = 0
      while (v < vocab) { y(v) = math.exp((logits(f * vocab + v) - m).toDouble).toFloat; v += 1 }
      val lse = math.log(NumpyF32.sum(y).toDouble).toFloat
      out(f) = math.exp((0f - lse).toDouble).toFloat // max(y - lse) is at the argmax, where y == 0
      f += 1
    }
    out
  }

  // -- long audio --------------------------------------------------------------------------

  /** (chunk_len, stride_left, stride_right) in samples, aligned to the model stride (HF). */
  def chunkSizes(chunkLengthS: Double, strideLengthS: Option[(Double, Double)], ratio: Int, rate: Int = SampleRate): (Int, Int, Int) = {
    require(chunkLengthS > 0, "chunk_length_s must be > 0")
    val (l, r) = strideLengthS.getOrElse((chunkLengthS / 6, chunkLengthS / 6))
    val align = math.max(1, ratio)
    val chunkLen = (pyRound(chunkLengthS * rate / align) * align).toInt
    val left = (pyRound(l * rate / align) * align).toInt
    val right = (pyRound(r * rate / align) * align).toInt
    require(chunkLen >= left + right, "chunk length must be greater than stride_left + stride_right")
    require(chunkLen - left - right > 0, "chunk length minus strides must be > 0")
    (chunkLen, left, right)
  }

  /** The chunks of the ASR pipeline's `chunk_iter` for one input. */
  def planChunks(n: Int, chunkLen: Int, strideLeft: Int, strideRight: Int): Seq[ChunkSpan] = {
    val step = chunkLen - strideLeft - strideRight
    require(step > 0, "chunk length must be greater than the strides")
    val out = ArrayBuffer.empty[ChunkSpan]
    var start = 0
    var done = false
    while (!done && start < math.max(n, 1)) {
      val endNominal = start + chunkLen
      val end = math.min(endNominal, n)
      val left = if (start == 0) 0 else strideLeft
      val isLast = endNominal >= n
      val right = if (isLast) 0 else strideRight
      if (end - start > left) out += ChunkSpan(start, end, left, right)
      if (isLast) done = true
      start += step
    }
    out.toSeq
  }

  /** HF `rescale_stride`: (token_n, left_frames, right_frames) of a chunk. */
  def strideFrames(span: ChunkSpan, ratio: Int): (Int, Int, Int) = {
    val r = 1.0 / ratio
    val n = span.length
    val tokenN = pyRound(n * r).toInt
    val left = pyRound(span.left.toDouble / n * tokenN).toInt
    val right = pyRound(span.right.toDouble / n * tokenN).toInt
    (tokenN, left, right)
  }

  /** Drop each chunk's stride frames and concatenate (`items[left : token_n - right]`, Python slice
    * semantics). Each element of `chunkLogits` is (frames, vocab) row-major. */
  def stitch(chunkLogits: Seq[(Array[Float], Int)], spans: Seq[ChunkSpan], ratio: Int, vocab: Int): (Array[Float], Int) = {
    require(chunkLogits.size == spans.size, "one logits array per chunk span is needed")
    val parts = chunkLogits.zip(spans).map { case ((lg, frames), span) =>
      val (tokenN, left, right) = strideFrames(span, ratio)
      val (from, until) = PyStr.sliceBounds(frames, left, tokenN - right)
      (lg, from, until)
    }
    val total = parts.map(p => p._3 - p._2).sum
    val out = new Array[Float](total * vocab)
    var pos = 0
    parts.foreach { case (lg, from, until) =>
      System.arraycopy(lg, from * vocab, out, pos * vocab, (until - from) * vocab)
      pos += until - from
    }
    (out, total)
  }
}
