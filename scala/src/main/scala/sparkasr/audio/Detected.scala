package sparkasr.audio

/** What the first bytes of a file are (Python: `sparkasr.formats.Detected`): `name` for messages;
  * `demuxer`: the FFmpeg demuxer that opens it (None: FFmpeg never sees it); `audio`: an audio
  * container we read. */
final case class Detected(name: String, demuxer: Option[String] = None, audio: Boolean = false)
