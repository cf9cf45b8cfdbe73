package sparkasr.spark.assembler

import scala.util.control.NonFatal

import org.apache.spark.ml.Transformer
import org.apache.spark.ml.param._
import org.apache.spark.ml.util.{DefaultParamsReadable, DefaultParamsWritable, Identifiable}
import org.apache.spark.sql.{Column, DataFrame, Dataset, Encoders, Row}
import org.apache.spark.sql.functions._
import org.apache.spark.sql.types._
import sparkasr.Records.SampleRate
import sparkasr.annotation.{Annotations, PyFormat}
import sparkasr.audio.{Audio, AudioDecoder, AudioError}
import sparkasr.spark.{HasInputCol, HasOutputCol, HasReaderCols, SpeechInput}

/** Spark NLP's entry stage, JVM-native: a column of audio -> Spark NLP `audio` annotations
  * (16 kHz mono float32). Inputs: `array<float>`/`array<double>` samples at `sampleRate` (or the
  * per-row `sampleRateCol`), interleaved when `channels` > 1 (down-mixed and resampled); encoded file
  * content (`binaryFile`'s `content`: WAV, FLAC, OGG, MP3, AIFF, M4A, ... through FFmpeg); or local file
  * paths. A row that cannot be decoded gets one annotation with an empty `result` and an `error` in
  * its metadata naming the file: the row is never dropped. Same params, metadata and class path as
  * the Python stage (`sparkasr.spark.assembler.AudioAssembler`).
  * {{{
  * new AudioAssembler().setInputCol("content").setOutputCol("audio_assembler")
  * }}} */
class AudioAssembler(override val uid: String)
    extends Transformer with HasInputCol with HasOutputCol with HasReaderCols with DefaultParamsWritable {

  def this() = this(Identifiable.randomUID("AudioAssembler"))

  final val sampleRate: IntParam = new IntParam(this, "sampleRate", "sample rate of array input (Hz)", ParamValidators.gt(0))
  final val sampleRateCol: Param[String] = new Param[String](this, "sampleRateCol", "column with each row's sample rate ('' = use sampleRate)")
  final val channels: IntParam = new IntParam(this, "channels", "interleaved channels in array input (down-mixed to mono)", ParamValidators.gtEq(1))

  setDefault(inputCol -> "audio_content", outputCol -> "audio_assembler", sampleRate -> SampleRate, sampleRateCol -> "", channels -> 1,
    pathCol -> "", offsetCol -> "", durationCol -> "", errorCol -> "")

  def setSampleRate(value: Int): this.type = set(sampleRate, value)
  def getSampleRate: Int = $(sampleRate)
  def setSampleRateCol(value: String): this.type = set(sampleRateCol, value)
  def getSampleRateCol: String = $(sampleRateCol)
  def setChannels(value: Int): this.type = set(channels, value)
  def getChannels: Int = $(channels)

  private def inputKind(schema: StructType): SpeechInput.Kind = {
    val in = getInputCol
    if (!schema.fieldNames.contains(in))
      throw new IllegalArgumentException(s"AudioAssembler: input column '$in' not found; columns are ${schema.fieldNames.mkString("[", ", ", "]")}")
    val kind = SpeechInput.classify(schema(in).dataType)
    if (kind.isInstanceOf[SpeechInput.AudioAnnotations]) throw new IllegalArgumentException(s"AudioAssembler: column '$in' already holds audio annotations")
    if (getSampleRateCol.nonEmpty && !schema.fieldNames.contains(getSampleRateCol))
      throw new IllegalArgumentException(s"AudioAssembler: sampleRateCol '$getSampleRateCol' not found")
    kind
  }

  override def transformSchema(schema: StructType): StructType = {
    inputKind(schema)
    StructType(schema.fields.filterNot(_.name == getOutputCol) :+ Annotations.field(getOutputCol, Annotations.audioArray, Annotations.Audio))
  }

  override def transform(dataset: Dataset[_]): DataFrame = {
    val schema = dataset.schema
    val kind = inputKind(schema)
    val (in, out) = (getInputCol, getOutputCol)
    val rc = readerCols(schema, kind == SpeechInput.Path)
    if (kind == SpeechInput.Floats && getSampleRate == SampleRate && getChannels == 1 && getSampleRateCol.isEmpty) {
      // already 16 kHz mono: pure Spark SQL, the same expressions as the Python stage's
      val items = Seq[Column](lit("sample_rate"), lit(SampleRate.toString), lit("duration_s"),
        format_number(size(col(in)) / lit(SampleRate.toDouble), 3)) ++
        rc.path.toSeq.flatMap(p => Seq(lit("source"), col(p).cast("string"))) ++
        rc.offset.toSeq.flatMap(o => Seq(lit("offset_s"), round(col(o).cast("double"), 4).cast("string"))) ++
        rc.error.toSeq.flatMap(e => Seq(lit(Annotations.ErrorKey), col(e)))
      val meta = map_filter(map(items: _*), (_, v) => v.isNotNull)
      val ann = struct(lit(Annotations.Audio).as("annotatorType"), col(in).cast(ArrayType(FloatType, containsNull = true)).as("result"),
        meta.as("metadata"))
      val df = dataset.toDF().withColumn(out, when(col(in).isNull, array().cast(Annotations.audioArray)).otherwise(array(ann)))
      return Annotations.withAnnotatorType(df, out, Annotations.Audio)
    }
    val outSchema = transformSchema(schema)
    val idx = (c: Option[String]) => c.map(schema.fieldIndex).getOrElse(-1)
    val asm = Assemble(kind, schema.fieldIndex(in), idx(rc.path), idx(rc.offset), idx(rc.error), idx(rc.duration),
      if (getSampleRateCol.nonEmpty) schema.fieldIndex(getSampleRateCol) else -1, getSampleRate, getChannels,
      schema.fields.indices.filterNot(i => schema.fields(i).name == out).toArray)
    Annotations.withSchemaMetadata(dataset.toDF().mapPartitions(rows => rows.map(asm.row))(Encoders.row(outSchema)), outSchema)
  }

  override def copy(extra: ParamMap): AudioAssembler = defaultCopy(extra)
}

object AudioAssembler extends DefaultParamsReadable[AudioAssembler]

/** One row -> its audio annotation (Python: `_assemble`), on executors. */
private final case class Assemble(kind: SpeechInput.Kind, inIdx: Int, pathIdx: Int, offsetIdx: Int, errorIdx: Int, durationIdx: Int,
                                  rateIdx: Int, rate: Int, channels: Int, kept: Array[Int]) {
  private def at(row: Row, i: Int): Any = if (i < 0 || row.isNullAt(i)) null else row.get(i)

  def row(r: Row): Row = {
    val cell = at(r, inIdx)
    val source = SpeechInput.rowSource(cell, kind, Option(at(r, pathIdx)).map(_.toString))
    val offset = SpeechInput.optDouble(at(r, offsetIdx))
    val rowRate: Any = if (rateIdx >= 0) at(r, rateIdx) else rate
    Row.fromSeq(kept.toSeq.map(r.get) :+ Seq(annotation(cell, source, rowRate, offset, Option(at(r, errorIdx)).map(_.toString),
      SpeechInput.optDouble(at(r, durationIdx)))))
  }

  private def annotation(cell: Any, source: String, rowRate: Any, offset: Option[Double], error: Option[String], duration: Option[Double]): Row = {
    var meta: Seq[(String, Any)] = Seq("sample_rate" -> SampleRate, "source" -> Some(source).filter(_.nonEmpty)) ++
      offset.map(o => "offset_s" -> PyFormat.round(o, 4)).toSeq
    def failed(msg: String) = Annotations.audioAnnotation(Array.emptyFloatArray, PyFormat.metadata(meta :+ (Annotations.ErrorKey -> msg): _*))
    try {
      error.filter(_.nonEmpty) match {
        case Some(e) => return failed(e) // the reader already failed on this row and said why
        case None =>
      }
      if (cell == null) throw new AudioError("input is null")
      val samples = kind match {
        case SpeechInput.Floats =>
          val r = rowRate match {
            case n: java.lang.Number if n.intValue() > 0 => n.intValue()
            case other => throw new AudioError(s"invalid sample rate ${if (other == null) "None" else other}")
          }
          val mono = Audio.toMono16k(SpeechInput.floats(cell), r, channels)
          meta ++= Seq("original_sample_rate" -> r, "channels" -> channels)
          mono
        case SpeechInput.Binary => AudioDecoder.decodeBytes(cell.asInstanceOf[Array[Byte]], source)
        case _ => SpeechInput.decodePath(cell, offset, duration, validate = false)
      }
      meta :+= ("duration_s" -> PyFormat.round(samples.length.toDouble / SampleRate, 3))
      Annotations.audioAnnotation(samples, PyFormat.metadata(meta: _*))
    } catch {
      case e: AudioError => failed(if (source.nonEmpty) s"$source: ${e.getMessage}" else e.getMessage)
      case NonFatal(e) => failed(s"$source: cannot read audio (${e.getClass.getSimpleName}: ${e.getMessage})")
    }
  }
}
