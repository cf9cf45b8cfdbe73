package sparkasr

import java.nio.charset.StandardCharsets

import org.json4s._
import org.json4s.jackson.JsonMethods
import org.scalatest.funsuite.AnyFunSuite
import sparkasr.audio.{Detected, FormatTable, Sniff}

/** The JVM sniffer against the Python one: for each sample head in `sniff_cases.json` (written by
  * `python -m sparkasr.generated --write` with `sparkasr.formats.sniff`'s answers, and kept current
  * by `--check`), the same name, demuxer and verdict. */
class SniffSuite extends AnyFunSuite {
  implicit val formats: Formats = DefaultFormats

  private lazy val cases: List[JValue] = {
    val in = getClass.getResourceAsStream("/sparkasr/sniff_cases.json")
    try (JsonMethods.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8)) \ "cases").extract[List[JValue]]
    finally in.close()
  }

  private def bytes(hex: String): Array[Byte] = hex.grouped(2).map(b => Integer.parseInt(b, 16).toByte).toArray

  test("every sample head is named as the Python sniffer names it") {
    assert(cases.size > 50)
    for (c <- cases) {
      val want = Detected((c \ "name").extract[String], (c \ "demuxer").extractOpt[String], (c \ "audio").extract[Boolean])
      assert(Sniff.sniff(bytes((c \ "head").extract[String])) == want, (c \ "case").extract[String])
    }
  }

  test("the hostile kinds of issue 30 are among the cases and refused") {
    val names = cases.map(c => (c \ "case").extract[String] -> (c \ "audio").extract[Boolean]).toMap
    for (kind <- Seq("concat", "sdp", "hls", "ffmetadata", "png", "subfile-url", "file-url")) assert(names.get(kind).contains(false), kind)
  }

  test("each audio container the sniffer names has its demuxer on the allow-list") {
    for (c <- cases if (c \ "audio").extract[Boolean])
      assert(FormatTable.Containers.contains((c \ "demuxer").extract[String]), (c \ "case").extract[String])
  }

  test("an ID3 tag longer than the head: the bytes after it decide") {
    val tag = Array[Byte]('I', 'D', '3', 4, 0, 0, 0, 1, 0, 0) // a 16384-byte tag
    val head = tag ++ new Array[Byte](FormatTable.HeadBytes - tag.length)
    val flac = "fLaC".getBytes(StandardCharsets.ISO_8859_1)
    assert(Sniff.sniffSource((pos, n) => if (pos == 0) head.take(n) else if (pos == 16394) flac.take(n) else Array.emptyByteArray) ==
      Detected("FLAC", Some("flac"), audio = true))
  }
}
