package sparkasr.ctc

/** A decoded word and its logit frames `[startOffset, endOffset)` (transformers' `word_offsets`). */
final case class WordOffset(word: String, startOffset: Int, endOffset: Int)
