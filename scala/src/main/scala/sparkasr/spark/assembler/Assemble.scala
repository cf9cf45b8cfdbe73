package sparkasr.spark.assembler

import scala.util.control.NonFatal

import org.apache.spark.sql.Row
import sparkasr.Constants.SampleRate
import sparkasr.annotation.{Annotations, PyFormat}
import sparkasr.audio.{Audio, AudioDecoder, AudioError}
import sparkasr.spark.SpeechInput

/** One row -> its audio annotation (Python: `_assemble`), on executors. */
private[assembler] final case class Assemble(kind: SpeechInput.Kind, inIdx: Int, pathIdx: Int, offsetIdx: Int, errorIdx: Int, durationIdx: Int,
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
