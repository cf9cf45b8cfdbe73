// Generated from SHARED_CONSTANTS in python/sparkasr/generated.py by `python -m sparkasr.generated --write`: do not edit.
// Change the Python side and regenerate; `python -m sparkasr.generated --check` fails on a stale copy.

package sparkasr

/** The constants and thresholds the Scala port shares with the Python engines, each with its Python name. */
object Constants {
  /** the sample rate every engine reads (Hz) (Python: `sparkasr.audio.SAMPLE_RATE`) */
  val SampleRate: Int = 16000
  /** A peak below this (about -90 dBFS) is digital silence: Whisper hallucinates on it. (Python:
    * `sparkasr.audio.SILENCE_PEAK`) */
  val SilencePeak: Float = 3e-05f
  /** Whisper's window: rows up to this long are short rows; longer ones are cut into pieces of at most this (Python:
    * `sparkasr.whisper.rules.WINDOW_S`) */
  val WindowS: Double = 30.0
  /** a piece's end moves back by up to this much to a quiet 100-ms frame (Python:
    * `sparkasr.whisper.rules.PIECE_SEARCH_S`) */
  val PieceSearchS: Double = 5.0
  /** no word is spoken this long: of a word aligned over more, only its last WORD_S count as heard (Python:
    * `sparkasr.whisper.rules.WORD_S`) */
  val WordS: Double = 2.0
  /** the shortest rest of a window that can hold a word (shorter rests after a closed sentence are dropped) (Python:
    * `sparkasr.whisper.rules.MIN_REST_S`) */
  val MinRestS: Double = 0.15
  /** sound no word accounts for, in one stretch, that marks a piece (or rest) as skipped: it is heard again with
    * timestamps (at most 1.44 s in a piece that skipped nothing on the Asterisk long-form sets; 4.8 s in the one that
    * did) (Python: `sparkasr.whisper.rules.UNHEARD_S`) */
  val UnheardS: Double = 2.0
  /** VAD input per call (a long row never needs more than one block's model input) (Python:
    * `sparkasr.whisper.rules.VAD_BLOCK_S`) */
  val VadBlockS: Double = 600.0
  /** a stretch holds speech when a speech span comes within this of it (Python: `sparkasr.whisper.rules.VAD_PAD_S`) */
  val VadPadS: Double = 0.2
  /** a decode more compressible than this (gzip ratio of its text) failed: try the next temperature (Python:
    * `sparkasr.whisper.options.WhisperOptions.compression_ratio_threshold`) */
  val CompressionRatioThreshold: Double = 2.4
  /** a decode whose average log-probability is under this failed: try the next temperature (Python:
    * `sparkasr.whisper.options.WhisperOptions.log_prob_threshold`) */
  val LogProbThreshold: Double = -1.0
  /** a window over this no-speech probability (and under the log-probability threshold) is silence (Python:
    * `sparkasr.whisper.options.WhisperOptions.no_speech_threshold`) */
  val NoSpeechThreshold: Double = 0.6
  /** vadGate=auto: windows over this no-speech probability are checked (Python:
    * `sparkasr.whisper.options.WhisperOptions.vad_check_no_speech`) */
  val VadCheckNoSpeech: Double = 0.2
  /** Silero's speech probability threshold (faster-whisper's default) (Python:
    * `sparkasr.whisper.options.WhisperOptions.vad_threshold`) */
  val VadThreshold: Double = 0.5
  /** the values of vadGate (Python: `sparkasr.whisper.options.VAD_GATES`) */
  val VadGates: Seq[String] = Seq("auto", "always", "off")
  /** the CTC stages' timestamps values (Python: `sparkasr.ctc.engine.TIMESTAMP_MODES`) */
  val CTCTimestampModes: Seq[String] = Seq("none", "word", "char")
}
