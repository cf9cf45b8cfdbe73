package sparkasr.spark

import org.apache.spark.SparkFiles

/** Where an executor finds the model directory: `path` (visible on every node) or `sparkfiles`
  * (shipped with `SparkContext.addArchive` under `name`). */
final case class ModelRef(kind: String, name: String = "", path: String = "") {
  def localDir(): String = kind match {
    case "sparkfiles" =>
      val p = new java.io.File(SparkFiles.get(name))
      if (p.isDirectory) p.getPath
      else if (path.nonEmpty && new java.io.File(path).isDirectory) path
      else throw new java.io.FileNotFoundException(s"model files '$name' were not shipped to this executor and $path is not visible here")
    case _ =>
      if (new java.io.File(path).isDirectory) path
      else throw new java.io.FileNotFoundException(s"model directory $path is not visible on this node")
  }
}
