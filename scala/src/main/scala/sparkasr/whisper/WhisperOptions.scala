package sparkasr.whisper

import sparkasr.Constants

/** Decoding options of the JVM engine: the Python `WhisperOptions` that it honours (the stage
  * refuses the values it cannot honour before building this). */
final case class WhisperOptions(
    language: Option[String] = None,
    task: String = "transcribe",
    beamSize: Int = 5,
    bestOf: Int = 5,
    patience: Double = 1.0,
    lengthPenalty: Double = 1.0,
    repetitionPenalty: Double = 1.0,
    noRepeatNgramSize: Int = 0,
    temperature: Seq[Double] = Seq(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    topK: Int = 0,
    maxNewTokens: Option[Int] = None,
    initialPrompt: Option[String] = None,
    timestamps: String = "segment",
    conditionOnPreviousText: Boolean = true,
    batchSize: Int = 8,
    seed: Option[Long] = None,
    suppressTokens: Seq[Int] = Seq(-1),
    compressionRatioThreshold: Double = Constants.CompressionRatioThreshold,
    logProbThreshold: Double = Constants.LogProbThreshold,
    noSpeechThreshold: Double = Constants.NoSpeechThreshold,
    vadGate: String = "auto",
    vadCheckNoSpeech: Double = Constants.VadCheckNoSpeech,
    vadThreshold: Double = Constants.VadThreshold) {
  require(beamSize >= 1 && bestOf >= 1 && batchSize >= 1, "beamSize, bestOf and batchSize must be >= 1")
  require(temperature.nonEmpty && temperature.forall(_ >= 0), "temperature must be a non-empty list of values >= 0")
  require(maxNewTokens.forall(n => n >= 1 && n <= 440), "maxNewTokens must be in 1..440, or unset (0)")
  require(Seq("none", "segment").contains(timestamps), s"timestamps '$timestamps' is not decoded on the JVM")
  require(Constants.VadGates.contains(vadGate), s"vadGate must be one of ${Constants.VadGates.mkString(", ")}, got '$vadGate'")
}
