package sparkasr

import java.io.{File, FileOutputStream, RandomAccessFile}
import java.nio.charset.StandardCharsets
import java.nio.file.Files
import java.util.concurrent.atomic.AtomicBoolean

import scala.sys.process._

import org.apache.spark.sql.functions._
import org.scalatest.funsuite.AnyFunSuite
import sparkasr.audio.{AudioDecoder, AudioError, FormatTable}
import sparkasr.spark.assembler.AudioAssembler
import sparkasr.spark.ctc.Wav2Vec2ForCTC

/** Inputs that are not audio but that FFmpeg would open if asked to probe freely: playlists and
  * scripts that name other files (concat, HLS), session descriptions that open sockets (SDP/RTP),
  * metadata and image inputs, and protocol URLs given as paths (`subfile:`, `concat:`). Each is
  * refused with "not an audio format we read (detected: ...)" (the Python reader's wording) before
  * FFmpeg opens anything it names; in a DataFrame each becomes an error row and the job goes on. */
class HostileAudioSuite extends AnyFunSuite with SparkTest {
  private lazy val dir = Fixtures.tempDir("hostile")
  /** Real speech that a hostile input names: decoding it would be the leak. */
  private lazy val secret = {
    val f = new File(dir, "secret.wav")
    Files.copy(new File(Fixtures.wavPaths.head).toPath, f.toPath)
    f
  }

  private def write(name: String, bytes: Array[Byte]): File = {
    val f = new File(dir, name)
    Files.write(f.toPath, bytes)
    f
  }
  private def text(s: String) = s.getBytes(StandardCharsets.UTF_8)

  /** A 1x1 PNG (what an image2 pattern such as `img%03d.png` would read). */
  private val png: Array[Byte] = java.util.Base64.getDecoder.decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

  private val Concat = "FFmpeg concat script"
  private val Sdp = "SDP session description (RTP streams)"
  private val Hls = "HLS / M3U playlist"

  /** file name -> (content, what the sniffer names it: the Python reader's words). */
  private lazy val hostile: Seq[(File, String)] = {
    secret
    Seq(
      write("concat.wav", text(s"ffconcat version 1.0\nfile '${secret.getName}'\n")) -> Concat,
      write("concat-abs.flac", text(s"ffconcat version 1.0\nfile '${secret.getAbsolutePath}'\n")) -> Concat,
      write("concat-file-url.mp3", text(s"ffconcat version 1.0\nfile 'file:${secret.getAbsolutePath}'\n")) -> Concat,
      write("concat-subfile.ogg", text(s"ffconcat version 1.0\nfile 'subfile,,start,0,end,0,,:${secret.getAbsolutePath}'\n")) -> Concat,
      write("stream.sdp", text("v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0\n")) -> Sdp,
      write("rtp.wav", text("v=0\no=- 0 0 IN IP4 0.0.0.0\ns=x\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 5006 RTP/AVP 96\na=rtpmap:96 L16/16000/1\n")) -> Sdp,
      write("playlist.m3u8", text(s"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n${secret.getName}\n#EXT-X-ENDLIST\n")) -> Hls,
      write("playlist.m4a", text(s"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nfile:${secret.getAbsolutePath}\n#EXT-X-ENDLIST\n")) -> Hls,
      write("meta.wav", text(";FFMETADATA1\ntitle=secret\n")) -> "FFmpeg metadata text",
      write("img%03d.png", png) -> "PNG image",
      write("frame.wav", png) -> "PNG image",
      write("list.wav", text(s"file '${secret.getName}'\n")) -> Concat)
  }

  private def refusal(detected: String) = s"not an audio format we read (detected: $detected)"

  test("the refusal's words are the Python reader's (generated from sparkasr.formats)") {
    assert(FormatTable.refusal("X") == refusal("X"))
  }

  test("each hostile input is refused, from a path and from its bytes, naming the detected format") {
    for ((f, detected) <- hostile) {
      val fromPath = intercept[AudioError](AudioDecoder.decodePath(f.getPath)).getMessage
      assert(fromPath == refusal(detected), f.getName)
      val fromBytes = intercept[AudioError](AudioDecoder.decodeBytes(Files.readAllBytes(f.toPath), f.getName)).getMessage
      assert(fromBytes == refusal(detected), f.getName)
    }
  }

  test("an allowed container around a codec outside the list is refused, naming both") {
    val f = Fixtures.file("audio/containers/dfpwm.wav")
    assert(intercept[AudioError](AudioDecoder.decodePath(f.getPath)).getMessage ==
      "the WAV / RF64 / BW64 file's audio codec 'dfpwm' is not one we decode")
  }

  test("FFmpeg URLs as a file's content are refused as text naming them, never opened") {
    val abs = secret.getAbsolutePath
    for ((content, detected) <- Seq(s"subfile,,start,0,end,0,,:$abs\n" -> "an FFmpeg subfile URL", s"file:$abs\n" -> "a URL",
        s"concat:$abs|$abs\n" -> "a URL", "udp://0.0.0.0:5004\n" -> "a URL", s"file '$abs'\n" -> Concat)) {
      val f = write("url.wav", text(content))
      assert(intercept[AudioError](AudioDecoder.decodePath(f.getPath)).getMessage == refusal(detected), content)
      assert(intercept[AudioError](AudioDecoder.decodeBytes(text(content), "url.wav")).getMessage == refusal(detected), content)
    }
  }

  test("protocol URLs given as paths are never handed to FFmpeg") {
    val abs = secret.getAbsolutePath
    for (url <- Seq(s"subfile,,start,0,end,0,,:$abs", s"concat:$abs|$abs", s"async:$abs", s"pipe:0", s"cache:$abs", "tcp://127.0.0.1:9",
        "rtp://127.0.0.1:5004", "udp://0.0.0.0:5004", "http://127.0.0.1:9/a.wav"))
      assert(intercept[AudioError](AudioDecoder.decodePath(url)).getMessage == "file not found", url)
    // a file: URI names a local file: the way Spark names them, read as the file it is
    assert(AudioDecoder.decodePath("file:" + abs).sameElements(AudioDecoder.decodePath(abs)))
  }

  test("the file a concat script names is never opened") {
    // a named pipe: opening it for reading blocks until this test's writer opens it, so the writer
    // returning from its open means FFmpeg opened the file (and it reads EOF once the writer closes)
    val fifo = new File(dir, "fifo.wav")
    assert(Seq("mkfifo", fifo.getPath).! == 0)
    val opened = new AtomicBoolean(false)
    val writer = new Thread(() => { val out = new FileOutputStream(fifo); opened.set(true); out.close() })
    writer.setDaemon(true)
    writer.start()
    try {
      for (script <- Seq(s"ffconcat version 1.0\nfile 'fifo.wav'\n", s"ffconcat version 1.0\nfile '${fifo.getAbsolutePath}'\n")) {
        val f = write("fifo-concat.wav", text(script))
        assert(intercept[AudioError](AudioDecoder.decodePath(f.getPath)).getMessage == refusal(Concat))
        assert(intercept[AudioError](AudioDecoder.decodeBytes(text(script), f.getName)).getMessage == refusal(Concat))
      }
      assert(!opened.get(), "FFmpeg opened the file the concat script names")
    } finally {
      new RandomAccessFile(fifo, "rw").close() // read-write opens never block: the writer goes
      writer.join(10000)
    }
  }

  test("in a DataFrame each hostile file is an error row naming it; the other rows are transcribed") {
    val good = write("good.wav", Files.readAllBytes(secret.toPath))
    val files = hostile.map(_._1) :+ good
    val binary = spark.read.format("binaryFile").load(files.map(_.getPath): _*)
    import spark.implicits._
    val paths = files.map(_.getPath).toDF("path")
    val asr = Wav2Vec2ForCTC.loadSavedModel(Fixtures.model("wav2vec2"), spark).setCpuThreads(1).setBatchSize(4)
    for ((name, df) <- Seq(
        "AudioAssembler on binaryFile content" -> new AudioAssembler().setInputCol("content").transform(binary),
        "AudioAssembler on paths" -> new AudioAssembler().setInputCol("path").transform(paths),
        "Wav2Vec2ForCTC on paths" -> paths.withColumn("audio_assembler", col("path")))) {
      val out = if (name.startsWith("Wav2Vec2")) asr.transform(df).select(expr("transcription[0].metadata").as("m"))
        else df.select(expr("audio_assembler[0].metadata").as("m"))
      val metas = out.collect().map(_.getAs[scala.collection.Map[String, String]]("m"))
      assert(metas.length == files.size, name)
      for ((f, detected) <- hostile) {
        val m = metas.find(m => m.get("source").exists(_.endsWith("/" + f.getName)) || m.get("error").exists(_.contains(f.getName)))
          .getOrElse(fail(s"$name: no row for ${f.getName}"))
        val err = m.getOrElse("error", fail(s"$name: ${f.getName} was not refused: $m"))
        assert(err.contains(f.getName) && err.endsWith(refusal(detected)), s"$name: $err")
      }
      val ok = metas.filter(_.get("source").exists(_.endsWith("/good.wav")))
      assert(ok.length == 1 && !ok.head.contains("error"), s"$name: $ok")
    }
  }
}
