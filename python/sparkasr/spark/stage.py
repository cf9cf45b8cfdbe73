"""The base of every speech annotator (``WhisperForCTC``, ``Wav2Vec2ForCTC``, ``HubertForCTC``):
one engine-agnostic stage (the ``mapInArrow`` function its tasks run: :mod:`.partition`).

A subclass declares its params and implements:

* ``_resolve_model(self) -> (ModelRef, local_dir)``: on the driver, where the weights are;
* ``_engine_spec(self, model) -> EngineSpec``: the frozen, validated description of its engine;
* ``_build_engine(spec) -> Engine`` (staticmethod): on a worker, the engine (built once per Python
  worker per spec: :func:`~sparkasr.spark.context.task_engine`); a function of :mod:`.builders`,
  which the workers import without the stages.

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
from typing import List, Sequence, Tuple

from pyspark.ml import Model
from pyspark.ml.util import DefaultParamsReader, MLReadable, MLReader, MLWritable, MLWriter

from .. import annotation as A
from ..engines import transcribe_isolating
from ..paths import local_path
from ..records import AudioItem, Transcript, error_transcript
from .compat import load_metadata, save_metadata
from .context import EngineSpec, task_engine
from .inputs import INPUT_PATH, classify_input
from .params import HasInputCols, HasReaderCols
from .partition import make_partition_fn
from .session import ParamsWriter, check_python_workers, is_connect
from .shipping import ModelRef, fetch_dir, save_model_files, ship_model_dir

log = logging.getLogger(__name__)


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
