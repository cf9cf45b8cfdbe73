package sparkasr.annotation

import org.apache.spark.sql.{Column, DataFrame, Row}
import org.apache.spark.sql.types._

/** Spark NLP's annotation data model, without Spark NLP (Python: `sparkasr.annotation`).
  *
  *  - text annotations (`document`, `chunk`, ...): `array<struct<annotatorType: string, begin: int,
  *    end: int, result: string, metadata: map<string,string>, embeddings: array<float>>>`
  *  - audio annotations (`AudioAssembler` output): `array<struct<annotatorType: string, result:
  *    array<float>, metadata: map<string,string>>>`
  *
  * Spark NLP finds a column's annotator type in the column metadata (`{"annotatorType": ...}`). */
object Annotations {
  val Audio = "audio"
  val Document = "document"
  val Chunk = "chunk"
  val Token = "token"
  val ErrorKey = "error"

  val annotationStruct: StructType = StructType(Seq(
    StructField("annotatorType", StringType, nullable = true),
    StructField("begin", IntegerType, nullable = false),
    StructField("end", IntegerType, nullable = false),
    StructField("result", StringType, nullable = true),
    StructField("metadata", MapType(StringType, StringType, valueContainsNull = true), nullable = true),
    StructField("embeddings", ArrayType(FloatType, containsNull = false), nullable = true)
  ))
  val annotationArray: ArrayType = ArrayType(annotationStruct, containsNull = true)

  val audioStruct: StructType = StructType(Seq(
    StructField("annotatorType", StringType, nullable = true),
    StructField("result", ArrayType(FloatType, containsNull = true), nullable = true),
    StructField("metadata", MapType(StringType, StringType, valueContainsNull = true), nullable = true)
  ))
  val audioArray: ArrayType = ArrayType(audioStruct, containsNull = true)

  /** A text annotation row in Spark NLP's field order. */
  def annotation(annotatorType: String, begin: Int, end: Int, result: String, metadata: Map[String, String]): Row =
    Row(annotatorType, begin, end, result, metadata, Array.emptyFloatArray)

  def audioAnnotation(samples: Array[Float], metadata: Map[String, String]): Row = Row(Audio, samples, metadata)

  /** The column metadata Spark NLP reads. */
  def typeMetadata(annotatorType: String, base: Metadata = Metadata.empty): Metadata =
    new MetadataBuilder().withMetadata(base).putString("annotatorType", annotatorType).build()

  def field(name: String, dataType: DataType, annotatorType: String): StructField =
    StructField(name, dataType, nullable = true, typeMetadata(annotatorType))

  /** `df` with `{"annotatorType": annotatorType}` in `column`'s metadata. */
  def withAnnotatorType(df: DataFrame, column: String, annotatorType: String): DataFrame = {
    val meta = typeMetadata(annotatorType, df.schema(column).metadata)
    df.withColumn(column, new Column(column).as(column, meta))
  }

  /** `df` with the column metadata of `schema` (for the columns both have): Spark's
    * `mapPartitions` keeps the data of the columns it passes through but not their metadata. */
  def withSchemaMetadata(df: DataFrame, schema: StructType): DataFrame = {
    val meta = schema.fields.filter(f => f.metadata != Metadata.empty && df.columns.contains(f.name)).map(f => f.name -> f.metadata).toMap
    if (meta.isEmpty) df
    else df.select(df.columns.toSeq.map(c => meta.get(c).map(m => new Column(c).as(c, m)).getOrElse(new Column(c))): _*)
  }

  def annotatorTypeOf(schema: StructType, column: String): Option[String] = {
    val m = schema(column).metadata
    if (m.contains("annotatorType")) Some(m.getString("annotatorType")) else None
  }
}

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
