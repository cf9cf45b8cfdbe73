package sparkasr.whisper

import java.io.File

import scala.collection.mutable.ArrayBuffer
import scala.jdk.CollectionConverters._

import ai.onnxruntime.OnnxTensor
import sparkasr.Constants
import sparkasr.Constants.SampleRate
import sparkasr.onnx.OnnxModel

/** The Silero VAD (v6) that faster-whisper bundles (`faster_whisper/assets/silero_vad_v6.onnx`, MIT;
  * copied into the export by `sparkasr convert`), on ONNX Runtime Java with one thread, as
  * faster-whisper runs it (Python: `faster_whisper.vad.SileroVADModel` and `get_speech_timestamps`,
  * ported here line by line, and `sparkasr.whisper.vad.speech_spans`). */
final class SileroVad private (val file: File) {
  import SileroVad._
  private val model: OnnxModel = OnnxModel.get(file.getAbsolutePath, 1)

  /** Speech probability per 512-sample frame of `audio` (its length a multiple of 512):
    * faster-whisper's `SileroVADModel.__call__`: each frame prefixed with the last 64 samples of
    * the frame before (zeros for the first), the last frame's own last 64 samples zeroed (numpy's
    * view semantics there), 10000 frames per call with the LSTM state (h, c: [1, 1, 128]) carried. */
  def probabilities(audio: Array[Float]): Array[Float] = {
    require(audio.length % Frame == 0, "input size should be a multiple of 512")
    val n = audio.length / Frame
    val a = audio.clone()
    if (n > 0) java.util.Arrays.fill(a, a.length - Context, a.length, 0f)
    val out = new Array[Float](n)
    var h = new Array[Float](128)
    var c = new Array[Float](128)
    val state = Array(1L, 1L, 128L)
    var first = 0
    while (first < n) {
      val rows = math.min(EncoderBatch, n - first)
      val in = new Array[Float](rows * (Frame + Context))
      var r = 0
      while (r < rows) {
        val f = first + r
        val base = r * (Frame + Context)
        if (f > 0) System.arraycopy(a, f * Frame - Context, in, base, Context)
        System.arraycopy(a, f * Frame, in, base + Context, Frame)
        r += 1
      }
      val inputs = Map("input" -> model.floatTensor(in, Array(rows.toLong, (Frame + Context).toLong)),
        "h" -> model.floatTensor(h, state), "c" -> model.floatTensor(c, state))
      try {
        val res = model.session.run(inputs.asJava)
        try {
          def floats(i: Int): Array[Float] = {
            val b = res.get(i).asInstanceOf[OnnxTensor].getFloatBuffer
            val x = new Array[Float](b.remaining()); b.get(x); x
          }
          val p = floats(0)
          require(p.length == rows, s"${file.getName}: ${p.length} probabilities for $rows frames")
          System.arraycopy(p, 0, out, first, rows)
          h = floats(1)
          c = floats(2)
        } finally res.close()
      } finally inputs.values.foreach(_.close())
      first += rows
    }
    out
  }

  /** faster-whisper's `get_speech_timestamps(audio, VadOptions(...))`: speech chunks as
    * (start, end) sample indices. */
  def speechTimestamps(audio: Array[Float], threshold: Double = 0.5, negThreshold: Option[Double] = None,
      minSpeechDurationMs: Int = 0, maxSpeechDurationS: Double = Double.PositiveInfinity, minSilenceDurationMs: Int = 2000,
      speechPadMs: Int = 400): Seq[(Int, Int)] = {
    val sr = SampleRate.toDouble
    val minSpeechSamples = sr * minSpeechDurationMs / 1000
    val speechPadSamples = sr * speechPadMs / 1000
    val maxSpeechSamples = sr * maxSpeechDurationS - Frame - 2 * speechPadSamples
    val minSilenceSamples = sr * minSilenceDurationMs / 1000
    val minSilenceSamplesAtMaxSpeech = sr * 98 / 1000
    val length = audio.length
    // np.pad(audio, (0, 512 - len % 512)): a whole frame of zeros when the length is a multiple
    val padded = java.util.Arrays.copyOf(audio, length + (Frame - length % Frame))
    val probs = probabilities(padded)
    // numpy 2 (NEP 50): a float32 probability is compared with the Python float in float32
    val thr = threshold.toFloat
    val neg = negThreshold.getOrElse(math.max(threshold - 0.15, 0.01)).toFloat

    var triggered = false
    val speeches = ArrayBuffer.empty[Array[Long]] // (start, end)
    var cur: Array[Long] = null // current_speech; null = {}
    var tempEnd = 0L
    var prevEnd = 0L
    var nextStart = 0L
    var i = 0
    while (i < probs.length) {
      val p = probs(i)
      val at = Frame.toLong * i
      var next = false
      if (p >= thr && tempEnd != 0) {
        tempEnd = 0
        if (nextStart < prevEnd) nextStart = at
      }
      if (p >= thr && !triggered) {
        triggered = true
        cur = Array(at, 0L)
        next = true
      }
      if (!next && triggered && at - cur(0) > maxSpeechSamples) {
        if (prevEnd != 0) {
          cur(1) = prevEnd; speeches += cur
          cur = null
          if (nextStart < prevEnd) triggered = false
          else cur = Array(nextStart, 0L)
          prevEnd = 0; nextStart = 0; tempEnd = 0
        } else {
          cur(1) = at; speeches += cur
          cur = null
          prevEnd = 0; nextStart = 0; tempEnd = 0
          triggered = false
          next = true
        }
      }
      if (!next && p < neg && triggered) {
        if (tempEnd == 0) tempEnd = at
        if (at - tempEnd > minSilenceSamplesAtMaxSpeech) prevEnd = tempEnd
        if (!(at - tempEnd < minSilenceSamples)) {
          cur(1) = tempEnd
          if (cur(1) - cur(0) > minSpeechSamples) speeches += cur
          cur = null
          prevEnd = 0; nextStart = 0; tempEnd = 0
          triggered = false
        }
      }
      i += 1
    }
    if (cur != null && (length - cur(0)) > minSpeechSamples) {
      cur(1) = length
      speeches += cur
    }
    for (k <- speeches.indices) {
      val s = speeches(k)
      if (k == 0) s(0) = math.max(0.0, s(0) - speechPadSamples).toLong
      if (k != speeches.size - 1) {
        val silence = speeches(k + 1)(0) - s(1)
        if (silence < 2 * speechPadSamples) {
          s(1) += Math.floorDiv(silence, 2L)
          speeches(k + 1)(0) = math.max(0L, speeches(k + 1)(0) - Math.floorDiv(silence, 2L))
        } else {
          s(1) = math.min(length.toDouble, s(1) + speechPadSamples).toLong
          speeches(k + 1)(0) = math.max(0.0, speeches(k + 1)(0) - speechPadSamples).toLong
        }
      } else s(1) = math.min(length.toDouble, s(1) + speechPadSamples).toLong
    }
    speeches.map(s => (s(0).toInt, s(1).toInt)).toSeq
  }

  /** `sparkasr.whisper.vad.speech_spans`: (start s, end s) of the speech in `samples` (16 kHz mono),
    * in blocks of 600 s (parts under one frame skipped), VadOptions(threshold, min_speech_duration_ms
    * = 250, speech_pad_ms = 100). */
  def speechSpans(samples: Array[Float], threshold: Double = 0.5, minSpeechS: Double = 0.25): Seq[(Double, Double)] = {
    val block = (Constants.VadBlockS * SampleRate).toInt
    val spans = ArrayBuffer.empty[(Double, Double)]
    var start = 0
    while (start < samples.length) {
      val end = math.min(samples.length, start + block)
      if (end - start >= Frame) {
        val part = java.util.Arrays.copyOfRange(samples, start, end)
        speechTimestamps(part, threshold, minSpeechDurationMs = (minSpeechS * 1000).toInt, speechPadMs = 100).foreach { case (a, b) =>
          spans += (((start + a).toDouble / SampleRate, (start + b).toDouble / SampleRate))
        }
      }
      start += block
    }
    spans.toSeq
  }
}

object SileroVad {
  val FileName = "silero_vad_v6.onnx"
  val Frame = 512
  val Context = 64
  val EncoderBatch = 10000
  private val cache = new java.util.concurrent.ConcurrentHashMap[String, SileroVad]()

  /** The VAD of an ONNX file, loaded once per JVM. */
  def load(file: File): SileroVad = {
    require(file.isFile, s"no Silero VAD model at $file")
    cache.computeIfAbsent(file.getAbsolutePath, p => new SileroVad(new File(p)))
  }
}
