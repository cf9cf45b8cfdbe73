package sparkasr.spark

import scala.collection.mutable.ArrayBuffer
import scala.util.control.NonFatal

import org.apache.hadoop.fs.{Path => HPath}
import org.apache.spark.{SparkFiles, TaskContext}
import org.apache.spark.ml.Model
import org.apache.spark.ml.param._
import org.apache.spark.ml.sparkasr.MLBridge
import org.apache.spark.ml.util.{MLReader, MLWritable, MLWriter}
import org.apache.spark.sql.{DataFrame, Dataset, Encoders, Row, SparkSession}
import org.apache.spark.sql.types._
import org.json4s.JsonDSL._
import org.json4s.{JObject, JString}
import sparkasr.{AudioItem, SpeechEngine, Transcript}
import sparkasr.annotation.{Annotations, PyFormat}
import sparkasr.ctc.PyStr

/** How an executor builds the engine of a stage (serializable, small): given the local model
  * directory and the task's CPU count. The engine is cached per executor JVM by the factory. */
trait EngineFactory extends Serializable {
  def build(modelDir: String, taskCpus: Int): SpeechEngine
}

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

/** The Spark glue every speech annotator shares, engine-agnostic (Python: `sparkasr.spark.core`).
  * A subclass declares its params and provides [[localModelDir]] (on the driver) and
  * [[engineFactory]]; this class reads the input column, groups rows into engine calls, writes Spark
  * NLP `document` (and timed `chunk`) annotations, ships the model to executors and saves it with the
  * stage (`<stage>/weights/<uid>`, as the Python stages do). */
abstract class SpeechAnnotatorModel[M <: SpeechAnnotatorModel[M]](override val uid: String)
    extends Model[M] with HasInputCols with HasOutputCol with HasBatchSize with HasReaderCols with MLWritable {

  final val modelSource: Param[String] = new Param[String](this, "modelSource",
    "model name, local directory or URI (see sparkasr.whisper.models); saved stages point at their own copy")
  final val shipModel: BooleanParam = new BooleanParam(this, "shipModel",
    "copy model files to executors with SparkContext.addFile (false: the path must be visible on every node)")
  final val chunksCol: Param[String] = new Param[String](this, "chunksCol",
    "column for timed chunk annotations ('' = outputCol + '_chunks' when timestamps are on, else none)")

  setDefault(inputCols -> Array("audio_assembler"), outputCol -> "transcription", batchSize -> 8, shipModel -> true,
    pathCol -> "", chunksCol -> "", offsetCol -> "", durationCol -> "", errorCol -> "", modelSource -> "")

  def setModelSource(value: String): this.type = set(modelSource, value)
  def getModelSource: String = $(modelSource)
  def setShipModel(value: Boolean): this.type = set(shipModel, value)
  def getShipModel: Boolean = $(shipModel)
  def setChunksCol(value: String): this.type = set(chunksCol, value)
  def getChunksCol: String = {
    val c = $(chunksCol)
    if (c.nonEmpty) c else if (wantsChunks) getOutputCol + "_chunks" else ""
  }

  // -- provided by subclasses ------------------------------------------------------------------
  /** The model directory on the driver (resolved and checked); a remote URI is returned as is. */
  protected def localModelDir(): String
  /** The model directory this stage runs (checked now, on the driver). */
  def resolveModelDir(): String = localModelDir()
  /** The executor-side engine (options validated here, on the driver, naming the stage). */
  protected def engineFactory(): EngineFactory
  protected def wantsChunks: Boolean = false
  /** The `model` metadata value (Python: `_model_name`). */
  protected def modelName: String = {
    val n = getModelSource
    if (n.length < 80) n else "..." + n.takeRight(77)
  }

  // -- Spark ---------------------------------------------------------------------------------
  override def transformSchema(schema: StructType): StructType = {
    val inCol = inputColumn(schema)
    SpeechInput.classify(schema(inCol).dataType)
    engineFactory() // validate the options on the driver
    outputSchema(schema)
  }

  private def inputColumn(schema: StructType): String = {
    val cols = getInputCols
    if (cols.length != 1) throw new IllegalArgumentException(s"${getClass.getSimpleName} takes exactly one input column, got ${cols.mkString("[", ", ", "]")}")
    if (!schema.fieldNames.contains(cols.head))
      throw new IllegalArgumentException(s"input column '${cols.head}' not found; columns are ${schema.fieldNames.mkString("[", ", ", "]")}")
    cols.head
  }

  private def outputSchema(schema: StructType): StructType = {
    val out = getOutputCol
    val chunks = getChunksCol
    val kept = schema.fields.filterNot(f => f.name == out || (chunks.nonEmpty && f.name == chunks))
    val added = Seq(Annotations.field(out, Annotations.annotationArray, Annotations.Document)) ++
      (if (chunks.nonEmpty) Seq(Annotations.field(chunks, Annotations.annotationArray, Annotations.Chunk)) else Nil)
    StructType(kept ++ added)
  }

  override def transform(dataset: Dataset[_]): DataFrame = {
    val schema = dataset.schema
    val inCol = inputColumn(schema)
    val kind = SpeechInput.classify(schema(inCol).dataType)
    val factory = engineFactory()
    val rc = readerCols(schema, kind == SpeechInput.Path)
    val spark = dataset.sparkSession
    val ref = modelRefFor(spark)
    val outSchema = outputSchema(schema)
    val idx = (c: Option[String]) => c.map(schema.fieldIndex).getOrElse(-1)
    val glue = PartitionGlue(
      factory, ref, schema.fieldIndex(inCol), kind, idx(rc.path), idx(rc.offset), idx(rc.error), idx(rc.duration),
      kept = schema.fields.indices.filterNot(i => isReplaced(schema.fields(i).name)).toArray,
      withChunks = getChunksCol.nonEmpty, batchSize = getBatchSize, modelName = modelName,
      blockRows = SpeechAnnotatorModel.blockRows(spark))
    Annotations.withSchemaMetadata(dataset.toDF().mapPartitions(glue.run _)(Encoders.row(outSchema)), outSchema)
  }

  private def isReplaced(name: String): Boolean = name == getOutputCol || (getChunksCol.nonEmpty && name == getChunksCol)

  /** The model directory for executors: shipped with the job (cluster masters: an archive each
    * executor unpacks; local masters: the driver's directory, the executors being in its JVM), or
    * read from a path every node sees (`shipModel = false`). */
  private def modelRefFor(spark: SparkSession): ModelRef = {
    val dir = localModelDir()
    if (!getShipModel || spark.sparkContext.isLocal || SpeechAnnotatorModel.isRemote(dir)) {
      if (getShipModel && SpeechAnnotatorModel.isRemote(dir)) ModelShipping.shipRemote(spark, dir)
      else ModelRef("path", path = dir)
    } else ModelShipping.shipArchive(spark, dir)
  }

  /** The stage's engine on in-memory items, without Spark (LightPipeline's role; tests). */
  def transcribeItems(items: Seq[AudioItem]): Seq[Transcript] = {
    val engine = engineFactory().build(localModelDir(), 0)
    val live = items.filter(_.error.isEmpty)
    val res = if (live.nonEmpty) SpeechAnnotatorModel.transcribeIsolating(engine, live).iterator else Iterator.empty
    items.map(it => if (it.error.isEmpty) res.next() else Transcript.error(it, it.error.get))
  }

  override def write: MLWriter = new SpeechModelWriter(this)
}

object SpeechAnnotatorModel {
  def isRemote(path: String): Boolean = path.contains("://") && !path.startsWith("file:")

  /** Rows grouped per engine call as the Python stage groups them: it receives Arrow batches of
    * `spark.sql.execution.arrow.maxRecordsPerBatch` rows and calls the engine once at least
    * `batchSize` items are pending, so both languages hand the model the same batches. */
  def blockRows(spark: SparkSession): Int =
    math.max(1, spark.conf.getOption("spark.sql.execution.arrow.maxRecordsPerBatch").map(_.toInt).getOrElse(10000))

  /** `engine.transcribeBatch(items)`; a failed call is retried in halves down to single items, so
    * only the items that fail get `model failed: ...` and the others keep their transcripts. */
  def transcribeIsolating(engine: SpeechEngine, items: Seq[AudioItem]): Seq[Transcript] =
    try {
      val res = engine.transcribeBatch(items)
      if (res.size != items.size) throw new IllegalStateException(s"the engine returned ${res.size} results for ${items.size} inputs")
      res
    } catch {
      case NonFatal(e) =>
        if (items.size == 1) Seq(Transcript.error(items.head, s"model failed: ${e.getClass.getSimpleName}: ${e.getMessage}"))
        else {
          val mid = items.size / 2
          transcribeIsolating(engine, items.take(mid)) ++ transcribeIsolating(engine, items.drop(mid))
        }
    }

  /** A transcript as a Spark NLP `document` annotation (Python: `transcript_document`). */
  def documentAnnotation(t: Transcript, index: Int, modelName: String): Row = {
    val meta = PyFormat.metadata(
      "audio" -> index, "sentence" -> 0, "source" -> Some(t.source).filter(_.nonEmpty), "language" -> t.language,
      "language_probability" -> t.languageProbability, "duration_s" -> PyFormat.round(t.durationS, 3),
      "offset_s" -> (if (t.offsetS != 0) Some(PyFormat.round(t.offsetS, 3)) else None), "model" -> modelName,
      Annotations.ErrorKey -> t.error)
    val text = Option(t.text).getOrElse("")
    Annotations.annotation(Annotations.Document, 0, math.max(PyStr.codePointLength(text) - 1, 0), text, meta)
  }

  /** Its timed chunks as Spark NLP `chunk` annotations, begin/end found in the text in order. */
  def chunkAnnotations(t: Transcript, index: Int): Seq[Row] = {
    var pos = 0
    val text = Option(t.text).getOrElse("")
    t.chunks.zipWithIndex.map { case (c, j) =>
      val found = if (c.text.nonEmpty) PyStr.find(text, c.text, pos) else -1
      val begin = if (found >= 0) found else pos
      val end = begin + math.max(PyStr.codePointLength(c.text) - 1, 0)
      if (found >= 0) pos = end + 1
      Annotations.annotation(Annotations.Chunk, begin, end, c.text, PyFormat.metadata(
        "audio" -> index, "sentence" -> 0, "chunk" -> j, "start" -> c.start, "end" -> c.end, "kind" -> c.kind,
        "probability" -> c.probability))
    }
  }
}

/** The executor side of a transform: rows -> items -> engine calls -> output rows. */
final case class PartitionGlue(
    factory: EngineFactory, ref: ModelRef, inputIdx: Int, kind: SpeechInput.Kind, pathIdx: Int, offsetIdx: Int,
    errorIdx: Int, durationIdx: Int, kept: Array[Int], withChunks: Boolean, batchSize: Int, modelName: String,
    blockRows: Int) {

  private def at(row: Row, i: Int): Any = if (i < 0 || row.isNullAt(i)) null else row.get(i)

  def run(rows: Iterator[Row]): Iterator[Row] = {
    lazy val engine: SpeechEngine = {
      val cpus = Option(TaskContext.get()).map(_.cpus()).getOrElse(0)
      factory.build(ref.localDir(), cpus)
    }
    val pending = ArrayBuffer.empty[(Row, Seq[AudioItem])]
    var nItems = 0
    def flush(): Iterator[Row] = {
      val batch = pending.toList
      pending.clear(); nItems = 0
      val live = batch.flatMap(_._2).filter(_.error.isEmpty)
      val results = (if (live.nonEmpty) SpeechAnnotatorModel.transcribeIsolating(engine, live) else Nil).iterator
      batch.iterator.map { case (row, items) =>
        val ts = items.map(it => if (it.error.isEmpty) results.next() else Transcript.error(it, it.error.get))
        val docs = ts.zipWithIndex.map { case (t, k) => SpeechAnnotatorModel.documentAnnotation(t, k, modelName) }
        val chunks = ts.zipWithIndex.flatMap { case (t, k) => SpeechAnnotatorModel.chunkAnnotations(t, k) }
        Row.fromSeq(kept.toSeq.map(row.get) ++ Seq(docs) ++ (if (withChunks) Seq(chunks) else Nil))
      }
    }
    rows.grouped(blockRows).flatMap { block =>
      block.foreach { row =>
        val cell = at(row, inputIdx)
        val path = Option(at(row, pathIdx)).map(_.toString)
        val items = SpeechInput.cellToItems(cell, kind, SpeechInput.rowSource(cell, kind, path),
          SpeechInput.optDouble(at(row, offsetIdx)), Option(at(row, errorIdx)).map(_.toString), SpeechInput.optDouble(at(row, durationIdx)))
        pending += ((row, items)); nItems += items.size
      }
      if (nItems >= batchSize) flush() else Iterator.empty
    } ++ Iterator.single(()).flatMap(_ => if (pending.nonEmpty) flush() else Iterator.empty)
  }
}

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
    val src = new java.io.File(AudioDecoderPaths.local(dir)).getAbsoluteFile
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

private[spark] object AudioDecoderPaths {
  def local(p: String): String = sparkasr.audio.AudioDecoder.localPath(p)
}

/** sparkasr's cache directory, as the Python package resolves it: `$SPARKASR_CACHE`, else
  * `$XDG_CACHE_HOME/sparkasr`, else `~/.cache/sparkasr`. */
object ModelCache {
  def root(sub: String = ""): java.io.File = {
    val base = sys.env.get("SPARKASR_CACHE").filter(_.nonEmpty).map(new java.io.File(_)).getOrElse(
      new java.io.File(sys.env.get("XDG_CACHE_HOME").filter(_.nonEmpty).getOrElse(sys.props("user.home") + "/.cache"), "sparkasr"))
    val d = if (sub.isEmpty) base else new java.io.File(base, sub)
    d.mkdirs()
    d
  }
}

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

/** Loads a stage saved by [[SpeechModelWriter]] or by the Python stage of the same name. */
final class SpeechModelReader[M <: SpeechAnnotatorModel[M]](make: String => M, className: String) extends MLReader[M] {
  override def load(path: String): M = {
    val meta = MLBridge.loadMetadata(path, sparkSession, className)
    val instance = make(meta.uid)
    meta.setParams(instance)
    (meta.metadata \ "weights") match {
      case JString(w) if w.nonEmpty => instance.setModelSource(path.stripSuffix("/") + "/" + w)
      case _ =>
    }
    instance
  }
}
