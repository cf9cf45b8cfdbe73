package sparkasr.spark

import org.apache.spark.ml.param._
import org.apache.spark.sql.types._

/** Param traits shared by the stages, with the Python stages' names, types, defaults and docs
  * (Python: `sparkasr.spark.params`). Every stage has exactly the Python stage's params, so that a
  * stage saved in one language loads in the other (Spark's readers set each saved param by name). */
trait HasInputCols extends Params {
  final val inputCols: StringArrayParam = new StringArrayParam(this, "inputCols", "input annotation column names")
  def setInputCols(value: String*): this.type = set(inputCols, value.toArray)
  def setInputCols(value: Array[String]): this.type = set(inputCols, value)
  def getInputCols: Array[String] = $(inputCols)
}

trait HasInputCol extends Params {
  final val inputCol: Param[String] = new Param[String](this, "inputCol", "input column name")
  def setInputCol(value: String): this.type = set(inputCol, value)
  def getInputCol: String = $(inputCol)
}

trait HasOutputCol extends Params {
  final val outputCol: Param[String] = new Param[String](this, "outputCol", "output annotation column name")
  def setOutputCol(value: String): this.type = set(outputCol, value)
  def getOutputCol: String = $(outputCol)
}

trait HasBatchSize extends Params {
  final val batchSize: IntParam = new IntParam(this, "batchSize", "rows decoded together in one model call", ParamValidators.gtEq(1))
  def setBatchSize(value: Int): this.type = set(batchSize, value)
  def getBatchSize: Int = $(batchSize)
}

/** Which columns of a DataFrame hold read_audio's path, offset, error and duration (None: none). */
final case class ReaderCols(path: Option[String], offset: Option[String], error: Option[String], duration: Option[String])

/** `pathCol`, `offsetCol`, `durationCol`, `errorCol`: what `read_audio` says about each row besides
  * its samples. Unset (''), each is read_audio's column when the DataFrame has it; set, the column
  * must exist. */
trait HasReaderCols extends Params {
  final val pathCol: Param[String] = new Param[String](this, "pathCol",
    "column naming each row's file, for the source metadata and error messages ('' = 'path' when present)")
  final val offsetCol: Param[String] = new Param[String](this, "offsetCol",
    "column with where each row starts in its file, in seconds: chunk times and the offset_s metadata count from the " +
      "start of the file ('' = 'offset_s' when present, as read_audio writes it; audio annotations' own offset_s " +
      "metadata comes first)")
  final val durationCol: Param[String] = new Param[String](this, "durationCol",
    "column with each row's length in seconds: with a path input column, the row is that slice of its file, from " +
      "offsetCol (read_audio(samples=False)'s reference rows); without it, or when null, the whole file ('' = " +
      "'duration_s' when present, as read_audio writes it; not used for sample or binary input)")
  final val errorCol: Param[String] = new Param[String](this, "errorCol",
    "column with an upstream read error: a non-null value is reported in the row's annotation and the row is not " +
      "decoded ('' = 'error' when present, as read_audio writes it)")

  def setPathCol(value: String): this.type = set(pathCol, value)
  def getPathCol: String = $(pathCol)
  def setOffsetCol(value: String): this.type = set(offsetCol, value)
  def getOffsetCol: String = $(offsetCol)
  def setDurationCol(value: String): this.type = set(durationCol, value)
  def getDurationCol: String = $(durationCol)
  def setErrorCol(value: String): this.type = set(errorCol, value)
  def getErrorCol: String = $(errorCol)

  /** The reader columns of `schema` (the duration column only for a path input column, the only
    * input it slices; a column named in `durationCol` is checked either way). */
  def readerCols(schema: StructType, pathInput: Boolean): ReaderCols = {
    val numeric = (t: DataType) => t.isInstanceOf[NumericType]
    val string = (t: DataType) => t == StringType
    val duration = HasReaderCols.optionalCol(schema, getDurationCol, "duration_s", numeric, "durationCol")
    ReaderCols(
      HasReaderCols.optionalCol(schema, getPathCol, "path", string, "pathCol"),
      HasReaderCols.optionalCol(schema, getOffsetCol, "offset_s", numeric, "offsetCol"),
      HasReaderCols.optionalCol(schema, getErrorCol, "error", string, "errorCol"),
      if (pathInput) duration else None
    )
  }
}

object HasReaderCols {
  def optionalCol(schema: StructType, value: String, default: String, accepted: DataType => Boolean, what: String): Option[String] =
    if (value.nonEmpty) {
      if (!schema.fieldNames.contains(value))
        throw new IllegalArgumentException(s"$what column '$value' not found; columns are ${schema.fieldNames.mkString("[", ", ", "]")}")
      if (!accepted(schema(value).dataType)) throw new IllegalArgumentException(s"$what column '$value' has type ${schema(value).dataType.simpleString}")
      Some(value)
    } else if (schema.fieldNames.contains(default) && accepted(schema(default).dataType)) Some(default)
    else None
}

/** Params whose values are fixed lists (the option table's `choices`). */
object Choices {
  def param(parent: Params, name: String, doc: String, choices: Seq[String]): Param[String] =
    new Param[String](parent, name, s"$doc (one of ${choices.mkString(", ")})", ParamValidators.inArray[String](choices.toArray))
}
