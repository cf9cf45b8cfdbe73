package sparkasr.spark

import org.apache.spark.sql.types._
import sparkasr.spark.params.HasReaderCols

/** Which columns of a DataFrame hold read_audio's path, offset, error and duration (None: none). */
final case class ReaderCols(path: Option[String], offset: Option[String], error: Option[String], duration: Option[String])

/** The columns a stage's `pathCol`, `offsetCol`, `durationCol` and `errorCol` name (Python:
  * `HasReaderCols._reader_cols`): unset (''), each is read_audio's column when the DataFrame has it;
  * set, the column must exist. */
object ReaderCols {

  /** The reader columns of `schema` (the duration column only for a path input column, the only
    * input it slices; a column named in `durationCol` is checked either way). */
  def of(stage: HasReaderCols, schema: StructType, pathInput: Boolean): ReaderCols = {
    val numeric = (t: DataType) => t.isInstanceOf[NumericType]
    val string = (t: DataType) => t == StringType
    val duration = optionalCol(schema, stage.getDurationCol, "duration_s", numeric, "durationCol")
    ReaderCols(
      optionalCol(schema, stage.getPathCol, "path", string, "pathCol"),
      optionalCol(schema, stage.getOffsetCol, "offset_s", numeric, "offsetCol"),
      optionalCol(schema, stage.getErrorCol, "error", string, "errorCol"),
      if (pathInput) duration else None
    )
  }

  def optionalCol(schema: StructType, value: String, default: String, accepted: DataType => Boolean, what: String): Option[String] =
    if (value.nonEmpty) {
      if (!schema.fieldNames.contains(value))
        throw new IllegalArgumentException(s"$what column '$value' not found; columns are ${schema.fieldNames.mkString("[", ", ", "]")}")
      if (!accepted(schema(value).dataType)) throw new IllegalArgumentException(s"$what column '$value' has type ${schema(value).dataType.simpleString}")
      Some(value)
    } else if (schema.fieldNames.contains(default) && accepted(schema(default).dataType)) Some(default)
    else None
}
