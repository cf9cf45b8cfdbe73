package sparkasr.ctc

/** A decoded character and its logit frames `[startOffset, endOffset)` (transformers' `char_offsets`). */
final case class CharOffset(char: String, startOffset: Int, endOffset: Int)
