"""Every option of every stage, in one table per stage: the single source of truth.

Each stage's table is its Spark-side options (columns, where the model comes from) followed by
the options of the engine dataclasses it drives, declared on their fields
(:func:`sparkasr.options.option`: :class:`~sparkasr.whisper.WhisperOptions`,
:class:`~sparkasr.whisper.RuntimeOptions`, :class:`~sparkasr.ctc.CTCOptions`,
:class:`~sparkasr.ctc.lm.BeamOptions`). :data:`JOB` holds the options of the ``sparkasr
transcribe`` job that are not stage params. From these tables come:

* the pyspark ``Param``s, their defaults, ``setX``/``getX`` and the keyword signatures of
  ``__init__``/``setParams`` (:func:`sparkasr.spark.params.declare_params`);
* the engine options a stage builds (:func:`sparkasr.options.engine_kwargs`);
* ``sparkasr transcribe``'s flags and the keys of its job file (``conf/job.yaml``);
* the README's and ``docs/ctc.md``'s option tables, ``conf/job.yaml`` itself, and the JSON table
  the Scala stages are tested against: :mod:`sparkasr.generated` writes and checks them.

:func:`trainer_table` is the fine-tuning estimator's table (``WhisperFineTuner``: its Spark-side
options, then :class:`~sparkasr.train.options.TrainOptions`); its flags are ``sparkasr finetune``'s.
It is Python-only (``jvm=False``: training needs torch), so the Scala stages do not mirror it.

To add an option: declare it on the engine options dataclass with :func:`~sparkasr.options.option`
(or, for a Spark-only option, in the lists below), use it in the engine, and run
``python -m sparkasr.generated --write``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .options import BOOL, INT, LIST_STRING, MAP_STRING, STRING, Option, by_name, options_of


@dataclass(frozen=True)
class StageTable:
    """The options of one stage, in order. ``jvm``: the stage has a Scala twin (the JSON table the
    Scala stages are tested against lists only those)."""

    name: str
    python_class: str
    options: Tuple[Option, ...]
    jvm: bool = True

    def __post_init__(self):
        by_name(self.options)  # no option twice

    @property
    def names(self) -> List[str]:
        return [o.name for o in self.options]

    def option(self, name: str) -> Option:
        for o in self.options:
            if o.name == name:
                return o
        raise KeyError(f"{self.name} has no option {name!r}")

    def defaults(self) -> Dict[str, Any]:
        return {o.name: o.default for o in self.options if o.default is not None}

    def runtime_names(self) -> List[str]:
        """Options that change where or how fast a stage runs, not what it writes."""
        return [o.name for o in self.options if o.runtime]


def _spark(name: str, type: str, default: Any, doc: str, **kw: Any) -> Option:
    """A Spark-only option: a stage param, not on the command line nor in the job file."""
    return Option(name, type, default, doc, flag=None, key=None, **kw)


def _col(name: str, default: str, doc: str) -> Option:
    return _spark(name, STRING, default, doc, runtime=True)


READER_COLS = (
    _col(
        "pathCol",
        "",
        "column naming each row's file, for the source metadata and error messages ('' = 'path' when present)",
    ),
    _col(
        "offsetCol",
        "",
        "column with where each row starts in its file, in seconds: chunk times and the offset_s metadata count from the "
        "start of the file ('' = 'offset_s' when present, as read_audio writes it; audio annotations' own offset_s "
        "metadata comes first)",
    ),
    _col(
        "durationCol",
        "",
        "column with each row's length in seconds: with a path input column, the row is that slice of its file, from "
        "offsetCol (read_audio(samples=False)'s reference rows); without it, or when null, the whole file ('' = "
        "'duration_s' when present, as read_audio writes it; not used for sample or binary input)",
    ),
    _col(
        "errorCol",
        "",
        "column with an upstream read error: a non-null value is reported in the row's annotation and the row is not "
        "decoded ('' = 'error' when present, as read_audio writes it)",
    ),
)


def _speech_common(model_default: str) -> Tuple[Option, ...]:
    return (
        _spark("inputCols", LIST_STRING, ["audio_assembler"], "input annotation column names", runtime=True),
        _col("outputCol", "transcription", "output annotation column name"),
        _spark(
            "modelSource",
            STRING,
            model_default,
            "model name, local directory or URI (see sparkasr.whisper.models); saved stages point at their own copy",
        ),
        _spark(
            "shipModel",
            BOOL,
            True,
            "copy the model directory to the executors with the job (SparkContext.addFile; on Spark Connect a session "
            "artifact); false: the path must be visible on every node (/Volumes/..., /dbfs/..., NFS)",
            runtime=True,
        ),
        _col(
            "chunksCol",
            "",
            "column for timed chunk annotations ('' = outputCol + '_chunks' when timestamps are on, else none)",
        ),
    ) + READER_COLS


def _stage(name: str, module: str, *parts: Sequence[Option], jvm: bool = True) -> StageTable:
    return StageTable(name, f"{module}.{name}", tuple(o for part in parts for o in part), jvm)


def _runtime(options: Sequence[Option], *names: str) -> Tuple[Option, ...]:
    return tuple(replace(o, runtime=True) if o.name in names else o for o in options)


def _tables() -> Dict[str, StageTable]:
    from .ctc.engine import CTCOptions
    from .ctc.lm import BeamOptions
    from .diarize.options import DiarizationOptions, IdentityOptions
    from .train.options import TrainOptions
    from .whisper.options import RuntimeOptions, WhisperOptions

    ctc = (
        _spark("lmPath", STRING, "", "KenLM n-gram model (.arpa or binary) for beam search ('' = greedy decoding)"),
        _spark(
            "quantize",
            STRING,
            "",
            "when a Hugging Face checkpoint is converted on the driver: '' or 'int8'",
            choices=("", "int8"),
        ),
    )
    ctc_engine = _runtime(options_of(CTCOptions), "batchSize", "cpuThreads") + options_of(BeamOptions)
    tables = [
        _stage(
            "AudioAssembler",
            "sparkasr.spark.assembler",
            (
                _col(
                    "inputCol",
                    "audio_content",
                    "input column: array<float|double> samples, binary file content or a file path",
                ),
                _col("outputCol", "audio_assembler", "output column of Spark NLP audio annotations"),
                _spark("sampleRate", INT, 16000, "sample rate of array input (Hz)", minimum=1),
                _col("sampleRateCol", "", "column with each row's sample rate ('' = use sampleRate)"),
                _spark("channels", INT, 1, "interleaved channels in array input (down-mixed to mono)", minimum=1),
            ),
            READER_COLS,
        ),
        _stage(
            "WhisperForCTC",
            "sparkasr.spark.whisper",
            _speech_common("tiny.en"),
            _runtime(options_of(WhisperOptions), "batchSize"),
            _runtime(options_of(RuntimeOptions), "cpuThreads"),
        ),
        _stage("Wav2Vec2ForCTC", "sparkasr.spark.ctc", _speech_common(""), ctc_engine, ctc),
        _stage("HubertForCTC", "sparkasr.spark.ctc", _speech_common(""), ctc_engine, ctc),
        _stage(
            "SpeakerDiarizer",
            "sparkasr.spark.diarizer",
            (
                _spark("inputCols", LIST_STRING, ["audio_assembler"], "input audio column name", runtime=True),
                _col("outputCol", "speakers", "output column: one chunk annotation per speaker turn"),
                _col(
                    "voicesCol",
                    "",
                    "column of each row's speakers with their voice embeddings, for SpeakerIdentity ('' = outputCol + "
                    "'_voices')",
                ),
                _col(
                    "transcriptChunksCol",
                    "",
                    "a timed transcript chunk column (WhisperForCTC's chunksCol) whose chunks get a 'speaker' metadata "
                    "key, by overlap ('' = none)",
                ),
                _spark(
                    "modelSource",
                    STRING,
                    "resemblyzer",
                    "speaker model: resemblyzer (Resemblyzer's voice encoder as ONNX, converted once) or a directory "
                    "holding voice_encoder.onnx",
                ),
                _spark(
                    "shipModel",
                    BOOL,
                    True,
                    "copy the speaker model to executors with SparkContext.addFile (false: the path must be visible on "
                    "every node)",
                    runtime=True,
                ),
                _spark(
                    "cpuThreads",
                    INT,
                    0,
                    "ONNX Runtime threads per task; 0 = spark.task.cpus inside Spark, all cores outside it",
                    minimum=0,
                    runtime=True,
                ),
            ),
            READER_COLS,
            options_of(DiarizationOptions),
            jvm=False,
        ),
        _stage(
            "SpeakerIdentity",
            "sparkasr.spark.diarizer",
            (
                _col("speakersCol", "speakers", "SpeakerDiarizer's output column (relabelled in place)"),
                _col("voicesCol", "speakers_voices", "SpeakerDiarizer's voices column (read, then dropped)"),
                _col(
                    "transcriptChunksCol",
                    "",
                    "a transcript chunk column with 'speaker' metadata to relabel too ('' = none)",
                ),
                _spark(
                    "modelSource",
                    STRING,
                    "resemblyzer",
                    "speaker model for the gallery's clips (as SpeakerDiarizer's)",
                ),
            ),
            options_of(IdentityOptions),
            jvm=False,
        ),
        _stage(
            "WerEvaluator",
            "sparkasr.spark.evaluation",
            (
                _spark(
                    "predictionCol",
                    STRING,
                    "prediction",
                    "transcription column: string or Spark NLP document annotations",
                ),
                _spark("referenceCol", STRING, "reference", "reference transcript column (string or annotations)"),
                _spark(
                    "metricName", STRING, "wer", "metric: wer, cer, mer or wil", choices=("wer", "cer", "mer", "wil")
                ),
                _spark(
                    "normalizer",
                    STRING,
                    "basic",
                    "text normaliser applied to both sides: none, basic, whisper_en, whisper_basic, ... ('+' composes)",
                ),
                _spark(
                    "nullPrediction",
                    STRING,
                    "skip",
                    "skip (default) or empty: how a null prediction is scored",
                    choices=("skip", "empty"),
                ),
            ),
        ),
        _stage(
            "WhisperFineTuner",
            "sparkasr.train.estimator",
            _trainer_spark_side(),
            options_of(TrainOptions),
            jvm=False,
        ),
    ]
    return {t.name: t for t in tables}


_TABLES: Optional[Dict[str, StageTable]] = None


def stage_table(name: str) -> StageTable:
    """The option table of the stage class named ``name``."""
    global _TABLES
    if _TABLES is None:
        _TABLES = _tables()
    return _TABLES[name]


def stage_tables() -> Dict[str, StageTable]:
    stage_table("WhisperForCTC")
    assert _TABLES is not None
    return dict(_TABLES)


# ---------------------------------------------------------------------------------------------
# The job (sparkasr transcribe / spark-submit): options that are not stage params
# ---------------------------------------------------------------------------------------------


def _job(name: str, type: str, default: Any, doc: str, **kw: Any) -> Option:
    return Option(name, type, default, doc, field=name, **kw)


JOB: Tuple[Option, ...] = (
    _job(
        "inputs",
        LIST_STRING,
        None,
        "audio files, directories, globs, URIs or manifests (.csv/.tsv/.jsonl/.parquet with a path column)",
        flag=None,
    ),
    _job(
        "output",
        STRING,
        None,
        "output directory: DIR/current holds one record per input (the latest run's result), DIR/transcripts every "
        "run's records, DIR/report the WER report; one run at a time",
        aliases=("-o",),
        required=True,
    ),
    _job(
        "model",
        STRING,
        None,
        "tiny.en (embedded default), base, a local CTranslate2/HF Whisper dir, or a hub id (online)",
    ),
    _job("format", STRING, "jsonl", "output record format", choices=("jsonl", "parquet")),
    _job("partitions", INT, 0, "partitions to spread inputs over (0 = automatic)", minimum=0),
    _job("master", STRING, None, "Spark master URL (default local[*]; ignored under spark-submit)"),
    _job(
        "remote",
        STRING,
        None,
        "Spark Connect server to run on, sc://host:port (default: the SPARK_REMOTE environment variable; the output "
        "must be a directory this machine and the server both see)",
    ),
    _job(
        "jvm_class_cache",
        BOOL,
        True,
        "start the local Spark driver's JVM from a class archive kept under SPARKASR_CACHE/jvm (the first run writes "
        "it, ~160 MB, once per Java and Spark): later starts take ~3 s less; ignored under spark-submit and Connect",
    ),
    _job(
        "jvm_quick_jit",
        BOOL,
        True,
        "the local Spark driver's JVM compiles with its quick JIT tier only (-XX:TieredStopAtLevel=1): Spark's start "
        "and first jobs take less CPU from the Python workers; a tiering option in spark.driver.extraJavaOptions "
        "wins; ignored under spark-submit and Connect",
    ),
    _job(
        "subtitles",
        LIST_STRING,
        [],
        "per-file subtitles to write under DIR/subtitles: srt, vtt or srt,vtt",
        choices=("srt", "vtt"),
        comma=True,
    ),
    _job(
        "resume",
        BOOL,
        True,
        "skip inputs already transcribed with the same model and options (--no-resume: refuse to run over existing results)",
    ),
    _job(
        "retry_errors",
        BOOL,
        False,
        "transcribe again the inputs whose records (same model and options) are all errors, e.g. after fixing a "
        "file's permissions; their new records supersede the errors in DIR/current",
    ),
    _job(
        "diarize",
        BOOL,
        False,
        "who spoke when: records get speakers [{start, end, speaker}] and each chunk a speaker; subtitles mark them",
    ),
    _job(
        "speakers_across_files",
        BOOL,
        True,
        "with --diarize: one label per person across the run's files (SpeakerIdentity); off, labels are per file",
    ),
    _job("rttm", BOOL, False, "with --diarize: one RTTM file per input under DIR/rttm (for diarization tools)"),
    _job("quiet", BOOL, False, "no live progress (for schedulers)", aliases=("-q",)),
    _job("report", BOOL, True, "write the WER report when inputs have references"),
    _job(
        "spark_conf",
        MAP_STRING,
        {},
        "extra Spark settings (spark.* keys)",
        flag=None,
        example={"spark.executor.memoryOverhead": "2g"},
    ),
)


def transcribe_options() -> List[Option]:
    """Every option of ``sparkasr transcribe`` and its job file, in order: the job's own, then
    the Whisper stage's engine options (decoding and runtime), then the diarizer's."""
    return list(JOB[:3]) + whisper_job_options() + diarizer_job_options() + list(JOB[3:])


def whisper_job_options() -> List[Option]:
    return [o for o in stage_table("WhisperForCTC").options if o.config_key]


def diarizer_job_options() -> List[Option]:
    """The SpeakerDiarizer and SpeakerIdentity options the job takes (``--num-speakers``, ...)."""
    names = {o.name for o in stage_table("SpeakerIdentity").options}
    out = [o for o in stage_table("SpeakerDiarizer").options if o.config_key]
    return out + [o for o in stage_table("SpeakerIdentity").options if o.config_key and o.name in names]


# ---------------------------------------------------------------------------------------------
# The fine-tuning estimator (WhisperFineTuner, sparkasr finetune)
# ---------------------------------------------------------------------------------------------


def _flagged(name: str, type: str, default: Any, doc: str, key: str, **kw: Any) -> Option:
    """A Spark-side option of the fine-tuner that ``sparkasr finetune`` also takes (``--<key>``)."""
    return Option(name, type, default, doc, key=key, **kw)


def _trainer_spark_side() -> Tuple[Option, ...]:
    """``WhisperFineTuner``'s own options: where the rows and the model come from, where training runs."""
    return (
        _spark(
            "inputCols",
            LIST_STRING,
            ["audio_assembler"],
            "audio input column: AudioAssembler output, file paths, file bytes or 16-kHz samples",
            runtime=True,
        ),
        _col("labelCol", "reference", "reference transcript column (the text the model learns)"),
        _col("outputCol", "transcription", "output column of the fitted WhisperForCTC"),
        _col(
            "validationIndicatorCol",
            "",
            "boolean column marking validation rows ('' = validationFraction decides)",
        ),
        _flagged(
            "baseModel",
            STRING,
            "tiny.en",
            "Whisper model to start from: tiny.en (embedded), base, a CTranslate2 or Hugging Face Whisper directory",
            key="model",
        ),
        _flagged(
            "numProcesses",
            INT,
            1,
            "training processes (pyspark's TorchDistributor: DDP, gloo on CPU, NCCL on GPU)",
            key="num_processes",
            minimum=1,
            runtime=True,
        ),
        _flagged("useGpu", BOOL, False, "one GPU per training process", key="use_gpu", runtime=True),
        _spark(
            "localMode",
            BOOL,
            True,
            "training processes on the driver (false: on executors, one Spark task each; checkpointDir must "
            "then be storage every executor reads)",
            runtime=True,
        ),
        _flagged(
            "checkpointDir",
            STRING,
            "",
            "where the staged rows, checkpoints and per-epoch exports go ('' = a temporary directory, no resume); "
            "a fit killed mid-way and started again with the same directory resumes from its last checkpoint",
            key="checkpoint_dir",
            runtime=True,
        ),
    ) + READER_COLS


def trainer_table() -> StageTable:
    """``WhisperFineTuner``'s options: :func:`_trainer_spark_side`, then every
    :class:`~sparkasr.train.options.TrainOptions` option."""
    return stage_table("WhisperFineTuner")


def finetune_options() -> List[Option]:
    """The options of ``sparkasr finetune`` that are flags (the estimator's, in table order)."""
    return [o for o in trainer_table().options if o.cli_flag]
