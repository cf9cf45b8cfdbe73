package sparkasr.evaluation

/** A named `String => String` applied identically to reference and hypothesis (Python:
  * `sparkasr.evaluation.normalizers`). Serializable: Spark ships it to executors. */
trait Normalizer extends (String => String) with Serializable {
  def name: String
}
