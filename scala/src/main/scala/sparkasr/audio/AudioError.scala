package sparkasr.audio

/** Audio that cannot be turned into samples; the message says why (Python: `sparkasr.audio.AudioError`). */
final class AudioError(message: String) extends IllegalArgumentException(message)
