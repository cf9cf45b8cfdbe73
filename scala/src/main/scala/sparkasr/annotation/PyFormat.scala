package sparkasr.annotation

/** Metadata values as Python's `stringify_metadata` writes them, so both languages give the same
  * strings: floats as `repr(round(x, 6))`, booleans as `true`/`false`, `None` dropped. */
object PyFormat {
  import java.math.{BigDecimal => JBigDecimal, RoundingMode}

  /** Python's `round(x, nd)` (correctly rounded, ties to even). */
  def round(x: Double, nd: Int): Double =
    if (x.isNaN || x.isInfinite) x
    else java.lang.Double.parseDouble(new JBigDecimal(x).setScale(nd, RoundingMode.HALF_EVEN).toPlainString)

  /** Python's `repr(round(x, nd))`. */
  def roundRepr(x: Double, nd: Int = 6): String = {
    if (x.isNaN) return "nan"
    if (x.isInfinite) return if (x > 0) "inf" else "-inf"
    val r = round(x, nd)
    if (r == 0.0) return if (1.0 / r < 0) "-0.0" else "0.0"
    val dec =
      if (math.abs(r) < 1e9) new JBigDecimal(r).setScale(nd, RoundingMode.HALF_EVEN).stripTrailingZeros()
      else new JBigDecimal(java.lang.Double.toString(r)).stripTrailingZeros()
    reprOf(dec)
  }

  /** Python's float repr layout of a decimal: fixed for exponents -4..15, else `d.ddde±XX`. */
  private def reprOf(d: JBigDecimal): String = {
    val neg = d.signum < 0
    val digits = d.unscaledValue.abs.toString
    val exp = digits.length - 1 - d.scale // decimal exponent of the first digit
    val body =
      if (exp >= -4 && exp < 16) {
        val plain = d.abs.toPlainString
        if (plain.contains('.')) plain else plain + ".0"
      } else {
        val mant = if (digits.length == 1) digits else digits.head.toString + "." + digits.tail
        val e = math.abs(exp)
        mant + "e" + (if (exp < 0) "-" else "+") + (if (e < 10) "0" + e else e.toString)
      }
    if (neg) "-" + body else body
  }

  def bool(b: Boolean): String = if (b) "true" else "false"

  /** A metadata map from optional values (None dropped). */
  def metadata(entries: (String, Any)*): Map[String, String] =
    entries.iterator.flatMap {
      case (_, None | null) => None
      case (k, Some(v)) => Some(k -> value(v))
      case (k, v) => Some(k -> value(v))
    }.toMap

  private def value(v: Any): String = v match {
    case d: Double => roundRepr(d)
    case f: Float => roundRepr(f.toDouble)
    case b: Boolean => bool(b)
    case other => other.toString
  }
}
