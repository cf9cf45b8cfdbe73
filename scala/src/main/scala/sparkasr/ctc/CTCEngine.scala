package sparkasr.ctc

import java.io.File
import java.util.concurrent.ConcurrentHashMap

import scala.collection.mutable
import scala.util.control.NonFatal

import sparkasr.{AudioItem, Chunk, SpeechEngine, Transcript}
import sparkasr.Constants.SampleRate
import sparkasr.annotation.PyFormat
import sparkasr.onnx.OnnxModel

/** The CTC engine (Wav2Vec2ForCTC, HubertForCTC and relatives) on ONNX Runtime Java, a port of the
  * Python `sparkasr.ctc.CTCEngine`: per batch each item is validated and split into units (the
  * whole item, or overlapping chunks for long items), units are normalised on their own, grouped by
  * length (identical lengths only for models without an attention mask) and run in batches; per
  * item the stride logits are dropped, the rest concatenated and greedy-decoded; word/char
  * timestamps come from frame offsets x the model's real stride. Never throws for a bad item. */
final class CTCEngine(val modelDir: File, val options: CTCOptions = CTCOptions()) extends SpeechEngine {
  val checkpoint: Checkpoint = Checkpoint.load(modelDir)
  val vocab: Vocab = checkpoint.vocab
  val features: FeatureConfig = checkpoint.features
  val ratio: Int = features.inputsToLogitsRatio
  private val onnxFile = checkpoint.onnxPath.getOrElse(throw new CheckpointError(
    s"$modelDir: no model.onnx. Convert the checkpoint once with `sparkasr convert --model $modelDir --output DIR`"))
  val model: OnnxModel = OnnxModel.get(onnxFile.getAbsolutePath, options.numThreads)
  require(model.inputNames.contains("input_values"), s"$onnxFile: ONNX model has no 'input_values' input (${model.inputNames.mkString(", ")})")
  private val hasMaskInput = model.inputNames.contains("attention_mask")
  private val maskIsInt32 = model.inputType("attention_mask").contains(ai.onnxruntime.OnnxJavaType.INT32)
  private val outputName = model.outputNames.head
  /** A mask only when the model was trained with one (HF feature-extractor semantics). */
  val useMask: Boolean = features.returnAttentionMask && hasMaskInput

  def name: String = checkpoint.name

  import CTCEngine.{Done, Plan, Spans, Unit_}

  override def transcribeBatch(items: Seq[AudioItem]): Seq[Transcript] = {
    val out = Array.fill[Transcript](items.size)(null)
    val units = mutable.ArrayBuffer.empty[Unit_]
    val plans = mutable.LinkedHashMap.empty[Int, Seq[ChunkSpan]]
    items.zipWithIndex.foreach { case (item, i) =>
      (try plan(item) catch {
        case e: IllegalArgumentException => Done(Transcript.error(item, e.getMessage))
        case NonFatal(e) => Done(Transcript.error(item, s"${e.getClass.getSimpleName}: ${e.getMessage}"))
      }) match {
        case Done(t) => out(i) = t
        case Spans(spans) =>
          plans(i) = spans
          spans.foreach(sp => units += Unit_(i, sp, prepare(java.util.Arrays.copyOfRange(item.samples, sp.start, sp.end))))
      }
    }
    val (logits, failed) = infer(units.toSeq)
    val perItem = mutable.Map.empty[Int, mutable.ArrayBuffer[(Array[Float], Int)]]
    units.zip(logits).foreach { case (u, lg) => perItem.getOrElseUpdate(u.item, mutable.ArrayBuffer.empty) += lg }
    plans.foreach { case (i, spans) =>
      val item = items(i)
      out(i) = failed.get(i) match {
        case Some(msg) => Transcript.error(item, s"inference failed: $msg")
        case None =>
          try finish(item, spans, perItem(i).toSeq)
          catch { case NonFatal(e) => Transcript.error(item, s"decoding failed: ${e.getClass.getSimpleName}: ${e.getMessage}") }
      }
    }
    out.toSeq
  }

  /** Stitched logits (frames x vocab, row-major) of one utterance, as used for decoding. */
  def logits(samples: Array[Float]): (Array[Float], Int) = plan(AudioItem(samples)) match {
    case Done(_) => (Array.emptyFloatArray, 0)
    case Spans(spans) =>
      val units = spans.map(sp => Unit_(0, sp, prepare(java.util.Arrays.copyOfRange(samples, sp.start, sp.end))))
      val (lgs, failed) = infer(units)
      failed.get(0).foreach(m => throw new RuntimeException(m))
      stitch(spans, lgs)
  }

  /** One unit's model input (normalised on its own when the preprocessor says `do_normalize`). */
  def prepare(samples: Array[Float]): Array[Float] = if (features.doNormalize) NumpyF32.normalize(samples) else samples

  private def plan(item: AudioItem): Plan = {
    item.error.foreach(e => return Done(Transcript.error(item, e)))
    val samples = item.samples
    if (samples == null) return Done(Transcript.error(item, "no audio"))
    val n = samples.length
    if (n > 0 && samples.exists(x => x.isNaN || x.isInfinite)) return Done(Transcript.error(item, "audio contains NaN or infinite samples"))
    if (n < features.minSamples)
      return Done(Transcript(durationS = item.durationS, source = item.source, offsetS = item.offsetS,
        extra = Map("model" -> name, "note" -> s"audio shorter than the model's ${features.minSamples}-sample receptive field")))
    val o = options
    var chunkS = o.chunkLengthS
    if (chunkS == 0 && n > o.maxUnchunkedS * SampleRate) chunkS = o.autoChunkLengthS
    if (chunkS > 0 && n > chunkS * SampleRate) {
      val (len, left, right) = Decode.chunkSizes(chunkS, o.strideLengthS, ratio, SampleRate)
      Spans(Decode.planChunks(n, len, left, right))
    } else Spans(Seq(ChunkSpan(0, n, 0, 0)))
  }

  /** Logits per unit (trimmed to the unit's own frames) and failures per item. */
  private def infer(units: Seq[Unit_]): (Seq[(Array[Float], Int)], Map[Int, String]) = {
    val out = Array.fill[(Array[Float], Int)](units.size)(null)
    val failed = mutable.LinkedHashMap.empty[Int, String]
    val groups = CTCEngine.lengthGroups(units.map(_.values.length), options.batchSize, exact = !useMask,
      options.maxPaddingRatio, Some(options.maxBatchSamples))
    groups.foreach { g =>
      try runGroup(units, g, out)
      catch {
        case NonFatal(e) =>
          if (g.size == 1) failed.getOrElseUpdate(units(g.head).item, s"${e.getClass.getSimpleName}: ${e.getMessage}")
          else g.foreach { j =>
            try runGroup(units, Seq(j), out)
            catch { case NonFatal(e1) => failed.getOrElseUpdate(units(j).item, s"${e1.getClass.getSimpleName}: ${e1.getMessage}") }
          }
      }
    }
    (out.toSeq, failed.toMap)
  }

  private def runGroup(units: Seq[Unit_], group: Seq[Int], out: Array[(Array[Float], Int)]): Unit = {
    val b = group.size
    val t = group.map(j => units(j).values.length).max
    val values = Array.fill(b * t)(features.paddingValue)
    group.zipWithIndex.foreach { case (j, row) => System.arraycopy(units(j).values, 0, values, row * t, units(j).values.length) }
    val shape = Array(b.toLong, t.toLong)
    val inputs = mutable.LinkedHashMap("input_values" -> model.floatTensor(values, shape))
    if (hasMaskInput) {
      // the mask is passed only when the model was trained with one (all ones otherwise)
      val lens = group.map(j => units(j).values.length)
      def on(row: Int, k: Int) = !useMask || k < lens(row)
      if (maskIsInt32) inputs("attention_mask") = model.intTensor(Array.tabulate(b * t)(i => if (on(i / t, i % t)) 1 else 0), shape)
      else inputs("attention_mask") = model.longTensor(Array.tabulate(b * t)(i => if (on(i / t, i % t)) 1L else 0L), shape)
    }
    val (logits, oshape) = model.runFloat(inputs.toMap, outputName)
    val frames = oshape(1).toInt
    val v = oshape(2).toInt
    group.zipWithIndex.foreach { case (j, row) =>
      val n = math.min(features.outputLength(units(j).values.length), frames)
      out(j) = (java.util.Arrays.copyOfRange(logits, row * frames * v, (row * frames + n) * v), n)
    }
  }

  private def vocabWidth(lgs: Seq[(Array[Float], Int)]): Int =
    lgs.collectFirst { case (a, f) if f > 0 => a.length / f }.getOrElse(vocab.size)

  private def stitch(spans: Seq[ChunkSpan], lgs: Seq[(Array[Float], Int)]): (Array[Float], Int) =
    if (spans.size == 1 && spans.head.left == 0 && spans.head.right == 0) lgs.head
    else Decode.stitch(lgs, spans, ratio, vocabWidth(lgs))

  private def finish(item: AudioItem, spans: Seq[ChunkSpan], lgs: Seq[(Array[Float], Int)]): Transcript = {
    val v = vocabWidth(lgs)
    val (lg, frames) = stitch(spans, lgs)
    val sec = ratio.toDouble / SampleRate
    val mode = options.timestamps
    val dec = Decode.greedyDecode(lg, frames, v, vocab, offsets = mode != "none")
    val chunks =
      if (mode == "none") Nil
      else {
        val conf = Decode.frameConfidences(lg, frames, v)
        val pieces =
          if (mode == "word") dec.wordOffsets.map(w => (w.word, w.startOffset, w.endOffset))
          else dec.charOffsets.map(c => (c.char, c.startOffset, c.endOffset))
        pieces.map { case (txt, s, e) =>
          val prob = if (e > s) Some(NumpyF32.mean(java.util.Arrays.copyOfRange(conf, s, e)).toDouble) else None
          Chunk(if (vocab.doLowerCase) txt.toLowerCase(java.util.Locale.ROOT) else txt,
            PyFormat.round(item.offsetS + s * sec, 3), PyFormat.round(item.offsetS + e * sec, 3), mode, prob)
        }
      }
    Transcript(text = dec.text, chunks = chunks, durationS = item.durationS, source = item.source, offsetS = item.offsetS,
      extra = Map("model" -> name, "frames" -> frames.toString, "chunks_in" -> spans.size.toString, "decoder" -> "greedy"))
  }
}

object CTCEngine {
  private final case class Unit_(item: Int, span: ChunkSpan, values: Array[Float])
  private sealed trait Plan
  private final case class Done(t: Transcript) extends Plan
  private final case class Spans(spans: Seq[ChunkSpan]) extends Plan


  /** Indices grouped into batches of similar length, longest first (Python: `length_groups`).
    * `exact`: only identical lengths share a batch (models without an attention mask). Otherwise a
    * batch closes when padding would exceed `maxPaddingRatio` of the longest row, at `batchSize`
    * rows, or when rows x longest would pass `maxBatchSamples`. */
  def lengthGroups(lengths: Seq[Int], batchSize: Int, exact: Boolean, maxPaddingRatio: Double = 0.25,
                   maxBatchSamples: Option[Int] = None): Seq[Seq[Int]] = {
    val bs = math.max(1, batchSize)
    val order = lengths.indices.sortBy(i => (-lengths(i), i))
    val groups = mutable.ArrayBuffer.empty[Seq[Int]]
    var cur = mutable.ArrayBuffer.empty[Int]
    for (i <- order) {
      if (cur.nonEmpty) {
        val longest = lengths(cur.head)
        val full = cur.size >= bs
        val mismatch = if (exact) lengths(i) != longest else (longest - lengths(i)) > maxPaddingRatio * longest
        val tooBig = maxBatchSamples.exists(m => (cur.size + 1).toLong * longest > m)
        if (full || mismatch || tooBig) { groups += cur.toSeq; cur = mutable.ArrayBuffer.empty[Int] }
      }
      cur += i
    }
    if (cur.nonEmpty) groups += cur.toSeq
    groups.toSeq
  }

  private val engines = new ConcurrentHashMap[(String, CTCOptions), CTCEngine]()

  /** One engine per model directory and options per JVM (executors reuse it across tasks). */
  def get(modelDir: String, options: CTCOptions): CTCEngine =
    engines.computeIfAbsent((new File(modelDir).getAbsolutePath, options), k => new CTCEngine(new File(k._1), k._2))
}
