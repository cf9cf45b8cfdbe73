package sparkasr

/** A timed piece of a transcript: text + [start, end] seconds; kind is segment, word or char. */
final case class Chunk(text: String, start: Double, end: Double, kind: String = "segment", probability: Option[Double] = None)
