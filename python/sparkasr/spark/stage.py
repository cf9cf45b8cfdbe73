"""The base of every speech annotator (``WhisperForCTC``, ``Wav2Vec2ForCTC``, ``HubertForCTC``):
one engine-agnostic stage and its ``mapInArrow`` partition function.

A subclass declares its params and implements:

* ``_resolve_model(self) -> (ModelRef, local_dir)``: on the driver, where the weights are;
* ``_engine_spec(self, model) -> EngineSpec``: the frozen, validated description of its engine;
* ``_build_engine(spec) -> Engine`` (staticmethod): on a worker, the engine (built once per Python
  worker per spec: :func:`~sparkasr.spark.context.task_engine`).

The base stage does the rest: it reads the input column (Spark NLP ``audio`` annotations, float
samples, encoded file bytes, or file paths: :mod:`sparkasr.cells`), turns each Arrow batch into
:class:`~sparkasr.records.AudioItem` lists (errors kept per row), calls the engine once per
``batchSize`` items (a failing call retried in halves, :func:`~sparkasr.engines.transcribe_isolating`),
writes Spark NLP ``document`` (and ``chunk``) annotations, ships the model to executors
(:mod:`.shipping`) and saves it with the stage.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

from pyspark.ml import Model
from pyspark.ml.util import DefaultParamsReader, MLReadable, MLReader, MLWritable, MLWriter

from .. import annotation as A
from ..cells import cell_items, cell_source
from ..engines import transcribe_isolating
from ..job import progress
from ..paths import local_path
from ..records import AudioItem, Transcript, error_transcript
from .compat import load_metadata, save_metadata
from .context import EngineSpec, task_engine
from .inputs import INPUT_PATH, classify_input, column_values, input_cells
from .params import HasInputCols, HasReaderCols
from .session import ParamsWriter, check_python_workers, is_connect
from .shipping import ModelRef, fetch_dir, save_model_files, ship_model_dir

log = logging.getLogger(__name__)


class _TaskTimes:
    """A task's time in reading and decoding its rows and in the engine's calls, reported to the
    job's profile when the task's input ends (:func:`~sparkasr.job.progress.report_span`)."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.read = self.infer = 0.0
        self.rows = self.calls = 0

    def report(self) -> None:
        progress.report_span("task", time.perf_counter() - self.t0)
        progress.report_span("read and decode", self.read, self.rows)
        progress.report_span("inference", self.infer, self.calls)


def make_partition_fn(
    spec: EngineSpec,
    builder: Callable[[EngineSpec], Any],
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

    ``duration_col`` (path input only) makes each row a slice of its file.

    Input columns go back to Spark as the Arrow arrays that came in (an audio column is never
    converted to Python objects); only the annotation columns are built here. ``out_schema`` is
    the output's Spark schema.
    """

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        # engines report how far into each file they are (the job's live progress; else a no-op)
        with progress.reporting(progress.task_address()):
            yield from _run(batches)

    def _run(batches: Iterator[Any]) -> Iterator[Any]:
        from .arrow import arrow_type

        names = [f.name for f in out_schema.fields]
        types = {f.name: arrow_type(f.dataType) for f in out_schema.fields if f.name in (output_col, chunks_col)}
        engine = None
        pending: List[Any] = []
        n_items = 0
        spent = _TaskTimes()
        for batch in batches:
            t_read = time.perf_counter()
            rows_items: List[List[AudioItem]] = []
            cells = input_cells(batch.column(input_col), input_kind)
            paths = column_values(batch, path_col, len(cells))
            offsets = column_values(batch, offset_col, len(cells))
            errors = column_values(batch, error_col, len(cells))
            durations = column_values(batch, duration_col, len(cells))
            for cell, p, off, err, dur in zip(cells, paths, offsets, errors, durations):
                rows_items.append(
                    cell_items(cell, input_kind, cell_source(cell, input_kind, p), offset=off, error=err, duration=dur)
                )
            del cells
            pending.append((batch, rows_items))
            n_items += sum(len(r) for r in rows_items)
            spent.read += time.perf_counter() - t_read
            spent.rows += len(rows_items)
            if n_items >= batch_size:
                if engine is None:
                    engine = task_engine(spec, builder)
                yield from _flush(engine, pending, names, types, spent)
                pending, n_items = [], 0
        if pending:
            if engine is None and any(it.error is None for _, rows in pending for r in rows for it in r):
                engine = task_engine(spec, builder)
            yield from _flush(engine, pending, names, types, spent)
        spent.report()

    def _flush(engine, pending, names, types, spent):
        import pyarrow as pa

        from .arrow import replace_columns

        flat = [it for _, rows in pending for r in rows for it in r]
        live = [it for it in flat if it.error is None]
        results: List[Transcript] = []
        if live:
            for it in live:
                progress.advance(it.source, it.offset_s, it.offset_s + it.duration_s)
            t0 = time.perf_counter()
            results = transcribe_isolating(engine, live)
            spent.infer += time.perf_counter() - t0
            spent.calls += 1
            for it in live:
                progress.advance(it.source, it.offset_s + it.duration_s)
        it_res = iter(results)
        for batch, rows in pending:
            docs, chunks = [], []
            for items in rows:
                row_docs, row_chunks = [], []
                for k, it in enumerate(items):
                    t = next(it_res) if it.error is None else error_transcript(it, it.error)
                    row_docs.append(A.transcript_document(t, k, model_name))
                    row_chunks.extend(A.transcript_chunks(t, k))
                docs.append(row_docs)
                chunks.append(row_chunks)
            new = {output_col: pa.array(docs, type=types[output_col])}
            if chunks_col:
                new[chunks_col] = pa.array(chunks, type=types[chunks_col])
            yield replace_columns(batch, new, names)

    return run


class SpeechAnnotatorModel(Model, HasInputCols, HasReaderCols, MLReadable, MLWritable):
    """Base for speech-to-text annotators (a fitted ``Model``, like Spark NLP's). Subclasses get
    their params from their option table (:func:`~sparkasr.spark.params.declare_params`)."""

    # pyspark.ml's default copy() deep-copies params; keep that.

    # -- to be provided by subclasses --------------------------------------------------------
    def _resolve_model(self) -> Tuple[ModelRef, str]:
        """(ModelRef for workers, a local dir on the driver or '' when remote)."""
        raise NotImplementedError

    def _engine_spec(self, model: ModelRef) -> EngineSpec:
        """The spec of this stage's engine with the model at ``model`` (validated on the driver)."""
        raise NotImplementedError

    @staticmethod
    def _build_engine(spec: EngineSpec):
        """On a worker (or the driver, for LightPipeline): the engine for ``spec``."""
        raise NotImplementedError

    def _wants_chunks(self) -> bool:
        return False

    def _model_name(self) -> str:
        """The model as the annotations' metadata name it (long paths shortened)."""
        name = self.getModelSource()
        return name if len(name) < 80 else "..." + name[-77:]

    def getChunksCol(self) -> str:
        c = self.getOrDefault(self.chunksCol)
        if c:
            return c
        return self.getOutputCol() + "_chunks" if self._wants_chunks() else ""

    # -- Spark ------------------------------------------------------------------------------
    def _items_per_call(self) -> int:
        """How many items the partition function hands the engine per call."""
        return self.getBatchSize()

    def _check_model(self, local_dir: str) -> None:
        """Refuse options the model at ``local_dir`` cannot honour ('' when it is not local)."""

    def validateModel(self):
        """Resolve the model on the driver and check the params against it (a language an
        English-only model cannot do, say), so a bad combination fails here, naming the param,
        and not in every task. ``transform`` does this too."""
        self._check_model(self._resolve_model()[1])
        return self

    def _model_ref_for(self, spark) -> ModelRef:
        ref, local = self._resolve_model()
        self._check_model(local)
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
        check_python_workers(spark)
        spec = self._engine_spec(self._model_ref_for(spark))
        fields = [f for f in dataset.schema.fields if f.name not in (out_col, chunks_col)]
        fields.append(StructField(out_col, A.annotation_array_type(), True, metadata={"annotatorType": A.DOCUMENT}))
        if chunks_col:
            fields.append(StructField(chunks_col, A.annotation_array_type(), True, metadata={"annotatorType": A.CHUNK}))
        src = dataset.drop(*[c for c in (out_col, chunks_col) if c and c in dataset.columns])
        out_schema = StructType(fields)
        fn = make_partition_fn(
            spec,
            type(self)._build_engine,
            in_col,
            kind,
            out_col,
            chunks_col,
            path_col,
            self._items_per_call(),
            self._model_name(),
            out_schema,
            offset_col,
            error_col,
            duration_col,
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
        return task_engine(self._engine_spec(ref), type(self)._build_engine)

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


class _SpeechModelWriter(ParamsWriter):
    """Params as JSON (pyspark.ml's format) + the model files under ``<path>/weights/<uid>``
    (classic or Spark Connect session: :func:`~sparkasr.spark.shipping.save_model_files`).

    Embedded models (installed with sparkasr on every node) are recorded by name, not copied.
    """

    def saveImpl(self, path: str) -> None:
        import time

        stage: SpeechAnnotatorModel = self.instance
        ref, local = stage._resolve_model()
        extra = {"modelKind": ref.kind}
        if ref.kind != "embedded":
            if not (local and os.path.isdir(local)):
                raise ValueError(f"cannot save {stage.uid}: model files at {ref.path} are not local to the driver")
            extra["weights"] = "weights/" + stage.uid
        since_ms = time.time() * 1000 - 1
        save_metadata(stage, path, self.sparkSession, extra)
        if ref.kind != "embedded":
            save_model_files(self.sparkSession, local, path, extra["weights"], since_ms)


class _SpeechModelReader(MLReader):
    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path: str):
        metadata = load_metadata(path, self.sparkSession)
        instance = self.cls()
        instance._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(instance, metadata)
        weights = metadata.get("weights")
        if weights:
            source = path.rstrip("/") + "/" + weights
            if is_connect(self.sparkSession) and not os.path.isdir(local_path(source)):
                source = fetch_dir(self.sparkSession, source)  # weights this client cannot open: through the session
            instance._set(modelSource=source)
        return instance
