package sparkasr.spark

/** sparkasr's cache directory, as the Python package resolves it: `$SPARKASR_CACHE`, else
  * `$XDG_CACHE_HOME/sparkasr`, else `~/.cache/sparkasr`. */
object ModelCache {
  def root(sub: String = ""): java.io.File = {
    val base = sys.env.get("SPARKASR_CACHE").filter(_.nonEmpty).map(new java.io.File(_)).getOrElse(
      new java.io.File(sys.env.get("XDG_CACHE_HOME").filter(_.nonEmpty).getOrElse(sys.props("user.home") + "/.cache"), "sparkasr"))
    val d = if (sub.isEmpty) base else new java.io.File(base, sub)
    d.mkdirs()
    d
  }
}
