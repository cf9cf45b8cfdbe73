"""The Spark glue shared by every speech annotator: one place, engine-agnostic.

A subclass (``WhisperForCTC``, ``Wav2Vec2ForCTC``, ...) only declares its params and implements:

* ``_resolve_model(self) -> ModelRef``: on the driver, where the weights are;
* ``_engine_spec(self) -> dict``: a small picklable description of the engine to build;
* ``_build_engine(spec, model_dir) -> Engine`` (staticmethod): on a worker, build the engine
  (called once per Python worker per spec: the result is cached in this module).

This base class does the rest: reading the input column (Spark NLP ``audio`` annotations, float
samples, encoded file bytes, or file paths), turning each Arrow batch (``mapInArrow``: samples are
read as zero-copy numpy views, other columns pass through untouched) into
:class:`~sparkasr.types.AudioItem` lists (decode + validate, errors kept per row), calling the engine once per ``batchSize`` items, writing
Spark NLP ``document`` (and ``chunk``) annotations, shipping model files to executors
(``SparkContext.addFile``) and saving them with the stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .. import annotation as A
from ..audio import SAMPLE_RATE, AudioError, decode_audio, decode_audio_slice, validate_samples
from ..types import AudioItem, Transcript, error_transcript
from .params import HasBatchSize, HasInputCols, HasOutputCol, HasReaderCols

log = logging.getLogger(__name__)

from pyspark.ml import Model  # noqa: E402
from pyspark.ml.param import Param, Params, TypeConverters  # noqa: E402
from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReadable, MLReader, MLWritable, MLWriter  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Model location: resolved on the driver, re-resolved on each worker
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """How a worker finds the model directory.

    kind: ``embedded`` (a package every node has; ``name`` is passed to ``resolver``),
    ``sparkfiles`` (shipped with ``SparkContext.addFile``; ``name`` is the file name),
    ``path`` (a directory every node sees, e.g. NFS or ``/dbfs/...``).
    """

    kind: str
    name: str = ""
    path: str = ""


_SHIPPED: Dict[str, str] = {}  # addFile name -> source path, per driver process
_SHIP_LOCK = threading.Lock()


def _is_remote_uri(path: str) -> bool:
    return "://" in path and not path.startswith("file:")


def _fingerprint(path: str) -> str:
    h = hashlib.sha256(os.path.abspath(path).encode())
    if os.path.isdir(path):
        for root, _, files in os.walk(path):
            for f in sorted(files):
                st = os.stat(os.path.join(root, f))
                h.update(f"{f}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:12]


def ship_model_dir(spark, path: str) -> ModelRef:
    """Make a model directory available to every executor via ``SparkContext.addFile``."""
    sc = spark.sparkContext
    if _is_remote_uri(path):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        src = path
    else:
        src = os.path.abspath(path[len("file:"):] if path.startswith("file:") else path)
        name = f"sparkasr-{os.path.basename(src.rstrip('/'))}-{_fingerprint(src)}"
    with _SHIP_LOCK:
        if _SHIPPED.get(name) == src:
            return ModelRef("sparkfiles", name=name, path=src)
        if not _is_remote_uri(src) and os.path.basename(src) != name:
            # addFile names the copy after the last path component: give it a unique one.
            staged = os.path.join(_staging_dir(), name)
            if not os.path.isdir(staged):
                tmp = staged + f".tmp{os.getpid()}"
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(src, tmp)
                os.replace(tmp, staged)
            to_add = staged
        else:
            to_add = src
        if _is_remote_uri(to_add) or sc.master.startswith("local"):
            sc.addFile(to_add, recursive=True)
        else:
            # Spark refuses addFile of a local directory on a cluster master: ship it as an archive,
            # which executors unpack under SparkFiles.get(name).
            sc.addArchive(_zip_dir(to_add, name) + "#" + name)
        _SHIPPED[name] = src
    return ModelRef("sparkfiles", name=name, path=src)


def _zip_dir(path: str, name: str) -> str:
    """A stored (uncompressed) zip of ``path``'s contents next to the staging copies; reused."""
    import zipfile

    target = os.path.join(_staging_dir(), name + ".zip")
    if not os.path.isfile(target):
        tmp = target + f".tmp{os.getpid()}"
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for root, _, files in os.walk(path):
                for f in sorted(files):
                    full = os.path.join(root, f)
                    zf.write(full, os.path.relpath(full, path))
        os.replace(tmp, target)
    return target


def _staging_dir() -> str:
    from ..models import cache_dir

    d = cache_dir() / "ship"
    d.mkdir(parents=True, exist_ok=True)
    return str(d)


def local_model_dir(ref: ModelRef, resolver: Optional[Callable[[str], str]] = None) -> str:
    """On a worker (or the driver): the local directory for ``ref``."""
    if ref.kind == "embedded":
        assert resolver is not None
        return resolver(ref.name)
    if ref.kind == "sparkfiles":
        try:
            from pyspark import SparkFiles

            p = SparkFiles.get(ref.name)
            if os.path.isdir(p):
                return p
        except Exception:  # not inside Spark (LightPipeline) or file not shipped
            pass
        if ref.path and os.path.isdir(ref.path):
            return ref.path
        raise FileNotFoundError(f"model files '{ref.name}' were not shipped to this executor and {ref.path} is not visible here")
    if ref.kind == "path":
        if os.path.isdir(ref.path):
            return ref.path
        raise FileNotFoundError(f"model directory {ref.path} is not visible on this node")
    raise ValueError(f"unknown model ref kind {ref.kind}")


# ---------------------------------------------------------------------------------------------
# Per-worker engine cache
# ---------------------------------------------------------------------------------------------

_ENGINE_CACHE: Dict[str, Any] = {}
_ENGINE_LOCK = threading.Lock()


def cached_engine(spec: Dict[str, Any], builder: Callable[[Dict[str, Any]], Any]):
    key = json.dumps(spec, sort_keys=True, default=str)
    with _ENGINE_LOCK:
        eng = _ENGINE_CACHE.get(key)
        if eng is None:
            eng = _ENGINE_CACHE[key] = builder(spec)
    return eng


def task_cpus() -> int:
    """CPU cores Spark gave this task (spark.task.cpus); 0 outside Spark."""
    try:
        from pyspark import TaskContext

        tc = TaskContext.get()
        if tc is not None:
            return int(tc.cpus())
    except Exception:
        pass
    return 0


GPU_DEVICES = ("cuda", "auto")


def gpu_index(resources: Dict[str, Any]) -> Optional[int]:
    """The CUDA device index of a task's ``gpu`` resource (``TaskContext.resources()``), or None.

    Spark's GPU scheduling (``spark.{executor,task}.resource.gpu.*``) gives each task GPU
    addresses from the executor's discovery script; like xgboost.spark, the task uses the first
    one as its CUDA ordinal (``conf/getGpusResources.sh`` prints ``nvidia-smi`` indices)."""
    info = resources.get("gpu") if resources else None
    addresses = [str(a).strip() for a in (getattr(info, "addresses", None) or [])]
    if not addresses:
        return None
    try:
        return int(addresses[0])
    except ValueError:
        raise ValueError(
            f"Spark assigned this task GPU address {addresses[0]!r}, which is not a CUDA device index: "
            "the gpu discoveryScript must print indices such as [\"0\", \"1\"] (conf/getGpusResources.sh)"
        ) from None


def task_gpu_index() -> Optional[int]:
    """The CUDA device Spark assigned to the running task (its first ``gpu`` address), or None
    outside a task or when the task has no GPU resource."""
    try:
        from pyspark import TaskContext

        tc = TaskContext.get()
    except Exception:
        return None
    return gpu_index(tc.resources()) if tc is not None else None


def task_spec(spec: Dict[str, Any], index: Optional[int] = None) -> Dict[str, Any]:
    """``spec`` for the running task: an engine on a GPU (``device`` cuda/auto) opens the device
    Spark assigned to the task (``device_index``), so the tasks of an executor with several GPUs
    do not all open device 0; the engine cache keeps one engine per device."""
    if spec.get("device") not in GPU_DEVICES:
        return spec
    index = task_gpu_index() if index is None else index
    return spec if index is None else dict(spec, device_index=index)


# ---------------------------------------------------------------------------------------------
# Input cells -> AudioItems
# ---------------------------------------------------------------------------------------------

INPUT_AUDIO = "audio"  # array<struct<annotatorType, result: array<float>, metadata>> (Spark NLP AUDIO)
INPUT_BINARY = "binary"  # encoded file bytes (binaryFile's content)
INPUT_PATH = "path"  # a file path/URI readable from the Python worker
INPUT_FLOATS = "floats"  # array<float|double> already at 16 kHz mono


def classify_input(data_type) -> str:
    from pyspark.sql.types import ArrayType, BinaryType, DoubleType, FloatType, StringType, StructType

    if isinstance(data_type, BinaryType):
        return INPUT_BINARY
    if isinstance(data_type, StringType):
        return INPUT_PATH
    if isinstance(data_type, ArrayType):
        el = data_type.elementType
        if isinstance(el, StructType) and "result" in el.fieldNames():
            return INPUT_AUDIO
        if isinstance(el, (FloatType, DoubleType)):
            return INPUT_FLOATS
    raise TypeError(
        f"unsupported input column type {data_type.simpleString()}: expected Spark NLP audio annotations "
        "(AudioAssembler output), binary file content, a file path string, or array<float> at 16 kHz"
    )


def _path_from_uri(p: str) -> str:
    if p.startswith("file://"):
        p = p[len("file://"):]
    elif p.startswith("file:"):
        p = p[len("file:"):]
    from urllib.parse import unquote

    return unquote(p)


def row_source(cell, kind: str, path) -> str:
    """What names a row's audio in metadata and errors: its ``pathCol`` value, else the input
    itself when it is a path, else ''."""
    return str(path) if path is not None else (str(cell) if kind == INPUT_PATH and cell is not None else "")


def column_values(batch, col: Optional[str], n: int) -> List[Any]:
    """A column of an Arrow batch as Python values, or ``n`` Nones when ``col`` is None."""
    return batch.column(col).to_pylist() if col else [None] * n


def cell_to_items(cell, kind: str, source: str, offset: Optional[float] = None, error: Optional[str] = None,
                  duration: Optional[float] = None) -> List[AudioItem]:
    """One input cell -> its audio items (one per audio annotation; errors kept).

    ``offset``: where the row starts in its file (seconds; read_audio's ``offset_s``), added to the
    timestamps; an annotation's own ``offset_s`` metadata takes precedence. ``error``: the row could
    not be read upstream (read_audio's ``error``); it is reported as is and nothing is decoded.
    ``duration``: with a path cell, the row is the slice ``[offset, offset + duration)`` s of the
    file (:func:`decode_path`)."""
    off = float(offset or 0.0)
    if error:
        return [AudioItem(None, source=source, offset_s=off, error=str(error))]
    if cell is None:
        return [AudioItem(None, source=source, offset_s=off, error="input is null")]
    if kind == INPUT_AUDIO:
        anns = list(cell)
        if not anns:
            return [AudioItem(None, source=source, error="no audio annotation in the input cell")]
        items = []
        for ann in anns:
            meta = dict(ann.get("metadata") or {})
            src = meta.get("source") or source
            err = meta.get("error")
            offset = float(meta["offset_s"]) if meta.get("offset_s") not in (None, "") else off
            if err:
                items.append(AudioItem(None, source=src, offset_s=offset, error=err))
                continue
            items.append(_validated(ann.get("result"), src, offset))
        return items
    if kind == INPUT_FLOATS:
        return [_validated(cell, source, off)]
    try:
        if kind == INPUT_BINARY:
            samples = decode_audio(bytes(cell), name=source)
        else:
            samples = decode_path(cell, offset, duration)
        return [AudioItem(samples, source=source, offset_s=off)]
    except AudioError as exc:
        return [AudioItem(None, source=source, offset_s=off, error=f"{source}: {exc}")]
    except Exception as exc:  # never lose a row
        return [AudioItem(None, source=source, offset_s=off, error=f"{source}: cannot read audio ({type(exc).__name__}: {exc})")]


def decode_path(cell, offset: Optional[float] = None, duration: Optional[float] = None, validate: bool = True) -> np.ndarray:
    """The samples of a path cell: the whole file, or with ``duration`` (seconds, not null) the
    slice from ``offset`` that long, decoded by seeking (read_audio(samples=False)'s references)."""
    path = _path_from_uri(str(cell))
    if duration is None:
        return decode_audio(path, name=path, validate=validate)
    start = int(round(float(offset or 0.0) * SAMPLE_RATE))
    samples = decode_audio_slice(path, start, int(round(float(duration) * SAMPLE_RATE)), name=path)
    return validate_samples(samples) if validate else samples


def _validated(samples, source: str, offset: float) -> AudioItem:
    try:
        arr = np.asarray(samples if samples is not None else [], dtype=np.float32)
        return AudioItem(validate_samples(arr), source=source, offset_s=offset)
    except AudioError as exc:
        return AudioItem(None, source=source, offset_s=offset, error=f"{source or '<audio>'}: {exc}")


# ---------------------------------------------------------------------------------------------
# Transcripts -> Spark NLP annotations
# ---------------------------------------------------------------------------------------------


def transcript_document(t: Transcript, index: int, model_name: str) -> Dict[str, Any]:
    meta = {
        "audio": index,
        "sentence": 0,
        "source": t.source or None,
        "language": t.language,
        "language_probability": t.language_probability,
        "duration_s": round(t.duration_s, 3),
        "offset_s": round(t.offset_s, 3) if t.offset_s else None,
        "model": model_name,
        A.ERROR_KEY: t.error,
    }
    text = t.text or ""
    return A.annotation(A.DOCUMENT, 0, max(len(text) - 1, 0), text, meta)


def transcript_chunks(t: Transcript, index: int) -> List[Dict[str, Any]]:
    out = []
    pos = 0
    text = t.text or ""
    for j, c in enumerate(t.chunks):
        found = text.find(c.text, pos) if c.text else -1
        begin = found if found >= 0 else pos
        end = begin + max(len(c.text) - 1, 0)
        if found >= 0:
            pos = end + 1
        out.append(
            A.annotation(
                A.CHUNK, begin, end, c.text,
                {"audio": index, "sentence": 0, "chunk": j, "start": c.start, "end": c.end, "kind": c.kind, "probability": c.probability},
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# The partition function
# ---------------------------------------------------------------------------------------------


def input_cells(column, kind: str) -> List[Any]:
    """An Arrow input column -> per-row cells for :func:`cell_to_items` (float samples as
    zero-copy numpy views; encoded files as bytes)."""
    from .arrow import audio_annotations, float_lists

    if kind == INPUT_AUDIO:
        return audio_annotations(column)
    if kind == INPUT_FLOATS:
        return float_lists(column)
    if kind == INPUT_BINARY:
        return [column[i].as_py() for i in range(len(column))]  # one file's bytes at a time
    return column.to_pylist()


def transcribe_isolating(engine, items: Sequence[AudioItem]) -> List[Transcript]:
    """``engine.transcribe_batch(items)``; when the call fails, the batch is split in halves and
    each half tried again, down to single items, so only the items that fail get an error
    (``model failed: ...``, naming the file) and the others keep their transcripts. Halving also
    gets a batch past a GPU out-of-memory error when smaller batches fit."""
    items = list(items)
    try:
        results = list(engine.transcribe_batch(items))
        if len(results) != len(items):
            raise RuntimeError(f"the engine returned {len(results)} results for {len(items)} inputs")
        return results
    except Exception as exc:
        if len(items) == 1:
            it = items[0]
            log.warning("model failed on %s", it.source or "<audio>", exc_info=True)
            return [error_transcript(it, f"model failed: {type(exc).__name__}: {exc}")]
        log.warning("model failed on a batch of %d (%s: %s); retrying in halves", len(items), type(exc).__name__, exc)
        mid = len(items) // 2
        return transcribe_isolating(engine, items[:mid]) + transcribe_isolating(engine, items[mid:])


def make_partition_fn(
    spec: Dict[str, Any],
    builder: Callable[[Dict[str, Any]], Any],
    input_col: str,
    input_kind: str,
    output_col: str,
    chunks_col: Optional[str],
    path_col: Optional[str],
    batch_size: int,
    model_name: str,
    out_schema,
    offset_col: Optional[str] = None,
    error_col: Optional[str] = None,
    duration_col: Optional[str] = None,
):
    """Build the ``mapInArrow`` function (closure only over picklable values).

    ``duration_col`` (path input only) makes each row a slice of its file (:func:`decode_path`).

    Input columns go back to Spark as the Arrow arrays that came in (an audio column is never
    converted to Python objects); only the annotation columns are built here. ``out_schema`` is
    the output's Spark schema.
    """

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        from .arrow import arrow_type

        names = [f.name for f in out_schema.fields]
        types = {f.name: arrow_type(f.dataType) for f in out_schema.fields if f.name in (output_col, chunks_col)}
        engine = None
        pending: List[Any] = []
        n_items = 0
        for batch in batches:
            rows_items: List[List[AudioItem]] = []
            cells = input_cells(batch.column(input_col), input_kind)
            paths = column_values(batch, path_col, len(cells))
            offsets = column_values(batch, offset_col, len(cells))
            errors = column_values(batch, error_col, len(cells))
            durations = column_values(batch, duration_col, len(cells))
            for cell, p, off, err, dur in zip(cells, paths, offsets, errors, durations):
                rows_items.append(cell_to_items(cell, input_kind, row_source(cell, input_kind, p), off, err, dur))
            del cells
            pending.append((batch, rows_items))
            n_items += sum(len(r) for r in rows_items)
            if n_items >= batch_size:
                if engine is None:
                    engine = cached_engine(task_spec(spec), builder)
                yield from _flush(engine, pending, names, types)
                pending, n_items = [], 0
        if pending:
            if engine is None and any(it.error is None for _, rows in pending for r in rows for it in r):
                engine = cached_engine(task_spec(spec), builder)
            yield from _flush(engine, pending, names, types)

    def _flush(engine, pending, names, types):
        import pyarrow as pa

        from .arrow import replace_columns

        flat = [it for _, rows in pending for r in rows for it in r]
        live = [it for it in flat if it.error is None]
        results: List[Transcript] = []
        if live:
            results = transcribe_isolating(engine, live)
        it_res = iter(results)
        for batch, rows in pending:
            docs, chunks = [], []
            for items in rows:
                row_docs, row_chunks = [], []
                for k, it in enumerate(items):
                    t = next(it_res) if it.error is None else error_transcript(it, it.error)
                    row_docs.append(transcript_document(t, k, model_name))
                    row_chunks.extend(transcript_chunks(t, k))
                docs.append(row_docs)
                chunks.append(row_chunks)
            new = {output_col: pa.array(docs, type=types[output_col])}
            if chunks_col:
                new[chunks_col] = pa.array(chunks, type=types[chunks_col])
            yield replace_columns(batch, new, names)

    return run


# ---------------------------------------------------------------------------------------------
# The base stage
# ---------------------------------------------------------------------------------------------


class SpeechAnnotatorModel(Model, HasInputCols, HasOutputCol, HasBatchSize, HasReaderCols, MLReadable, MLWritable):
    """Base for speech-to-text annotators (a fitted ``Model``, like Spark NLP's)."""

    modelSource = Param(
        Params._dummy(), "modelSource",
        "model name, local directory or URI (see sparkasr.models); saved stages point at their own copy",
        typeConverter=TypeConverters.toString,
    )
    shipModel = Param(
        Params._dummy(), "shipModel",
        "copy model files to executors with SparkContext.addFile (false: the path must be visible on every node)",
        typeConverter=TypeConverters.toBoolean,
    )
    chunksCol = Param(
        Params._dummy(), "chunksCol",
        "column for timed chunk annotations ('' = outputCol + '_chunks' when timestamps are on, else none)",
        typeConverter=TypeConverters.toString,
    )
    _embedded_resolver: Optional[Callable[[str], str]] = None

    def __init__(self):
        super().__init__()
        self._setDefault(
            inputCols=["audio_assembler"], outputCol="transcription", batchSize=8,
            shipModel=True, pathCol="", chunksCol="", offsetCol="", durationCol="", errorCol="",
        )

    # pyspark.ml's default copy() deep-copies params; keep that.

    # -- to be provided by subclasses --------------------------------------------------------
    def _resolve_model(self) -> Tuple[ModelRef, str]:
        """(ModelRef for workers, a local dir on the driver or '' when remote)."""
        raise NotImplementedError

    def _engine_spec(self) -> Dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def _build_engine(spec: Dict[str, Any]):
        raise NotImplementedError

    def _wants_chunks(self) -> bool:
        return False

    def _model_name(self) -> str:
        return self.getOrDefault(self.modelSource)

    # -- getters -----------------------------------------------------------------------------
    def setModelSource(self, value: str):
        return self._set(modelSource=value)

    def getModelSource(self) -> str:
        return self.getOrDefault(self.modelSource)

    def setShipModel(self, value: bool):
        return self._set(shipModel=value)

    def getShipModel(self) -> bool:
        return self.getOrDefault(self.shipModel)

    def setChunksCol(self, value: str):
        return self._set(chunksCol=value)

    def getChunksCol(self) -> str:
        c = self.getOrDefault(self.chunksCol)
        if c:
            return c
        return self.getOutputCol() + "_chunks" if self._wants_chunks() else ""

    # -- Spark ------------------------------------------------------------------------------
    def _items_per_call(self) -> int:
        """How many items the partition function hands the engine per call."""
        return self.getBatchSize()

    def _model_ref_for(self, spark) -> ModelRef:
        ref, local = self._resolve_model()
        if ref.kind == "embedded":
            return ref
        if self.getShipModel():
            return ship_model_dir(spark, local or ref.path)
        return ModelRef("path", path=local or ref.path)

    def _transform(self, dataset):
        from pyspark.sql.types import StructField, StructType

        cols = self.getInputCols()
        if len(cols) != 1:
            raise ValueError(f"{type(self).__name__} takes exactly one input column, got {cols}")
        in_col = cols[0]
        if in_col not in dataset.columns:
            raise ValueError(f"input column '{in_col}' not found; columns are {dataset.columns}")
        kind = classify_input(dataset.schema[in_col].dataType)
        out_col = self.getOutputCol()
        chunks_col = self.getChunksCol() or None
        path_col, offset_col, error_col, duration_col = self._reader_cols(dataset, kind == INPUT_PATH)
        spark = dataset.sparkSession
        ref = self._model_ref_for(spark)
        spec = dict(self._engine_spec(), model_ref=ref.__dict__)
        fields = [f for f in dataset.schema.fields if f.name not in (out_col, chunks_col)]
        fields.append(StructField(out_col, A.annotation_array_type(), True, metadata={"annotatorType": A.DOCUMENT}))
        if chunks_col:
            fields.append(StructField(chunks_col, A.annotation_array_type(), True, metadata={"annotatorType": A.CHUNK}))
        src = dataset.drop(*[c for c in (out_col, chunks_col) if c and c in dataset.columns])
        out_schema = StructType(fields)
        fn = make_partition_fn(
            spec, type(self)._build_engine, in_col, kind, out_col, chunks_col, path_col,
            self._items_per_call(), self._model_name(), out_schema, offset_col, error_col, duration_col,
        )
        out = src.mapInArrow(fn, schema=out_schema)
        out = A.with_annotator_type_metadata(out, out_col, A.DOCUMENT)
        if chunks_col:
            out = A.with_annotator_type_metadata(out, chunks_col, A.CHUNK)
        return out

    # -- local (no Spark) -----------------------------------------------------------------------
    def _local_engine(self):
        ref, local = self._resolve_model()
        ref = ref if ref.kind == "embedded" else ModelRef("path", path=local or ref.path)
        spec = dict(self._engine_spec(), model_ref=ref.__dict__)
        return cached_engine(spec, type(self)._build_engine)

    def transcribe_items(self, items: Sequence[AudioItem]) -> List[Transcript]:
        """The stage's engine on in-memory items, without Spark (LightPipeline)."""
        live = [it for it in items if it.error is None]
        res = iter(transcribe_isolating(self._local_engine(), live) if live else [])
        return [next(res) if it.error is None else error_transcript(it, it.error) for it in items]

    # -- persistence --------------------------------------------------------------------------
    def write(self) -> MLWriter:
        return _SpeechModelWriter(self)

    @classmethod
    def read(cls) -> MLReader:
        return _SpeechModelReader(cls)


def _hadoop_copy_from_local(spark, local_dir: str, dest: str) -> None:
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    dpath = jvm.org.apache.hadoop.fs.Path(dest)
    fs = dpath.getFileSystem(conf)
    fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(os.path.abspath(local_dir)), dpath)


class _SpeechModelWriter(DefaultParamsWriter):
    """Params as JSON (pyspark.ml's format) + the model files under ``<path>/weights/<uid>``.

    Embedded models (installed with sparkasr on every node) are recorded by name, not copied.
    """

    def saveImpl(self, path: str) -> None:
        stage: SpeechAnnotatorModel = self.instance
        ref, local = stage._resolve_model()
        extra = {"modelKind": ref.kind}
        if ref.kind != "embedded":
            dest = path.rstrip("/") + "/weights/" + stage.uid
            if local and os.path.isdir(local):
                _hadoop_copy_from_local(self.sparkSession, local, dest)
            else:
                raise ValueError(f"cannot save {stage.uid}: model files at {ref.path} are not local to the driver")
            extra["weights"] = "weights/" + stage.uid
        DefaultParamsWriter.saveMetadata(stage, path, self.sparkSession, extraMetadata=extra)


class _SpeechModelReader(MLReader):
    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path: str):
        metadata = DefaultParamsReader.loadMetadata(path, self.sparkSession)
        instance = self.cls()
        instance._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(instance, metadata)
        weights = metadata.get("weights")
        if weights:
            instance._set(modelSource=path.rstrip("/") + "/" + weights)
        return instance
