package sparkasr

import org.apache.spark.sql.SparkSession
import org.scalatest.{BeforeAndAfterAll, Suite}

trait SparkTest extends BeforeAndAfterAll { self: Suite =>
  lazy val spark: SparkSession = SharedSpark.spark
}
