package sparkasr

/** An engine's result for one [[AudioItem]] (Python: `sparkasr.records.Transcript`). */
final case class Transcript(
    text: String = "",
    chunks: Seq[Chunk] = Nil,
    language: Option[String] = None,
    languageProbability: Option[Double] = None,
    durationS: Double = 0.0,
    source: String = "",
    offsetS: Double = 0.0,
    error: Option[String] = None,
    extra: Map[String, String] = Map.empty
)

object Transcript {

  /** Empty text and an error naming the file (the reason is kept as is when it already names it). */
  def error(item: AudioItem, reason: String): Transcript = {
    val where = if (item.source.nonEmpty) item.source else "<in-memory audio>"
    val msg = if (reason.startsWith(where)) reason else s"$where: $reason"
    Transcript(durationS = item.durationS, source = item.source, offsetS = item.offsetS, error = Some(msg))
  }
}
