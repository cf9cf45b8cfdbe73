package sparkasr.evaluation

import java.util.regex.{Matcher, Pattern}

/** Normalisers by name, as the Python side names them (`basic`, `whisper_en`, `whisper_en+nospace`, ...). */
object Normalizers {

  /** Python's regex semantics on `str` patterns, for the ported regexes: `\w` is letters, numbers and
    * `_`; `\s` is `str.isspace`; `\d` is Unicode decimal digits; `\b` borders a `\w` character;
    * `.` and `$` know only `\n` as a line end. */
  private[evaluation] object Py {
    val W = "[\\p{L}\\p{N}_]"
    val S: String = PyStr.SpaceClass
    val D = "\\p{Nd}"
    val B = s"(?:(?<=$W)(?!$W)|(?<!$W)(?=$W))"
    def re(p: String): Pattern = Pattern.compile(p.replace("\\b", B).replace("\\s", S).replace("\\d", D), Pattern.UNIX_LINES)
    def isWordChar(cp: Int): Boolean = Character.isLetter(cp) || cp == '_' || (Character.getType(cp) match {
      case Character.DECIMAL_DIGIT_NUMBER | Character.LETTER_NUMBER | Character.OTHER_NUMBER => true
      case _ => false
    })

    /** `re.sub(pattern, fn, s)`. */
    def sub(p: Pattern, s: String, f: Matcher => String): String = {
      val m = p.matcher(s)
      val sb = new java.lang.StringBuilder
      var last = 0
      while (m.find()) {
        sb.append(s, last, m.start()).append(f(m))
        last = m.end()
      }
      sb.append(s, last, s.length).toString
    }
    /** `re.sub(pattern, template, s)` with `\1`-style group references (unmatched groups: ''). */
    def sub(p: Pattern, template: String, s: String): String = sub(p, s, (m: Matcher) => expand(template, m))
    private def expand(t: String, m: Matcher): String = {
      val sb = new StringBuilder
      var i = 0
      while (i < t.length) {
        if (t(i) == '\\' && i + 1 < t.length && t(i + 1).isDigit) {
          Option(m.group(t(i + 1) - '0')).foreach(sb ++= _)
          i += 2
        } else { sb += t(i); i += 1 }
      }
      sb.toString
    }
    private val Ws = re("\\s+")
    def collapseSpaces(s: String): String = sub(Ws, " ", s)

    /** `unicodedata.category(c)`'s first letter. */
    def categoryClass(cp: Int): Char = Character.getType(cp) match {
      case Character.NON_SPACING_MARK | Character.ENCLOSING_MARK | Character.COMBINING_SPACING_MARK => 'M'
      case Character.MATH_SYMBOL | Character.CURRENCY_SYMBOL | Character.MODIFIER_SYMBOL | Character.OTHER_SYMBOL => 'S'
      case Character.CONNECTOR_PUNCTUATION | Character.DASH_PUNCTUATION | Character.START_PUNCTUATION | Character.END_PUNCTUATION |
          Character.INITIAL_QUOTE_PUNCTUATION | Character.FINAL_QUOTE_PUNCTUATION | Character.OTHER_PUNCTUATION => 'P'
      case _ => 'X'
    }
    def lower(s: String): String = s.toLowerCase(java.util.Locale.ROOT)
    def mapCodePoints(s: String)(f: Int => String): String = {
      val sb = new java.lang.StringBuilder
      s.codePoints().forEach(cp => sb.append(f(cp)))
      sb.toString
    }
  }

  final case class Named(name: String, f: String => String) extends Normalizer {
    def apply(s: String): String = f(s)
  }

  /** Left to right; named `a+b+c`, or an alias's name (`basic`). */
  final case class Compose(parts: Seq[Normalizer], alias: Option[String] = None) extends Normalizer {
    def name: String = alias.getOrElse(if (parts.isEmpty) "none" else parts.map(_.name).mkString("+"))
    def apply(s: String): String = parts.foldLeft(s)((t, n) => n(t))
  }

  private val Apostrophes = Set('\'', '\u2019', '\u02bc', '\u2018', '`', '\u00b4').map(_.toInt)

  val none: Normalizer = Named("none", identity)
  /** Unicode case folding (Python `str.casefold`: full folding, `Straße` -> `strasse`), with ICU. */
  val lower: Normalizer = Named("lower", s => com.ibm.icu.lang.UCharacter.foldCase(s, true))
  /** Apostrophes inside words dropped (`don't` -> `dont`); other punctuation (P*) -> space. */
  val punct: Normalizer = Named("punct", { s =>
    val cps = s.codePoints().toArray
    val sb = new java.lang.StringBuilder
    var i = 0
    while (i < cps.length) {
      val cp = cps(i)
      val inWordApostrophe = Apostrophes.contains(cp) && i > 0 && i + 1 < cps.length && Py.isWordChar(cps(i - 1)) && Py.isWordChar(cps(i + 1))
      if (!inWordApostrophe) { if (Py.categoryClass(cp) == 'P') sb.append(' ') else sb.appendCodePoint(cp) }
      i += 1
    }
    sb.toString
  })
  val ws: Normalizer = Named("ws", s => PyStr.strip(Py.collapseSpaces(s)))
  val nfkc: Normalizer = Named("nfkc", s => java.text.Normalizer.normalize(s, java.text.Normalizer.Form.NFKC))
  private val AnySpace = Py.re("\\s+")
  val nospace: Normalizer = Named("nospace", s => Py.sub(AnySpace, "", s))
  lazy val whisperEn: Normalizer = Named("whisper_en", WhisperEnglish.normalize)
  lazy val whisperBasic: Normalizer = Named("whisper_basic", WhisperEnglish.basic)

  private def builtin(key: String): Option[Normalizer] = key match {
    case "none" => Some(none)
    case "lower" => Some(lower)
    case "punct" => Some(punct)
    case "ws" => Some(ws)
    case "nfkc" => Some(nfkc)
    case "nospace" => Some(nospace)
    case "whisper_en" => Some(whisperEn)
    case "whisper_basic" => Some(whisperBasic)
    case _ => None
  }
  private val Aliases: Map[String, Seq[String]] = Map(
    "basic" -> Seq("nfkc", "lower", "punct", "ws"), "identity" -> Seq("none"), "whisper" -> Seq("whisper_en"),
    "whisper_english" -> Seq("whisper_en"))
  val known: Seq[String] = (Seq("none", "lower", "punct", "ws", "nfkc", "nospace", "whisper_en", "whisper_basic") ++ Aliases.keys).sorted

  /** A normaliser from its spec (`basic`, `whisper_en+nospace`, ...); unknown names are refused. */
  def get(spec: String): Normalizer = {
    val parts = Option(spec).getOrElse("").split('+').toSeq.flatMap { raw =>
      val key = raw.trim.toLowerCase(java.util.Locale.ROOT)
      if (key.isEmpty) None
      else Aliases.get(key) match {
        case Some(members) =>
          val ns = members.map(builtin(_).get)
          Some(if (ns.size == 1) ns.head else Compose(ns.filterNot(_ eq none), Some(key)))
        case None =>
          Some(builtin(key).getOrElse(throw new IllegalArgumentException(s"unknown normaliser '$raw'; known: ${known.mkString(", ")}")))
      }
    }.filterNot(_ eq none)
    parts match {
      case Seq() => none
      case Seq(one) => one
      case many => Compose(many)
    }
  }
}
