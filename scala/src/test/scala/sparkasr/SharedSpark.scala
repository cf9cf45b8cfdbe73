package sparkasr

import org.apache.spark.sql.SparkSession

/** One local[2] SparkSession per test JVM, configured as the Python tests' session. */
object SharedSpark {
  lazy val spark: SparkSession = {
    val s = SparkSession.builder().master("local[2]").appName("sparkasr-scala-tests")
      .config("spark.ui.enabled", "false")
      .config("spark.ui.showConsoleProgress", "false")
      .config("spark.sql.shuffle.partitions", "4")
      .config("spark.sql.execution.arrow.maxRecordsPerBatch", "8")
      .config("spark.driver.memory", "2g")
      .getOrCreate()
    s.sparkContext.setLogLevel("ERROR")
    s
  }
}
