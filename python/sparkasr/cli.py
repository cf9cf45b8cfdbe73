"""``sparkasr`` command line: ``transcribe`` (the batch job) and ``convert`` (CTC checkpoints to ONNX).

Exit codes: 0 the job ran (even if some inputs failed: they are error rows), 2 a setup problem
stopped it before work started (bad option, missing input/model, unwritable output).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional


def _spark_session(master: Optional[str], app: str = "sparkasr-transcribe"):
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app)
    if master:
        builder = builder.master(master)
    elif "SPARK_MASTER" not in os.environ and not os.environ.get("SPARK_SUBMIT"):
        builder = builder.master(os.environ.get("SPARKASR_MASTER", "local[*]"))
    # Audio-friendly defaults (a spark-defaults.conf or --conf given to spark-submit wins).
    for k, v in {
        "spark.python.worker.reuse": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "8",
        "spark.sql.execution.arrow.maxBytesPerBatch": "64m",
        "spark.ui.showConsoleProgress": "false",
    }.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SPARKASR_LOG_LEVEL", "ERROR"))
    return spark


def _add_transcribe(sub):
    p = sub.add_parser("transcribe", help="transcribe audio files/directories/globs/manifests with Whisper on Spark")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, directories, globs, URIs, or manifests (.csv/.tsv/.jsonl/.parquet with a path column)")
    p.add_argument("--output", "-o", required=True, help="output directory (records under DIR/transcripts, report under DIR/report)")
    p.add_argument("--model", default=None, help="tiny.en (embedded default), base, a local CTranslate2/HF Whisper dir, or a hub id (online)")
    p.add_argument("--format", default="jsonl", choices=["jsonl", "parquet"])
    p.add_argument("--language", default=None, help="language code; default: detect (English-only models: en)")
    p.add_argument("--task", default=None, choices=["transcribe", "translate"])
    p.add_argument("--beam-size", type=int, default=None)
    p.add_argument("--temperature", default=None, help="comma-separated fallback temperatures, e.g. 0,0.2,0.4")
    p.add_argument("--initial-prompt", default=None)
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--timestamps", default=None, choices=["none", "segment", "word"])
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--compute-type", default=None)
    p.add_argument("--device", default=None, choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=None, help="model threads per task (default: spark.task.cpus)")
    p.add_argument("--partitions", type=int, default=0, help="partitions to spread files over (default: automatic)")
    p.add_argument("--master", default=None, help="Spark master URL (default local[*]; ignored under spark-submit)")
    p.add_argument("--print", dest="print_rows", type=int, nargs="?", const=50, default=0, metavar="N", help="print the first N transcripts")
    p.add_argument("--no-report", action="store_true", help="do not write the WER report even if inputs have references")


def _whisper_params(args) -> Dict[str, Any]:
    m = {
        "language": args.language, "task": args.task, "beamSize": args.beam_size, "initialPrompt": args.initial_prompt,
        "maxNewTokens": args.max_new_tokens, "timestamps": args.timestamps, "batchSize": args.batch_size,
        "computeType": args.compute_type, "device": args.device, "cpuThreads": args.threads,
    }
    if args.temperature:
        m["temperature"] = [float(t) for t in args.temperature.split(",") if t.strip()]
    return {k: v for k, v in m.items() if v is not None}


def cmd_transcribe(args) -> int:
    from .job import SetupError, check_inputs, check_output, run_transcription
    from .models import ModelNotFoundError, resolve_whisper_model

    params = _whisper_params(args)
    # Everything that can be checked without Spark is checked before Spark starts.
    try:
        check_inputs(args.inputs)
        check_output(args.output)
        resolve_whisper_model(args.model)
        from .whisper import WhisperOptions  # noqa: F401  (param validation happens in setParams below)
        from .spark.whisper import WhisperForCTC

        WhisperForCTC(**params)
    except (SetupError, ModelNotFoundError, ValueError) as exc:
        print(f"sparkasr: error: {exc}", file=sys.stderr)
        return 2
    from pyspark.sql import SparkSession

    owned = SparkSession.getActiveSession() is None
    spark = _spark_session(args.master)
    try:
        res = run_transcription(
            spark, args.inputs, args.output, model=args.model, fmt=args.format, whisper_params=params,
            partitions=args.partitions, report=not args.no_report,
        )
    except (SetupError, ModelNotFoundError) as exc:
        print(f"sparkasr: error: {exc}", file=sys.stderr)
        return 2
    if args.print_rows:
        for r in res.records.orderBy("path").limit(args.print_rows).collect():
            name = r["path"].rsplit("/", 1)[-1]
            if r["error"]:
                print(f"{name}\tERROR\t{r['error']}")
            else:
                print(f"{name}\t{r['duration_s']:.1f}s\t{r['text']}")
    print(
        f"sparkasr: {res.n_inputs} files, {res.audio_s / 3600:.3f} h of audio, {res.n_errors} errors, "
        f"{res.wall_s:.1f} s wall ({res.audio_s / max(res.wall_s, 1e-9):.1f}x real time) -> {res.records_path}"
    )
    if res.metrics:
        print(f"sparkasr: WER {res.metrics.get('wer', float('nan')):.4f} against references -> {args.output.rstrip('/')}/report")
    if owned:
        spark.stop()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="sparkasr", description="Distributed batch speech-to-text on Apache Spark")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_transcribe(sub)
    conv = sub.add_parser("convert", help="convert a Hugging Face CTC checkpoint (wav2vec2/HuBERT) to ONNX", add_help=False)
    conv.add_argument("rest", nargs=argparse.REMAINDER)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "convert":
        from .convert import convert_main

        return convert_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "transcribe":
        return cmd_transcribe(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
