package sparkasr.whisper

import sparkasr.Constants
import sparkasr.Constants.SampleRate

/** The speech of one item, computed on first use (Python: `sparkasr.whisper.vad.SpeechMap`). */
final class SpeechMap(samples: Array[Float], vad: SileroVad, threshold: Double = 0.5) {
  lazy val spans: Seq[(Double, Double)] = vad.speechSpans(samples, threshold)

  /** Whether speech lies within [startS, endS] seconds of the item (default: all of it). */
  def hasSpeech(startS: Double = 0.0, endS: Double = Double.NaN): Boolean = {
    val end = if (endS.isNaN) samples.length.toDouble / SampleRate else endS
    spans.exists { case (a, b) => a < end + Constants.VadPadS && b > startS - Constants.VadPadS }
  }
}
