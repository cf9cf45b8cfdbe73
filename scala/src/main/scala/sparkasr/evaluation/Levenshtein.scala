package sparkasr.evaluation

import scala.collection.mutable

/** rapidfuzz's `Levenshtein.editops` (Hyyrö's bit-parallel alignment and its backtrace, as in
  * rapidfuzz's reference implementation), reduced to (hits, substitutions, deletions, insertions).
  * The error count is the edit distance whatever the alignment; following rapidfuzz's choice among
  * equally short alignments also gives its hits, so MER and WIL match too. */
object Levenshtein {
  def counts(ref: Array[Int], hyp: Array[Int]): (Long, Long, Long, Long) = {
    if (ref.isEmpty) return (0, 0, 0, hyp.length.toLong)
    if (hyp.isEmpty) return (0, 0, ref.length.toLong, 0)
    var s = 0L
    var d = 0L
    var i = 0L
    editops(ref, hyp).foreach {
      case 'r' => s += 1
      case 'd' => d += 1
      case _ => i += 1
    }
    (ref.length - s - d, s, d, i)
  }

  /** The edit operations turning `s1` into `s2`: 'r' replace, 'd' delete, 'i' insert. */
  def editops(s1full: Array[Int], s2full: Array[Int]): Array[Char] = {
    var prefix = 0
    while (prefix < s1full.length && prefix < s2full.length && s1full(prefix) == s2full(prefix)) prefix += 1
    var suffix = 0
    while (suffix < s1full.length - prefix && suffix < s2full.length - prefix &&
      s1full(s1full.length - 1 - suffix) == s2full(s2full.length - 1 - suffix)) suffix += 1
    val s1 = s1full.slice(prefix, s1full.length - suffix)
    val s2 = s2full.slice(prefix, s2full.length - suffix)
    if (s1.isEmpty) return Array.fill(s2.length)('i')
    val len1 = s1.length
    val words = (len1 + 63) / 64
    // pattern masks of s1's symbols
    val block = mutable.HashMap.empty[Int, Array[Long]]
    for (k <- 0 until len1) block.getOrElseUpdate(s1(k), new Array[Long](words))(k / 64) |= 1L << (k % 64)
    val zero = new Array[Long](words)
    var vp = Array.fill(words)(-1L)
    val lastBits = len1 % 64
    if (lastBits != 0) vp(words - 1) = (1L << lastBits) - 1
    var vn = new Array[Long](words)
    var dist = len1
    val topWord = (len1 - 1) / 64
    val topBit = 1L << ((len1 - 1) % 64)
    val matVP = new Array[Array[Long]](s2.length)
    val matVN = new Array[Array[Long]](s2.length)
    for (j <- s2.indices) {
      val pm = block.getOrElse(s2(j), zero)
      val newVP = new Array[Long](words)
      val newVN = new Array[Long](words)
      var carry = 0L // of (X & VP) + VP, across words
      var hpCarry = 1L // (HP << 1) | 1
      var hnCarry = 0L
      for (w <- 0 until words) {
        val x = pm(w)
        val a = x & vp(w)
        val t = a + vp(w)
        val sum = t + carry
        carry = (if (java.lang.Long.compareUnsigned(t, a) < 0) 1L else 0L) | (if (java.lang.Long.compareUnsigned(sum, t) < 0) 1L else 0L)
        val d0 = ((sum ^ vp(w)) | x | vn(w))
        val hp = vn(w) | ~(d0 | vp(w))
        val hn = d0 & vp(w)
        if (w == topWord) {
          if ((hp & topBit) != 0) dist += 1
          if ((hn & topBit) != 0) dist -= 1
        }
        val hpShift = (hp << 1) | hpCarry
        hpCarry = hp >>> 63
        val hnShift = (hn << 1) | hnCarry
        hnCarry = hn >>> 63
        newVP(w) = hnShift | ~(d0 | hpShift)
        newVN(w) = hpShift & d0
      }
      vp = newVP; vn = newVN
      matVP(j) = newVP; matVN(j) = newVN
    }
    val ops = new Array[Char](dist)
    var n = dist
    var col = len1
    var row = s2.length
    def bit(m: Array[Long], c: Int): Boolean = (m(c / 64) & (1L << (c % 64))) != 0
    while (row != 0 && col != 0) {
      if (bit(matVP(row - 1), col - 1)) { n -= 1; col -= 1; ops(n) = 'd' }
      else {
        row -= 1
        if (row != 0 && bit(matVN(row - 1), col - 1)) { n -= 1; ops(n) = 'i' }
        else {
          col -= 1
          if (s1(col) != s2(row)) { n -= 1; ops(n) = 'r' }
        }
      }
    }
    while (col != 0) { n -= 1; col -= 1; ops(n) = 'd' }
    while (row != 0) { n -= 1; row -= 1; ops(n) = 'i' }
    ops
  }
}
