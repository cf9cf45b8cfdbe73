package sparkasr.whisper

/** Per decoder layer the self-attention keys/values [R, H, length, Dh] as arrays. */
final case class SelfCache(kv: Seq[(Array[Float], Array[Float])], rows: Int, length: Int) {
  /** The cache rows `from` (beam reordering, finished rows dropped), in that order. */
  def select(from: Seq[Int]): SelfCache = {
    if (from.size == rows && from.indices.forall(i => from(i) == i)) return this
    val row = if (rows == 0) 0 else kv.head._1.length / rows
    def sel(a: Array[Float]): Array[Float] = {
      val out = new Array[Float](from.size * row)
      from.zipWithIndex.foreach { case (f, t) => System.arraycopy(a, f * row, out, t * row, row) }
      out
    }
    SelfCache(kv.map { case (k, v) => (sel(k), sel(v)) }, from.size, length)
  }
}
