package sparkasr.evaluation

import scala.collection.mutable.ArrayBuffer

/** Python `str` behaviours the ports need (the normalisers and aligner of the evaluation first, also CTC
  * decoding and annotation offsets): whitespace as `str.isspace` defines it, `strip`, `split`, slices,
  * code-point lengths and `find`. */
object PyStr {

  /** `str.isspace()` for one code point (Unicode White_Space plus U+001C..U+001F, as CPython). */
  def isSpace(cp: Int): Boolean = cp match {
    case 0x09 | 0x0a | 0x0b | 0x0c | 0x0d | 0x1c | 0x1d | 0x1e | 0x1f | 0x20 | 0x85 | 0xa0 | 0x1680 | 0x2028 | 0x2029 | 0x202f | 0x205f | 0x3000 => true
    case c => c >= 0x2000 && c <= 0x200a
  }

  /** The regex character class of [[isSpace]] (Python's `\s` on str). */
  val SpaceClass: String = "[\\t\\n\\x0B\\f\\r\\x1C-\\x1F \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}]"

  def strip(s: String): String = {
    var b = 0
    var e = s.length
    while (b < e && isSpace(s.codePointAt(b))) b += Character.charCount(s.codePointAt(b))
    while (e > b && isSpace(s.codePointBefore(e))) e -= Character.charCount(s.codePointBefore(e))
    s.substring(b, e)
  }

  /** `str.split()` with no separator: runs of whitespace, no empty strings. */
  def split(s: String): Seq[String] = {
    val out = ArrayBuffer.empty[String]
    val cur = new java.lang.StringBuilder
    s.codePoints().forEach { cp =>
      if (isSpace(cp)) { if (cur.length > 0) { out += cur.toString; cur.setLength(0) } }
      else cur.appendCodePoint(cp)
    }
    if (cur.length > 0) out += cur.toString
    out.toSeq
  }

  /** `[from:until]` of a Python slice over `n` items (negative indices count from the end). */
  def sliceBounds(n: Int, from: Int, until: Int): (Int, Int) = {
    def norm(i: Int) = if (i < 0) math.max(0, n + i) else math.min(i, n)
    val f = norm(from)
    val u = norm(until)
    (f, math.max(f, u))
  }

  def codePointLength(s: String): Int = s.codePointCount(0, s.length)

  /** `text.find(sub, start)` in code points (-1 when absent). */
  def find(text: String, sub: String, startCp: Int): Int = {
    val startIdx = if (startCp >= codePointLength(text)) text.length else text.offsetByCodePoints(0, math.max(startCp, 0))
    if (startCp > codePointLength(text)) return -1
    val i = text.indexOf(sub, startIdx)
    if (i < 0) -1 else text.codePointCount(0, i)
  }
}
