package sparkasr

import java.io.File
import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Path, Paths}
import java.nio.{ByteBuffer, ByteOrder}

import scala.jdk.CollectionConverters._
import scala.sys.process._

import org.json4s._
import org.json4s.jackson.JsonMethods

/** What the Python side computes on the vendored clips (tests/fixtures/make_jvm_fixtures.py), made
  * once per change of its inputs into target/jvm-fixtures, with the project's Python (`.venv`, or
  * `$SPARKASR_PYTHON`), whose onnxruntime is pinned to 1.29.0, the Java runtime's version (the
  * fixture script checks it). */
object Fixtures {
  val repo: File = new File(".").getCanonicalFile
  val dir: File = new File(repo, "target/jvm-fixtures")
  val python: String = sys.env.getOrElse("SPARKASR_PYTHON", new File(repo, ".venv/bin/python").getPath)

  /** The files under `paths` (relative to the repo; directories walked in name order), caches left out. */
  def files(paths: String*): Seq[File] = {
    def walk(f: File): Seq[File] = if (f.isDirectory) Option(f.listFiles()).toSeq.flatten.sortBy(_.getName).flatMap(walk) else Seq(f)
    paths.flatMap(p => walk(new File(repo, p))).filter(f => f.isFile && !f.getPath.contains("__pycache__"))
  }

  private def stamp(inputs: Seq[File]): String = {
    val md = java.security.MessageDigest.getInstance("SHA-256")
    inputs.foreach { f => md.update(f.getPath.getBytes(StandardCharsets.UTF_8)); md.update(Files.readAllBytes(f.toPath)) }
    md.digest().map("%02x".format(_)).mkString
  }

  /** Python commands with the fixture environment; their output goes to `log`. */
  def runPython(args: Seq[String], log: File): Int = {
    require(new File(python).canExecute, s"no Python at $python: run scripts/setup.sh --all (or set SPARKASR_PYTHON)")
    val env = Seq("PYTHONPATH" -> new File(repo, "python").getPath, "PYSPARK_PYTHON" -> python,
      "PYSPARK_DRIVER_PYTHON" -> python)
    (Process(python +: args, repo, env: _*) #> log).!
  }

  /** Where finished fixture directories are kept between checkouts, one per name (the latest stamp):
    * `$SPARKASR_FIXTURE_CACHE`, else `$XDG_CACHE_HOME` or ~/.cache, under sparkasr/jvm-fixtures. The stamp
    * covers the inputs' absolute paths and bytes, so a copy is only reused where it would be rebuilt
    * identically (the same checkout path, the same Python sources and data). */
  private lazy val cacheRoot: File = sys.env.get("SPARKASR_FIXTURE_CACHE").map(new File(_)).getOrElse(
    new File(sys.env.getOrElse("XDG_CACHE_HOME", new File(sys.props("user.home"), ".cache").getPath), "sparkasr/jvm-fixtures"))

  private def readStamp(d: File): Option[String] = {
    val f = new File(d, ".stamp")
    if (f.isFile) Some(new String(Files.readAllBytes(f.toPath), StandardCharsets.UTF_8)) else None
  }

  /** Copies `from` into `to` (a new directory), symbolic links as links. */
  private def copyTree(from: Path, to: Path): Unit = {
    val walk = Files.walk(from)
    try walk.iterator().asScala.foreach { src =>
      val dst = to.resolve(from.relativize(src).toString)
      if (Files.isSymbolicLink(src)) Files.createSymbolicLink(dst, Files.readSymbolicLink(src))
      else if (Files.isDirectory(src)) Files.createDirectories(dst)
      else Files.copy(src, dst)
    } finally walk.close()
  }

  /** target/`name`, written by `python script target/name` once per change of `inputs` (a stamp of
    * their paths and bytes; a copy from the cache when it has that stamp); the script's output goes to
    * target/`name`.log. */
  def made(name: String, script: String, inputs: Seq[File]): File = synchronized {
    val d = new File(repo, s"target/$name")
    val s = stamp(inputs)
    if (!readStamp(d).contains(s)) {
      if (d.exists()) deleteRecursively(d)
      d.getParentFile.mkdirs()
      val cached = new File(cacheRoot, name)
      if (readStamp(cached).contains(s)) copyTree(cached.toPath, d.toPath)
      else {
        val log = new File(repo, s"target/$name.log")
        val rc = runPython(Seq(script, d.getPath), log)
        if (rc != 0) throw new IllegalStateException(s"${new File(script).getName} failed ($rc); see $log")
        Files.write(new File(d, ".stamp").toPath, s.getBytes(StandardCharsets.UTF_8))
        try {
          // moved into place whole, so a copy cut short is never taken for a finished one
          if (cached.exists()) deleteRecursively(cached)
          cached.getParentFile.mkdirs()
          val tmp = Files.createTempDirectory(cached.getParentFile.toPath, s"$name-").toFile
          copyTree(d.toPath, tmp.toPath.resolve("d"))
          Files.move(tmp.toPath.resolve("d"), cached.toPath)
          deleteRecursively(tmp)
        } catch { case e: java.io.IOException => System.err.println(s"fixture cache not written ($cacheRoot): $e") }
      }
    }
    d
  }

  lazy val ready: File = made("jvm-fixtures", "tests/fixtures/make_jvm_fixtures.py",
    files("python/sparkasr", "tests/fixtures", "tests/data", "tests/conftest.py"))

  def file(rel: String): File = new File(ready, rel)
  def json(rel: String): JValue = JsonMethods.parse(new String(Files.readAllBytes(file(rel).toPath), StandardCharsets.UTF_8))
  def floats(f: File): Array[Float] = {
    val b = ByteBuffer.wrap(Files.readAllBytes(f.toPath)).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
    val out = new Array[Float](b.remaining())
    b.get(out)
    out
  }
  def model(kind: String): String = file(s"models/$kind/onnx").getPath

  def deleteRecursively(f: File): Unit = {
    if (f.isDirectory) Option(f.listFiles()).toSeq.flatten.foreach(deleteRecursively)
    f.delete()
  }

  def tempDir(prefix: String): File = {
    val base = new File(repo, "target/tmp")
    base.mkdirs()
    Files.createTempDirectory(base.toPath, prefix).toFile
  }

  /** The vendored WAV clips (name, path). */
  lazy val clips: Seq[(String, String)] = {
    implicit val f: Formats = DefaultFormats
    json("clips.json").extract[List[Map[String, String]]].map(m => m("name") -> m("path"))
  }

  def wavPaths: Seq[String] = clips.map(_._2).filter(_.endsWith(".wav")).sorted
}
