package sparkasr.spark

import scala.collection.mutable.ArrayBuffer

import org.apache.spark.TaskContext
import org.apache.spark.sql.Row
import sparkasr.{AudioItem, SpeechEngine, Transcript}

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
