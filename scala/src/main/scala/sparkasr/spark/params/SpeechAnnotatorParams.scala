// Generated from the option table (python/sparkasr/params.py) by `python -m sparkasr.generated --write`: do not edit.
// Change the Python side and regenerate; `python -m sparkasr.generated --check` fails on a stale copy.

package sparkasr.spark.params

import org.apache.spark.ml.param._

/** The params every speech annotator has (`sparkasr.spark.SpeechAnnotatorModel`). */
trait SpeechAnnotatorParams extends StageParams {
  /** input annotation column names */
  final val inputCols: StringArrayParam = new StringArrayParam(this, "inputCols",
    "input annotation column names")
  def setInputCols(value: Array[String]): this.type = { set(inputCols, value); validateParams(); this }
  def setInputCols(value: String*): this.type = setInputCols(value.toArray)
  def getInputCols: Array[String] = $(inputCols)

  /** output annotation column name */
  final val outputCol: Param[String] = new Param[String](this, "outputCol",
    "output annotation column name")
  def setOutputCol(value: String): this.type = { set(outputCol, value); validateParams(); this }
  def getOutputCol: String = $(outputCol)

  /** model name, local directory or URI (see sparkasr.whisper.models); saved stages point at their own copy */
  final val modelSource: Param[String] = new Param[String](this, "modelSource",
    "model name, local directory or URI (see sparkasr.whisper.models); saved stages point at their own " +
    "copy")
  def setModelSource(value: String): this.type = { set(modelSource, value); validateParams(); this }
  def getModelSource: String = $(modelSource)

  /** copy the model directory to the executors with the job (SparkContext.addFile; on Spark Connect a session
    * artifact); false: the path must be visible on every node (/Volumes/..., /dbfs/..., NFS) */
  final val shipModel: BooleanParam = new BooleanParam(this, "shipModel",
    "copy the model directory to the executors with the job (SparkContext.addFile; on Spark Connect a " +
    "session artifact); false: the path must be visible on every node (/Volumes/..., /dbfs/..., NFS)")
  def setShipModel(value: Boolean): this.type = { set(shipModel, value); validateParams(); this }
  def getShipModel: Boolean = $(shipModel)

  /** column for timed chunk annotations ('' = outputCol + '_chunks' when timestamps are on, else none) */
  final val chunksCol: Param[String] = new Param[String](this, "chunksCol",
    "column for timed chunk annotations ('' = outputCol + '_chunks' when timestamps are on, else none)")
  def setChunksCol(value: String): this.type = { set(chunksCol, value); validateParams(); this }
  def getChunksCol: String = $(chunksCol)
}
