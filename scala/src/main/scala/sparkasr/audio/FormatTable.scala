// Generated from python/sparkasr/formats.py by `python -m sparkasr.generated --write`: do not edit.
// Change the Python side and regenerate; `python -m sparkasr.generated --check` fails on a stale copy.

package sparkasr.audio

/** Which formats the decoder reads and the words it refuses the rest with, as the Python reader
  * (`sparkasr.formats`): [[Sniff]] names a file's container from its first bytes with these signatures. */
object FormatTable {
  /** bytes of a file's start that the sniffer looks at (Python: `HEAD_BYTES`) */
  val HeadBytes: Int = 4096
  /** FFmpeg's protocol_whitelist value that allows no protocol (Python: `NO_PROTOCOL`) */
  val NoProtocol: String = "none"
  /** the audio containers read: FFmpeg demuxer -> the container's name (Python: `CONTAINERS`) */
  val Containers: Map[String, String] = Map(
    "wav" -> "WAV / RF64 / BW64",
    "w64" -> "Sony Wave64",
    "flac" -> "FLAC",
    "ogg" -> "Ogg (Opus, Vorbis, FLAC, Speex)",
    "mp3" -> "MP3 / MPEG audio",
    "aac" -> "AAC (ADTS)",
    "mov" -> "MP4 / M4A / 3GP / QuickTime",
    "matroska" -> "WebM / Matroska (MKA)",
    "aiff" -> "AIFF / AIFF-C",
    "caf" -> "Apple CAF",
    "au" -> "Sun AU",
    "asf" -> "WMA / ASF",
    "amr" -> "AMR"
  )
  /** the audio decoders allowed (FFmpeg decoder names), besides every one of [[CodecFamilies]] (Python:
    * `AUDIO_CODECS`) */
  val AudioCodecs: Set[String] = Set(
    "aac", "aac_fixed", "aac_latm", "ac3", "ac3_fixed", "alac", "amrnb", "amrwb", "dca", "eac3", "evrc", "flac",
    "g722", "g723_1", "g726", "g726le", "g729", "gsm", "gsm_ms", "ilbc", "libfdk_aac", "libgsm", "libgsm_ms",
    "libopencore_amrnb", "libopencore_amrwb", "libopus", "libspeex", "libvorbis", "mace3", "mace6", "mlp", "mp1",
    "mp1float", "mp2", "mp2float", "mp3", "mp3adu", "mp3adufloat", "mp3float", "opus", "qcelp", "qdm2", "qdmc",
    "speex", "truehd", "tta", "vorbis", "wavpack", "wmalossless", "wmapro", "wmav1", "wmav2", "wmavoice"
  )
  val CodecFamilies: Seq[String] = Seq("pcm_", "adpcm_")

  def audioCodecAllowed(name: String): Boolean = AudioCodecs(name) || CodecFamilies.exists(name.startsWith)

  /** text formats FFmpeg would act on: a regex matched at the start of the lower-cased text after blank space -> its
    * name, the first match wins (Python: `_TEXT_SIGNATURES`) */
  val TextSignatures: Seq[(String, String)] = Seq(
    ("ffconcat\\s+version", "FFmpeg concat script"),
    ("#extm3u|#ext-x-|#extinf", "HLS / M3U playlist"),
    (";ffmetadata", "FFmpeg metadata text"),
    ("v=0\\s", "SDP session description (RTP streams)"),
    ("<\\?xml|<mpd|<smil", "XML (DASH manifest or similar)"),
    ("<!doctype|<html", "HTML"),
    ("webvtt|\\[script info\\]|\\d+\\s*\\r?\\n\\d\\d:\\d\\d:\\d\\d", "subtitles (text)"),
    ("[{\\[]", "JSON"),
    ("subfile[,:]", "an FFmpeg subfile URL"),
    ("(file|concat|pipe|data|https?|ftp|rtp|rtsp|rtmp|srt|udp|tcp|unix|fd|crypto|cache|async|hls):", "a URL"),
    ("file\\s", "FFmpeg concat script")
  )
  /** binary formats by their magic bytes (hex) -> name; an empty name: BMP, whose header is checked (Python:
    * `_BINARY_SIGNATURES`) */
  val BinarySignatures: Seq[(String, String)] = Seq(
    ("89504e470d0a1a0a", "PNG image"),
    ("ffd8ff", "JPEG image"),
    ("474946383761", "GIF image"),
    ("474946383961", "GIF image"),
    ("424d", ""),
    ("49492a00", "TIFF image"),
    ("4d4d002a", "TIFF image"),
    ("00000100", "ICO image"),
    ("25504446", "PDF document"),
    ("504b0304", "ZIP archive"),
    ("1f8b", "gzip data"),
    ("7f454c46", "ELF executable"),
    ("000001ba", "MPEG program stream (video)"),
    ("464c5601", "Flash video")
  )

  /** the error for a file that is not an audio format we read (Python: `refusal`) */
  def refusal(detected: String): String = "not an audio format we read (detected: " + detected + ")"
  /** the error for an audio codec outside the list (Python: `check_codec`) */
  def codecRefusal(codec: String, container: String): String =
    "the " + container + " file's audio codec '" + codec + "' is not one we decode"
}
