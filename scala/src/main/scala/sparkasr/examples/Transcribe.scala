package sparkasr.examples

import java.io.File

import org.apache.spark.ml.{Pipeline, PipelineStage}
import org.apache.spark.sql.SparkSession
import sparkasr.audio.AudioDecoder
import sparkasr.spark.SpeechAnnotatorModel
import sparkasr.spark.assembler.AudioAssembler
import sparkasr.spark.ctc.{HubertForCTC, Wav2Vec2ForCTC}
import sparkasr.spark.whisper.WhisperForCTC
import sparkasr.whisper.WhisperExport

/** A compiled batch job: every audio file under INPUT -> one JSON record (path, text, error,
  * language, language_probability, chunks with text and start/end seconds: segments for Whisper,
  * words for CTC) under OUTPUT, with a model converted by `sparkasr convert`: a Whisper export
  * (recognised by itself; default options) or a CTC model.
  * {{{
  * spark-submit --class sparkasr.examples.Transcribe target/scala-2.13/sparkasr-assembly-0.1.0.jar \
  *   MODEL_DIR INPUT_DIR OUTPUT_DIR [wav2vec2|hubert]
  * }}} */
object Transcribe {
  def main(args: Array[String]): Unit = {
    if (args.length < 3 || args.length > 4) {
      System.err.println("usage: Transcribe MODEL_DIR INPUT OUTPUT [wav2vec2|hubert]   (a Whisper export needs no kind)")
      sys.exit(2)
    }
    val Array(model, input, output) = args.take(3)
    val spark = SparkSession.builder().appName("sparkasr-transcribe").getOrCreate()
    val audio = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(input)
    val asr: SpeechAnnotatorModel[_] =
      if (WhisperExport.isExport(new File(AudioDecoder.localPath(model)))) WhisperForCTC.loadSavedModel(model, spark)
      else if (args.lift(3).contains("hubert")) HubertForCTC.loadSavedModel(model, spark)
      else Wav2Vec2ForCTC.loadSavedModel(model, spark)
    val stages: Array[PipelineStage] = Array(new AudioAssembler().setInputCol("content"), asr.setInputCols("audio_assembler"))
    new Pipeline().setStages(stages).fit(audio).transform(audio)
      .selectExpr("path", "transcription[0].result AS text", "transcription[0].metadata['error'] AS error",
        "transcription[0].metadata['language'] AS language",
        "CAST(transcription[0].metadata['language_probability'] AS DOUBLE) AS language_probability",
        "transform(transcription_chunks, c -> named_struct('text', c.result, 'start', CAST(c.metadata['start'] AS DOUBLE), " +
          "'end', CAST(c.metadata['end'] AS DOUBLE))) AS chunks")
      .write.mode("overwrite").json(output)
    spark.stop()
  }
}
