package sparkasr.ctc

import sparkasr.Constants

/** Inference and decoding options (Python: `CTCOptions`; greedy decoding only on the JVM). */
final case class CTCOptions(
    batchSize: Int = 8,
    timestamps: String = "word",
    chunkLengthS: Double = 0.0,
    strideLengthS: Option[(Double, Double)] = None,
    maxUnchunkedS: Double = 60.0,
    autoChunkLengthS: Double = 30.0,
    maxBatchSamples: Int = 16000 * 240,
    maxPaddingRatio: Double = 0.25,
    numThreads: Int = 0
) {
  require(batchSize >= 1, "batchSize must be >= 1")
  require(Constants.CTCTimestampModes.contains(timestamps),
    s"timestamps must be one of ${Constants.CTCTimestampModes.mkString("(", ", ", ")")}, got '$timestamps'")
  require(chunkLengthS >= 0 && autoChunkLengthS > 0, "chunkLengthS must be >= 0 and autoChunkLengthS > 0")
  strideLengthS.foreach { case (l, r) =>
    require(l >= 0 && r >= 0, "strideLengthS must be two values >= 0 (left, right)")
    require(chunkLengthS == 0 || l + r < chunkLengthS, "chunkLengthS must be greater than the two strides together")
  }
  require(maxBatchSamples >= 16000, "maxBatchSamples must be >= 16000")
  require(maxPaddingRatio >= 0 && maxPaddingRatio < 1, "maxPaddingRatio must be in [0, 1)")
}
