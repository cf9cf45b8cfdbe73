package sparkasr.audio

import java.util.regex.Pattern

/** Names a file's container from its first [[FormatTable.HeadBytes]] bytes, as the Python reader's
  * `sparkasr.formats.sniff` does, so that FFmpeg is only ever given an audio container with its
  * demuxer named (never left to probe: it would pick concat, SDP, HLS, image2, ...). The tables
  * (containers, signatures) are generated from the Python module ([[FormatTable]]); the Python
  * sniffer's answers on sample heads (`sniff_cases.json`) are the contract this one is tested on. */
object Sniff {
  private def audio(demuxer: String) = Detected(FormatTable.Containers(demuxer), Some(demuxer), audio = true)

  private val W64Guid = hex("2e91cf11a5d628db04c10000")
  private val AsfGuid = hex("3026b2758e66cf11a6d900aa0062ce6c")
  private val Binary = FormatTable.BinarySignatures.map { case (m, n) => (hex(m), n) }
  private val Text = FormatTable.TextSignatures.map { case (p, n) => (Pattern.compile(p), n) }
  private val BmpHeaderSizes = Set(12L, 40L, 52L, 56L, 64L, 108L, 124L)
  private[audio] val Unrecognised = "unrecognised data (headerless PCM needs an explicit raw format)"

  private def hex(s: String): Array[Byte] = s.grouped(2).map(b => Integer.parseInt(b, 16).toByte).toArray
  private def ascii(s: String): Array[Byte] = s.getBytes("ISO-8859-1")

  /** `h[off:off + m.length] == m`. */
  private def at(h: Array[Byte], off: Int, m: Array[Byte]): Boolean =
    h.length >= off + m.length && m.indices.forall(i => h(off + i) == m(i))
  private def at(h: Array[Byte], off: Int, m: String): Boolean = at(h, off, ascii(m))
  private def u(h: Array[Byte], i: Int): Int = h(i) & 0xff

  /** Bytes of an ID3v2 tag at the start of `h` (0 if none). */
  def id3Size(h: Array[Byte]): Int =
    if (h.length >= 10 && at(h, 0, "ID3") && (6 until 10).forall(i => u(h, i) < 0x80)) {
      val size = (u(h, 6) << 21) | (u(h, 7) << 14) | (u(h, 8) << 7) | u(h, 9)
      10 + size + (if ((u(h, 5) & 0x10) != 0) 10 else 0)
    } else 0

  private val MpegKbps: Map[(Boolean, Int), Array[Int]] = Map(
    (true, 3) -> Array(0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (true, 2) -> Array(0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (true, 1) -> Array(0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (false, 3) -> Array(0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (false, 2) -> Array(0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (false, 1) -> Array(0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160))
  private val MpegRates: Map[Int, Array[Int]] = Map(3 -> Array(44100, 48000, 32000), 2 -> Array(22050, 24000, 16000),
    0 -> Array(11025, 12000, 8000))

  /** The length of the MPEG audio or ADTS frame whose header starts `h` at `off`; 0 when no valid header is there. */
  private def mpegFrameBytes(h: Array[Byte], off: Int): Int = {
    if (h.length - off < 7 || u(h, off) != 0xff || (u(h, off + 1) & 0xe0) != 0xe0) return 0
    val (b1, b2) = (u(h, off + 1), u(h, off + 2))
    val version = (b1 >> 3) & 3
    val layer = (b1 >> 1) & 3
    if (layer == 0) { // ADTS: 12 sync bits, layer 00, a sampling index below 13, the length in 13 bits
      if ((b1 & 0xf6) != 0xf0 || ((b2 >> 2) & 0xf) >= 13) return 0
      return ((u(h, off + 3) & 3) << 11) | (u(h, off + 4) << 3) | (u(h, off + 5) >> 5)
    }
    val index = b2 >> 4
    val rateIndex = (b2 >> 2) & 3
    val pad = (b2 >> 1) & 1
    if (version == 1 || index == 0 || index == 15 || rateIndex == 3) return 0
    val kbps = MpegKbps((version == 3, layer))(index)
    val rate = MpegRates(version)(rateIndex)
    if (layer == 3) (12 * kbps * 1000 / rate + pad) * 4
    else (if (layer == 2 || version == 3) 144 else 72) * kbps * 1000 / rate + pad
  }

  /** MPEG audio (MP3) or ADTS (AAC) starting `h`: a valid frame header, and with `needNext` a
    * second one right after the first frame (when `h` holds it). */
  private def mpegAudio(h: Array[Byte], needNext: Boolean): Option[Detected] = {
    val size = mpegFrameBytes(h, 0)
    if (size < 7) None
    else if (needNext && h.length >= size + 7 && mpegFrameBytes(h, size) < 7) None
    else Some(if (((u(h, 1) >> 1) & 3) == 0) audio("aac") else audio("mp3"))
  }

  private def looksLikeText(h: Array[Byte]): Boolean = {
    val n = math.min(h.length, 512)
    n > 0 && (0 until n).count { i => val b = u(h, i); (b >= 32 && b < 127) || b == 9 || b == 10 || b == 13 } >= 0.95 * n
  }

  private def isSpace(b: Int): Boolean = b == 32 || (b >= 9 && b <= 13) // bytes.lstrip()

  /** What `head` (a file's first [[FormatTable.HeadBytes]] bytes or more) is; `afterTag`: the
    * bytes after an ID3 tag longer than `head`. */
  def sniff(head: Array[Byte], afterTag: Option[Array[Byte]] = None): Detected = {
    val h = head
    if ((at(h, 0, "RIFF") || at(h, 0, "RF64") || at(h, 0, "BW64")) && at(h, 8, "WAVE")) return audio("wav")
    if (at(h, 0, "RIFF") && at(h, 8, "WEBP")) return Detected("WebP image")
    if (at(h, 0, "RIFF") && at(h, 8, "AVI ")) return Detected("AVI video")
    if (at(h, 0, "riff") && at(h, 4, W64Guid)) return audio("w64")
    if (at(h, 0, "fLaC")) return audio("flac")
    if (at(h, 0, "OggS")) return audio("ogg")
    if (at(h, 0, "FORM") && (at(h, 8, "AIFF") || at(h, 8, "AIFC"))) return audio("aiff")
    if (at(h, 0, "caff")) return audio("caf")
    if (at(h, 0, ".snd")) return audio("au")
    if (at(h, 0, hex("1a45dfa3"))) return audio("matroska")
    if (Seq("ftyp", "moov", "mdat", "wide", "free").exists(at(h, 4, _))) return audio("mov")
    if (at(h, 0, AsfGuid)) return audio("asf")
    if (at(h, 0, "#!AMR\n") || at(h, 0, "#!AMR-WB\n")) return audio("amr")
    val tag = id3Size(h)
    if (tag > 0) { // an ID3 tag before MPEG audio, ADTS or FLAC (the frame may lie past the head: MP3 then)
      val after = afterTag.getOrElse(h.slice(tag, tag + 4))
      if (after.sameElements(ascii("fLaC"))) return audio("flac")
      return mpegAudio(after, needNext = false).getOrElse(audio("mp3"))
    }
    mpegAudio(h, needNext = true).foreach(d => return d)
    for ((magic, name) <- Binary if at(h, 0, magic)) {
      if (name.nonEmpty) return Detected(name)
      // BMP: "BM", then a header size of 12..124 at byte 14
      if (h.length >= 18 && BmpHeaderSizes((0 until 4).map(i => u(h, 14 + i).toLong << (8 * i)).sum)) return Detected("BMP image")
    }
    if (h.length >= 189 && u(h, 0) == 0x47 && u(h, 188) == 0x47) return Detected("MPEG-TS stream")
    if (looksLikeText(h)) {
      val first = new String(h.dropWhile(b => isSpace(b & 0xff)).map(b => if (b >= 'A' && b <= 'Z') (b + 32).toByte else b),
        "ISO-8859-1")
      return Text.collectFirst { case (p, name) if p.matcher(first).lookingAt() => Detected(name) }.getOrElse(Detected("text"))
    }
    Detected(Unrecognised)
  }

  /** [[sniff]] on a source's first bytes; `readAt(pos, n)`: up to `n` bytes at `pos`. An ID3 tag
    * longer than the head is skipped to see the frame after it. */
  def sniffSource(readAt: (Long, Int) => Array[Byte]): Detected = {
    val head = readAt(0L, FormatTable.HeadBytes)
    val tag = id3Size(head)
    if (tag > 0 && tag + 4 > head.length) sniff(head, Some(readAt(tag.toLong, 4))) else sniff(head)
  }
}
