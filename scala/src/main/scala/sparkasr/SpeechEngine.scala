package sparkasr

/** What the Spark glue calls once per batch (Python: the engine contract in `sparkasr.records`):
  * [[AudioItem]]s in, one [[Transcript]] per item out, in order, never an exception for a bad item
  * (a per-item problem becomes `Transcript.error`). */
trait SpeechEngine {
  def transcribeBatch(items: Seq[AudioItem]): Seq[Transcript]
}
