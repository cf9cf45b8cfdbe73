package sparkasr.spark

import org.apache.spark.sql.SparkSession

/** Shipping a model directory to executors (Python: `ship_model_dir`): cluster masters get a stored
  * zip added with `SparkContext.addArchive`, unpacked on each executor under `SparkFiles.get(name)`. */
object ModelShipping {
  private val shipped = new java.util.concurrent.ConcurrentHashMap[String, String]()

  def fingerprint(dir: java.io.File): String = {
    val md = java.security.MessageDigest.getInstance("SHA-256")
    md.update(dir.getAbsolutePath.getBytes("UTF-8"))
    Option(dir.listFiles()).getOrElse(Array.empty).filter(_.isFile).sortBy(_.getName).foreach { f =>
      md.update(s"${f.getName}:${f.length}:${f.lastModified / 1000}".getBytes("UTF-8"))
    }
    md.digest().take(6).map("%02x".format(_)).mkString
  }

  def shipArchive(spark: SparkSession, dir: String): ModelRef = {
    val src = new java.io.File(sparkasr.audio.AudioDecoder.localPath(dir)).getAbsoluteFile
    val name = s"sparkasr-${src.getName}-${fingerprint(src)}"
    shipped.synchronized {
      if (shipped.get(name) != src.getPath) {
        val zip = new java.io.File(ModelCache.root("ship"), name + ".zip")
        if (!zip.isFile) {
          val tmp = new java.io.File(zip.getPath + s".tmp${ProcessHandle.current().pid()}")
          val out = new java.util.zip.ZipOutputStream(new java.io.FileOutputStream(tmp))
          try {
            out.setMethod(java.util.zip.ZipOutputStream.DEFLATED)
            out.setLevel(0)
            // files in subdirectories too (a Whisper export's assets/), by their relative paths
            def files(d: java.io.File, prefix: String): Seq[(String, java.io.File)] =
              Option(d.listFiles()).getOrElse(Array.empty).sortBy(_.getName).toSeq.flatMap { f =>
                if (f.isDirectory) files(f, prefix + f.getName + "/") else Seq(prefix + f.getName -> f)
              }
            files(src, "").foreach { case (name, f) =>
              out.putNextEntry(new java.util.zip.ZipEntry(name))
              java.nio.file.Files.copy(f.toPath, out)
              out.closeEntry()
            }
          } finally out.close()
          java.nio.file.Files.move(tmp.toPath, zip.toPath, java.nio.file.StandardCopyOption.ATOMIC_MOVE)
        }
        spark.sparkContext.addArchive(zip.toURI.toString + "#" + name)
        shipped.put(name, src.getPath)
      }
    }
    ModelRef("sparkfiles", name = name, path = src.getPath)
  }

  def shipRemote(spark: SparkSession, uri: String): ModelRef = {
    val name = uri.stripSuffix("/").split('/').last
    shipped.synchronized {
      if (shipped.get(name) != uri) { spark.sparkContext.addFile(uri, recursive = true); shipped.put(name, uri) }
    }
    ModelRef("sparkfiles", name = name, path = uri)
  }
}
