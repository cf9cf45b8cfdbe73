// Generated from the option table (python/sparkasr/params.py) by `python -m sparkasr.generated --write`: do not edit.
// Change the Python side and regenerate; `python -m sparkasr.generated --check` fails on a stale copy.

package sparkasr.spark.params

import org.apache.spark.ml.param._

/** What `read_audio` says about each row besides its samples (see `sparkasr.spark.ReaderCols`). */
trait HasReaderCols extends StageParams {
  /** column naming each row's file, for the source metadata and error messages ('' = 'path' when present) */
  final val pathCol: Param[String] = new Param[String](this, "pathCol",
    "column naming each row's file, for the source metadata and error messages ('' = 'path' when present)")
  def setPathCol(value: String): this.type = { set(pathCol, value); validateParams(); this }
  def getPathCol: String = $(pathCol)

  /** column with where each row starts in its file, in seconds: chunk times and the offset_s metadata count from the
    * start of the file ('' = 'offset_s' when present, as read_audio writes it; audio annotations' own offset_s
    * metadata comes first) */
  final val offsetCol: Param[String] = new Param[String](this, "offsetCol",
    "column with where each row starts in its file, in seconds: chunk times and the offset_s metadata " +
    "count from the start of the file ('' = 'offset_s' when present, as read_audio writes it; audio " +
    "annotations' own offset_s metadata comes first)")
  def setOffsetCol(value: String): this.type = { set(offsetCol, value); validateParams(); this }
  def getOffsetCol: String = $(offsetCol)

  /** column with each row's length in seconds: with a path input column, the row is that slice of its file, from
    * offsetCol (read_audio(samples=False)'s reference rows); without it, or when null, the whole file ('' =
    * 'duration_s' when present, as read_audio writes it; not used for sample or binary input) */
  final val durationCol: Param[String] = new Param[String](this, "durationCol",
    "column with each row's length in seconds: with a path input column, the row is that slice of its " +
    "file, from offsetCol (read_audio(samples=False)'s reference rows); without it, or when null, the " +
    "whole file ('' = 'duration_s' when present, as read_audio writes it; not used for sample or binary " +
    "input)")
  def setDurationCol(value: String): this.type = { set(durationCol, value); validateParams(); this }
  def getDurationCol: String = $(durationCol)

  /** column with an upstream read error: a non-null value is reported in the row's annotation and the row is not
    * decoded ('' = 'error' when present, as read_audio writes it) */
  final val errorCol: Param[String] = new Param[String](this, "errorCol",
    "column with an upstream read error: a non-null value is reported in the row's annotation and the row " +
    "is not decoded ('' = 'error' when present, as read_audio writes it)")
  def setErrorCol(value: String): this.type = { set(errorCol, value); validateParams(); this }
  def getErrorCol: String = $(errorCol)
}
