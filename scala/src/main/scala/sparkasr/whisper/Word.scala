package sparkasr.whisper

/** A word of a window and its time within the window, in seconds. */
final case class Word(word: String, start: Double, end: Double)
