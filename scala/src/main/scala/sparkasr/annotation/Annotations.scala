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
