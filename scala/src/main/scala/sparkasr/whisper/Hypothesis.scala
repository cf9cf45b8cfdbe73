package sparkasr.whisper

/** One finished hypothesis: its tokens (end-of-text excluded), the sum of their log-probabilities
  * (end-of-text included) and the length-normalised score the search ranks by. */
final case class Hypothesis(tokens: Array[Int], sumLogprob: Double, score: Double) {
  def avgLogprob: Double = sumLogprob / (tokens.length + 1)
}
