package sparkasr.audio

import org.bytedeco.ffmpeg.avutil.AVChannelLayout
import org.bytedeco.ffmpeg.global.avutil._
import org.bytedeco.ffmpeg.global.swresample._
import org.bytedeco.ffmpeg.swresample.SwrContext
import org.bytedeco.javacpp.{FloatPointer, PointerPointer}
import sparkasr.Constants.SampleRate

/** Streaming mono float32 resampling to 16 kHz with FFmpeg's libswresample (the JVM has no soxr:
  * the FFmpeg build of the JavaCPP presets does not include libsoxr). Its windowed-sinc filter is set
  * to a long Kaiser window so that it stays close to soxr's "HQ" used by the Python reader; the
  * difference is measured in the tests (docs/scala.md states it). Not thread-safe: one per stream. */
final class Resampler(val inRate: Int) extends AutoCloseable {
  if (inRate <= 0) throw new AudioError(s"invalid sample rate $inRate")

  private val ctx: SwrContext = {
    val inL = new AVChannelLayout()
    val outL = new AVChannelLayout()
    av_channel_layout_default(inL, 1)
    av_channel_layout_default(outL, 1)
    val holder = new PointerPointer[SwrContext](1L)
    holder.put(0L, null.asInstanceOf[org.bytedeco.javacpp.Pointer]) // *ps must be NULL: a new context
    val rc = swr_alloc_set_opts2(holder, outL, AV_SAMPLE_FMT_FLT, SampleRate, inL, AV_SAMPLE_FMT_FLT, inRate, 0, null)
    val c = holder.get(classOf[SwrContext], 0)
    if (rc < 0 || c == null || c.isNull) throw new AudioError(s"cannot create a resampler from $inRate Hz (${FFmpeg.errorText(rc)})")
    Resampler.options.foreach { case (k, v) => av_opt_set_double(c, k, v, 0) }
    val init = swr_init(c)
    if (init < 0) { swr_free(c); throw new AudioError(s"cannot initialise a resampler from $inRate Hz (${FFmpeg.errorText(init)})") }
    c
  }
  private var inBuf = new FloatPointer(0L)
  private var outBuf = new FloatPointer(0L)
  private val inPtrs = new PointerPointer[FloatPointer](1L)
  private val outPtrs = new PointerPointer[FloatPointer](1L)

  /** Resample `n` samples of `x` from `offset`; returns what the filter can emit so far. */
  def push(x: Array[Float], offset: Int, n: Int): Array[Float] = {
    if (n == 0) return Array.emptyFloatArray
    if (inBuf.capacity() < n) { inBuf.close(); inBuf = new FloatPointer(n.toLong) }
    inBuf.position(0).put(x, offset, n)
    convert(n, inBuf)
  }

  /** The samples the filter still holds (end of stream). */
  def flush(): Array[Float] = convert(0, null)

  private def convert(n: Int, in: FloatPointer): Array[Float] = {
    val maxOut = swr_get_out_samples(ctx, n) + 16
    if (outBuf.capacity() < maxOut) { outBuf.close(); outBuf = new FloatPointer(maxOut.toLong) }
    outPtrs.put(0, outBuf)
    val got =
      if (in == null) swr_convert(ctx, outPtrs, maxOut, null.asInstanceOf[PointerPointer[FloatPointer]], 0)
      else { inPtrs.put(0, in); swr_convert(ctx, outPtrs, maxOut, inPtrs, n) }
    if (got < 0) throw new AudioError(s"resampling failed (${FFmpeg.errorText(got)})")
    val out = new Array[Float](got)
    outBuf.position(0).get(out, 0, got)
    out
  }

  override def close(): Unit = {
    swr_free(ctx)
    inBuf.close(); outBuf.close(); inPtrs.close(); outPtrs.close()
  }
}

object Resampler {

  /** libswresample options (see docs/scala.md for how close this comes to soxr HQ). */
  val options: Seq[(String, Double)] = Seq(
    "filter_size" -> 96, // taps per phase
    "phase_shift" -> 10, // 1024 phases
    "linear_interp" -> 1,
    "cutoff" -> 0.975,
    "filter_type" -> 2, // Kaiser
    "kaiser_beta" -> 14
  )
}
