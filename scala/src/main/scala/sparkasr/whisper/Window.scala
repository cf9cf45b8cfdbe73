package sparkasr.whisper

/** One decoded window (at most 30 s): tokens (timestamps included), text and Whisper's measures. */
final case class Window(
    tokens: Array[Int],
    text: String,
    language: String,
    languageProbability: Double,
    avgLogprob: Double,
    noSpeechProb: Double,
    temperature: Double,
    compressionRatio: Double,
    silent: Boolean = false,
    words: Option[Seq[Word]] = None) {
  /** Whisper's own no-speech rule (no-speech probability over 0.6 and a low average log-probability). */
  def noSpeech(o: WhisperOptions): Boolean = noSpeechProb > o.noSpeechThreshold && avgLogprob < o.logProbThreshold
  /** Whisper's checks failed (faster-whisper then tries the next temperature). */
  def failed(o: WhisperOptions): Boolean = compressionRatio > o.compressionRatioThreshold || avgLogprob < o.logProbThreshold
  /** No text: Whisper's rule, or the VAD gate found no speech under a doubtful decode. */
  def empty(o: WhisperOptions): Boolean = silent || noSpeech(o)
}
