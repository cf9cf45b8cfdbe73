package sparkasr.examples

import org.apache.spark.ml.{Pipeline, PipelineStage}
import org.apache.spark.sql.SparkSession
import sparkasr.spark.assembler.AudioAssembler
import sparkasr.spark.ctc.{HubertForCTC, Wav2Vec2ForCTC}

/** A compiled batch job: every audio file under INPUT -> one JSON record (path, text, error, words
  * with start/end seconds) under OUTPUT, with a CTC model converted by `sparkasr convert`.
  * {{{
  * spark-submit --class sparkasr.examples.Transcribe target/scala-2.13/sparkasr-assembly-0.1.0.jar \
  *   MODEL_DIR INPUT_DIR OUTPUT_DIR [wav2vec2|hubert]
  * }}} */
object Transcribe {
  def main(args: Array[String]): Unit = {
    if (args.length < 3 || args.length > 4) {
      System.err.println("usage: Transcribe MODEL_DIR INPUT OUTPUT [wav2vec2|hubert]")
      sys.exit(2)
    }
    val Array(model, input, output) = args.take(3)
    val spark = SparkSession.builder().appName("sparkasr-transcribe").getOrCreate()
    val audio = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(input)
    val asr = if (args.lift(3).contains("hubert")) HubertForCTC.loadSavedModel(model, spark) else Wav2Vec2ForCTC.loadSavedModel(model, spark)
    val stages: Array[PipelineStage] = Array(new AudioAssembler().setInputCol("content"), asr.setInputCols("audio_assembler"))
    new Pipeline().setStages(stages).fit(audio).transform(audio)
      .selectExpr("path", "transcription[0].result AS text", "transcription[0].metadata['error'] AS error",
        "transform(transcription_chunks, c -> named_struct('word', c.result, 'start', CAST(c.metadata['start'] AS DOUBLE), " +
          "'end', CAST(c.metadata['end'] AS DOUBLE))) AS words")
      .write.mode("overwrite").json(output)
    spark.stop()
  }
}
