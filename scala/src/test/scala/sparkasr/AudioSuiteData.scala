package sparkasr

object AudioSuiteData {

  /** A 16-kHz mono 16-bit WAV header (RIFF, fmt, data) announcing `dataBytes` of samples. */
  def wavHeader(dataBytes: Int): Array[Byte] = {
    val b = java.nio.ByteBuffer.allocate(44).order(java.nio.ByteOrder.LITTLE_ENDIAN)
    b.put("RIFF".getBytes("US-ASCII")).putInt(36 + dataBytes).put("WAVE".getBytes("US-ASCII"))
    b.put("fmt ".getBytes("US-ASCII")).putInt(16).putShort(1.toShort).putShort(1.toShort).putInt(16000).putInt(32000)
      .putShort(2.toShort).putShort(16.toShort)
    b.put("data".getBytes("US-ASCII")).putInt(dataBytes)
    b.array()
  }

  /** A 16-kHz mono 32-bit float WAV of `samples`. */
  def floatWav(samples: Array[Float]): Array[Byte] = {
    val n = samples.length * 4
    val b = java.nio.ByteBuffer.allocate(44 + n).order(java.nio.ByteOrder.LITTLE_ENDIAN)
    b.put("RIFF".getBytes("US-ASCII")).putInt(36 + n).put("WAVE".getBytes("US-ASCII"))
    b.put("fmt ".getBytes("US-ASCII")).putInt(16).putShort(3.toShort).putShort(1.toShort).putInt(16000).putInt(64000)
      .putShort(4.toShort).putShort(32.toShort)
    b.put("data".getBytes("US-ASCII")).putInt(n)
    samples.foreach(b.putFloat)
    b.array()
  }
}
