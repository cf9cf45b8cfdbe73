package sparkasr.audio

import java.io.RandomAccessFile

/** Finds WAV/RF64/AIFF files whose header promises more audio data than the file holds (a cut-off
  * download or copy), which decoders read without complaint, so that the row gets an error instead of
  * a transcript of part of the file passed off as the whole. Python finds the same through
  * libsndfile's header log ("data : 96000 (should be 47978)"); the message is the same. */
object Truncation {
  private val UnknownSize = 0xFFFF0000L

  /** Random access to the first bytes of a file or byte array. */
  trait Bytes {
    def length: Long
    def read(pos: Long, n: Int): Array[Byte]
  }

  final class ArrayBytes(a: Array[Byte]) extends Bytes {
    def length: Long = a.length.toLong
    def read(pos: Long, n: Int): Array[Byte] =
      if (pos >= a.length) Array.emptyByteArray else java.util.Arrays.copyOfRange(a, pos.toInt, math.min(a.length.toLong, pos + n).toInt)
  }

  final class FileBytes(f: RandomAccessFile) extends Bytes {
    def length: Long = f.length()
    def read(pos: Long, n: Int): Array[Byte] = {
      if (pos >= f.length()) return Array.emptyByteArray
      val buf = new Array[Byte](math.min(n.toLong, f.length() - pos).toInt)
      f.seek(pos); f.readFully(buf); buf
    }
  }

  private def le32(b: Array[Byte], o: Int): Long =
    (b(o) & 0xffL) | ((b(o + 1) & 0xffL) << 8) | ((b(o + 2) & 0xffL) << 16) | ((b(o + 3) & 0xffL) << 24)
  private def le16(b: Array[Byte], o: Int): Int = (b(o) & 0xff) | ((b(o + 1) & 0xff) << 8)
  private def le64(b: Array[Byte], o: Int): Long = le32(b, o) | (le32(b, o + 4) << 32)
  private def be32(b: Array[Byte], o: Int): Long =
    ((b(o) & 0xffL) << 24) | ((b(o + 1) & 0xffL) << 16) | ((b(o + 2) & 0xffL) << 8) | (b(o + 3) & 0xffL)
  private def be16(b: Array[Byte], o: Int): Int = ((b(o) & 0xff) << 8) | (b(o + 1) & 0xff)
  private def tag(b: Array[Byte], o: Int): String = new String(b, o, 4, java.nio.charset.StandardCharsets.ISO_8859_1)

  /** The error message for a truncated file, or None. */
  def check(bytes: Bytes): Option[String] = {
    val head = bytes.read(0, 12)
    if (head.length < 12) return None
    tag(head, 0) match {
      case "RIFF" | "RF64" if tag(head, 8) == "WAVE" => riff(bytes, rf64 = tag(head, 0) == "RF64")
      case "FORM" if tag(head, 8) == "AIFF" || tag(head, 8) == "AIFC" => aiff(bytes)
      case _ => None
    }
  }

  private def message(declared: Long, present: Long, seconds: Double, format: String): String =
    f"file is truncated: its header declares $declared bytes of audio data, the file holds $present ($seconds%.2f s of $format audio)"

  private def truncated(declared: Long, present: Long): Boolean = present + 2 < declared && declared < UnknownSize

  private def riff(bytes: Bytes, rf64: Boolean): Option[String] = {
    var blockAlign = 0
    var rate = 0L
    var ds64Data = -1L
    for ((id, pos, size) <- chunks(bytes, bigEndian = false)) {
      id match {
        case "fmt " =>
          val f = bytes.read(pos + 8, 16)
          if (f.length >= 14) { rate = le32(f, 4); blockAlign = le16(f, 12) }
        case "ds64" =>
          val d = bytes.read(pos + 8, 16)
          if (d.length >= 16) ds64Data = le64(d, 8)
        case "data" =>
          val declared = if (rf64 && size == 0xFFFFFFFFL && ds64Data >= 0) ds64Data else size
          val present = bytes.length - (pos + 8)
          if (truncated(declared, present)) {
            val frames = if (blockAlign > 0) present / blockAlign else 0L
            return Some(message(declared, present, frames.toDouble / math.max(rate, 1L), "WAV"))
          }
          return None
        case _ =>
      }
    }
    None
  }

  /** The chunks after a RIFF/FORM header: (id, position of its header, declared size). */
  private def chunks(bytes: Bytes, bigEndian: Boolean): Iterator[(String, Long, Long)] =
    Iterator.iterate(12L)(pos => {
      val size = chunkSize(bytes.read(pos, 8), bigEndian)
      pos + 8 + size + (size & 1)
    }).takeWhile(_ + 8 <= bytes.length).map { pos =>
      val h = bytes.read(pos, 8)
      (tag(h, 0), pos, chunkSize(h, bigEndian))
    }

  private def chunkSize(h: Array[Byte], bigEndian: Boolean): Long = if (bigEndian) be32(h, 4) else le32(h, 4)

  private def aiff(bytes: Bytes): Option[String] = {
    var channels = 0
    var sampleBits = 0
    var rate = 0.0
    for ((id, pos, size) <- chunks(bytes, bigEndian = true)) {
      id match {
        case "COMM" =>
          val c = bytes.read(pos + 8, 18)
          if (c.length >= 18) { channels = be16(c, 0); sampleBits = be16(c, 6); rate = extended80(c, 8) }
        case "SSND" =>
          val present = bytes.length - (pos + 8)
          if (truncated(size, present)) {
            val frameBytes = channels * ((sampleBits + 7) / 8)
            val frames = if (frameBytes > 0) math.max(present - 8, 0L) / frameBytes else 0L
            return Some(message(size, present, frames / math.max(rate, 1.0), "AIFF"))
          }
          return None
        case _ =>
      }
    }
    None
  }

  /** An IEEE 754 80-bit extended float (AIFF's sample rate). */
  private def extended80(b: Array[Byte], o: Int): Double = {
    val exp = ((b(o) & 0x7f) << 8) | (b(o + 1) & 0xff)
    var mant = 0L
    for (i <- 0 until 8) mant = (mant << 8) | (b(o + 2 + i) & 0xffL)
    if (exp == 0 && mant == 0) 0.0 else java.lang.Math.scalb((mant >>> 11).toDouble, exp - 16383 - 52)
  }
}
