package sparkasr.spark

import scala.util.control.NonFatal

import org.apache.spark.ml.Model
import org.apache.spark.ml.util.{MLWritable, MLWriter}
import org.apache.spark.sql.{DataFrame, Dataset, Encoders, Row, SparkSession}
import org.apache.spark.sql.types._
import sparkasr.{AudioItem, SpeechEngine, Transcript}
import sparkasr.annotation.{Annotations, PyFormat}
import sparkasr.evaluation.PyStr
import sparkasr.spark.params.{HasReaderCols, SpeechAnnotatorParams}

/** The Spark glue every speech annotator shares, engine-agnostic (Python: `sparkasr.spark.core`).
  * A subclass mixes in its stage's generated params (`sparkasr.spark.params`) and provides [[localModelDir]] (on the driver) and
  * [[engineFactory]]; this class reads the input column, groups rows into engine calls, writes Spark
  * NLP `document` (and timed `chunk`) annotations, ships the model to executors and saves it with the
  * stage (`<stage>/weights/<uid>`, as the Python stages do). */
abstract class SpeechAnnotatorModel[M <: SpeechAnnotatorModel[M]](override val uid: String)
    extends Model[M] with SpeechAnnotatorParams with HasReaderCols with MLWritable {

  /** Rows per engine call (each stage's own `batchSize` param). */
  def getBatchSize: Int

  override def getChunksCol: String = {
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
    val rc = ReaderCols.of(this, schema, kind == SpeechInput.Path)
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
