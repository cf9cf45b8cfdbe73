// Generated from the option table (python/sparkasr/params.py) by `python -m sparkasr.generated --write`: do not edit.
// Change the Python side and regenerate; `python -m sparkasr.generated --check` fails on a stale copy.

package sparkasr.spark.params

import org.apache.spark.ml.param._

/** The params of `AudioAssembler` and their defaults (Python: `sparkasr.spark.assembler.AudioAssembler`); with
  * [[HasReaderCols]]. */
trait AudioAssemblerParams extends HasReaderCols {
  /** input column: array<float|double> samples, binary file content or a file path */
  final val inputCol: Param[String] = new Param[String](this, "inputCol",
    "input column: array<float|double> samples, binary file content or a file path")
  def setInputCol(value: String): this.type = { set(inputCol, value); validateParams(); this }
  def getInputCol: String = $(inputCol)

  /** output column of Spark NLP audio annotations */
  final val outputCol: Param[String] = new Param[String](this, "outputCol",
    "output column of Spark NLP audio annotations")
  def setOutputCol(value: String): this.type = { set(outputCol, value); validateParams(); this }
  def getOutputCol: String = $(outputCol)

  /** sample rate of array input (Hz) (>= 1) */
  final val sampleRate: IntParam = new IntParam(this, "sampleRate",
    "sample rate of array input (Hz)",
    (x: Int) => x >= 1)
  def setSampleRate(value: Int): this.type = { set(sampleRate, value); validateParams(); this }
  def getSampleRate: Int = $(sampleRate)

  /** column with each row's sample rate ('' = use sampleRate) */
  final val sampleRateCol: Param[String] = new Param[String](this, "sampleRateCol",
    "column with each row's sample rate ('' = use sampleRate)")
  def setSampleRateCol(value: String): this.type = { set(sampleRateCol, value); validateParams(); this }
  def getSampleRateCol: String = $(sampleRateCol)

  /** interleaved channels in array input (down-mixed to mono) (>= 1) */
  final val channels: IntParam = new IntParam(this, "channels",
    "interleaved channels in array input (down-mixed to mono)",
    (x: Int) => x >= 1)
  def setChannels(value: Int): this.type = { set(channels, value); validateParams(); this }
  def getChannels: Int = $(channels)

  setDefault(
    inputCol -> "audio_content",
    outputCol -> "audio_assembler",
    sampleRate -> 16000,
    sampleRateCol -> "",
    channels -> 1,
    pathCol -> "",
    offsetCol -> "",
    durationCol -> "",
    errorCol -> ""
  )
}
