package sparkasr

/** One unit of work: 16 kHz mono float32 samples, or the error that prevented decoding. */
final case class AudioItem(samples: Array[Float], source: String = "", offsetS: Double = 0.0, error: Option[String] = None) {
  def durationS: Double = if (samples == null) 0.0 else samples.length.toDouble / Constants.SampleRate
}
