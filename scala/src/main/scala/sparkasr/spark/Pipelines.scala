package sparkasr.spark

import org.apache.spark.ml.{PipelineModel, Transformer}
import org.apache.spark.ml.sparkasr.MLBridge
import org.apache.spark.sql.SparkSession
import org.json4s._

/** Pipelines across languages.
  *
  * Our JVM stages are named after the Python class paths (`sparkasr.spark.ctc.Wav2Vec2ForCTC`, ...)
  * and write the same `metadata/` JSON and `weights/<uid>` files, so each stage directory loads in
  * either language with the stage's own reader. At the top level:
  *
  *  - Scala -> Python: pyspark's `PipelineModel.load` reads a pipeline saved by Spark's Scala writer
  *    (its Python reader takes the stage uids from the metadata and imports each stage's class by the
  *    name recorded there), so nothing more is needed;
  *  - Python -> Scala: pyspark writes `"class": "pyspark.ml.pipeline.PipelineModel"` and
  *    `"language": "Python"`, which Spark's Scala `PipelineModel.load` refuses (it insists on
  *    `org.apache.spark.ml.PipelineModel`). [[load]] accepts both and loads each stage by the class
  *    named in its metadata (`pyspark.ml.X` -> `org.apache.spark.ml.X` for Spark's own stages), so
  *    `Pipelines.load(path)` loads a pipeline saved in either language. */
object Pipelines {
  val ScalaClass = "org.apache.spark.ml.PipelineModel"
  val PythonClass = "pyspark.ml.pipeline.PipelineModel"

  def load(path: String): PipelineModel = load(path, SparkSession.active)

  def load(path: String, spark: SparkSession): PipelineModel = {
    val meta = MLBridge.loadMetadata(path, spark)
    if (meta.className != ScalaClass && meta.className != PythonClass)
      throw new IllegalArgumentException(s"$path holds a ${meta.className}, not a PipelineModel")
    val uids = meta.paramValue("stageUids") match {
      case JArray(items) => items.collect { case JString(s) => s }
      case other => throw new IllegalArgumentException(s"$path: no stageUids in the pipeline metadata ($other)")
    }
    val stagesDir = path.stripSuffix("/") + "/stages"
    val width = uids.size.toString.length
    val stages = uids.zipWithIndex.map { case (uid, i) =>
      val stagePath = s"$stagesDir/${s"%0${width}d".format(i)}_$uid"
      loadStage(stagePath, spark)
    }
    MLBridge.pipelineModel(meta.uid, stages.toArray)
  }

  private def loadStage(stagePath: String, spark: SparkSession): Transformer = {
    val cls = MLBridge.loadMetadata(stagePath, spark).className
    if (cls == ScalaClass || cls == PythonClass) load(stagePath, spark)
    else {
      val jvmName = if (cls.startsWith("pyspark.ml.")) "org.apache.spark.ml." + cls.stripPrefix("pyspark.ml.") else cls
      val companion =
        try Class.forName(jvmName + "$", true, Thread.currentThread().getContextClassLoader)
        catch {
          case _: ClassNotFoundException =>
            throw new IllegalArgumentException(s"$stagePath: stage class $cls has no JVM implementation " +
              "(a Python-only stage cannot run in a Scala pipeline)")
        }
      val reader = companion.getField("MODULE$").get(null)
      reader.getClass.getMethod("load", classOf[String]).invoke(reader, stagePath).asInstanceOf[Transformer]
    }
  }
}
