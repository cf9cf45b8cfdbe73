package sparkasr.spark

import org.apache.hadoop.fs.{Path => HPath}
import org.apache.spark.ml.sparkasr.MLBridge
import org.apache.spark.ml.util.MLWriter
import org.json4s.JsonDSL._
import org.json4s.JObject

/** Params as Spark's metadata JSON + the model files under `<path>/weights/<uid>` (Python:
  * `_SpeechModelWriter`), through the Hadoop FileSystem API so HDFS/S3 paths work. */
final class SpeechModelWriter(instance: SpeechAnnotatorModel[_]) extends MLWriter {
  override protected def saveImpl(path: String): Unit = {
    val local = instance.resolveModelDir()
    if (SpeechAnnotatorModel.isRemote(local) || !new java.io.File(local).isDirectory)
      throw new IllegalArgumentException(s"cannot save ${instance.uid}: model files at $local are not local to the driver")
    val dest = new HPath(path.stripSuffix("/") + "/weights/" + instance.uid)
    val fs = dest.getFileSystem(sparkSession.sparkContext.hadoopConfiguration)
    fs.copyFromLocalFile(false, true, new HPath(new java.io.File(local).getAbsoluteFile.toURI), dest)
    val extra: JObject = ("modelKind" -> "path") ~ ("weights" -> ("weights/" + instance.uid))
    MLBridge.saveMetadata(instance, path, sparkSession, Some(extra))
  }
}
