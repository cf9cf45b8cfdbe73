package sparkasr.audio

import sparkasr.Constants
import sparkasr.Constants.SampleRate

/** In-memory audio: validation, down-mix, resampling to 16 kHz mono float32 (Python: `sparkasr.audio`). */
object Audio {

  /** Non-empty, finite, not silent; returns the samples unchanged. */
  def validate(samples: Array[Float]): Array[Float] = {
    if (samples == null || samples.isEmpty) throw new AudioError("audio has zero length (no samples)")
    var peak = 0f
    var i = 0
    while (i < samples.length) {
      val x = samples(i)
      if (x.isNaN || x.isInfinite) throw new AudioError("audio contains NaN or infinite samples")
      val a = math.abs(x)
      if (a > peak) peak = a
      i += 1
    }
    if (peak < Constants.SilencePeak) throw new AudioError("audio is silent (peak below -90 dBFS); nothing to transcribe")
    samples
  }

  def checkFinite(samples: Array[Float]): Unit = {
    var i = 0
    while (i < samples.length) {
      val x = samples(i)
      if (x.isNaN || x.isInfinite) throw new AudioError("audio contains NaN or infinite samples")
      i += 1
    }
  }

  /** Interleaved samples -> their channel mean (summed left to right in float32, then divided, as
    * numpy's float32 `mean(axis=1)` computes it for fewer than 8 channels). */
  def downmix(interleaved: Array[Float], channels: Int): Array[Float] = {
    if (channels <= 1) return interleaved
    if (interleaved.length % channels != 0)
      throw new AudioError(s"${interleaved.length} samples is not a multiple of $channels channels")
    val n = interleaved.length / channels
    val out = new Array[Float](n)
    var i = 0
    while (i < n) {
      var s = 0f
      var c = 0
      while (c < channels) { s += interleaved(i * channels + c); c += 1 }
      out(i) = s / channels
      i += 1
    }
    out
  }

  /** An in-memory float array (interleaved when `channels` > 1) as 16 kHz mono float32. */
  def toMono16k(samples: Array[Float], sampleRate: Int, channels: Int = 1): Array[Float] = {
    if (sampleRate <= 0) throw new AudioError(s"invalid sample rate $sampleRate")
    val mono = downmix(samples, channels)
    checkFinite(mono)
    if (sampleRate == SampleRate || mono.isEmpty) mono
    else {
      val r = new Resampler(sampleRate)
      try {
        val a = r.push(mono, 0, mono.length)
        val b = r.flush()
        concat(Seq(a, b))
      } finally r.close()
    }
  }

  def concat(parts: Seq[Array[Float]]): Array[Float] = {
    val out = new Array[Float](parts.iterator.map(_.length).sum)
    var pos = 0
    parts.foreach { p => System.arraycopy(p, 0, out, pos, p.length); pos += p.length }
    out
  }
}
