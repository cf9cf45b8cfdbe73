package sparkasr.audio

import org.bytedeco.ffmpeg.global.avutil._

/** Shared FFmpeg helpers: error text, quiet logging, one-time native loading. */
object FFmpeg {
  @volatile private var ready = false

  /** Load the natives once per JVM and keep FFmpeg from printing to stderr. */
  def init(): Unit = if (!ready) synchronized {
    if (!ready) {
      org.bytedeco.javacpp.Loader.load(classOf[org.bytedeco.ffmpeg.global.avformat])
      av_log_set_level(AV_LOG_QUIET)
      ready = true
    }
  }

  def errorText(code: Int): String = {
    val buf = new Array[Byte](256)
    av_strerror(code, buf, buf.length.toLong)
    val n = buf.indexOf(0.toByte)
    new String(buf, 0, if (n < 0) buf.length else n, java.nio.charset.StandardCharsets.UTF_8)
  }
}
