package sparkasr

import java.io.File
import java.nio.file.Files

import org.json4s._
import org.scalatest.funsuite.AnyFunSuite
import sparkasr.audio.{Audio, AudioDecoder, AudioError}

/** The JVM reader against the Python reader's samples on the first LibriVox clip in other formats,
  * rates and channel counts (tests/fixtures/make_jvm_fixtures.py writes both). */
class AudioDecoderSuite extends AnyFunSuite {
  private def compare(a: Array[Float], b: Array[Float]): (Double, Double) = {
    assert(a.length == b.length, s"lengths differ: python ${a.length}, jvm ${b.length}")
    var sig = 0.0
    var err = 0.0
    var maxAbs = 0.0
    for (i <- a.indices) {
      sig += a(i).toDouble * a(i)
      val d = a(i).toDouble - b(i)
      err += d * d
      maxAbs = math.max(maxAbs, math.abs(d))
    }
    (if (err == 0) Double.PositiveInfinity else 10 * math.log10(sig / err), maxAbs)
  }

  private def py(name: String) = Fixtures.floats(Fixtures.file(s"audio/$name.py.f32"))
  private def path(name: String) = Fixtures.file(s"audio/$name").getPath

  // 16-kHz lossless PCM: the same samples, bit for bit (int16/24-bit/u8 scaling, float, channel mean)
  for (name <- Seq("pcm16.wav", "pcm24.wav", "float.wav", "u8.wav", "pcm16.flac", "stereo16.wav", "surround6.wav"))
    test(s"$name: exactly the Python reader's samples") {
      assert(AudioDecoder.decodePath(path(name)).sameElements(py(name)))
    }

  test("goforward.raw (headerless 16-bit PCM) is read as the Python reader reads it") {
    val raw = Fixtures.clips.find(_._1 == "goforward").get._2
    assert(AudioDecoder.decodePath(raw).sameElements(py("goforward.raw")))
  }

  test("encoded bytes (binaryFile content) decode as the file does") {
    for (name <- Seq("pcm16.wav", "pcm16.flac", "v44100.ogg", "m44100.mp3", "r8000.wav")) {
      val bytes = Files.readAllBytes(new File(path(name)).toPath)
      assert(AudioDecoder.decodeBytes(bytes, name).sameElements(AudioDecoder.decodePath(path(name))), name)
    }
  }

  // resampled or lossy: libswresample vs soxr HQ, FFmpeg's decoders vs libsndfile's; thresholds sit a
  // few dB under what was measured (docs/scala.md)
  private val tolerances = Seq(
    "r22050.wav" -> 80.0, "r44100.wav" -> 80.0, "r48000.wav" -> 80.0, "r44100.flac" -> 80.0, "stereo48000.wav" -> 80.0,
    "r8000.wav" -> 37.0, "v16000.ogg" -> 120.0, "m16000.mp3" -> 110.0, "v44100.ogg" -> 78.0, "m44100.mp3" -> 78.0)
  for ((name, minSnr) <- tolerances)
    test(s"$name: within $minSnr dB SNR of the Python reader, same length") {
      val (snr, maxAbs) = compare(py(name), AudioDecoder.decodePath(path(name)))
      info(f"$name: SNR $snr%.1f dB, max abs difference $maxAbs%.2e")
      assert(snr >= minSnr)
    }

  test("in-memory arrays: 22.05 kHz stereo interleaved -> 16 kHz mono, near Python's to_mono_16k") {
    val (snr, maxAbs) = compare(py("array22050x2"), Audio.toMono16k(Fixtures.floats(Fixtures.file("audio/array22050x2.f32")), 22050, 2))
    info(f"array 22050 Hz x2: SNR $snr%.1f dB, max abs difference $maxAbs%.2e")
    assert(snr >= 80.0)
  }

  test("every format in the index decodes") {
    implicit val f: Formats = DefaultFormats
    val index = Fixtures.json("audio/index.json").extract[Map[String, Int]]
    assert(index.size >= 17)
    index.keys.foreach(n => assert(AudioDecoder.decodePath(path(n)).length > 100000, n))
  }

  test("the other audio containers users send decode: AIFF, AU, CAF, W64, RF64, Ogg Opus, M4A/MP4, ADTS AAC, WebM, MKA, WMA") {
    implicit val f: Formats = DefaultFormats
    val index = Fixtures.json("audio/containers.json").extract[Map[String, Map[String, JValue]]]
    assert(index.size == 12)
    val wav = AudioDecoder.decodePath(path("pcm16.wav")).take(32000) // the same 2 s, same 16-bit quantisation
    for ((name, spec) <- index) {
      val p = path(s"containers/$name")
      val got = AudioDecoder.decodePath(p)
      val want = spec("samples").extract[Int] // the Python reader's length (codec priming and padding included)
      assert(math.abs(got.length - want) <= want / 50, s"$name: ${got.length} samples, Python $want")
      assert(AudioDecoder.decodeBytes(Files.readAllBytes(new File(p).toPath), name).sameElements(got), name)
      if (name.startsWith("pcm16.") && name != "pcm16.mka") assert(got.sameElements(wav), name) // libsndfile's lossless writes
    }
  }

  test("bad input raises AudioError with the reason") {
    val d = Fixtures.tempDir("bad")
    def write(name: String, bytes: Array[Byte]) = { val f = new File(d, name); Files.write(f.toPath, bytes); f.getPath }
    val wav = Files.readAllBytes(new File(path("pcm16.wav")).toPath)
    def err(p: String) = intercept[AudioError](Audio.validate(AudioDecoder.decodePath(p))).getMessage
    assert(err(write("empty.wav", Array.emptyByteArray)) == "empty file (0 bytes)")
    assert(err(write("cut.wav", wav.take(wav.length / 2))).startsWith("file is truncated: its header declares"))
    assert(err(write("notes.wav", "just some text, not audio\n".getBytes("UTF-8"))) == "not an audio format we read (detected: text)")
    assert(err(write("noise.wav", Array.tabulate(4096)(i => ((i * 7919) % 251).toByte))) == "not an audio format we read (detected: unrecognised data (headerless PCM needs an explicit raw format))")
    assert(err(new File(d, "missing.wav").getPath) == "file not found")
    assert(err(d.getPath) == "is a directory, not an audio file")
    assert(err(write("header-only.wav", AudioSuiteData.wavHeader(dataBytes = 0))) == "audio has zero length (no samples)")
  }
}
