package sparkasr.evaluation

import java.nio.charset.StandardCharsets
import java.util.regex.Matcher

import scala.collection.mutable.ArrayBuffer

import org.json4s._
import org.json4s.jackson.JsonMethods
import sparkasr.evaluation.Normalizers.Py

/** A port of the `whisper-normalizer` package's `EnglishTextNormalizer` (0.1.15; OpenAI Whisper's
  * English normaliser: spelled-out numbers -> digits, British -> American spellings, contractions,
  * fillers removed) and `BasicTextNormalizer`, rule for rule, with Python's regex semantics
  * ([[Normalizers.Py]]). The spelling map `english.json` ships as a resource, with its MIT licence
  * (`sparkasr/evaluation/LICENSE-whisper-normalizer.txt`). */
object WhisperEnglish {

  // -- basic.py ----------------------------------------------------------------------------------
  private val AdditionalDiacritics: Map[Int, String] = Map(
    'œ' -> "oe", 'Œ' -> "OE", 'ø' -> "o", 'Ø' -> "O", 'æ' -> "ae", 'Æ' -> "AE", 'ß' -> "ss", 'ẞ' -> "SS", 'đ' -> "d",
    'Đ' -> "D", 'ð' -> "d", 'Ð' -> "D", 'þ' -> "th", 'Þ' -> "th", 'ł' -> "l", 'Ł' -> "L").map { case (c, s) => c.toInt -> s }

  /** Markers, symbols and punctuation -> space; diacritics (Mn, and a few letters) dropped. */
  def removeSymbolsAndDiacritics(s: String, keep: String = ""): String = {
    val kept = keep.codePoints().toArray.toSet
    Py.mapCodePoints(java.text.Normalizer.normalize(s, java.text.Normalizer.Form.NFKD)) { cp =>
      if (kept.contains(cp)) new String(Character.toChars(cp))
      else AdditionalDiacritics.getOrElse(cp,
        if (Character.getType(cp) == Character.NON_SPACING_MARK) ""
        else if ("MSP".indexOf(Py.categoryClass(cp)) >= 0) " "
        else new String(Character.toChars(cp)))
    }
  }

  /** Symbols, punctuation and marks -> space, after NFKC. */
  def removeSymbols(s: String): String =
    Py.mapCodePoints(java.text.Normalizer.normalize(s, java.text.Normalizer.Form.NFKC)) { cp =>
      if ("MSP".indexOf(Py.categoryClass(cp)) >= 0) " " else new String(Character.toChars(cp))
    }

  private val Brackets = Py.re("[<\\[][^>\\]]*[>\\]]")
  private val Parens = Py.re("\\(([^)]+?)\\)")

  /** Lower-cased, words between brackets and between parentheses removed (both normalisers' start). */
  private def lowerUnbracketed(s: String): String = Py.sub(Parens, "", Py.sub(Brackets, "", Py.lower(s)))

  /** `BasicTextNormalizer()` (whisper_basic). */
  def basic(s0: String): String = {
    val s = Py.lower(removeSymbols(lowerUnbracketed(s0)))
    Py.collapseSpaces(s)
  }

  // -- english.py: EnglishTextNormalizer ---------------------------------------------------------
  private val Ignore = Py.re("\\b(hmm|mm|mhm|mmm|uh|um)\\b")
  private val SpaceApostrophe = Py.re("\\s+'")
  private val Replacers: Seq[(java.util.regex.Pattern, String)] = Seq(
    "\\bwon't\\b" -> "will not", "\\bcan't\\b" -> "can not", "\\blet's\\b" -> "let us", "\\bain't\\b" -> "aint",
    "\\by'all\\b" -> "you all", "\\bwanna\\b" -> "want to", "\\bkinda\\b" -> "kind of", "\\bsorta\\b" -> "sort of",
    "\\bdunno\\b" -> "do not know", "\\bgotta\\b" -> "got to", "\\bgonna\\b" -> "going to", "\\bi'ma\\b" -> "i am going to",
    "\\bimma\\b" -> "i am going to", "\\bwoulda\\b" -> "would have", "\\bcoulda\\b" -> "could have", "\\bshoulda\\b" -> "should have",
    "\\bcause\\b" -> "because", "\\bma'am\\b" -> "madam",
    "\\bmr\\b" -> "mister ", "\\bmrs\\b" -> "missus ", "\\bst\\b" -> "saint ", "\\bdr\\b" -> "doctor ", "\\bprof\\b" -> "professor ",
    "\\bcapt\\b" -> "captain ", "\\bgov\\b" -> "governor ", "\\bald\\b" -> "alderman ", "\\bgen\\b" -> "general ",
    "\\bsen\\b" -> "senator ", "\\brep\\b" -> "representative ", "\\bpres\\b" -> "president ", "\\brev\\b" -> "reverend ",
    "\\bhon\\b" -> "honorable ", "\\basst\\b" -> "assistant ", "\\bassoc\\b" -> "associate ", "\\blt\\b" -> "lieutenant ",
    "\\bcol\\b" -> "colonel ", "\\bjr\\b" -> "junior ", "\\bsr\\b" -> "senior ", "\\besq\\b" -> "esquire ",
    "'d been\\b" -> " had been", "'s been\\b" -> " has been", "'d gone\\b" -> " had gone", "'s gone\\b" -> " has gone",
    "'d done\\b" -> " had done", "'s got\\b" -> " has got",
    "n't\\b" -> " not", "'re\\b" -> " are", "'s\\b" -> " is", "'d\\b" -> " would", "'ll\\b" -> " will", "'t\\b" -> " not",
    "'ve\\b" -> " have", "'m\\b" -> " am"
  ).map { case (p, r) => Py.re(p) -> r }
  private val DigitComma = Py.re("(\\d),(\\d)")
  private val Period = Py.re("\\.([^0-9]|$)")
  private val LoneSymbol = Py.re("[.$¢€£]([^0-9])")
  private val LonePercent = Py.re("([^0-9])%")

  /** `EnglishTextNormalizer()(s)` (whisper_en). */
  def normalize(s0: String): String = {
    var s = Py.sub(Ignore, "", lowerUnbracketed(s0))
    s = Py.sub(SpaceApostrophe, "'", s)
    for ((p, r) <- Replacers) s = Py.sub(p, r, s)
    s = Py.sub(DigitComma, "\\1\\2", s)
    s = Py.sub(Period, " \\1", s)
    s = removeSymbolsAndDiacritics(s, keep = ".%$¢€£")
    s = Numbers.normalize(s)
    s = PyStr.split(s).map(w => spellings.getOrElse(w, w)).mkString(" ")
    s = Py.sub(LoneSymbol, " \\1", s)
    s = Py.sub(LonePercent, "\\1 ", s)
    Py.collapseSpaces(s)
  }

  /** British -> American spellings (english.json). */
  lazy val spellings: Map[String, String] = {
    val in = getClass.getResourceAsStream("/sparkasr/evaluation/english.json")
    require(in != null, "resource sparkasr/evaluation/english.json is missing from the jar")
    val text = try new String(in.readAllBytes(), StandardCharsets.UTF_8) finally in.close()
    JsonMethods.parse(text) match {
      case JObject(fields) => fields.collect { case (k, JString(v)) => k -> v }.toMap
      case _ => throw new IllegalStateException("english.json is not a JSON object")
    }
  }

  // -- english.py: EnglishNumberNormalizer -------------------------------------------------------
  private[evaluation] object Numbers {
    private val onesList = Seq("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
      "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
    val zeros = Set("o", "oh", "zero")
    val ones: Map[String, Int] = onesList.zipWithIndex.map { case (n, i) => n -> (i + 1) }.toMap
    val onesPlural: Map[String, (Int, String)] = ones.map { case (n, v) => (if (n == "six") "sixes" else n + "s") -> (v, "s") }
    val onesOrdinal: Map[String, (Int, String)] = Map("zeroth" -> (0, "th"), "first" -> (1, "st"), "second" -> (2, "nd"),
      "third" -> (3, "rd"), "fifth" -> (5, "th"), "twelfth" -> (12, "th")) ++
      ones.collect { case (n, v) if v > 3 && v != 5 && v != 12 => (n + (if (n.endsWith("t")) "h" else "th")) -> (v, "th") }
    val onesSuffixed: Map[String, (Int, String)] = onesPlural ++ onesOrdinal
    val tens: Map[String, Int] = Map("twenty" -> 20, "thirty" -> 30, "forty" -> 40, "fifty" -> 50, "sixty" -> 60, "seventy" -> 70,
      "eighty" -> 80, "ninety" -> 90)
    val tensSuffixed: Map[String, (Int, String)] =
      tens.map { case (n, v) => n.replace("y", "ies") -> (v, "s") } ++ tens.map { case (n, v) => n.replace("y", "ieth") -> (v, "th") }
    val multipliers: Map[String, BigInt] = Seq("hundred" -> 2, "thousand" -> 3, "million" -> 6, "billion" -> 9, "trillion" -> 12,
      "quadrillion" -> 15, "quintillion" -> 18, "sextillion" -> 21, "septillion" -> 24, "octillion" -> 27, "nonillion" -> 30,
      "decillion" -> 33).map { case (n, e) => n -> BigInt(10).pow(e) }.toMap
    val multipliersSuffixed: Map[String, (BigInt, String)] =
      multipliers.map { case (n, v) => (n + "s") -> (v, "s") } ++ multipliers.map { case (n, v) => (n + "th") -> (v, "th") }
    val decimals: Set[String] = ones.keySet ++ tens.keySet ++ zeros
    val precedingPrefixers = Map("minus" -> "-", "negative" -> "-", "plus" -> "+", "positive" -> "+")
    val followingPrefixers = Map("pound" -> "£", "pounds" -> "£", "euro" -> "€", "euros" -> "€", "dollar" -> "$", "dollars" -> "$",
      "cent" -> "¢", "cents" -> "¢")
    val prefixes: Set[String] = (precedingPrefixers.values ++ followingPrefixers.values).toSet
    val specials = Set("and", "double", "triple", "point")
    val words: Set[String] = zeros ++ ones.keySet ++ onesSuffixed.keySet ++ tens.keySet ++ tensSuffixed.keySet ++ multipliers.keySet ++
      multipliersSuffixed.keySet ++ precedingPrefixers.keySet ++ followingPrefixers.keySet ++ Set("per", "percent") ++ specials

    /** A Python value: a string or an (arbitrary-precision) int. */
    sealed trait V
    final case class VS(s: String) extends V
    final case class VI(i: BigInt) extends V
    private def str(v: V): String = v match { case VS(s) => s; case VI(i) => i.toString }
    private def orEmpty(v: V): String = v match { case null => ""; case VI(i) if i == 0 => ""; case VS(s) => s; case VI(i) => i.toString }

    /** Python's `Fraction(text)` for the plain decimals that occur here ("12", "1.5", ".5", "3."); None
      * where Python raises ValueError. Unicode decimal digits count, as in Python. */
    final case class Frac(num: BigInt, den: BigInt) {
      def *(m: BigInt): Frac = Frac.of(num * m, den)
    }
    object Frac {
      def of(n: BigInt, d: BigInt): Frac = { val g = n.gcd(d); if (g == 0) Frac(n, d) else Frac(n / g, d / g) }
      private def digits(s: String): Option[BigInt] =
        if (s.isEmpty) Some(BigInt(0))
        else {
          val cps = s.codePoints().toArray
          if (cps.forall(c => Character.getType(c) == Character.DECIMAL_DIGIT_NUMBER))
            Some(cps.foldLeft(BigInt(0))((acc, c) => acc * 10 + Character.digit(c, 10)))
          else None
        }
      def parse(t0: String): Option[Frac] = {
        val t = PyStr.strip(t0)
        val dot = t.indexOf('.')
        val (intPart, decPart) = if (dot < 0) (t, None) else (t.substring(0, dot), Some(t.substring(dot + 1)))
        val startsOk = (intPart.nonEmpty) || decPart.exists(_.nonEmpty)
        if (!startsOk || decPart.exists(_.contains('.'))) return None
        for { i <- digits(intPart); d <- digits(decPart.getOrElse("")) } yield {
          val scale = BigInt(10).pow(decPart.map(PyStr.codePointLength).getOrElse(0))
          of(i * scale + d, scale)
        }
      }
    }

    private val Numeric = Py.re("^\\d+(\\.\\d+)?$")
    private def isNumeric(s: String): Boolean = s != null && Numeric.matcher(s).matches()

    def processWords(words: Seq[String]): Seq[String] = {
      val out = ArrayBuffer.empty[String]
      var prefix: String = null
      var value: V = null
      var skip = false
      def output(result: String): String = {
        val r = if (prefix != null) prefix + result else result
        value = null; prefix = null
        r
      }
      if (words.isEmpty) return Nil
      val padded: IndexedSeq[String] = (null +: words.toIndexedSeq) :+ null
      for (k <- 1 until padded.length - 1) {
        val prev = padded(k - 1)
        val current = padded(k)
        val next = padded(k + 1)
        if (skip) skip = false
        else {
          val nextIsNumeric = next != null && isNumeric(next)
          val first = new String(Character.toChars(current.codePointAt(0)))
          val hasPrefix = prefixes.contains(first)
          val withoutPrefix = if (hasPrefix) current.substring(first.length) else current
          if (isNumeric(withoutPrefix)) {
            val f = Frac.parse(withoutPrefix).getOrElse(throw new AssertionError(withoutPrefix))
            var cont = false
            if (value != null) value match {
              case VS(s) if s.endsWith(".") => value = VS(s + current); cont = true
              case v => out += output(str(v))
            }
            if (!cont) {
              prefix = if (hasPrefix) first else prefix
              value = if (f.den == 1) VI(f.num) else VS(withoutPrefix)
            }
          } else if (!this.words.contains(current)) {
            if (value != null) out += output(str(value))
            out += output(current)
          } else if (zeros.contains(current)) {
            value = VS(orEmpty(value) + "0")
          } else if (ones.contains(current)) {
            val o = ones(current)
            value match {
              case null => value = VI(o)
              case VS(s) =>
                if (tens.contains(prev) && o < 10) { assert(s.last == '0'); value = VS(s.dropRight(1) + o) }
                else value = VS(s + o)
              case VI(i) if ones.contains(prev) => value = VS(i.toString + o)
              case VI(i) if o < 10 => value = if (i % 10 == 0) VI(i + o) else VS(i.toString + o)
              case VI(i) => value = if (i % 100 == 0) VI(i + o) else VS(i.toString + o)
            }
          } else if (onesSuffixed.contains(current)) {
            val (o, suffix) = onesSuffixed(current)
            value match {
              case null => out += output(o.toString + suffix)
              case VS(s) =>
                if (tens.contains(prev) && o < 10) { assert(s.last == '0'); out += output(s.dropRight(1) + o + suffix) }
                else out += output(s + o + suffix)
              case VI(i) if ones.contains(prev) => out += output(i.toString + o + suffix)
              case VI(i) if o < 10 => out += output(if (i % 10 == 0) (i + o).toString + suffix else i.toString + o + suffix)
              case VI(i) => out += output(if (i % 100 == 0) (i + o).toString + suffix else i.toString + o + suffix)
            }
            value = null
          } else if (tens.contains(current)) {
            val t = tens(current)
            value = value match {
              case null => VI(t)
              case VS(s) => VS(s + t)
              case VI(i) => if (i % 100 == 0) VI(i + t) else VS(i.toString + t)
            }
          } else if (tensSuffixed.contains(current)) {
            val (t, suffix) = tensSuffixed(current)
            value match {
              case null => out += output(t.toString + suffix)
              case VS(s) => out += output(s + t + suffix)
              case VI(i) => out += output(if (i % 100 == 0) (i + t).toString + suffix else i.toString + t + suffix)
            }
          } else if (multipliers.contains(current)) {
            val m = multipliers(current)
            def scaled(v: V, f: Option[Frac]): Unit = f.map(_ * m) match {
              case Some(p) if p.den == 1 => value = VI(p.num)
              case _ => out += output(str(v)); value = VI(m)
            }
            value match {
              case null => value = VI(m)
              case v @ VS(s) => scaled(v, Frac.parse(s)) // a string, or the int 0
              case v @ VI(i) if i == 0 => scaled(v, Some(Frac.of(i, 1)))
              case VI(i) =>
                val before = i / 1000 * 1000
                val residual = i % 1000
                value = VI(before + residual * m)
            }
          } else if (multipliersSuffixed.contains(current)) {
            val (m, suffix) = multipliersSuffixed(current)
            value match {
              case null => out += output(m.toString + suffix)
              case VS(s) =>
                Frac.parse(s).map(_ * m) match {
                  case Some(p) if p.den == 1 => out += output(p.num.toString + suffix)
                  case _ => out += output(s); out += output(m.toString + suffix)
                }
              case VI(i) =>
                val before = i / 1000 * 1000
                val residual = i % 1000
                value = VI(before + residual * m)
                out += output(str(value) + suffix)
            }
            value = null
          } else if (precedingPrefixers.contains(current)) {
            if (value != null) out += output(str(value))
            if ((next != null && this.words.contains(next)) || nextIsNumeric) prefix = precedingPrefixers(current)
            else out += output(current)
          } else if (followingPrefixers.contains(current)) {
            if (value != null) { prefix = followingPrefixers(current); out += output(str(value)) }
            else out += output(current)
          } else if (current == "per" || current == "percent") {
            if (value != null) {
              if (current == "per") {
                if (next == "cent") { out += output(str(value) + "%"); skip = true }
                else { out += output(str(value)); out += output(current) }
              } else out += output(str(value) + "%")
            } else out += output(current)
          } else if (specials.contains(current)) {
            if (!(next != null && this.words.contains(next)) && !nextIsNumeric) {
              if (value != null) out += output(str(value))
              out += output(current)
            } else if (current == "and") {
              if (prev == null || !multipliers.contains(prev)) {
                if (value != null) out += output(str(value))
                out += output(current)
              }
            } else if (current == "double" || current == "triple") {
              if (ones.contains(next) || zeros.contains(next)) {
                val repeats = if (current == "double") 2 else 3
                val o = ones.getOrElse(next, 0)
                value = VS(orEmpty(value) + o.toString * repeats)
                skip = true
              } else {
                if (value != null) out += output(str(value))
                out += output(current)
              }
            } else if (current == "point") {
              if (decimals.contains(next) || nextIsNumeric) value = VS(orEmpty(value) + ".")
            } else throw new IllegalArgumentException(s"Unexpected token: $current")
          } else throw new IllegalArgumentException(s"Unexpected token: $current")
        }
      }
      if (value != null) out += output(str(value))
      out.toSeq
    }

    private val AndAHalf = Py.re("\\band\\s+a\\s+half\\b")
    private val LetterDigit = Py.re("([a-z])([0-9])")
    private val DigitLetter = Py.re("([0-9])([a-z])")
    private val DigitSuffix = Py.re("([0-9])\\s+(st|nd|rd|th|s)\\b")

    def preprocess(s0: String): String = {
      val segments = AndAHalf.split(s0, -1)
      val results = ArrayBuffer.empty[String]
      segments.zipWithIndex.foreach { case (segment, i) =>
        if (PyStr.strip(segment).nonEmpty) {
          results += segment
          if (i != segments.length - 1) {
            val lastWord = PyStr.split(segment).last
            results += (if (decimals.contains(lastWord) || multipliers.contains(lastWord)) "point five" else "and a half")
          }
        }
      }
      var s = results.mkString(" ")
      s = Py.sub(LetterDigit, "\\1 \\2", s)
      s = Py.sub(DigitLetter, "\\1 \\2", s)
      Py.sub(DigitSuffix, "\\1\\2", s)
    }

    private val Cents = Py.re("([€£$])([0-9]+) (?:and )?¢([0-9]{1,2})\\b")
    private val ZeroPoint = Py.re("[€£$]0.([0-9]{1,2})\\b")
    private val One = Py.re("\\b1(s?)\\b")

    def postprocess(s0: String): String = {
      var s = Py.sub(Cents, s0, (m: Matcher) => f"${m.group(1)}${m.group(2)}.${m.group(3).toInt}%02d")
      s = Py.sub(ZeroPoint, s, (m: Matcher) => s"¢${m.group(1).toInt}")
      Py.sub(One, "one\\1", s)
    }

    def normalize(s: String): String = postprocess(processWords(PyStr.split(preprocess(s))).mkString(" "))
  }
}
