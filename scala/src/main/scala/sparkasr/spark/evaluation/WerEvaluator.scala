package sparkasr.spark.evaluation

import org.apache.spark.ml.evaluation.Evaluator
import org.apache.spark.ml.param.ParamMap
import org.apache.spark.ml.util.{DefaultParamsReadable, DefaultParamsWritable, Identifiable}
import org.apache.spark.sql.{Column, DataFrame, Dataset}
import org.apache.spark.sql.functions._
import org.apache.spark.sql.types._
import sparkasr.evaluation.{ErrorCounts, Normalizers}
import sparkasr.spark.params.WerEvaluatorParams

/** A Spark ML `Evaluator` for WER / CER / MER / WIL (smaller is better), usable in `CrossValidator`
  * and `TrainValidationSplit` (Python: `sparkasr.spark.evaluation.WerEvaluator`, same class path and
  * params, generated from its option table: [[WerEvaluatorParams]]). Each partition normalises and aligns its rows on the JVM and emits integer counts; the
  * driver sums them and derives the rate, so the corpus WER is total errors / total reference words
  * whatever the partitioning, as jiwer computes it on the same pairs.
  * {{{
  * new WerEvaluator().setPredictionCol("transcription").setReferenceCol("reference").setNormalizer("whisper_en")
  * }}} */
class WerEvaluator(override val uid: String) extends Evaluator with WerEvaluatorParams with DefaultParamsWritable {
  def this() = this(Identifiable.randomUID("WerEvaluator"))

  /** Metric names are case-insensitive (`WER` is `wer`). */
  override def setMetricName(value: String): this.type = super.setMetricName(value.toLowerCase(java.util.Locale.ROOT))

  /** An unknown normaliser is refused before it is set (Python: `setNormalizer`). */
  override def setNormalizer(value: String): this.type = { Normalizers.get(value); super.setNormalizer(value) }

  override protected def validateParams(): Unit = Normalizers.get(getNormalizer)

  override def isLargerBetter: Boolean = false

  /** The corpus counts behind the metric (every metric derives from them). */
  def counts(dataset: Dataset[_]): ErrorCounts = {
    val norm = Normalizers.get(getNormalizer)
    norm("") // fail on the driver, not in a task
    val df = dataset.toDF()
    val nullPred = getNullPrediction
    val scored = df.select(WerEvaluator.textColumn(df, getPredictionCol).as("hyp"), WerEvaluator.textColumn(df, getReferenceCol).as("ref"))
    val partials = scored.rdd.mapPartitions { rows =>
      var acc = ErrorCounts()
      var seen = false
      rows.foreach { r =>
        seen = true
        acc = acc + ErrorCounts.pair(r.getString(1), r.getString(0), norm, nullPred)
      }
      if (seen) Iterator.single(acc) else Iterator.empty
    }.collect()
    partials.foldLeft(ErrorCounts())(_ + _)
  }

  override def evaluate(dataset: Dataset[_]): Double = counts(dataset).metric(getMetricName)

  override def copy(extra: ParamMap): WerEvaluator = defaultCopy(extra)
}

object WerEvaluator extends DefaultParamsReadable[WerEvaluator] {

  /** A string column: itself, or the space-joined `result` of the non-empty `document` annotations of
    * a Spark NLP annotation column (null stays null), computed in Spark SQL. */
  def textColumn(df: DataFrame, column: String): Column = {
    if (!df.columns.contains(column)) throw new IllegalArgumentException(s"column '$column' not in the DataFrame (columns: ${df.columns.mkString(", ")})")
    df.schema(column).dataType match {
      case StringType => col(column)
      case ArrayType(st: StructType, _) if st.fieldNames.contains("result") && st("result").dataType == StringType =>
        val hasType = st.fieldNames.contains("annotatorType")
        val docs = filter(col(column), a => {
          val ok = a("result").isNotNull && a("result") =!= lit("")
          if (hasType) ok && coalesce(a("annotatorType"), lit("document")) === lit("document") else ok
        })
        array_join(transform(docs, a => a("result")), " ")
      case other =>
        throw new IllegalArgumentException(s"column '$column' must be a string or a Spark NLP text annotation column " +
          s"(array<struct<..., result: string, ...>>), not ${other.simpleString}")
    }
  }
}
