package sparkasr

/** The records the engines and the Spark glue share (Python: `sparkasr.types` / `records`).
  *
  * Engines take [[AudioItem]]s and return one [[Transcript]] per item, in order, and never throw for a
  * bad item: a per-item problem becomes `Transcript.error`. */
object Records {
  val SampleRate: Int = 16000
}

/** One unit of work: 16 kHz mono float32 samples, or the error that prevented decoding. */
final case class AudioItem(samples: Array[Float], source: String = "", offsetS: Double = 0.0, error: Option[String] = None) {
  def durationS: Double = if (samples == null) 0.0 else samples.length.toDouble / Records.SampleRate
}

/** A timed piece of a transcript: text + [start, end] seconds; kind is segment, word or char. */
final case class Chunk(text: String, start: Double, end: Double, kind: String = "segment", probability: Option[Double] = None)

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

/** What the Spark glue calls once per batch (CTC today, Whisper in its own package later). */
trait SpeechEngine {
  def transcribeBatch(items: Seq[AudioItem]): Seq[Transcript]
}
