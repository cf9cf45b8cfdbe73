package sparkasr.whisper

import java.io.File
import java.util.concurrent.ConcurrentHashMap

import scala.collection.mutable.ArrayBuffer

import sparkasr.{AudioItem, Chunk, Constants, SpeechEngine, Transcript}
import sparkasr.Constants.SampleRate
import sparkasr.annotation.PyFormat
import sparkasr.audio.QuietCuts

/** Whisper on ONNX Runtime Java over a `sparkasr convert` spec, the Python `batch` strategy
  * (Python: `sparkasr.whisper.engine` and its passes `batched`, `pieces`):
  *
  *  - rows of at most 30 s are decoded together, `batchSize` per call: one front-end and one encoder
  *    call, the language given or detected per row, one batched search (beam search at the first
  *    temperature, greedy for beam 1); rows that fail Whisper's checks (compression ratio > 2.4,
  *    average log-probability < -1, unless no-speech) are decoded again, batched, at the next
  *    temperature (sampling, `bestOf` candidates), keeping faster-whisper's choice when all fail; a row
  *    whose decode stops early (its last sentence left open for a next window) has the rest decoded
  *    in a further batched round, conditioned on the text so far;
  *  - longer rows are cut at quiet points into pieces of at most 30 s, all pieces decoded batched as
  *    text (no timestamp tokens), with the same fallback, one segment per piece trimmed to its sound;
  *    from the pieces' word timestamps ([[WordAlignment]], the export's alignment graph), a piece that
  *    skipped speech is decoded again with timestamps and a piece whose words end a second or more
  *    before its sound has the rest decoded and joined (`finishPieces`; exports without the
  *    alignment graph, by an older `sparkasr convert`, get neither);
  *  - `vadGate` (Python: `engine._doubtful`, `_silent_windows`, `_no_speech`): unless `off`, a window
  *    whose first decode is doubtful (no-speech probability over 0.2, or failing Whisper's checks) and
  *    in whose audio Silero VAD finds no speech gets no text (and no fallback, no continuation);
  *    `always` also leaves out, undecoded, every row and long-row piece without speech. Such rows
  *    come back with empty text, not an error.
  *
  * Segment times are on the file's clock (the item's offset added). Never throws for a bad item. */
final class WhisperEngine(val spec: WhisperExport, val options: WhisperOptions, threads: Int) extends SpeechEngine {
  val onnx = new WhisperOnnx(spec, threads)
  val tokenizer = new WhisperTokenizer(spec)
  private val search = new Search(onnx, options)
  private val tok = spec.tokens
  private val withTimestamps = options.timestamps != "none"
  private val rng = options.seed.map(s => new java.util.Random(s)).getOrElse(new java.util.Random())

  WhisperEngine.checkLanguage(spec, options)
  /** Silero VAD from the export directory, unless vadGate is off. */
  val vad: Option[SileroVad] = if (options.vadGate == "off") None else Some(WhisperEngine.loadVad(spec, options.vadGate))
  private def speechMap(samples: Array[Float]): SpeechMap = new SpeechMap(samples, vad.get, options.vadThreshold)
  /** vadGate auto or always: a decode Whisper is unsure of, which the VAD must confirm. */
  private def doubtful(w: Window): Boolean = vad.isDefined && (w.failed(options) || w.noSpeechProb > options.vadCheckNoSpeech)

  /** The transcript of audio the VAD finds no speech in: empty, not an error. */
  private def noSpeechTranscript(it: AudioItem): Transcript = Transcript(
    language = options.language.orElse(if (spec.multilingual) None else Some("en")),
    languageProbability = if (spec.multilingual && options.language.isEmpty) None else Some(1.0),
    durationS = it.durationS, source = it.source, offsetS = it.offsetS, extra = Map("path" -> "no-speech"))

  override def transcribeBatch(items: Seq[AudioItem]): Seq[Transcript] = synchronized {
    val out = Array.fill[Transcript](items.size)(null)
    val short = ArrayBuffer.empty[Int]
    val long = ArrayBuffer.empty[Int]
    val always = options.vadGate == "always"
    items.zipWithIndex.foreach { case (it, i) =>
      if (it.error.isDefined || it.samples == null) out(i) = Transcript.error(it, it.error.getOrElse("no audio"))
      else if (it.samples.isEmpty) out(i) = Transcript.error(it, "audio has zero length (no samples)")
      else if (it.samples.exists(x => x.isNaN || x.isInfinite)) out(i) = Transcript.error(it, "audio contains NaN or infinite samples")
      else if (always && !speechMap(it.samples).hasSpeech()) out(i) = noSpeechTranscript(it)
      else if (it.durationS <= Constants.WindowS) short += i
      else long += i
    }
    short.grouped(options.batchSize).foreach { g => g.zip(transcribeShort(g.map(items).toSeq)).foreach { case (i, t) => out(i) = t } }
    if (long.nonEmpty) long.zip(transcribeLong(long.map(items).toSeq)).foreach { case (i, t) => out(i) = t }
    out.toSeq
  }

  // -- windows -------------------------------------------------------------------------------------

  /** Decode windows (at most 30 s each, any number: `batchSize` per model call) with the
    * temperature fallback. `languages`: per window, else given/English/detected; `contexts`: the
    * previous text per window. */
  def decodeWindows(samples: Seq[Array[Float]], withoutTimestamps: Boolean, languages: Option[Seq[(String, Double)]] = None,
      contexts: Option[Seq[String]] = None, align: Boolean = false, speech: Option[Seq[() => Boolean]] = None): Seq[Window] =
    samples.indices.grouped(options.batchSize).flatMap { g =>
      decodeBatch(g.map(samples), withoutTimestamps, languages.map(ls => g.map(ls)), contexts.map(cs => g.map(cs)), align,
        speech.map(sp => g.map(sp)))
    }.toSeq

  /** Whether word alignment is possible (the export has the alignment graph). */
  def canAlign: Boolean = onnx.alignmentModel.isDefined

  /** `align`: windows with text get their words ([[WordAlignment]]), where the export can align.
    * `speech`: per window, whether the VAD finds speech in it (default: the VAD on the window). */
  private def decodeBatch(samples: Seq[Array[Float]], withoutTimestamps: Boolean, languages: Option[Seq[(String, Double)]],
      contexts: Option[Seq[String]], align: Boolean, speech: Option[Seq[() => Boolean]]): Seq[Window] = {
    def hasSpeech(i: Int): Boolean = speech.map(_(i)()).getOrElse(speechMap(samples(i)).hasSpeech())
    val encoded = onnx.encode(onnx.features(samples))
    try {
      val langs = languages.getOrElse {
        if (options.language.isDefined || !spec.multilingual) Seq.fill(samples.size)((options.language.getOrElse("en"), 1.0))
        else detectLanguages(encoded, samples.size)
      }
      val prompts = buildPrompts(langs.map(_._1), contexts, withoutTimestamps)
      val all = Array.fill(samples.size)(ArrayBuffer.empty[Window])
      var pending: IndexedSeq[Int] = samples.indices
      val first = options.temperature.head
      for (t <- options.temperature if pending.nonEmpty) {
        val res =
          if (pending.size == samples.size) search.generate(encoded, pending.map(prompts), !withoutTimestamps, t, rng)
          else {
            // the windows still failing: their own features and encoder states (a smaller batch)
            val e = onnx.encode(onnx.features(pending.map(samples)))
            try search.generate(e, pending.map(prompts), !withoutTimestamps, t, rng) finally e.close()
          }
        pending = pending.zip(res).toIndexedSeq.flatMap { case (i, (hyp, noSpeechProb)) =>
          val text = tokenizer.decode(hyp.tokens).trim
          val w0 = Window(hyp.tokens, text, langs(i)._1, langs(i)._2, hyp.avgLogprob, noSpeechProb, t, WhisperEngine.compressionRatio(text))
          // vadGate: the first decode, if doubtful, is checked against the VAD (Python: _silent_windows)
          val silent = t == first && !w0.noSpeech(options) && doubtful(w0) && !hasSpeech(i)
          val w = if (silent) w0.copy(silent = true) else w0
          all(i) += w
          val needs = w.failed(options) && !w.empty(options)
          if (needs) Some(i) else None
        }
      }
      val chosen = all.toSeq.zipWithIndex.map { case (ws, i) =>
        if (!pending.contains(i)) ws.last
        else {
          val below = ws.filter(_.compressionRatio <= options.compressionRatioThreshold)
          (if (below.nonEmpty) below else ws).maxBy(_.avgLogprob)
        }
      }
      if (align && canAlign) withWords(encoded, samples, chosen) else chosen
    } finally encoded.close()
  }

  /** faster-whisper's word timestamps ([[WordAlignment]]) of the windows with text, one model call. */
  private def withWords(encoded: Encoded, samples: Seq[Array[Float]], windows: Seq[Window]): Seq[Window] = {
    val texts = windows.map(w => if (w.empty(options) || w.text.isEmpty) Array.emptyIntArray else w.tokens.filter(_ < tok.eot))
    if (texts.forall(_.isEmpty)) return windows
    val sot = windows.map(w => sotSequence(w.language))
    val sequences = windows.indices.map(i => sot(i) ++ Array(tok.noTimestamps) ++ texts(i) ++ Array(tok.eot))
    val (scores, (heads, rowTokens, frameCount)) = onnx.crossScores(encoded, sequences, tok.eot)
    windows.indices.map { i =>
      if (texts(i).isEmpty) windows(i)
      else {
        val dur = samples(i).length.toDouble / SampleRate
        windows(i).copy(words = Some(WordAlignment.words(scores(i), heads, rowTokens, frameCount, sot(i).length, texts(i), tok.eot,
          WhisperEngine.audioFrames(dur), dur, tokenizer.decodeRaw)))
      }
    }
  }

  private def detectLanguages(encoded: Encoded, n: Int): Seq[(String, Double)] = {
    val (logits, cross, _) = onnx.prompt(encoded, Seq.fill(n)(Array(tok.sot)), Seq(0))
    cross.close()
    val ids = spec.languages.values.toArray.sorted
    logits.toSeq.map { l =>
      val mx = ids.map(l(_)).max
      val e = ids.map(i => math.exp(l(i) - mx))
      val s = e.sum
      val best = e.indices.maxBy(e(_))
      (spec.languageOf(ids(best)), e(best) / s)
    }
  }

  /** Whisper's prompts: [previous text: `<|startofprev|>` initial prompt + context, the last 223
    * tokens] `<|startoftranscript|>` [language, task] [`<|notimestamps|>`]; with contexts, every row
    * keeps the same number of previous tokens (one prompt length per batch, as CTranslate2 needs). */
  private def buildPrompts(langs: Seq[String], contexts: Option[Seq[String]], withoutTimestamps: Boolean): IndexedSeq[Array[Int]] = {
    val initial = options.initialPrompt.map(p => tokenizer.encode(" " + p.trim)).getOrElse(Array.empty[Int])
    var previous = langs.indices.map { i =>
      initial ++ contexts.map(_(i)).filter(_.trim.nonEmpty).map(c => tokenizer.encode(" " + c.trim)).getOrElse(Array.empty[Int])
    }
    val maxPrev = spec.nTextCtx / 2 - 1
    val keep = math.min(previous.map(_.length).min, maxPrev)
    previous = previous.map(p => p.takeRight(keep))
    langs.indices.map { i =>
      val prev = if (previous(i).nonEmpty) tok.sotPrev.toArray ++ previous(i) else Array.empty[Int]
      prev ++ sotSequence(langs(i)) ++ (if (withoutTimestamps) Array(tok.noTimestamps) else Array.empty[Int])
    }
  }

  /** `<|startoftranscript|>` [language, task] (faster-whisper's `sot_sequence`). */
  private def sotSequence(lang: String): Array[Int] =
    Array(tok.sot) ++ (if (spec.multilingual)
      Array(spec.languages(lang), (if (options.task == "translate") tok.translate else tok.transcribe).get) else Array.empty[Int])

  // -- short rows ----------------------------------------------------------------------------------

  private def transcribeShort(items: Seq[AudioItem], languages: Option[Seq[(String, Double)]] = None,
      contexts: Option[Seq[String]] = None): Seq[Transcript] = {
    val ws = decodeWindows(items.map(_.samples), withoutTimestamps = !withTimestamps, languages, contexts)
    val out = ArrayBuffer.empty[Transcript]
    val rest = ArrayBuffer.empty[(Int, Double)]
    items.zip(ws).zipWithIndex.foreach { case ((item, w), i) =>
      val dur = item.durationS
      val size = WhisperEngine.audioFrames(dur) // frames of the window that hold audio
      val contentS = (item.samples.length / 160) / 100.0 // faster-whisper's content frames, in seconds
      val (segs, restS) =
        if (w.empty(options)) (Nil, size / 100.0)
        else if (!withTimestamps) (if (w.text.nonEmpty) Seq((0.0, dur, w.tokens.toSeq)) else Nil, size / 100.0)
        else WhisperEngine.splitByTimestamps(w.tokens, tok.timestampBegin, dur, size)
      val texts = segs.map(s => tokenizer.decode(s._3))
      val chunks =
        if (!withTimestamps) Nil
        else segs.zip(texts).filter(_._2.trim.nonEmpty).map { case ((s, e, _), text) =>
          Chunk(text.trim, r(math.min(s, dur) + item.offsetS), r(math.min(e, dur) + item.offsetS), "segment")
        }
      out += Transcript(text = texts.mkString.trim, chunks = chunks, language = Some(w.language),
        languageProbability = Some(w.languageProbability), durationS = dur, source = item.source, offsetS = item.offsetS,
        extra = Map("path" -> "batched"))
      // continued only while audio is left: a last timestamp at or past the audio's end ends the row
      if (withTimestamps && !w.empty(options) && restS < math.min(size / 100.0, contentS) && restS >= 0.1) rest += ((i, restS))
    }
    if (rest.nonEmpty) { // the rest of each early-stopped row, batched, conditioned on the text so far
      val rests = rest.map { case (i, s) =>
        val it = items(i)
        val from = math.round(s * SampleRate).toInt
        AudioItem(java.util.Arrays.copyOfRange(it.samples, from, it.samples.length), it.source, it.offsetS + from.toDouble / SampleRate)
      }
      val langs = rest.map { case (i, _) => (out(i).language.get, out(i).languageProbability.get) }
      val ctx = rest.map { case (i, _) => if (options.conditionOnPreviousText) out(i).text else "" }
      transcribeShort(rests.toSeq, Some(langs.toSeq), Some(ctx.toSeq)).zip(rest).foreach { case (t, (i, _)) =>
        val o = out(i)
        out(i) = o.copy(text = s"${o.text} ${t.text}".trim, chunks = o.chunks ++ t.chunks,
          extra = o.extra + ("continued" -> (1 + t.extra.get("continued").map(_.toInt).getOrElse(0)).toString))
      }
    }
    out.toSeq
  }

  // -- long rows -----------------------------------------------------------------------------------

  /** A long row's piece as decoded so far: its text, Whisper's segments where it was heard again
    * with timestamps (else one segment per piece), where its words end and the sound no word
    * accounts for (the repairs' measures, from word alignment), and the repairs done. */
  private final class PieceState(var text: String, val language: Option[String], val probability: Option[Double],
      var segments: Option[Seq[Chunk]] = None, var textEndS: Option[Double] = None, var unheardS: Double = 0.0,
      var continued: Int = 0, var reheard: Int = 0)

  private def pieceState(samples: Array[Float], w: Window): PieceState = {
    val st = new PieceState(if (w.empty(options)) "" else w.text, Option(w.language), Option(w.languageProbability))
    w.words.filter(_.nonEmpty && st.text.nonEmpty).foreach { words =>
      val end = math.min(words.map(_.end).max, samples.length.toDouble / SampleRate)
      st.textEndS = Some(end)
      st.unheardS = WordAlignment.unheardS(QuietCuts.soundFrames(samples, 0, samples.length), words, end)
    }
    st
  }

  private def transcribeLong(items: Seq[AudioItem]): Seq[Transcript] = {
    val pieces = ArrayBuffer.empty[(Int, Int, Int)] // (item, start, end)
    val silent = scala.collection.mutable.Set.empty[Int] // vadGate=always: pieces without speech, not decoded
    items.zipWithIndex.foreach { case (it, i) =>
      val speech = if (options.vadGate == "always") Some(speechMap(it.samples)) else None
      QuietCuts.cutPieces(it.samples, Constants.WindowS, Constants.PieceSearchS).foreach { case (a, b) =>
        if (speech.exists(m => !m.hasSpeech(a.toDouble / SampleRate, b.toDouble / SampleRate))) silent += pieces.size
        pieces += ((i, a, b))
      }
    }
    def pieceItem(j: Int): AudioItem = {
      val (i, a, b) = pieces(j)
      AudioItem(java.util.Arrays.copyOfRange(items(i).samples, a, b), items(i).source, items(i).offsetS + a.toDouble / SampleRate)
    }
    val live = pieces.indices.filterNot(silent)
    val liveItems = live.map(pieceItem)
    val decoded = live.zip(liveItems.zip(decodeWindows(liveItems.map(_.samples), withoutTimestamps = true, align = true))
      .map { case (p, w) => pieceState(p.samples, w) }).toMap
    finishPieces(liveItems.toIndexedSeq, live.map(decoded).toIndexedSeq)
    val none = noSpeechTranscript(AudioItem(Array.emptyFloatArray, ""))
    val all = pieces.indices.map(j => decoded.getOrElse(j, new PieceState("", none.language, none.languageProbability)))
    items.zipWithIndex.map { case (it, i) =>
      val parts = pieces.indices.filter(pieces(_)._1 == i)
      val weight = parts.filter(j => all(j).text.nonEmpty && all(j).language.isDefined).groupBy(all(_).language.get).map { case (l, js) =>
        l -> js.map(j => all(j).probability.getOrElse(0.0) * (pieces(j)._3 - pieces(j)._2)).sum
      }
      val lang = if (weight.nonEmpty) Some(weight.maxBy(_._2)._1) else all(parts.head).language
      val chunks = if (!withTimestamps) Nil else parts.filter(all(_).text.nonEmpty).flatMap { j =>
        val (_, a, b) = pieces(j)
        all(j).segments.getOrElse {
          val (s, e) = QuietCuts.speechBounds(it.samples, a, b)
          val off = it.offsetS + a.toDouble / SampleRate
          Seq(Chunk(all(j).text, r(s + off), r(e + off), "segment"))
        }
      }
      val probs = parts.filter(all(_).language == lang).flatMap(all(_).probability)
      Transcript(text = parts.map(all(_).text).filter(_.nonEmpty).mkString(" "), chunks = chunks, language = lang,
        languageProbability = Some(if (probs.nonEmpty) probs.max else 0.0), durationS = it.durationS,
        source = it.source, offsetS = it.offsetS, extra = Map("path" -> "pieces", "pieces" -> parts.size.toString,
          "continued" -> parts.map(all(_).continued).sum.toString, "reheard" -> parts.map(all(_).reheard).sum.toString))
    }
  }

  /** Python's `pieces.repair` (`rehear`, then the rests), from the pieces' word alignment (where the export
    * can align):
    *
    *  - a piece whose words leave 2 s or more of its sound in one stretch unaccounted for skipped
    *    speech inside it: it is decoded again, batched, with timestamps, and keeps Whisper's segments;
    *  - a piece whose words end a second or more before its sound does had the rest of its speech
    *    dropped (Whisper ended the window early, and a decode without timestamps leaves no timestamp
    *    to seek from): the rest, from its last word, is decoded as a further piece (not conditioned on
    *    the text before it) and joined to it, up to 3 times; a rest that skipped speech is heard again
    *    likewise. */
  private def finishPieces(pieces: IndexedSeq[AudioItem], done: IndexedSeq[PieceState]): Unit = {
    val maps = scala.collection.mutable.Map.empty[Int, SpeechMap]
    def pieceMap(k: Int): SpeechMap = maps.getOrElseUpdate(k, speechMap(pieces(k).samples))
    val soundEnd = scala.collection.mutable.Map.empty[Int, Double]
    /** Piece `k` whose words end at `end` has had the rest of its speech dropped. */
    def restFrom(k: Int, end: Double): Option[(Int, Double)] =
      if (end >= 1.0 && soundEnd.getOrElseUpdate(k, QuietCuts.speechBounds(pieces(k).samples, 0, pieces(k).samples.length)._2) - end >= 1.0)
        Some(k -> end)
      else None
    def rehear(items: IndexedSeq[AudioItem], states: IndexedSeq[PieceState]): Unit = {
      val todo = states.indices.filter(k => states(k).text.nonEmpty && states(k).unheardS >= Constants.UnheardS)
      if (todo.isEmpty) return
      val again = transcribeShort(todo.map(items), Some(todo.map(k => (states(k).language.get, states(k).probability.get))))
      todo.zip(again).foreach { case (k, t) =>
        if (t.error.isEmpty && t.text.trim.nonEmpty) {
          val st = states(k)
          st.text = t.text
          st.segments = Some(t.chunks)
          st.textEndS = None
          st.unheardS = 0.0
          st.reheard = 1
        }
      }
    }
    rehear(pieces, done)
    var round = 0
    var todo = done.indices.flatMap(k => done(k).textEndS.filter(_ => done(k).text.nonEmpty).flatMap(restFrom(k, _)))
    while (todo.nonEmpty && round < 3) {
      round += 1
      val rests = todo.map { case (k, end) =>
        val p = pieces(k)
        val from = math.round(end * SampleRate).toInt
        AudioItem(java.util.Arrays.copyOfRange(p.samples, from, p.samples.length), p.source, p.offsetS + end)
      }
      val states = rests.zip(decodeWindows(rests.map(_.samples), withoutTimestamps = true,
        languages = Some(todo.map { case (k, _) => (done(k).language.get, done(k).probability.get) }), align = true,
        speech = Some(todo.map { case (k, end) => () => pieceMap(k).hasSpeech(end, pieces(k).durationS) })))
        .map { case (rest, w) => pieceState(rest.samples, w) }
      rehear(rests, states)
      val next = ArrayBuffer.empty[(Int, Double)]
      todo.zip(states).foreach { case ((k, end), rest) =>
        if (rest.text.trim.nonEmpty) {
          val st = done(k)
          st.text = s"${st.text} ${rest.text}".trim
          st.continued += 1
          st.reheard += rest.reheard
          rest.textEndS.flatMap(e => restFrom(k, end + e)).foreach(next += _)
        }
      }
      todo = next.toIndexedSeq
    }
  }

  private def r(x: Double): Double = PyFormat.round(x, 3)
}

object WhisperEngine {
  /** The 10-ms frames of a window of `durationS` that hold audio (faster-whisper's `segment_size`:
    * whole seconds, at most 30). */
  def audioFrames(durationS: Double): Int = math.min(math.ceil(durationS).toInt * 100, 3000)

  private val cache = new ConcurrentHashMap[(String, WhisperOptions, Int), WhisperEngine]()

  /** The engine for an export directory, options and thread count, built once per JVM. */
  def get(dir: String, options: WhisperOptions, threads: Int): WhisperEngine =
    cache.computeIfAbsent((new File(dir).getAbsolutePath, options, threads),
      k => new WhisperEngine(WhisperExport.load(new File(k._1)), k._2, k._3))

  /** The export's Silero VAD (`silero_vad_v6.onnx`, written by `sparkasr convert`), which vadGate needs. */
  def loadVad(spec: WhisperExport, gate: String): SileroVad = {
    val f = spec.vadFile
    if (!f.isFile)
      throw new IllegalArgumentException(s"vadGate '$gate' needs the Silero VAD model ${SileroVad.FileName}, which is not in " +
        s"the export directory ${spec.dir} (exports by an older sparkasr convert lack it): export the model again with " +
        "`sparkasr convert`, copy faster-whisper's faster_whisper/assets/" + SileroVad.FileName + " there, or set vadGate 'off'")
    SileroVad.load(f)
  }

  /** Refuses a language or task the model cannot do (an English-only model: en and transcribe only). */
  def checkLanguage(spec: WhisperExport, options: WhisperOptions): Unit = {
    options.language.foreach { l =>
      if (!spec.multilingual && l != "en")
        throw new IllegalArgumentException(s"language '$l' is not possible with ${spec.source}, an English-only model (choices: en, or '' to detect)")
      if (spec.multilingual && !spec.languages.contains(l))
        throw new IllegalArgumentException(s"language '$l' is not a language of ${spec.source}")
    }
    if (options.task == "translate" && !spec.multilingual)
      throw new IllegalArgumentException(s"task 'translate' needs a multilingual model; ${spec.source} is English-only")
  }

  /** zlib's compression ratio of the UTF-8 text (Python: `len(data) / len(zlib.compress(data))`). */
  def compressionRatio(text: String): Double = {
    val data = text.getBytes(java.nio.charset.StandardCharsets.UTF_8)
    if (data.isEmpty) return 0.0
    val d = new java.util.zip.Deflater(6)
    d.setInput(data)
    d.finish()
    val buf = new Array[Byte](data.length * 2 + 64)
    var n = 0
    while (!d.finished()) n += d.deflate(buf, n, buf.length - n)
    d.end()
    data.length.toDouble / n
  }

  /** faster-whisper's segments of a timestamped decode (`_split_segments_by_timestamps`):
    * (start s, end s, tokens) and where its seek goes on, in seconds (`size` frames of audio). */
  def splitByTimestamps(tokens: Array[Int], ts0: Int, durationS: Double, size: Int): (Seq[(Double, Double, Seq[Int])], Double) = {
    val segs = ArrayBuffer.empty[(Double, Double, Seq[Int])]
    val singleEnding = tokens.length >= 2 && tokens(tokens.length - 2) < ts0 && tokens.last >= ts0
    val consecutive = (1 until tokens.length).filter(i => tokens(i) >= ts0 && tokens(i - 1) >= ts0)
    if (consecutive.nonEmpty) {
      val slices = if (singleEnding) consecutive :+ tokens.length else consecutive
      var lastSlice = 0
      for (cur <- slices) {
        val sliced = tokens.slice(lastSlice, cur)
        segs += (((sliced.head - ts0) * 0.02, (sliced.last - ts0) * 0.02, sliced.toSeq))
        lastSlice = cur
      }
      val seekFrames = if (singleEnding) size else (tokens(lastSlice - 1) - ts0) * 2
      (segs.toSeq, seekFrames / 100.0)
    } else {
      val stamps = tokens.filter(_ >= ts0)
      val duration = if (stamps.nonEmpty && stamps.last != ts0) (stamps.last - ts0) * 0.02 else durationS
      (Seq((0.0, duration, tokens.toSeq)), size / 100.0)
    }
  }
}
