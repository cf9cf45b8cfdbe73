package sparkasr.ctc

/** A greedy CTC decode: the text and its character and word frame offsets. */
final case class Decoded(text: String, charOffsets: Seq[CharOffset], wordOffsets: Seq[WordOffset])
