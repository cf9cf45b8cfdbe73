// Generated from the option table (python/sparkasr/params.py) by `python -m sparkasr.generated --write`: do not edit.
// Change the Python side and regenerate; `python -m sparkasr.generated --check` fails on a stale copy.

package sparkasr.spark.params

import org.apache.spark.ml.param._

/** The params of `WerEvaluator` and their defaults (Python: `sparkasr.spark.evaluation.WerEvaluator`). */
trait WerEvaluatorParams extends StageParams {
  /** transcription column: string or Spark NLP document annotations */
  final val predictionCol: Param[String] = new Param[String](this, "predictionCol",
    "transcription column: string or Spark NLP document annotations")
  def setPredictionCol(value: String): this.type = { set(predictionCol, value); validateParams(); this }
  def getPredictionCol: String = $(predictionCol)

  /** reference transcript column (string or annotations) */
  final val referenceCol: Param[String] = new Param[String](this, "referenceCol",
    "reference transcript column (string or annotations)")
  def setReferenceCol(value: String): this.type = { set(referenceCol, value); validateParams(); this }
  def getReferenceCol: String = $(referenceCol)

  /** metric: wer, cer, mer or wil (wer, cer, mer, wil) */
  final val metricName: Param[String] = new Param[String](this, "metricName",
    "metric: wer, cer, mer or wil",
    (x: String) => Array("wer", "cer", "mer", "wil").contains(x))
  def setMetricName(value: String): this.type = { set(metricName, value); validateParams(); this }
  def getMetricName: String = $(metricName)

  /** text normaliser applied to both sides: none, basic, whisper_en, whisper_basic, ... ('+' composes) */
  final val normalizer: Param[String] = new Param[String](this, "normalizer",
    "text normaliser applied to both sides: none, basic, whisper_en, whisper_basic, ... ('+' composes)")
  def setNormalizer(value: String): this.type = { set(normalizer, value); validateParams(); this }
  def getNormalizer: String = $(normalizer)

  /** skip (default) or empty: how a null prediction is scored (skip, empty) */
  final val nullPrediction: Param[String] = new Param[String](this, "nullPrediction",
    "skip (default) or empty: how a null prediction is scored",
    (x: String) => Array("skip", "empty").contains(x))
  def setNullPrediction(value: String): this.type = { set(nullPrediction, value); validateParams(); this }
  def getNullPrediction: String = $(nullPrediction)

  setDefault(
    predictionCol -> "prediction",
    referenceCol -> "reference",
    metricName -> "wer",
    normalizer -> "basic",
    nullPrediction -> "skip"
  )
}
