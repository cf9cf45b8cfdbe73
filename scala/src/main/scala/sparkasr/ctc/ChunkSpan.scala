package sparkasr.ctc

/** One chunk of a long input, in samples: `samples[start, end)`; the logits of the `left`/`right`
  * stride samples are dropped after inference. */
final case class ChunkSpan(start: Int, end: Int, left: Int, right: Int) {
  def length: Int = end - start
}
