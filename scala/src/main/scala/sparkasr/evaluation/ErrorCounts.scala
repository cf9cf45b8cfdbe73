package sparkasr.evaluation

import scala.collection.mutable

/** Additive alignment counts of (reference, hypothesis) pairs (Python: `ErrorCounts`): word and
  * character hits/substitutions/deletions/insertions plus row bookkeeping. Counts add up, so a corpus
  * is scored by summing counts (per partition, then across partitions) and the rates are derived
  * from the totals, with jiwer 4's definitions. */
final case class ErrorCounts(
    hits: Long = 0, substitutions: Long = 0, deletions: Long = 0, insertions: Long = 0,
    charHits: Long = 0, charSubstitutions: Long = 0, charDeletions: Long = 0, charInsertions: Long = 0,
    nRows: Long = 0, nNullReference: Long = 0, nNullPrediction: Long = 0, nNull: Long = 0, nEmptyReference: Long = 0) {

  def +(o: ErrorCounts): ErrorCounts = ErrorCounts(
    hits + o.hits, substitutions + o.substitutions, deletions + o.deletions, insertions + o.insertions,
    charHits + o.charHits, charSubstitutions + o.charSubstitutions, charDeletions + o.charDeletions, charInsertions + o.charInsertions,
    nRows + o.nRows, nNullReference + o.nNullReference, nNullPrediction + o.nNullPrediction, nNull + o.nNull,
    nEmptyReference + o.nEmptyReference)

  def nScored: Long = nRows - nNull
  def refLen: Long = hits + substitutions + deletions
  def hypLen: Long = hits + substitutions + insertions
  def errors: Long = substitutions + deletions + insertions
  def charRefLen: Long = charHits + charSubstitutions + charDeletions
  def charErrors: Long = charSubstitutions + charDeletions + charInsertions

  private def word: (Double, Double, Double) =
    if (nScored == 0) (Double.NaN, Double.NaN, Double.NaN) else ErrorCounts.rate(hits, substitutions, deletions, insertions)
  def wer: Double = word._1
  def mer: Double = word._2
  def wip: Double = word._3
  def wil: Double = 1 - word._3
  def cer: Double = if (nScored == 0) Double.NaN else ErrorCounts.rate(charHits, charSubstitutions, charDeletions, charInsertions)._1

  def metric(name: String): Double = name.toLowerCase(java.util.Locale.ROOT) match {
    case "wer" => wer
    case "cer" => cer
    case "mer" => mer
    case "wil" => wil
    case "wip" => wip
    case other => throw new IllegalArgumentException(s"unknown metric '$other'; one of (wer, cer, mer, wil, wip)")
  }

  /** The count fields by their Python names (COUNT_FIELDS). */
  def toMap: Map[String, Long] = Map(
    "hits" -> hits, "substitutions" -> substitutions, "deletions" -> deletions, "insertions" -> insertions,
    "char_hits" -> charHits, "char_substitutions" -> charSubstitutions, "char_deletions" -> charDeletions,
    "char_insertions" -> charInsertions, "n_rows" -> nRows, "n_null_reference" -> nNullReference,
    "n_null_prediction" -> nNullPrediction, "n_null" -> nNull, "n_empty_reference" -> nEmptyReference)
}

object ErrorCounts {

  /** (error rate, mer, wip) as `jiwer.process_words` computes them. */
  def rate(h: Long, s: Long, d: Long, i: Long): (Double, Double, Double) = {
    val refLen = h + s + d
    val hypLen = h + s + i
    if (refLen == 0) {
      if (hypLen == 0) (i.toDouble, 0.0, 1.0) else (i.toDouble, 1.0, 0.0)
    } else {
      val er = (s + d + i).toDouble / (h + s + d).toDouble
      val mer = (s + d + i).toDouble / (h + s + d + i).toDouble
      val wip = if (hypLen >= 1) (h.toDouble / refLen) * (h.toDouble / hypLen) else 0.0
      (er, mer, wip)
    }
  }

  private val MultiWs = Normalizers.Py.re("\\s\\s+")

  /** jiwer 4's word tokenisation: runs of 2+ whitespace -> one space, stripped, split on ' '. */
  def words(text: String): Seq[String] = PyStr.strip(Normalizers.Py.sub(MultiWs, " ", text)).split(" ", -1).toSeq.filter(_.nonEmpty)

  /** jiwer 4's character tokenisation: stripped, every code point a token. */
  def chars(text: String): Array[Int] = PyStr.strip(text).codePoints().toArray

  /** Counts of one pair (`n_rows == 1`); `nullPrediction` is `skip` or `empty`. */
  def pair(reference: String, prediction: String, normalizer: Normalizer, nullPrediction: String = "skip"): ErrorCounts = {
    require(nullPrediction == "skip" || nullPrediction == "empty", "null_prediction must be 'skip' or 'empty'")
    var pred = prediction
    if (reference == null || prediction == null) {
      val c = ErrorCounts(nRows = 1, nNullReference = if (reference == null) 1 else 0, nNullPrediction = if (prediction == null) 1 else 0)
      if (reference == null || nullPrediction == "skip") return c.copy(nNull = 1)
      pred = ""
    }
    val refN = normalizer(reference)
    val hypN = normalizer(pred)
    val rw = words(refN)
    val hw = words(hypN)
    val ids = mutable.HashMap.empty[String, Int]
    val ri = rw.map(w => ids.getOrElseUpdate(w, ids.size)).toArray
    val hi = hw.map(w => ids.getOrElseUpdate(w, ids.size)).toArray
    val (h, s, d, i) = Levenshtein.counts(ri, hi)
    val (ch, cs, cd, ci) = Levenshtein.counts(chars(refN), chars(hypN))
    ErrorCounts(h, s, d, i, ch, cs, cd, ci, nRows = 1, nNullPrediction = if (prediction == null) 1 else 0,
      nEmptyReference = if (rw.isEmpty) 1 else 0)
  }
}
