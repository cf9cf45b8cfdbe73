package sparkasr

import java.nio.{ByteBuffer, ByteOrder}
import java.nio.file.{Files, Paths}

/** Decode files with the JVM reader and write the samples as little-endian float32 next to them
  * (`<file>.jvm.f32`), for comparing with the Python reader by hand:
  * `scripts/sbt "Test/runMain sparkasr.DecodeTool FILE..."`. */
object DecodeTool {
  def main(args: Array[String]): Unit = args.foreach { p =>
    val x = audio.AudioDecoder.decodePath(p)
    val b = ByteBuffer.allocate(x.length * 4).order(ByteOrder.LITTLE_ENDIAN)
    x.foreach(b.putFloat)
    Files.write(Paths.get(p + ".jvm.f32"), b.array())
    println(s"$p ${x.length}")
  }
}
