package sparkasr.spark

import scala.util.control.NonFatal

import org.apache.spark.sql.Row
import org.apache.spark.sql.types._
import sparkasr.AudioItem
import sparkasr.Constants.SampleRate
import sparkasr.audio.{Audio, AudioDecoder, AudioError}

/** Input cells -> [[AudioItem]]s, for every speech annotator (Python: the input half of
  * `sparkasr.spark.core`): Spark NLP `audio` annotations, 16 kHz float arrays, encoded file bytes
  * (`binaryFile`'s `content`) or file paths. Errors are kept per row, naming the file. */
object SpeechInput {
  sealed trait Kind
  /** Spark NLP audio annotations; the struct's `result` and `metadata` positions (-1: none). */
  final case class AudioAnnotations(resultIdx: Int, metadataIdx: Int) extends Kind
  case object Binary extends Kind
  case object Path extends Kind
  case object Floats extends Kind

  def classify(dataType: DataType): Kind = dataType match {
    case BinaryType => Binary
    case StringType => Path
    case ArrayType(s: StructType, _) if s.fieldNames.contains("result") =>
      AudioAnnotations(s.fieldIndex("result"), if (s.fieldNames.contains("metadata")) s.fieldIndex("metadata") else -1)
    case ArrayType(FloatType | DoubleType, _) => Floats
    case other =>
      throw new IllegalArgumentException(
        s"unsupported input column type ${other.simpleString}: expected Spark NLP audio annotations " +
          "(AudioAssembler output), binary file content, a file path string, or array<float> at 16 kHz")
  }

  /** What names a row's audio: its `pathCol` value, else the input itself when it is a path. */
  def rowSource(cell: Any, kind: Kind, path: Option[String]): String =
    path.getOrElse(if (kind == Path && cell != null) cell.toString else "")

  /** A float/double array cell as float32 (a null element reads as NaN, so validation reports it). */
  def floats(cell: Any): Array[Float] = cell match {
    case null => null
    case a: Array[Float] => a
    case s: scala.collection.Seq[_] =>
      val out = new Array[Float](s.length)
      var i = 0
      s.foreach { v =>
        out(i) = v match {
          case null => Float.NaN
          case f: Float => f
          case d: Double => d.toFloat
          case n: java.lang.Number => n.floatValue()
        }
        i += 1
      }
      out
    case other => throw new IllegalArgumentException(s"not a float array: ${other.getClass}")
  }

  def optDouble(v: Any): Option[Double] = v match {
    case null => None
    case n: java.lang.Number => Some(n.doubleValue())
    case s: String if s.nonEmpty => Some(s.toDouble)
    case _ => None
  }

  /** The samples of a path cell: the whole file, or with `duration` the slice from `offset` that
    * long (`read_audio(samples=False)`'s references). */
  def decodePath(cell: Any, offset: Option[Double], duration: Option[Double], validate: Boolean): Array[Float] = {
    val path = AudioDecoder.localPath(cell.toString)
    val samples = duration match {
      case None => AudioDecoder.decodePath(path)
      case Some(d) =>
        val start = math.rint(offset.getOrElse(0.0) * SampleRate).toInt
        AudioDecoder.decodeSlice(path, start, math.rint(d * SampleRate).toInt)
    }
    if (validate) Audio.validate(samples) else samples
  }

  /** One input cell -> its audio items (one per audio annotation). `offset`: where the row starts in
    * its file (an annotation's own `offset_s` metadata comes first); `error`: the row failed upstream
    * and is reported as is; `duration`: a path cell is that slice of its file. */
  def cellToItems(cell: Any, kind: Kind, source: String, offset: Option[Double], error: Option[String],
                  duration: Option[Double]): Seq[AudioItem] = {
    val off = offset.getOrElse(0.0)
    if (error.exists(_.nonEmpty)) return Seq(AudioItem(null, source, off, error))
    if (cell == null) return Seq(AudioItem(null, source, off, Some("input is null")))
    kind match {
      case AudioAnnotations(resultIdx, metaIdx) =>
        val anns = cell.asInstanceOf[scala.collection.Seq[Row]]
        if (anns.isEmpty) return Seq(AudioItem(null, source, 0.0, Some("no audio annotation in the input cell")))
        anns.map { ann =>
          val meta = (if (metaIdx < 0 || ann.isNullAt(metaIdx)) null else ann.getAs[scala.collection.Map[String, String]](metaIdx)) match {
            case null => Map.empty[String, String]
            case m => m
          }
          val src = meta.get("source").filter(_.nonEmpty).getOrElse(source)
          val o = meta.get("offset_s").filter(_.nonEmpty).map(_.toDouble).getOrElse(off)
          meta.get("error").filter(_.nonEmpty) match {
            case Some(err) => AudioItem(null, src, o, Some(err))
            case None => validated(floats(if (ann.isNullAt(resultIdx)) null else ann.get(resultIdx)), src, o)
          }
        }.toSeq
      case Floats => Seq(validated(floats(cell), source, off))
      case Binary | Path =>
        try {
          val samples =
            if (kind == Binary) Audio.validate(AudioDecoder.decodeBytes(cell.asInstanceOf[Array[Byte]], source))
            else decodePath(cell, offset, duration, validate = true)
          Seq(AudioItem(samples, source, off))
        } catch {
          case e: AudioError => Seq(AudioItem(null, source, off, Some(s"$source: ${e.getMessage}")))
          case NonFatal(e) =>
            Seq(AudioItem(null, source, off, Some(s"$source: cannot read audio (${e.getClass.getSimpleName}: ${e.getMessage})")))
        }
    }
  }

  private def validated(samples: Array[Float], source: String, offset: Double): AudioItem =
    try AudioItem(Audio.validate(if (samples == null) Array.emptyFloatArray else samples), source, offset)
    catch { case e: AudioError => AudioItem(null, source, offset, Some(s"${if (source.nonEmpty) source else "<audio>"}: ${e.getMessage}")) }
}
