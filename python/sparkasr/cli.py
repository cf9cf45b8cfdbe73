"""``sparkasr`` command line: ``transcribe`` (the batch job) and ``convert`` (CTC checkpoints to ONNX).

Exit codes: 0 the job ran (even if some inputs failed: they are error rows), 2 a setup problem
stopped it before work started (bad option, missing input/model, unwritable output).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Optional


def _spark_session(master: Optional[str], app: str = "sparkasr-transcribe", extra_conf: Optional[Dict[str, str]] = None):
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app)
    if master:
        builder = builder.master(master)
    elif not os.environ.get("SPARK_SUBMIT"):
        builder = builder.master(os.environ.get("SPARKASR_MASTER", "local[*]"))
    # Audio-friendly defaults (a spark-defaults.conf or --conf given to spark-submit wins).
    for k, v in {
        "spark.python.worker.reuse": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "8",
        "spark.sql.execution.arrow.maxBytesPerBatch": "64m",
        "spark.ui.showConsoleProgress": "false",
        # v1 commit: a run's files appear only when the whole job commits (no partial results).
        "spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version": "1",
        **(extra_conf or {}),
    }.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SPARKASR_LOG_LEVEL", "ERROR"))
    return spark


def _add_transcribe(sub):
    p = sub.add_parser("transcribe", help="transcribe audio files/directories/globs/manifests with Whisper on Spark")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files, directories, globs, URIs, or manifests (.csv/.tsv/.jsonl/.parquet with a path column)")
    p.add_argument("--config", "-c", default=None, help="YAML job file (keys documented in conf/job.yaml); flags override it")
    p.add_argument("--output", "-o", default=None, help="output directory (records under DIR/transcripts, report under DIR/report)")
    p.add_argument("--model", default=None, help="tiny.en (embedded default), base, a local CTranslate2/HF Whisper dir, or a hub id (online)")
    p.add_argument("--format", default=None, choices=["jsonl", "parquet"])
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
    p.add_argument("--strategy", default=None, choices=["batch", "sequential", "pack"], help="batch (default): long files cut into <=30-s pieces decoded batched; sequential: faster-whisper's long-form algorithm for long files; pack: short utterances packed into shared 30-s windows")
    p.add_argument("--partitions", type=int, default=None, help="partitions to spread files over (default: automatic)")
    p.add_argument("--master", default=None, help="Spark master URL (default local[*]; ignored under spark-submit)")
    p.add_argument("--subtitles", default=None, help="write per-file subtitles: srt, vtt or srt,vtt (under DIR/subtitles)")
    p.add_argument("--no-resume", dest="resume", action="store_const", const=False, default=None, help="refuse to run over existing results instead of skipping done inputs")
    p.add_argument("--quiet", "-q", action="store_const", const=True, default=None, help="no live progress (for schedulers)")
    p.add_argument("--print", dest="print_rows", type=int, nargs="?", const=50, default=0, metavar="N", help="print the first N transcripts")
    p.add_argument("--no-report", dest="report", action="store_const", const=False, default=None, help="do not write the WER report even if inputs have references")


_FLAG_TO_KEY = {
    "inputs": "inputs", "output": "output", "model": "model", "format": "format", "language": "language", "task": "task",
    "beam_size": "beam_size", "temperature": "temperature", "initial_prompt": "initial_prompt",
    "max_new_tokens": "max_new_tokens", "timestamps": "timestamps", "batch_size": "batch_size",
    "compute_type": "compute_type", "device": "device", "threads": "threads", "partitions": "partitions",
    "master": "master", "strategy": "strategy", "subtitles": "subtitles", "resume": "resume", "quiet": "quiet", "report": "report",
}

_KEY_TO_PARAM = {
    "language": "language", "task": "task", "beam_size": "beamSize", "temperature": "temperature",
    "initial_prompt": "initialPrompt", "max_new_tokens": "maxNewTokens", "timestamps": "timestamps",
    "batch_size": "batchSize", "compute_type": "computeType", "device": "device", "threads": "cpuThreads", "strategy": "strategy",
}


def job_config(args) -> dict:
    """Defaults < --config file < flags; validated, naming the key on error."""
    from .config import load_config, merge

    flags = {key: getattr(args, flag) for flag, key in _FLAG_TO_KEY.items()}
    if not flags["inputs"]:
        flags["inputs"] = None
    file_values = load_config(args.config) if args.config else {}
    cfg = merge(file_values, flags)
    if not cfg.get("inputs"):
        raise ValueError("no INPUT given (on the command line or as 'inputs' in the config file)")
    if not cfg.get("output"):
        raise ValueError("no output directory given (--output or 'output' in the config file)")
    return cfg


def whisper_params(cfg: dict) -> Dict[str, Any]:
    return {param: cfg[key] for key, param in _KEY_TO_PARAM.items() if cfg.get(key) is not None}


def cmd_transcribe(args) -> int:
    from .config import ConfigError
    from .job import SetupError, check_inputs, check_output, run_transcription
    from .models import ModelNotFoundError, resolve_whisper_model

    # Everything that can be checked without Spark is checked before Spark starts.
    try:
        cfg = job_config(args)
        params = whisper_params(cfg)
        check_inputs(cfg["inputs"])
        check_output(cfg["output"])
        resolve_whisper_model(cfg["model"])
        from .spark.whisper import WhisperForCTC

        WhisperForCTC(**params)
    except (SetupError, ModelNotFoundError, ConfigError, ValueError) as exc:
        print(f"sparkasr: error: {exc}", file=sys.stderr)
        return 2
    from pyspark.sql import SparkSession

    owned = SparkSession.getActiveSession() is None
    spark = _spark_session(cfg["master"], extra_conf=cfg["spark_conf"])
    try:
        res = run_transcription(
            spark, cfg["inputs"], cfg["output"], model=cfg["model"], fmt=cfg["format"], whisper_params=params,
            partitions=cfg["partitions"], report=cfg["report"], resume=cfg["resume"], subtitles=cfg["subtitles"],
            quiet=cfg["quiet"],
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
        f"sparkasr: {res.n_inputs} files, {res.audio_s / 3600:.3f} h of audio, {res.n_errors} errors "
        f"({res.processed} transcribed now, {res.skipped} already done), {res.wall_s:.1f} s wall -> {res.records_path}"
    )
    if res.metrics:
        print(f"sparkasr: WER {res.metrics.get('wer', float('nan')):.4f} against references -> {cfg['output'].rstrip('/')}/report")
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
