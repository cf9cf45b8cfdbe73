// Generated from the option table (python/sparkasr/params.py) by `python -m sparkasr.generated --write`: do not edit.
// Change the Python side and regenerate; `python -m sparkasr.generated --check` fails on a stale copy.

package sparkasr.spark.params

import org.apache.spark.ml.param._

/** The params of `WhisperForCTC` and their defaults (Python: `sparkasr.spark.whisper.WhisperForCTC`); with
  * [[HasReaderCols]], [[SpeechAnnotatorParams]]. */
trait WhisperForCTCParams extends HasReaderCols with SpeechAnnotatorParams {
  /** language code ('' = detect: language and language_probability in the metadata; English-only models: en) (at most
    * 16 characters) */
  final val language: Param[String] = new Param[String](this, "language",
    "language code ('' = detect: language and language_probability in the metadata; English-only models: " +
    "en)",
    (x: String) => x.codePointCount(0, x.length) <= 16)
  def setLanguage(value: String): this.type = { set(language, value); validateParams(); this }
  def getLanguage: String = $(language)

  /** transcribe, or translate (to English; multilingual models) (transcribe, translate) */
  final val task: Param[String] = new Param[String](this, "task",
    "transcribe, or translate (to English; multilingual models)",
    (x: String) => Array("transcribe", "translate").contains(x))
  def setTask(value: String): this.type = { set(task, value); validateParams(); this }
  def getTask: String = $(task)

  /** beam size for temperature-0 decoding (1 = greedy) (in 1..16) */
  final val beamSize: IntParam = new IntParam(this, "beamSize",
    "beam size for temperature-0 decoding (1 = greedy)",
    (x: Int) => x >= 1 && x <= 16)
  def setBeamSize(value: Int): this.type = { set(beamSize, value); validateParams(); this }
  def getBeamSize: Int = $(beamSize)

  /** candidates sampled at temperature > 0 (in 1..16) */
  final val bestOf: IntParam = new IntParam(this, "bestOf",
    "candidates sampled at temperature > 0",
    (x: Int) => x >= 1 && x <= 16)
  def setBestOf(value: Int): this.type = { set(bestOf, value); validateParams(); this }
  def getBestOf: Int = $(bestOf)

  /** beam search patience factor (in 0..10) */
  final val patience: DoubleParam = new DoubleParam(this, "patience",
    "beam search patience factor",
    (x: Double) => x >= 0.0 && x <= 10.0)
  def setPatience(value: Double): this.type = { set(patience, value); validateParams(); this }
  def getPatience: Double = $(patience)

  /** beam search length penalty (in -10..10) */
  final val lengthPenalty: DoubleParam = new DoubleParam(this, "lengthPenalty",
    "beam search length penalty",
    (x: Double) => x >= -10.0 && x <= 10.0)
  def setLengthPenalty(value: Double): this.type = { set(lengthPenalty, value); validateParams(); this }
  def getLengthPenalty: Double = $(lengthPenalty)

  /** penalty on repeated tokens (> 1 penalises) (in 0..10) */
  final val repetitionPenalty: DoubleParam = new DoubleParam(this, "repetitionPenalty",
    "penalty on repeated tokens (> 1 penalises)",
    (x: Double) => x >= 0.0 && x <= 10.0)
  def setRepetitionPenalty(value: Double): this.type = { set(repetitionPenalty, value); validateParams(); this }
  def getRepetitionPenalty: Double = $(repetitionPenalty)

  /** forbid repeating n-grams of this size (0 = off) (in 0..64) */
  final val noRepeatNgramSize: IntParam = new IntParam(this, "noRepeatNgramSize",
    "forbid repeating n-grams of this size (0 = off)",
    (x: Int) => x >= 0 && x <= 64)
  def setNoRepeatNgramSize(value: Int): this.type = { set(noRepeatNgramSize, value); validateParams(); this }
  def getNoRepeatNgramSize: Int = $(noRepeatNgramSize)

  /** temperatures tried in order when a decode fails the compression-ratio / log-prob checks (in 0..2, at most 10
    * values) */
  final val temperature: DoubleArrayParam = new DoubleArrayParam(this, "temperature",
    "temperatures tried in order when a decode fails the compression-ratio / log-prob checks",
    (v: Array[Double]) => v.length <= 10 && v.forall((x: Double) => x >= 0.0 && x <= 2.0))
  def setTemperature(value: Array[Double]): this.type = { set(temperature, value); validateParams(); this }
  def setTemperature(value: Double): this.type = setTemperature(Array(value))
  def getTemperature: Array[Double] = $(temperature)

  /** sampling at temperature > 0 from the K most likely tokens (0 = all) (in 0..1000) */
  final val topK: IntParam = new IntParam(this, "topK",
    "sampling at temperature > 0 from the K most likely tokens (0 = all)",
    (x: Int) => x >= 0 && x <= 1000)
  def setTopK(value: Int): this.type = { set(topK, value); validateParams(); this }
  def getTopK: Int = $(topK)

  /** nucleus sampling; CTranslate2's Whisper decoder has none, so values < 1 are refused (in 0..1) */
  final val topP: DoubleParam = new DoubleParam(this, "topP",
    "nucleus sampling; CTranslate2's Whisper decoder has none, so values < 1 are refused",
    (x: Double) => x >= 0.0 && x <= 1.0)
  def setTopP(value: Double): this.type = { set(topP, value); validateParams(); this }
  def getTopP: Double = $(topP)

  /** max tokens generated per 30-s window (0 = the model's maximum) (in 0..440) */
  final val maxNewTokens: IntParam = new IntParam(this, "maxNewTokens",
    "max tokens generated per 30-s window (0 = the model's maximum)",
    (x: Int) => x >= 0 && x <= 440)
  def setMaxNewTokens(value: Int): this.type = { set(maxNewTokens, value); validateParams(); this }
  def getMaxNewTokens: Int = $(maxNewTokens)

  /** text given to the decoder as previous context (at most 2000 characters) */
  final val initialPrompt: Param[String] = new Param[String](this, "initialPrompt",
    "text given to the decoder as previous context",
    (x: String) => x.codePointCount(0, x.length) <= 2000)
  def setInitialPrompt(value: String): this.type = { set(initialPrompt, value); validateParams(); this }
  def getInitialPrompt: String = $(initialPrompt)

  /** none, segment or word: chunk annotations with start/end seconds (none, segment, word) */
  final val timestamps: Param[String] = new Param[String](this, "timestamps",
    "none, segment or word: chunk annotations with start/end seconds",
    (x: String) => Array("none", "segment", "word").contains(x))
  def setTimestamps(value: String): this.type = { set(timestamps, value); validateParams(); this }
  def getTimestamps: String = $(timestamps)

  /** long audio: prompt each window with the previous text */
  final val conditionOnPreviousText: BooleanParam = new BooleanParam(this, "conditionOnPreviousText",
    "long audio: prompt each window with the previous text")
  def setConditionOnPreviousText(value: Boolean): this.type = { set(conditionOnPreviousText, value); validateParams(); this }
  def getConditionOnPreviousText: Boolean = $(conditionOnPreviousText)

  /** token ids the decoder never generates; -1 stands for Whisper's default set (symbols and special tokens) (in
    * -1..51865, at most 51866 values) */
  final val suppressTokens: IntArrayParam = new IntArrayParam(this, "suppressTokens",
    "token ids the decoder never generates; -1 stands for Whisper's default set (symbols and special " +
    "tokens)",
    (v: Array[Int]) => v.length <= 51866 && v.forall((x: Int) => x >= -1 && x <= 51865))
  def setSuppressTokens(value: Array[Int]): this.type = { set(suppressTokens, value); validateParams(); this }
  def getSuppressTokens: Array[Int] = $(suppressTokens)

  /** short rows (<= 30 s) decoded together in one model call (in 1..1024) */
  final val batchSize: IntParam = new IntParam(this, "batchSize",
    "short rows (<= 30 s) decoded together in one model call",
    (x: Int) => x >= 1 && x <= 1024)
  def setBatchSize(value: Int): this.type = { set(batchSize, value); validateParams(); this }
  def getBatchSize: Int = $(batchSize)

  /** skip non-speech with Silero VAD (sequential path) */
  final val vadFilter: BooleanParam = new BooleanParam(this, "vadFilter",
    "skip non-speech with Silero VAD (sequential path)")
  def setVadFilter(value: Boolean): this.type = { set(vadFilter, value); validateParams(); this }
  def getVadFilter: Boolean = $(vadFilter)

  /** empty transcripts, not hallucinated text, for near-silence, noise and tones: audio in which Silero VAD finds no
    * speech gives no text. auto: Whisper's doubtful windows (no-speech probability over 0.2, or failing its checks)
    * are checked, and with strategy=pack every row of up to 30 s; always: also every row and long-row piece, before
    * decoding (silent ones are not decoded); off: Whisper's own no-speech rule only (auto, always, off) */
  final val vadGate: Param[String] = new Param[String](this, "vadGate",
    "empty transcripts, not hallucinated text, for near-silence, noise and tones: audio in which Silero " +
    "VAD finds no speech gives no text. auto: Whisper's doubtful windows (no-speech probability over 0.2, " +
    "or failing its checks) are checked, and with strategy=pack every row of up to 30 s; always: also " +
    "every row and long-row piece, before decoding (silent ones are not decoded); off: Whisper's own " +
    "no-speech rule only",
    (x: String) => Array("auto", "always", "off").contains(x))
  def setVadGate(value: String): this.type = { set(vadGate, value); validateParams(); this }
  def getVadGate: String = $(vadGate)

  /** random seed for sampling (-1 = unset) (in -1..4294967295) */
  final val seed: IntParam = new IntParam(this, "seed",
    "random seed for sampling (-1 = unset)",
    (x: Int) => x >= -1 && x <= 4294967295L)
  def setSeed(value: Int): this.type = { set(seed, value); validateParams(); this }
  def getSeed: Int = $(seed)

  /** batch: short rows batched, long rows cut at quiet points into <= 30-s pieces decoded batched (one segment per
    * piece); sequential: long rows by faster-whisper's long-form algorithm (Whisper's sentence segments); pack: rows
    * up to 30 s packed several to a 30-s window (fastest on short clips); longer rows as batch (batch, sequential,
    * pack) */
  final val strategy: Param[String] = new Param[String](this, "strategy",
    "batch: short rows batched, long rows cut at quiet points into <= 30-s pieces decoded batched (one " +
    "segment per piece); sequential: long rows by faster-whisper's long-form algorithm (Whisper's sentence " +
    "segments); pack: rows up to 30 s packed several to a 30-s window (fastest on short clips); longer " +
    "rows as batch",
    (x: String) => Array("batch", "sequential", "pack").contains(x))
  def setStrategy(value: String): this.type = { set(strategy, value); validateParams(); this }
  def getStrategy: String = $(strategy)

  /** strategy=sequential: rows longer than 1.5x this many seconds are decoded in pieces of this length (bounded
    * memory) (in 60..3600) */
  final val longPieceS: DoubleParam = new DoubleParam(this, "longPieceS",
    "strategy=sequential: rows longer than 1.5x this many seconds are decoded in pieces of this length " +
    "(bounded memory)",
    (x: Double) => x >= 60.0 && x <= 3600.0)
  def setLongPieceS(value: Double): this.type = { set(longPieceS, value); validateParams(); this }
  def getLongPieceS: Double = $(longPieceS)

  /** cpu, cuda or auto; cuda/auto open the GPU Spark assigned to the task (cpu, cuda, auto) */
  final val device: Param[String] = new Param[String](this, "device",
    "cpu, cuda or auto; cuda/auto open the GPU Spark assigned to the task",
    (x: String) => Array("cpu", "cuda", "auto").contains(x))
  def setDevice(value: String): this.type = { set(device, value); validateParams(); this }
  def getDevice: String = $(device)

  /** CTranslate2 compute type (int8, float16, float32, ...) (default, auto, int8, int8_float32, int8_float16,
    * int8_bfloat16, int16, float16, bfloat16, float32) */
  final val computeType: Param[String] = new Param[String](this, "computeType",
    "CTranslate2 compute type (int8, float16, float32, ...)",
    (x: String) => Array("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32").contains(x))
  def setComputeType(value: String): this.type = { set(computeType, value); validateParams(); this }
  def getComputeType: String = $(computeType)

  /** threads per task for the model; 0 = spark.task.cpus inside Spark (the job shares the idle cores out when it has
    * fewer tasks than cores: one long file uses them all), all cores outside it (in 0..1024) */
  final val cpuThreads: IntParam = new IntParam(this, "cpuThreads",
    "threads per task for the model; 0 = spark.task.cpus inside Spark (the job shares the idle cores out " +
    "when it has fewer tasks than cores: one long file uses them all), all cores outside it",
    (x: Int) => x >= 0 && x <= 1024)
  def setCpuThreads(value: Int): this.type = { set(cpuThreads, value); validateParams(); this }
  def getCpuThreads: Int = $(cpuThreads)

  setDefault(
    inputCols -> Array("audio_assembler"),
    outputCol -> "transcription",
    modelSource -> "tiny.en",
    shipModel -> true,
    chunksCol -> "",
    pathCol -> "",
    offsetCol -> "",
    durationCol -> "",
    errorCol -> "",
    language -> "",
    task -> "transcribe",
    beamSize -> 5,
    bestOf -> 5,
    patience -> 1.0,
    lengthPenalty -> 1.0,
    repetitionPenalty -> 1.0,
    noRepeatNgramSize -> 0,
    temperature -> Array(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    topK -> 0,
    topP -> 1.0,
    maxNewTokens -> 0,
    initialPrompt -> "",
    timestamps -> "segment",
    conditionOnPreviousText -> true,
    suppressTokens -> Array(-1),
    batchSize -> 8,
    vadFilter -> false,
    vadGate -> "auto",
    seed -> -1,
    strategy -> "batch",
    longPieceS -> 600.0,
    device -> "cpu",
    computeType -> "int8",
    cpuThreads -> 0
  )

  /** The defaults of this JVM stage that differ from the Python stage's (`strategy`): a stage saved by pyspark
    * carries the Python defaults, and the reader puts these back after loading them (a value the pipeline set stays). */
  override protected[sparkasr] def restoreJvmDefaults(): Unit = setDefault(strategy -> "batch")
}
