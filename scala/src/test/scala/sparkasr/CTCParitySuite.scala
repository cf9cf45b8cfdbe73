package sparkasr

import java.io.File

import org.json4s._
import org.scalatest.funsuite.AnyFunSuite
import sparkasr.audio.AudioDecoder
import sparkasr.ctc.{CTCEngine, CTCOptions}

/** The JVM CTC engine against the Python engine on the same ONNX models (tiny random-weight
  * wav2vec2 and HuBERT made with transformers) on every vendored clip: logits within 1e-5, text and
  * char/word offsets exactly equal, batches and strided chunking included. */
class CTCParitySuite extends AnyFunSuite {
  implicit val formats: Formats = DefaultFormats

  private def samples(path: String) = AudioDecoder.decodePath(path)

  private def engine(kind: String, opts: CTCOptions) = new CTCEngine(new File(Fixtures.model(kind)), opts)

  /** Python's chunks vs ours: text, kind and start/end exactly; probability within 1e-6. */
  private def sameTranscript(py: JValue, t: Transcript, what: String): Unit = {
    assert(t.error.isEmpty, s"$what: ${t.error}")
    assert(t.text == (py \ "text").extract[String], what)
    val chunks = (py \ "chunks").extract[List[JValue]]
    assert(t.chunks.size == chunks.size, s"$what: chunk count")
    t.chunks.zip(chunks).foreach { case (c, p) =>
      assert(c.text == (p \ "text").extract[String], what)
      assert(c.kind == (p \ "kind").extract[String], what)
      assert(c.start == (p \ "start").extract[Double] && c.end == (p \ "end").extract[Double], s"$what: ${c.text} times")
      val prob = (p \ "probability").extract[Option[Double]]
      assert(prob.isDefined == c.probability.isDefined)
      prob.foreach(v => assert(math.abs(v - c.probability.get) <= 1e-6, s"$what: probability ${c.probability} vs $v"))
    }
  }

  test("the Python side ran ONNX Runtime 1.29.0, the Java runtime's version") {
    assert((Fixtures.json("versions.json") \ "onnxruntime").extract[String] == ai.onnxruntime.OrtEnvironment.getEnvironment().getVersion)
    assert(ai.onnxruntime.OrtEnvironment.getEnvironment().getVersion == "1.29.0")
  }

  test("model input: the normalised samples are bit-identical to numpy's") {
    val eng = engine("wav2vec2", CTCOptions(numThreads = 1))
    val first = Fixtures.clips.head._2
    assert(eng.prepare(samples(first)).sameElements(Fixtures.floats(Fixtures.file("engine/input.f32"))))
  }

  for (kind <- Seq("wav2vec2", "hubert")) {
    test(s"$kind: logits, text and word/char offsets equal the Python engine's on every clip") {
      val word = engine(kind, CTCOptions(numThreads = 1, timestamps = "word"))
      val char = engine(kind, CTCOptions(numThreads = 1, timestamps = "char"))
      var worst = 0.0
      var words = 0
      for ((name, path) <- Fixtures.clips) {
        val x = samples(path)
        val rec = Fixtures.json(s"engine/$kind/$name.json")
        val (lg, frames) = word.logits(x)
        val py = Fixtures.floats(Fixtures.file(s"engine/$kind/$name.f32"))
        assert(frames == (rec \ "frames").extract[Int] && lg.length == py.length, name)
        worst = math.max(worst, lg.indices.map(i => math.abs(lg(i) - py(i)).toDouble).max)
        val w = word.transcribeBatch(Seq(AudioItem(x, name))).head
        sameTranscript(rec \ "word", w, s"$kind/$name word")
        sameTranscript(rec \ "char", char.transcribeBatch(Seq(AudioItem(x, name))).head, s"$kind/$name char")
        words += w.chunks.size
      }
      info(f"$kind: max |logit difference| over ${Fixtures.clips.size} clips: $worst%.3g; $words words compared")
      assert(worst <= 1e-5)
      assert(words > 50) // the random model's text has many words: the comparison is not vacuous
    }

    test(s"$kind: one batch of every clip (padding with a mask for HuBERT) gives the Python engine's results") {
      val eng = engine(kind, CTCOptions(numThreads = 1))
      val items = Fixtures.clips.map { case (n, p) => AudioItem(samples(p), n) }
      val batch = Fixtures.json(s"engine/$kind/batch.json")
      eng.transcribeBatch(items).zip(items).foreach { case (t, it) => sameTranscript(batch \ it.source, t, s"$kind batch ${it.source}") }
    }
  }

  test("long audio: strided chunking (auto past maxUnchunkedS, and explicit chunk/stride) equals the Python engine's") {
    val long = Fixtures.floats(Fixtures.file("engine/wav2vec2/long.samples.f32"))
    val cases = Seq(
      "long_auto" -> CTCOptions(numThreads = 1),
      "long_10s" -> CTCOptions(numThreads = 1, chunkLengthS = 10.0, strideLengthS = Some((2.0, 1.5))))
    for ((tag, opts) <- cases) {
      val eng = engine("wav2vec2", opts)
      val (lg, _) = eng.logits(long)
      val py = Fixtures.floats(Fixtures.file(s"engine/wav2vec2/$tag.f32"))
      assert(lg.length == py.length, tag)
      assert(lg.indices.forall(i => math.abs(lg(i) - py(i)) <= 1e-5), tag)
      val t = eng.transcribeBatch(Seq(AudioItem(long, "long", offsetS = 12.5))).head
      assert(t.extra("chunks_in").toInt > 1, tag)
      sameTranscript(Fixtures.json(s"engine/wav2vec2/$tag.json"), t, tag)
    }
  }

  test("greedy decoding collapses repeats before dropping blanks (doubled letters kept)") {
    val v = sparkasr.ctc.Vocab.fromMap(Seq("<pad>" -> 0, "|" -> 1, "M" -> 2, "I" -> 3, "D" -> 4, "L" -> 5, "E" -> 6))
    val ids = Array(2, 3, 4, 4, 0, 4, 5, 6, 1, 1, 0, 2)
    val d = sparkasr.ctc.Decode.decodeIds(ids, v)
    assert(d.text == "MIDDLE M")
    assert(d.wordOffsets.map(w => (w.word, w.startOffset, w.endOffset)) == Seq(("MIDDLE", 0, 8), ("M", 11, 12)))
  }

  test("bad items get errors, short audio gets empty text, the batch goes on") {
    val eng = engine("wav2vec2", CTCOptions(numThreads = 1))
    val good = samples(Fixtures.clips.head._2)
    val res = eng.transcribeBatch(Seq(AudioItem(Array(Float.NaN, 0.1f), "nan.wav"), AudioItem(null, "none.wav"),
      AudioItem(new Array[Float](100), "short.wav"), AudioItem(good, "good.wav")))
    assert(res(0).error.contains("nan.wav: audio contains NaN or infinite samples"))
    assert(res(1).error.contains("none.wav: no audio"))
    assert(res(2).error.isEmpty && res(2).text.isEmpty)
    assert(res(3).error.isEmpty && res(3).text.nonEmpty)
  }
}
