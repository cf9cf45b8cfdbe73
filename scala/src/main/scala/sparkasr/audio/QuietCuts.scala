package sparkasr.audio

import sparkasr.Constants.SampleRate

/** Cutting long audio at quiet points and finding where the sound is (Python: `sparkasr.audio`
  * `quiet_cut`, `cut_pieces`, `speech_bounds`; same frames, thresholds and tie rules). */
object QuietCuts {

  /** Index near `target` (within `search` samples before it) at the quietest `frame`-sample frame;
    * `latestWithin > 1`: the latest frame whose energy is at most that many times the quietest's. */
  def quietCut(samples: Array[Float], from: Int, target: Int, search: Int, frame: Int = 1600, latestWithin: Double = 1.0): Int = {
    val lo = math.max(frame, target - search)
    if (target - lo < frame) return target
    val n = (target - lo) / frame
    if (n == 0) return target
    val energy = Array.tabulate(n) { f =>
      var s = 0.0
      var i = from + lo + f * frame
      val end = i + frame
      while (i < end) { val x = samples(i); s += x.toDouble * x; i += 1 }
      (s / frame).toFloat.toDouble // float32 energies, as numpy's
    }
    var best = 0
    var f = 1
    while (f < n) { if (energy(f) < energy(best)) best = f; f += 1 }
    if (latestWithin > 1.0) {
      val limit = energy(best) * latestWithin + 1e-12
      best = (0 until n).filter(energy(_) <= limit).last
    }
    lo + best * frame + frame / 2
  }

  /** `(start, end)` sample ranges of at most `windowS` seconds covering `samples`, each cut moved
    * back (by up to `searchS`) to a quiet 100-ms frame: the latest one with at most `latestWithin`
    * times the quietest frame's energy, so pieces stay long. */
  def cutPieces(samples: Array[Float], windowS: Double, searchS: Double, latestWithin: Double = 4.0): Seq[(Int, Int)] = {
    val n = samples.length
    val size = (windowS * SampleRate).toInt
    val search = (searchS * SampleRate).toInt
    val out = Seq.newBuilder[(Int, Int)]
    var start = 0
    while (n - start > size) {
      val cut = start + quietCut(samples, start, size, math.min(search, size / 2), latestWithin = latestWithin)
      out += ((start, cut))
      start = cut
    }
    out += ((start, n))
    out.result()
  }

  /** One flag per `frameS` frame of `samples(from until until)` (Python: `audio.sound_frames`): louder
    * than a tenth of the loud frames' level (95th percentile RMS). All false when nothing stands out
    * (silence, or fewer than 3 frames). */
  def soundFrames(samples: Array[Float], from: Int, until: Int, frameS: Double = 0.02): Array[Boolean] = {
    val frame = math.max(1, (frameS * SampleRate).toInt)
    val k = (until - from) / frame
    if (k < 3) return new Array[Boolean](k)
    val rms = Array.tabulate(k) { f =>
      var s = 0.0
      var i = from + f * frame
      val end = i + frame
      while (i < end) { val x = samples(i); s += x.toDouble * x; i += 1 }
      math.sqrt((s / frame).toFloat.toDouble).toFloat.toDouble
    }
    val level = percentile(rms, 95.0)
    if (level <= 1e-5) new Array[Boolean](k) else rms.map(_ > 0.1 * level)
  }

  /** `(startS, endS)` of the sound in `samples(from until until)` ([[soundFrames]]), padded by
    * `padS`; the whole span when nothing stands out. */
  def speechBounds(samples: Array[Float], from: Int, until: Int, frameS: Double = 0.02, padS: Double = 0.1): (Double, Double) = {
    val dur = (until - from).toDouble / SampleRate
    val loud = soundFrames(samples, from, until, frameS)
    val first = loud.indexOf(true)
    if (first < 0) return (0.0, dur)
    (math.max(0.0, first * frameS - padS), math.min(dur, (loud.lastIndexOf(true) + 1) * frameS + padS))
  }

  /** numpy's default (linear) percentile. */
  def percentile(values: Array[Double], q: Double): Double = {
    val s = values.sorted
    val pos = q / 100.0 * (s.length - 1)
    val lo = math.floor(pos).toInt
    val hi = math.min(lo + 1, s.length - 1)
    s(lo) + (s(hi) - s(lo)) * (pos - lo)
  }
}
