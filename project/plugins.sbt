// `scripts/sbt assembly`: the user jar for spark-submit/spark-shell --jars (served by Maven Central
// as com.eed3si9n:sbt-assembly_2.12_1.0).
addSbtPlugin("com.eed3si9n" % "sbt-assembly" % "2.3.1")
