"""Throughput of the Scala CTC stage (ONNX Runtime Java in the executor JVM) against the Python CTC
stage (ONNX Runtime in Python workers) on the same ONNX model, clips and cores, in one run.

The model is a random-weight ``Wav2Vec2ForCTC`` with facebook/wav2vec2-base-960h's architecture
(~94M parameters; speed does not depend on weight values; ``bench/ctc_onnx_vs_torch.py``'s
``make_base``), converted with ``sparkasr convert``. The corpus is the 10 vendored clips written
``--repeats`` times under distinct names (default 5: 50 files, 172 s of audio). One ``local[2]``
SparkSession with the user jar (``scripts/sbt assembly``) on its classpath runs both pipelines:

* ``python``: ``AudioAssembler(inputCol="content") -> Wav2Vec2ForCTC`` (pyspark stages);
* ``scala``: the same two stages built on the JVM through py4j (``sparkasr.spark.*`` classes).

Both read the same ``binaryFile`` DataFrame, use ``batchSize`` 8 and one ONNX Runtime thread per task
(``spark.task.cpus`` = 1, two tasks at a time), and are timed on ``write.format("noop")`` of their
output (decode, inference, decoding, annotations). Each pipeline runs once untimed on two files first
(model loading, Python worker start), then once timed; the order is python, scala. Writes
``bench/results/scala_ctc.json``.

    python bench/scala_ctc.py [--repeats 5] [--jar target/scala-2.13/sparkasr-assembly-0.1.0.jar]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tests"))

from common import log, rtfx, write_result  # noqa: E402


def corpus(dest: Path, repeats: int) -> float:
    """The vendored WAV clips `repeats` times under distinct names; returns the audio seconds."""
    import soundfile as sf

    clips = sorted((ROOT / "tests" / "data").glob("*/*.wav"))
    total = 0.0
    dest.mkdir(parents=True, exist_ok=True)
    for k in range(repeats):
        for c in clips:
            shutil.copy(c, dest / f"r{k}_{c.parent.name}_{c.name}")
            total += sf.info(str(c)).duration
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--jar", default=str(ROOT / "target" / "scala-2.13" / "sparkasr-assembly-0.1.0.jar"))
    ap.add_argument("--name", default="scala_ctc")
    args = ap.parse_args(argv)
    if not Path(args.jar).is_file():
        print(f"{args.jar} not found: build it with scripts/sbt assembly", file=sys.stderr)
        return 2

    from pyspark.sql import DataFrame, SparkSession

    from ctc_onnx_vs_torch import make_base
    from sparkasr.convert.command import convert_checkpoint
    from sparkasr.spark.assembler import AudioAssembler
    from sparkasr.spark.ctc import Wav2Vec2ForCTC

    work = Path(tempfile.mkdtemp(prefix="sparkasr-bench-scala-"))
    try:
        log("building the wav2vec2-base-sized random model and its ONNX conversion")
        onnx_dir = convert_checkpoint(make_base(work / "hf"), work / "onnx")
        audio_s = corpus(work / "clips", args.repeats)
        files = sorted(str(p) for p in (work / "clips").iterdir())
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        spark = (
            SparkSession.builder.master("local[2]")
            .appName("bench-scala-ctc")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.jars", args.jar)
            .config("spark.driver.memory", "4g")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", "8")
            .getOrCreate()
        )
        jvm = spark.sparkContext._jvm

        def python_pipeline(df):
            asm = AudioAssembler(inputCol="content", outputCol="audio_assembler")
            asr = (
                Wav2Vec2ForCTC.loadSavedModel(str(onnx_dir), spark)
                .setInputCols(["audio_assembler"])
                .setOutputCol("transcription")
            )
            return asr.transform(asm.transform(df))

        def scala_pipeline(df):
            asm = jvm.sparkasr.spark.assembler.AudioAssembler().setInputCol("content").setOutputCol("audio_assembler")
            asr = jvm.sparkasr.spark.ctc.Wav2Vec2ForCTC.loadSavedModel(str(onnx_dir), spark._jsparkSession)
            cols = spark.sparkContext._gateway.new_array(jvm.java.lang.String, 1)  # Array[String], not a list
            cols[0] = "audio_assembler"
            asr = asr.setInputCols(cols).setOutputCol("transcription")
            return DataFrame(asr.transform(asm.transform(df._jdf)), spark)

        def run(build, paths) -> float:
            df = spark.read.format("binaryFile").load(paths)
            t0 = time.perf_counter()
            build(df).write.format("noop").mode("overwrite").save()
            return time.perf_counter() - t0

        results = {}
        for name, build in (("python", python_pipeline), ("scala", scala_pipeline)):
            log(f"{name}: warm-up on 2 files")
            run(build, files[:2])
            log(f"{name}: {len(files)} files, {audio_s:.1f} s of audio")
            wall = run(build, files)
            results[name] = {"wall_s": round(wall, 2), "rtfx": rtfx(audio_s, wall)}
            log(f"{name}: {wall:.1f} s, RTFx {results[name]['rtfx']}")
        # the two stages' texts on the same files agree (same ONNX model and decoding)
        df = spark.read.format("binaryFile").load(files[:10])
        py = {
            r["path"]: r["t"] for r in python_pipeline(df).selectExpr("path", "transcription[0].result AS t").collect()
        }
        sc = {
            r["path"]: r["t"] for r in scala_pipeline(df).selectExpr("path", "transcription[0].result AS t").collect()
        }
        spark.stop()
        payload = {
            "model": "random-weight Wav2Vec2ForCTC, wav2vec2-base-960h architecture (fp32 ONNX)",
            "files": len(files),
            "audio_s": round(audio_s, 1),
            "master": "local[2]",
            "batch_size": 8,
            "threads_per_task": 1,
            "results": results,
            "scala_over_python_throughput": round(results["python"]["wall_s"] / results["scala"]["wall_s"], 3),
            "texts_equal_on_10_files": py == sc,
        }
        write_result(args.name, payload)
        log(f"scala/python throughput x{payload['scala_over_python_throughput']}; texts equal: {py == sc}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
