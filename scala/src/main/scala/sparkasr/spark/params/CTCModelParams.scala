// Generated from the option table (python/sparkasr/params.py) by `python -m sparkasr.generated --write`: do not edit.
// Change the Python side and regenerate; `python -m sparkasr.generated --check` fails on a stale copy.

package sparkasr.spark.params

/** The params of `Wav2Vec2ForCTC` and `HubertForCTC` and their defaults (Python: `sparkasr.spark.ctc.Wav2Vec2ForCTC`,
  * `sparkasr.spark.ctc.HubertForCTC`); with [[HasReaderCols]], [[SpeechAnnotatorParams]], [[CTCAnnotatorParams]]. */
trait CTCModelParams extends HasReaderCols with SpeechAnnotatorParams with CTCAnnotatorParams {
  setDefault(
    inputCols -> Array("audio_assembler"),
    outputCol -> "transcription",
    modelSource -> "",
    shipModel -> true,
    chunksCol -> "",
    pathCol -> "",
    offsetCol -> "",
    durationCol -> "",
    errorCol -> "",
    batchSize -> 8,
    timestamps -> "word",
    chunkLengthS -> 0.0,
    strideLengthS -> Array.emptyDoubleArray,
    maxUnchunkedS -> 60.0,
    cpuThreads -> 0,
    backend -> "onnx",
    allowPickle -> false,
    lmAlpha -> 0.5,
    lmBeta -> 1.5,
    beamWidth -> 0,
    hotwords -> Array.empty[String],
    hotwordWeight -> 10.0,
    lmPath -> "",
    quantize -> ""
  )
}
