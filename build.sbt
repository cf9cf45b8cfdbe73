// The JVM side of sparkasr (docs/scala.md). Sources live under scala/src/{main,test}/{scala,resources}.
//
//   scripts/sbt test       compile and run the Scala tests (they also run Python fixtures: .venv)
//   scripts/sbt assembly   the user jar, target/scala-2.13/sparkasr-assembly-<version>.jar, for
//                          spark-submit/spark-shell --jars (Spark and Scala are not in it)
//
// Spark: compiled and tested against 4.2.0, the newest Spark on Maven Central (a managed, provided
// dependency a fresh clone resolves by itself); the cross-language tests also run the jar inside
// pyspark 4.3.0's JVM. Override with -Dspark.version=... .

val sparkVersion = sys.props.getOrElse("spark.version", "4.2.0")
val onnxRuntimeVersion = "1.29.0"
val javacppVersion = "1.5.12"
val ffmpegVersion = s"7.1.1-$javacppVersion"
val nativePlatform = "linux-x86_64"

ThisBuild / organization := "io.github.sparkasr"
ThisBuild / version := "0.1.0"
ThisBuild / scalaVersion := "2.13.18"

lazy val root = (project in file("."))
  .settings(
    name := "sparkasr",
    sourceDirectory := baseDirectory.value / "scala" / "src",
    scalacOptions ++= Seq("-deprecation", "-feature", "-unchecked", "-release", "17"),
    javacOptions ++= Seq("--release", "17"),
    libraryDependencies ++= Seq(
      "org.apache.spark" %% "spark-sql" % sparkVersion % Provided,
      "org.apache.spark" %% "spark-mllib" % sparkVersion % Provided,
      // ONNX Runtime Java: bundles its native libraries (linux-x64, macOS, Windows)
      "com.microsoft.onnxruntime" % "onnxruntime" % onnxRuntimeVersion,
      // FFmpeg (LGPL build) through the JavaCPP presets: decoding and resampling
      "org.bytedeco" % "javacpp" % javacppVersion,
      "org.bytedeco" % "javacpp" % javacppVersion classifier nativePlatform,
      "org.bytedeco" % "ffmpeg" % ffmpegVersion,
      "org.bytedeco" % "ffmpeg" % ffmpegVersion classifier nativePlatform,
      // Hugging Face tokenizers (the Rust library Python's tokenizers wraps) for Whisper's tokenizer.json
      "ai.djl.huggingface" % "tokenizers" % "0.38.0",
      "org.scalatest" %% "scalatest" % "3.2.20" % Test
    ),
    // Spark in local mode inside the tests: a forked JVM with the module options spark-submit adds
    Test / fork := true,
    Test / parallelExecution := false,
    Test / baseDirectory := (ThisBuild / baseDirectory).value,
    // pretrained(name) looks in the sparkasr cache: the tests get their own
    Test / envVars := Map("SPARKASR_CACHE" -> ((ThisBuild / baseDirectory).value / "target" / "test-cache").getPath),
    Test / javaOptions ++= Seq(
      "-Xmx3g",
      // one test JVM opens some twenty ONNX Runtime sessions (tiny.en float32 and int8, base, saved
      // copies, 1 and 2 threads): with an arena each they held over 15 GB, and CI runs the Python
      // suite beside them
      "-Dsparkasr.onnx.arena=false",
      "-XX:+IgnoreUnrecognizedVMOptions",
      "--add-opens=java.base/java.lang=ALL-UNNAMED",
      "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED",
      "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
      "--add-opens=java.base/java.io=ALL-UNNAMED",
      "--add-opens=java.base/java.net=ALL-UNNAMED",
      "--add-opens=java.base/java.nio=ALL-UNNAMED",
      "--add-opens=java.base/java.util=ALL-UNNAMED",
      "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
      "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
      "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
      "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
      "--add-opens=java.base/sun.nio.cs=ALL-UNNAMED",
      "--add-opens=java.base/sun.security.action=ALL-UNNAMED",
      "--add-opens=java.base/sun.util.calendar=ALL-UNNAMED",
      "-Djdk.reflect.useDirectMethodHandle=false",
      "-Dio.netty.tryReflectionSetAccessible=true"
    ),
    Test / testOptions += Tests.Argument(TestFrameworks.ScalaTest, "-oD"),
    // the user jar: our classes + ONNX Runtime + JavaCPP/FFmpeg (no Spark, no Scala library)
    assembly / assemblyOption ~= (_.withIncludeScala(false)),
    assembly / test := {},
    assembly / assemblyMergeStrategy := {
      case PathList("META-INF", "versions", _ @_*) => MergeStrategy.first
      case PathList("META-INF", "native-image", _ @_*) => MergeStrategy.discard
      case PathList("module-info.class") => MergeStrategy.discard
      case PathList("META-INF", xs @ _*) if xs.lastOption.exists(n => n.endsWith(".SF") || n.endsWith(".DSA") || n.endsWith(".RSA")) =>
        MergeStrategy.discard
      case x =>
        val old = (assembly / assemblyMergeStrategy).value
        old(x)
    }
  )
