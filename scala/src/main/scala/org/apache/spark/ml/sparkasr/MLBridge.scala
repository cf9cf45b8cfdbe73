package org.apache.spark.ml.sparkasr

import org.apache.spark.ml.{PipelineModel, Transformer}
import org.apache.spark.ml.param.Params
import org.apache.spark.ml.util.{DefaultParamsReader, DefaultParamsWriter}
import org.apache.spark.sql.SparkSession
import org.json4s.JObject

/** The few `private[ml]` pieces of Spark ML that sparkasr's persistence needs, in one place: Spark's
  * own metadata writer and reader (so that our stages write exactly the `metadata/` JSON that pyspark
  * writes and reads) and the `PipelineModel` constructor (to assemble a pipeline saved by pyspark,
  * whose top-level class name Spark's Scala reader refuses). This file lives in a subpackage of
  * `org.apache.spark.ml` for that reason only. */
object MLBridge {

  def saveMetadata(instance: Params, path: String, spark: SparkSession, extra: Option[JObject]): Unit =
    DefaultParamsWriter.saveMetadata(instance, path, spark, extra)

  final case class Meta(className: String, uid: String, metadata: org.json4s.JValue, private[sparkasr] val raw: DefaultParamsReader.Metadata) {
    def setParams(instance: Params, skip: Seq[String] = Nil): Unit =
      raw.getAndSetParams(instance, if (skip.isEmpty) None else Some(skip.toList))
    def paramValue(name: String): org.json4s.JValue = raw.getParamValue(name)
  }

  /** A stage's metadata; `expectedClassName` "" accepts any class. */
  def loadMetadata(path: String, spark: SparkSession, expectedClassName: String = ""): Meta = {
    val m = DefaultParamsReader.loadMetadata(path, spark, expectedClassName)
    Meta(m.className, m.uid, m.metadata, m)
  }

  /** `DefaultParamsReader.loadParamsInstance`: the stage class named in `path`'s metadata, loaded by
    * its companion's `read.load`. */
  def loadStage[T](path: String, spark: SparkSession): T = DefaultParamsReader.loadParamsInstance[T](path, spark)

  def pipelineModel(uid: String, stages: Array[Transformer]): PipelineModel = new PipelineModel(uid, stages)
}
