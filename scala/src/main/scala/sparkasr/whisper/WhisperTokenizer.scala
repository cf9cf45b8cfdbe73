package sparkasr.whisper

import scala.jdk.CollectionConverters._

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer

/** The export's tokenizer (Hugging Face tokenizers, the library faster-whisper uses, reading the same
  * `tokenizer.json`): text tokens only, no special tokens added. */
final class WhisperTokenizer(spec: WhisperExport) {
  private val tk: HuggingFaceTokenizer = HuggingFaceTokenizer.newInstance(
    spec.tokenizerFile.toPath, Map("addSpecialTokens" -> "false", "modelMaxLength" -> "100000").asJava)

  def encode(text: String): Array[Int] = tk.encode(text, false, false).getIds.map(_.toInt)

  /** The text of `tokens`, timestamps and special tokens left out (faster-whisper's `decode`). */
  def decode(tokens: Seq[Int]): String = {
    val text = tokens.filter(_ < spec.tokens.eot).map(_.toLong).toArray
    if (text.isEmpty) "" else tk.decode(text, true)
  }

  /** The text of `tokens`, special tokens included (faster-whisper's `decode_with_timestamps` on
    * tokens without timestamps: word splitting). */
  def decodeRaw(tokens: Seq[Int]): String = if (tokens.isEmpty) "" else tk.decode(tokens.map(_.toLong).toArray, false)
}
