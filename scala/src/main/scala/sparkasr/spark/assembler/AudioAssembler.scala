package sparkasr.spark.assembler

import org.apache.spark.ml.Transformer
import org.apache.spark.ml.param.ParamMap
import org.apache.spark.ml.util.{DefaultParamsReadable, DefaultParamsWritable, Identifiable}
import org.apache.spark.sql.{Column, DataFrame, Dataset, Encoders}
import org.apache.spark.sql.functions._
import org.apache.spark.sql.types._
import sparkasr.Constants.SampleRate
import sparkasr.annotation.Annotations
import sparkasr.spark.{ReaderCols, SpeechInput}
import sparkasr.spark.params.AudioAssemblerParams

/** Spark NLP's entry stage, JVM-native: a column of audio -> Spark NLP `audio` annotations
  * (16 kHz mono float32). Inputs: `array<float>`/`array<double>` samples at `sampleRate` (or the
  * per-row `sampleRateCol`), interleaved when `channels` > 1 (down-mixed and resampled); encoded file
  * content (`binaryFile`'s `content`: WAV, FLAC, OGG, MP3, AIFF, M4A, ... through FFmpeg); or local file
  * paths. A row that cannot be decoded gets one annotation with an empty `result` and an `error` in
  * its metadata naming the file: the row is never dropped. Same params, metadata and class path as
  * the Python stage (`sparkasr.spark.assembler.AudioAssembler`; params generated from its option
  * table: [[AudioAssemblerParams]]).
  * {{{
  * new AudioAssembler().setInputCol("content").setOutputCol("audio_assembler")
  * }}} */
class AudioAssembler(override val uid: String)
    extends Transformer with AudioAssemblerParams with DefaultParamsWritable {

  def this() = this(Identifiable.randomUID("AudioAssembler"))

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
    val rc = ReaderCols.of(this, schema, kind == SpeechInput.Path)
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
