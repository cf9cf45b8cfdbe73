"""``sparkasr`` command line: ``transcribe`` (the batch job), ``finetune`` (Whisper on your labelled
audio: :mod:`sparkasr.train`, imported only by that command), ``convert`` (CTC checkpoints and Whisper
to ONNX), ``serve`` and ``demo`` (:mod:`sparkasr.serve`).

Exit codes: 0 the job ran (even if some inputs failed: they are error rows; a fine-tuning row that
cannot teach is skipped and counted), 1 training failed, 2 a setup problem stopped it before work
started (bad option, missing input/model, unwritable output).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from .flags import Parser, add_option_flags
from .params import JOB, finetune_options, transcribe_options

if TYPE_CHECKING:
    from .spark.classcache import ClassArchive

log = logging.getLogger("sparkasr.job")


def connect_url(cfg: dict) -> Optional[str]:
    """The Spark Connect server the job runs on: ``--remote``, else ``SPARK_REMOTE`` (as pyspark
    reads it), else None (a classic session)."""
    return cfg.get("remote") or os.environ.get("SPARK_REMOTE") or None


def _spark_session(
    master: Optional[str],
    app: str = "sparkasr-transcribe",
    extra_conf: Optional[Dict[str, str]] = None,
    remote: Optional[str] = None,
):
    """A session for a command: the JVM it launches maps an existing class archive, never writes one,
    and has the quick JIT (:mod:`sparkasr.spark.classcache`)."""
    return _start_spark(master, app, extra_conf, remote, class_cache=True, write_archive=False)[0]


def _start_spark(
    master: Optional[str],
    app: str = "sparkasr-transcribe",
    extra_conf: Optional[Dict[str, str]] = None,
    remote: Optional[str] = None,
    *,
    class_cache: bool = True,
    write_archive: bool = True,
    quick_jit: bool = True,
) -> Tuple[object, Optional[ClassArchive]]:
    """The session, and the class archive its driver JVM maps or writes (None: no archive, as
    under ``spark-submit``, Spark Connect, or a JVM this process had already started); the
    caller hands it to :func:`sparkasr.spark.classcache.save` after its last use of Spark."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from .spark.session import set_log_level

    builder = SparkSession.builder
    if remote:  # a Spark Connect session: the server's name, master and settings apply
        builder = builder.remote(remote)
    elif master:
        builder = builder.appName(app).master(master)
    elif not os.environ.get("SPARK_SUBMIT"):
        builder = builder.appName(app).master(os.environ.get("SPARKASR_MASTER", "local[*]"))
    else:
        builder = builder.appName(app)
    # Audio-friendly defaults (a spark-defaults.conf or --conf given to spark-submit wins).
    defaults = {
        "spark.python.worker.reuse": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "8",
        "spark.sql.execution.arrow.maxBytesPerBatch": "64m",
        "spark.ui.showConsoleProgress": "false",
        # v1 commit: a run's files appear only when the whole job commits (no partial results).
        "spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version": "1",
    }
    if remote:  # a Connect session sets only SQL confs; the others are the server's
        defaults = {k: v for k, v in defaults.items() if k.startswith("spark.sql.")}
    conf = {**defaults, **(extra_conf or {})}
    archive = None
    if not remote and not os.environ.get("SPARK_SUBMIT"):
        from pyspark import SparkContext

        from .spark import classcache

        if SparkContext._gateway is None:  # this session launches the JVM
            archive = classcache.plan(conf, write=write_archive) if class_cache else None
            conf = classcache.start_options(conf, archive, quick_jit=quick_jit)
    for k, v in conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    set_log_level(spark, os.environ.get("SPARKASR_LOG_LEVEL", "ERROR"))
    return spark, archive


def _add_transcribe(sub):
    p = sub.add_parser(
        "transcribe",
        # --output is required, but may come from --config, so argparse cannot enforce it (nor show it)
        usage="%(prog)s INPUT... --output DIR [options]\n       %(prog)s --config JOB.yaml [options]",
        help="transcribe audio files/directories/globs/manifests with Whisper on Spark",
        description="Transcribe audio with Whisper on Spark. Every flag is also a key of the --config job file "
        "(conf/job.yaml); flags override the file.",
    )
    inputs = next(o for o in JOB if o.name == "inputs")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help=inputs.doc)
    p.add_argument(
        "--config", "-c", default=None, help="YAML job file (keys documented in conf/job.yaml); flags override it"
    )
    add_option_flags(p, transcribe_options())
    p.add_argument(
        "--print",
        dest="print_rows",
        type=int,
        nargs="?",
        const=50,
        default=0,
        metavar="N",
        help="print the first N transcripts",
    )


def job_config(args) -> dict:
    """Defaults < --config file < flags; validated, naming the key on error."""
    from .job.config import KEYS, load_config, merge

    flags = {key: getattr(args, key, None) for key in KEYS}
    flags["inputs"] = args.inputs or None
    file_values = load_config(args.config) if args.config else {}
    cfg = merge(file_values, flags)
    if not cfg.get("inputs"):
        raise ValueError("no INPUT given (on the command line or as 'inputs' in the config file)")
    if not cfg.get("output"):
        raise ValueError("no output directory given (--output or 'output' in the config file)")
    return cfg


def cmd_transcribe(args) -> int:
    from .job.output import OutputInUse, OutputLock
    from .job.progress import Phases

    # Everything that can be checked without Spark is checked before Spark starts, and the output
    # directory is held (one run at a time) from here to the end.
    phases = Phases()
    try:
        with phases.span("checks"):
            cfg, params = _checked_config(args)
        with OutputLock(cfg["output"]):
            return _transcribe(args, cfg, params, phases)
    except (OutputInUse, _SetupFailed) as exc:
        print(f"sparkasr: error: {exc}", file=sys.stderr)
        return 2


class _SetupFailed(Exception):
    """A setup problem (exit status 2), found before or after Spark started."""


def _checked_config(args):
    from .job.config import ConfigError, diarizer_params, identity_params, stage_params
    from .job.run import (
        Diarizing,
        SetupError,
        check_inputs,
        check_output,
        refuse_remote_output_on_connect,
        with_subtitle_timestamps,
    )
    from .whisper.models import ModelNotFoundError

    try:
        cfg = job_config(args)
        if connect_url(cfg):
            if cfg.get("master"):
                raise SetupError(
                    f"--master {cfg['master']} and a Spark Connect server ({connect_url(cfg)}) were both given; the "
                    "server decides where the job runs: drop --master (or unset SPARK_REMOTE)"
                )
            refuse_remote_output_on_connect(cfg["output"])
        params = with_subtitle_timestamps(stage_params(cfg), cfg["subtitles"])
        check_inputs(cfg["inputs"])
        check_output(cfg["output"])
        from .spark.whisper import WhisperForCTC

        WhisperForCTC.pretrained(cfg["model"]).setParams(**params).validateModel()
        cfg["diarization"] = Diarizing(
            cfg["diarize"], diarizer_params(cfg), identity_params(cfg), cfg["speakers_across_files"], cfg["rttm"]
        )
        cfg["diarization"].stages()
    except (SetupError, ModelNotFoundError, ConfigError, ValueError) as exc:
        raise _SetupFailed(str(exc)) from None
    return cfg, params


def _transcribe(args, cfg: dict, params: dict, phases) -> int:
    from pyspark.sql import SparkSession

    from .job.run import is_manifest

    owned = SparkSession.getActiveSession() is None
    if cfg["report"] and any(is_manifest(p) for p in cfg["inputs"]):
        _import_aside("matplotlib.figure", "matplotlib.backends.backend_agg")  # the report's charts
    with phases.span("spark start"):
        spark, archive = _start_spark(
            cfg["master"],
            extra_conf=cfg["spark_conf"],
            remote=connect_url(cfg),
            class_cache=cfg["jvm_class_cache"],
            quick_jit=cfg["jvm_quick_jit"],
        )
    rc = _transcribe_in(spark, owned, phases, args, cfg, params)
    if rc == 0 and owned and archive is not None and archive.writing is not None:
        # Only a run that went through waits for its JVM to write the archive: an interrupted or
        # failed one ends at once, and the archive its JVM leaves half-named is removed by a later run.
        from .spark.classcache import save

        with phases.span("class archive"):
            took = save(archive)
        if took is not None and archive.path.is_file():
            log.info("saved the driver JVM's class archive for later starts (%.1f s, once): %s", took, archive.path)
    return rc


def _import_aside(*modules: str) -> None:
    """Import ``modules`` on a daemon thread while Spark starts (this thread only waits on the JVM
    then), so that the run's last phases find them loaded: matplotlib is ~0.6 s of the evaluation
    report's first chart. Modules that import no pyspark only: the main thread imports pyspark."""
    import importlib
    import threading

    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # the phase that needs it says why, if it does
                return

    threading.Thread(target=run, name="sparkasr-imports", daemon=True).start()


def _transcribe_in(spark, owned: bool, phases, args, cfg: dict, params: dict) -> int:
    from .job.run import Interrupted, Interruption, SetupError, run_transcription
    from .spark.session import WorkerSetupError
    from .whisper.models import ModelNotFoundError

    try:
        with Interruption(spark) as interruption:
            res = run_transcription(
                spark,
                cfg["inputs"],
                cfg["output"],
                model=cfg["model"],
                fmt=cfg["format"],
                whisper_params=params,
                partitions=cfg["partitions"],
                report=cfg["report"],
                resume=cfg["resume"],
                retry_errors=cfg["retry_errors"],
                subtitles=cfg["subtitles"],
                quiet=cfg["quiet"],
                interruption=interruption,
                diarize=cfg["diarization"].on,
                diarizer_params=cfg["diarization"].diarizer,
                identity_params=cfg["diarization"].identity,
                speakers_across_files=cfg["diarization"].across_files,
                rttm=cfg["diarization"].rttm,
                phases=phases,
            )
    except Interrupted as exc:
        print(exc.line(), file=sys.stderr, flush=True)
        if owned:
            from .spark.session import stop

            stop(spark)
        return 128 + int(getattr(signal, exc.signame))
    except (SetupError, ModelNotFoundError, WorkerSetupError) as exc:
        raise _SetupFailed(str(exc)) from None
    if args.print_rows:
        print_records(res.records.orderBy("path").limit(args.print_rows).collect(), res.current_path)
    print(
        f"sparkasr: {res.n_inputs} files, {res.audio_s / 3600:.3f} h of audio, {res.n_errors} errors "
        f"({res.processed} transcribed now, {res.skipped} already done), {res.wall_s:.1f} s wall -> {res.current_path}"
    )
    if res.kept_errors:
        print(
            f"sparkasr: {res.kept_errors} of the errors are records kept from earlier runs; --retry-errors "
            "transcribes those inputs again"
        )
    if res.hidden_note:
        print(f"sparkasr: {res.hidden_note}")
    if res.metrics:
        print(
            f"sparkasr: WER {res.metrics.get('wer', float('nan')):.4f} against references -> {cfg['output'].rstrip('/')}/report"
        )
    if owned:
        from .spark.session import stop

        with phases.span("spark stop"):
            stop(spark)
    return 0


PRINT_WIDTH = 160  # characters of transcript per printed line (a sentence or two stay on one)
PRINT_LINES = 12  # printed lines per transcript at most


def print_records(rows, where: str) -> None:
    """``--print``: one line per file (``name  duration  text``); a long transcript wraps onto
    indented lines, at most :data:`PRINT_LINES` of them, then says how much more is in ``where``."""
    import textwrap

    for r in rows:
        name = r["path"].rstrip("/").rsplit("/", 1)[-1]
        if r["error"]:
            print(f"{name}\tERROR\t{r['error']}")
            continue
        turns = speaker_lines(r)
        if turns:  # a diarized transcript: one line per change of speaker
            print(f"{name}\t{r['duration_s']:.1f}s")
            for line in turns[:PRINT_LINES]:
                print(f"\t{line}")
            if len(turns) > PRINT_LINES:
                print(f"\t[... {len(turns) - PRINT_LINES} more turns: the whole text is in {where}]")
            continue
        lines = textwrap.wrap(r["text"] or "", PRINT_WIDTH, break_long_words=False, break_on_hyphens=False) or [""]
        print(f"{name}\t{r['duration_s']:.1f}s\t{lines[0]}")
        for line in lines[1:PRINT_LINES]:
            print(f"\t\t{line}")
        if len(lines) > PRINT_LINES:
            rest = sum(len(line.split()) for line in lines[PRINT_LINES:])
            print(f"\t\t[... {rest} more words: the whole text is in {where}]")


def _add_finetune(sub):
    p = sub.add_parser(
        "finetune",
        usage="%(prog)s --train MANIFEST [--eval MANIFEST] --output DIR [options]",
        help="fine-tune Whisper on labelled audio (manifests of path + reference) with WhisperFineTuner",
        description="Fine-tune Whisper on your own labelled audio on Spark (pyspark's TorchDistributor). A manifest "
        "is a CSV/TSV/JSONL/Parquet file with a 'path' and a 'reference' column, as sparkasr transcribe reads it. "
        "DIR becomes a model directory for --model of transcribe and serve. Needs sparkasr[train] (torch, "
        "transformers) where training runs.",
    )
    p.add_argument("--train", action="append", required=True, metavar="MANIFEST", help="training rows (repeatable)")
    p.add_argument(
        "--eval",
        action="append",
        default=[],
        metavar="MANIFEST",
        help="validation rows (repeatable): WER after every epoch, early stopping, the best epoch's model kept "
        "(without it, --validation-fraction holds out part of the training rows)",
    )
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="the fine-tuned model's directory (new)")
    p.add_argument("--master", default=None, help="Spark master URL (default local[*]; ignored under spark-submit)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    add_option_flags(p, finetune_options())


def cmd_finetune(args) -> int:
    """``sparkasr finetune``: setup checked before Spark starts (exit 2 and one line), then the fit."""
    from .whisper.models import ModelNotFoundError

    try:
        tuner, output = _checked_finetune(args)
    except (ModelNotFoundError, ValueError, _SetupFailed) as exc:
        print(f"sparkasr: error: {exc}", file=sys.stderr)
        return 2
    spark = _spark_session(args.master, app="sparkasr-finetune")
    try:
        df = _finetune_rows(spark, args.train, args.eval)
        if args.eval:
            tuner.setValidationIndicatorCol("_validation")
        model = tuner.fitToDirectory(df, output, quiet=args.quiet)
    except (_SetupFailed, ValueError) as exc:
        print(f"sparkasr: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # a training process failed (TorchDistributor gives its output's tail)
        print(f"sparkasr: error: training failed: {exc}", file=sys.stderr)
        return 1
    finally:
        from .spark.session import stop

        stop(spark)
    m = model.getTrainingMetrics()
    print(f"sparkasr: {m.summary()}, {m.train_seconds:.0f} s, peak {m.peak_rss_mb:.0f} MB per training process")
    for kind, n in sorted(m.skipped.items()):
        print(f"sparkasr: skipped {n} rows ({kind}), e.g. {m.skip_examples.get(kind, ['?'])[0]}")
    print(f"sparkasr: fine-tuned model -> {output} (sparkasr transcribe INPUT --model {output} -o OUT)")
    return 0


def _checked_finetune(args):
    from .job.run import check_inputs
    from .train.estimator import WhisperFineTuner

    for m in args.train + args.eval:
        if not os.path.isfile(m):
            raise _SetupFailed(f"manifest {m} does not exist")
    check_inputs(args.train + args.eval)
    output = os.path.abspath(args.output)
    if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
        raise _SetupFailed(f"--output {args.output} exists and is not an empty directory: give a new one")
    params = {
        o.name: getattr(args, o.config_key) for o in finetune_options() if getattr(args, o.config_key) is not None
    }
    tuner = WhisperFineTuner(inputCols=["path"], labelCol="reference", **params)
    tuner.checkModel()
    return tuner, output


def _finetune_rows(spark, train: List[str], evals: List[str]):
    """The rows of the manifests: ``path`` (relative paths against the manifest's directory),
    ``reference``, ``_validation``."""
    from pyspark.sql import functions as F

    from .job.run import _read_manifest

    frames = []
    for paths, validation in ((train, False), (evals, True)):
        for m in paths:
            df = _read_manifest(spark, m)
            if "reference" not in df.columns:
                raise _SetupFailed(f"manifest {m} has no 'reference' column (columns: {', '.join(df.columns)})")
            path = F.col("path")
            absolute = path.startswith("/") | path.contains(":")
            frames.append(
                df.select(
                    F.when(absolute, path).otherwise(F.concat(F.col("_manifest_dir"), F.lit("/"), path)).alias("path"),
                    F.col("reference").cast("string").alias("reference"),
                    F.lit(validation).alias("_validation"),
                )
            )
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out


def speaker_lines(record) -> List[str]:
    """A diarized record's text as ``[start-end] SPEAKER: words`` lines, one per change of speaker
    (chunks in order); [] for a record without speakers."""
    record = record.asDict(recursive=True) if hasattr(record, "asDict") else dict(record)
    chunks = record["chunks"] if "speakers" in record and record["chunks"] else []
    out, cur, words, span = [], None, [], [0.0, 0.0]
    for c in chunks:
        who = c.get("speaker") or "?"
        if who != cur and words:
            out.append(f"[{span[0]:6.1f}-{span[1]:6.1f}] {cur}: {''.join(words).strip()}")
            words = []
        if not words:
            span[0] = c["timestamp"][0]
        cur = who
        words.append(c["text"] if c["text"][:1].isspace() or not words else " " + c["text"])
        span[1] = c["timestamp"][1]
    if words:
        out.append(f"[{span[0]:6.1f}-{span[1]:6.1f}] {cur}: {''.join(words).strip()}")
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = Parser(prog="sparkasr", description="Distributed batch speech-to-text on Apache Spark")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_transcribe(sub)
    _add_finetune(sub)
    conv = sub.add_parser(
        "convert",
        help="convert a Hugging Face CTC checkpoint (wav2vec2/HuBERT) or a Whisper model to ONNX",
        add_help=False,
    )
    conv.add_argument("rest", nargs=argparse.REMAINDER)
    from .serve.cli import add_commands  # serve, demo (their flags and mains live in sparkasr.serve)

    servers = add_commands(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "convert":
        from .convert.command import convert_main

        return convert_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "transcribe":
        return cmd_transcribe(args)
    if args.command == "finetune":
        return cmd_finetune(args)
    if args.command in servers:
        return servers[args.command](args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
