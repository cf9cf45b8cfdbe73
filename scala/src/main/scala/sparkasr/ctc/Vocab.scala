package sparkasr.ctc

/** The tokenizer facts CTC decoding needs (Python: `CTCVocab`). `tokens(id)` is the token string. */
final case class Vocab(
    tokens: IndexedSeq[String],
    padToken: String = "<pad>",
    wordDelimiterToken: String = "|",
    replaceWordDelimiterChar: String = " ",
    unkToken: String = "<unk>",
    doLowerCase: Boolean = false,
    cleanUpTokenizationSpaces: Boolean = false,
    specialTokens: Seq[String] = Seq("<s>", "</s>", "<unk>", "<pad>")
) {
  require(tokens.contains(padToken), s"CTC blank/pad token '$padToken' is not in the vocabulary")
  def size: Int = tokens.size
  val blankId: Int = tokens.indexOf(padToken)
  def token(id: Int): String = if (id >= 0 && id < tokens.size) tokens(id) else unkToken
}

object Vocab {

  /** From `token -> id` pairs in vocab.json's order (a later token wins an id); holes become the unk token. */
  def fromMap(vocab: Seq[(String, Int)], padToken: String = "<pad>", wordDelimiterToken: String = "|",
              replaceWordDelimiterChar: String = " ", unkToken: String = "<unk>", doLowerCase: Boolean = false,
              cleanUpTokenizationSpaces: Boolean = false, specialTokens: Seq[String] = Seq("<s>", "</s>", "<unk>", "<pad>")): Vocab = {
    require(vocab.nonEmpty, "empty vocabulary")
    val n = vocab.iterator.map(_._2).max + 1
    val tokens = Array.fill(n)(unkToken)
    vocab.foreach { case (t, i) =>
      require(i >= 0, s"negative token id $i for '$t'")
      tokens(i) = t
    }
    Vocab(tokens.toIndexedSeq, padToken, wordDelimiterToken, replaceWordDelimiterChar, unkToken, doLowerCase, cleanUpTokenizationSpaces, specialTokens)
  }
}
