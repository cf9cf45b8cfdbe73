package sparkasr.audio

import java.nio.ByteBuffer
import java.nio.charset.{CharacterCodingException, CodingErrorAction, StandardCharsets}

/** Which inputs the decoder opens: an allow-list of FFmpeg demuxers for the audio containers users
  * send (WAV/RF64, W64, FLAC, OGG Vorbis/Opus, MP3, ADTS AAC, MP4/M4A, WebM/Matroska, AIFF, AU,
  * CAF, WMA) and of the audio codecs inside them. Anything else (a playlist or script that names
  * other files or URLs: concat, HLS, SDP/RTP; metadata, images, devices) is refused before FFmpeg
  * opens it, with the format FFmpeg's probe names (the Python reader's wording). */
object AudioFormats {

  /** FFmpeg demuxer names (as `AVInputFormat.name`). None of them opens another file or URL. */
  val Demuxers: Set[String] = Set(
    "wav", // WAV, RF64, BW64
    "w64",
    "flac",
    "ogg", // Vorbis, Opus, FLAC, Speex
    "mp3",
    "aac", // ADTS
    "mov,mp4,m4a,3gp,3g2,mj2", // external data references are off (enable_drefs=0)
    "matroska,webm",
    "aiff",
    "au",
    "caf",
    "asf" // WMA
  )

  /** Audio codecs we decode (FFmpeg codec names; `pcm_*` and `adpcm_*` by prefix). */
  val Codecs: Set[String] = Set(
    "flac", "alac", "mp1", "mp2", "mp3", "aac", "aac_latm", "vorbis", "opus", "speex", "ac3", "eac3", "wmav1", "wmav2",
    "wmapro", "wmalossless", "amr_nb", "amr_wb", "gsm", "gsm_ms", "g722", "g723_1", "g726", "g726le", "g729", "ilbc",
    "truehd", "mlp", "dts", "wavpack", "ape", "tta")
  private val CodecPrefixes = Seq("pcm_", "adpcm_")

  def codecAllowed(name: String): Boolean = Codecs(name) || CodecPrefixes.exists(name.startsWith)

  /** The refusal: "not an audio format we read (detected: <what>)". */
  def refused(detected: String): AudioError = new AudioError(s"not an audio format we read (detected: $detected)")

  /** What the first bytes of an input FFmpeg names no format for look like: `hls` (an M3U
    * playlist: FFmpeg only names one that has a playlist's file name or MIME type, which it is not
    * given), `text` (other UTF-8 without control characters but whitespace) or `unknown binary data`. */
  def describe(head: Array[Byte]): String = {
    val decoder = StandardCharsets.UTF_8.newDecoder()
      .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT)
    // the last few bytes may cut a multi-byte character
    val text = (0 to 3).iterator.map(cut => math.max(0, head.length - cut)).map { n =>
      try Some(decoder.decode(ByteBuffer.wrap(head, 0, n)).toString) catch { case _: CharacterCodingException => None }
    }.collectFirst { case Some(s) => s }
    text match {
      case Some(s) if s.startsWith("#EXTM3U") => "hls"
      case Some(s) if s.nonEmpty && s.forall(c => !Character.isISOControl(c) || c == '\n' || c == '\r' || c == '\t' || c == '\f') => "text"
      case _ => "unknown binary data"
    }
  }
}
