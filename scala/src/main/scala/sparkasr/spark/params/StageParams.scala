// Generated from python/sparkasr/generated.py by `python -m sparkasr.generated --write`: do not edit.
// Change the Python side and regenerate; `python -m sparkasr.generated --check` fails on a stale copy.

package sparkasr.spark.params

import org.apache.spark.ml.param.Params

/** The base of the generated params traits: every setter calls [[validateParams]] after setting its value,
  * where a stage checks its options together and refuses, naming the param, a value it cannot honour
  * (Python: `declare_params`' `_validate` hook). */
trait StageParams extends Params {
  protected def validateParams(): Unit = ()

  /** Put back the defaults in which this JVM stage differs from the Python stage, over those a stage saved
    * by pyspark carries (`SpeechModelReader` calls it after loading the params; Python: `Option.jvm_default`). */
  protected[sparkasr] def restoreJvmDefaults(): Unit = ()
}
