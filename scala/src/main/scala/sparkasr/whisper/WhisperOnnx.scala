package sparkasr.whisper

import java.nio.FloatBuffer

import scala.jdk.CollectionConverters._

import ai.onnxruntime.OnnxTensor
import sparkasr.onnx.OnnxModel

/** The export's four ONNX Runtime sessions (shared per JVM through [[OnnxModel]]) and the calls the
  * decoder makes: features, encoder, the prompt through `decoder_model`, one step through
  * `decoder_with_past_model`. Encoder keys/values stay ONNX Runtime tensors (one copy per input, shared
  * by its beams); self-attention keys/values come back as arrays so beams can be reordered. */
final class WhisperOnnx(val spec: WhisperExport, threads: Int) {
  private def model(role: String): OnnxModel = OnnxModel.get(spec.graph(role).getAbsolutePath, threads)
  val featuresModel: OnnxModel = model("features")
  val encoderModel: OnnxModel = model("encoder")
  val decoderModel: OnnxModel = model("decoder")
  val decoderWithPast: OnnxModel = model("decoder_with_past")
  /** The alignment heads' cross-attention scores (word timestamps), where the export has the graph
    * (exports by an older `sparkasr convert` do not). */
  lazy val alignmentModel: Option[OnnxModel] = spec.alignmentFile.map(f => OnnxModel.get(f.getAbsolutePath, threads))
  private val layers = spec.decoderLayers
  private val h = spec.nHeads
  private val dh = spec.headDim
  val vocab: Int = spec.nVocab

  /** Log-Mel features of windows (each at most 30 s), as the encoder's input tensor [B, n_mels, 3000]. */
  def features(windows: Seq[Array[Float]]): OnnxTensor = {
    val n = windows.map(_.length).max.max(1)
    val audio = new Array[Float](windows.size * n)
    windows.zipWithIndex.foreach { case (w, i) => System.arraycopy(w, 0, audio, i * n, w.length) }
    val lengths = windows.map(_.length.toLong).toArray
    val in = Map("audio" -> featuresModel.floatTensor(audio, Array(windows.size.toLong, n.toLong)),
      "lengths" -> featuresModel.longTensor(lengths, Array(windows.size.toLong)))
    try {
      val res = featuresModel.session.run(in.asJava)
      val t = res.get(0).asInstanceOf[OnnxTensor]
      val copy = copyTensor(t)
      res.close()
      copy
    } finally in.values.foreach(_.close())
  }

  /** Encoder states [B, 1500, D] of a feature tensor (closed here). */
  def encode(features: OnnxTensor): Encoded =
    try {
      val res = encoderModel.session.run(Map("input_features" -> features).asJava)
      Encoded(res.get(0).asInstanceOf[OnnxTensor], res)
    } finally features.close()

  /** The log-Mel features as an array (tests: the front end against faster-whisper's). */
  def featureArray(windows: Seq[Array[Float]]): Array[Float] = {
    val t = features(windows)
    try { val b = t.getFloatBuffer; val a = new Array[Float](b.remaining()); b.get(a); a } finally t.close()
  }

  private def copyTensor(t: OnnxTensor): OnnxTensor = {
    val b = t.getFloatBuffer
    val a = new Array[Float](b.remaining())
    b.get(a)
    OnnxTensor.createTensor(featuresModel.env, FloatBuffer.wrap(a), t.getInfo.getShape)
  }

  /** The prompt (one per row, all of one length) through `decoder_model`: the logits at `positions`
    * of the prompt (per row, [positions.size * V]), the cross-attention keys/values (kept) and the
    * self-attention cache. Long prompts go in pieces of at most 32 tokens (bounded logits memory). */
  def prompt(encoded: Encoded, prompts: Seq[Array[Int]], positions: Seq[Int]): (Array[Array[Float]], Cross, SelfCache) = {
    val rows = prompts.size
    val p = prompts.head.length
    require(prompts.forall(_.length == p), "prompts of one batch must have one length")
    val picked = Array.fill(rows)(new Array[Float](positions.size * vocab))
    def keep(logits: Array[Float], from: Int, len: Int): Unit =
      positions.zipWithIndex.foreach { case (pos, j) =>
        if (pos >= from && pos < from + len) for (r <- 0 until rows)
          System.arraycopy(logits, (r * len + (pos - from)) * vocab, picked(r), j * vocab, vocab)
      }
    val first = math.min(p, 32)
    val ids = decoderModel.longTensor(prompts.flatMap(_.take(first).map(_.toLong)).toArray, Array(rows.toLong, first.toLong))
    val res = try decoderModel.session.run(Map("input_ids" -> ids, "encoder_hidden_states" -> encoded.states).asJava) finally ids.close()
    keep(floats(res.get("logits").get()), 0, first)
    val cross = Cross((0 until layers).map { n =>
      (res.get(s"present.$n.encoder.key").get().asInstanceOf[OnnxTensor], res.get(s"present.$n.encoder.value").get().asInstanceOf[OnnxTensor])
    }, res, rows)
    var cache = SelfCache((0 until layers).map { n =>
      (floats(res.get(s"present.$n.decoder.key").get()), floats(res.get(s"present.$n.decoder.value").get()))
    }, rows, first)
    var done = first
    while (done < p) {
      val len = math.min(32, p - done)
      val (logits, next) = step(cross, cache, prompts.map(_.slice(done, done + len)))
      keep(logits, done, len)
      cache = next
      done += len
    }
    (picked, cross, cache)
  }

  /** `tokens` (one row per cache row, all of one length) after `cache`: logits [R * T * V] and the
    * extended cache. Row r uses encoder row r / (R / B). */
  def step(cross: Cross, cache: SelfCache, tokens: Seq[Array[Int]]): (Array[Float], SelfCache) = {
    val r = cache.rows
    val t = tokens.head.length
    val env = decoderWithPast.env
    val inputs = scala.collection.mutable.LinkedHashMap.empty[String, OnnxTensor]
    val owned = scala.collection.mutable.ArrayBuffer.empty[OnnxTensor]
    def own(x: OnnxTensor): OnnxTensor = { owned += x; x }
    inputs("input_ids") = own(decoderWithPast.longTensor(tokens.flatMap(_.map(_.toLong)).toArray, Array(r.toLong, t.toLong)))
    val shape = Array(r.toLong, h.toLong, cache.length.toLong, dh.toLong)
    for (n <- 0 until layers) {
      inputs(s"past_key_values.$n.decoder.key") = own(OnnxTensor.createTensor(env, FloatBuffer.wrap(cache.kv(n)._1), shape))
      inputs(s"past_key_values.$n.decoder.value") = own(OnnxTensor.createTensor(env, FloatBuffer.wrap(cache.kv(n)._2), shape))
      inputs(s"past_key_values.$n.encoder.key") = cross.kv(n)._1
      inputs(s"past_key_values.$n.encoder.value") = cross.kv(n)._2
    }
    try {
      val res = decoderWithPast.session.run(inputs.asJava)
      try {
        val logits = floats(res.get("logits").get())
        val next = SelfCache((0 until layers).map { n =>
          (floats(res.get(s"present.$n.decoder.key").get()), floats(res.get(s"present.$n.decoder.value").get()))
        }, r, cache.length + t)
        (logits, next)
      } finally res.close()
    } finally owned.foreach(_.close())
  }

  /** The alignment heads' cross-attention scores of whole token sequences (one per encoder row; padded
    * at the end, which causal attention makes harmless): per row its [A, T, S] scores as one array,
    * and (A, T, S). */
  def crossScores(encoded: Encoded, sequences: Seq[Array[Int]], pad: Int): (Seq[Array[Float]], (Int, Int, Int)) = {
    val m = alignmentModel.getOrElse(throw new IllegalStateException(s"${spec.dir} has no alignment graph"))
    val t = sequences.map(_.length).max
    val ids = m.longTensor(sequences.flatMap(s => s.map(_.toLong) ++ Array.fill(t - s.length)(pad.toLong)).toArray,
      Array(sequences.size.toLong, t.toLong))
    val res = try m.session.run(Map("input_ids" -> ids, "encoder_hidden_states" -> encoded.states).asJava) finally ids.close()
    try {
      val out = res.get(0).asInstanceOf[OnnxTensor]
      val shape = out.getInfo.getShape
      val (a, tt, ss) = (shape(1).toInt, shape(2).toInt, shape(3).toInt)
      val b = out.getFloatBuffer
      val row = a * tt * ss
      (sequences.indices.map { _ => val x = new Array[Float](row); b.get(x); x }, (a, tt, ss))
    } finally res.close()
  }

  private def floats(v: ai.onnxruntime.OnnxValue): Array[Float] = {
    val b = v.asInstanceOf[OnnxTensor].getFloatBuffer
    val a = new Array[Float](b.remaining())
    b.get(a)
    a
  }

  /** Rows `keep` of a cross-attention set (a batch item finished: the others go on). */
  def selectCross(cross: Cross, keep: Seq[Int]): Cross = {
    val env = decoderWithPast.env
    val kv = cross.kv.map { case (k, v) =>
      def sel(t: OnnxTensor): OnnxTensor = {
        val shape = t.getInfo.getShape
        val row = (shape(1) * shape(2) * shape(3)).toInt
        val src = t.getFloatBuffer
        val out = new Array[Float](keep.size * row)
        keep.zipWithIndex.foreach { case (from, to) => src.position(from * row); src.get(out, to * row, row) }
        OnnxTensor.createTensor(env, FloatBuffer.wrap(out), Array(keep.size.toLong, shape(1), shape(2), shape(3)))
      }
      (sel(k), sel(v))
    }
    val owner: AutoCloseable = () => kv.foreach { case (k, v) => k.close(); v.close() }
    cross.close()
    Cross(kv, owner, keep.size)
  }
}
