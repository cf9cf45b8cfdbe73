"""Param mixins shared by our stages (pyspark.ml conventions, Spark NLP names)."""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Union

from pyspark.ml.param import Param, Params, TypeConverters


class HasInputCols(Params):
    """Spark NLP's ``inputCols``: the annotation column(s) a stage reads."""

    inputCols = Param(Params._dummy(), "inputCols", "input annotation column names", typeConverter=TypeConverters.toListString)

    def setInputCols(self, *value: Union[str, List[str]]):
        if len(value) == 1 and isinstance(value[0], (list, tuple)):
            value = tuple(value[0])
        return self._set(inputCols=list(value))

    def getInputCols(self) -> List[str]:
        return self.getOrDefault(self.inputCols)


class HasInputCol(Params):
    inputCol = Param(Params._dummy(), "inputCol", "input column name", typeConverter=TypeConverters.toString)

    def setInputCol(self, value: str):
        return self._set(inputCol=value)

    def getInputCol(self) -> str:
        return self.getOrDefault(self.inputCol)


class HasOutputCol(Params):
    outputCol = Param(Params._dummy(), "outputCol", "output annotation column name", typeConverter=TypeConverters.toString)

    def setOutputCol(self, value: str):
        return self._set(outputCol=value)

    def getOutputCol(self) -> str:
        return self.getOrDefault(self.outputCol)


class HasBatchSize(Params):
    batchSize = Param(Params._dummy(), "batchSize", "rows decoded together in one model call", typeConverter=TypeConverters.toInt)

    def setBatchSize(self, value: int):
        return self._set(batchSize=value)

    def getBatchSize(self) -> int:
        return self.getOrDefault(self.batchSize)


class HasRuntimeParams(Params):
    """Where and how the model runs on executors."""

    device = Param(Params._dummy(), "device", "cpu, cuda or auto", typeConverter=TypeConverters.toString)
    computeType = Param(Params._dummy(), "computeType", "int8, float16, float32, ... (CTranslate2 compute type)", typeConverter=TypeConverters.toString)
    cpuThreads = Param(
        Params._dummy(), "cpuThreads",
        "threads per task for the model; 0 = spark.task.cpus inside Spark, all cores outside it",
        typeConverter=TypeConverters.toInt,
    )

    def setDevice(self, value: str):
        return self._set(device=value)

    def getDevice(self) -> str:
        return self.getOrDefault(self.device)

    def setComputeType(self, value: str):
        return self._set(computeType=value)

    def getComputeType(self) -> str:
        return self.getOrDefault(self.computeType)

    def setCpuThreads(self, value: int):
        return self._set(cpuThreads=value)

    def getCpuThreads(self) -> int:
        return self.getOrDefault(self.cpuThreads)


class HasReaderCols(Params):
    """``pathCol``, ``offsetCol``, ``durationCol`` and ``errorCol``: what
    :func:`~sparkasr.spark.reader.read_audio` says about each row besides its samples (which file it
    is, where a segment starts in its file and how long it is, why a file could not be read), for
    ``AudioAssembler`` and the speech annotators alike. Unset (''), each is read_audio's column
    when the DataFrame has it; set, the column must exist."""

    pathCol = Param(
        Params._dummy(), "pathCol",
        "column naming each row's file, for the source metadata and error messages ('' = 'path' when present)",
        typeConverter=TypeConverters.toString,
    )

    offsetCol = Param(
        Params._dummy(), "offsetCol",
        "column with where each row starts in its file, in seconds: chunk times and the offset_s metadata count from the "
        "start of the file ('' = 'offset_s' when present, as read_audio writes it; audio annotations' own offset_s "
        "metadata comes first)",
        typeConverter=TypeConverters.toString,
    )
    durationCol = Param(
        Params._dummy(), "durationCol",
        "column with each row's length in seconds: with a path input column, the row is that slice of its file, from "
        "offsetCol (read_audio(samples=False)'s reference rows); without it, or when null, the whole file ('' = "
        "'duration_s' when present, as read_audio writes it; not used for sample or binary input)",
        typeConverter=TypeConverters.toString,
    )
    errorCol = Param(
        Params._dummy(), "errorCol",
        "column with an upstream read error: a non-null value is reported in the row's annotation and the row is not "
        "decoded ('' = 'error' when present, as read_audio writes it)",
        typeConverter=TypeConverters.toString,
    )

    def setPathCol(self, value: str):
        return self._set(pathCol=value)

    def getPathCol(self) -> str:
        return self.getOrDefault(self.pathCol)

    def setOffsetCol(self, value: str):
        return self._set(offsetCol=value)

    def getOffsetCol(self) -> str:
        return self.getOrDefault(self.offsetCol)

    def setDurationCol(self, value: str):
        return self._set(durationCol=value)

    def getDurationCol(self) -> str:
        return self.getOrDefault(self.durationCol)

    def setErrorCol(self, value: str):
        return self._set(errorCol=value)

    def getErrorCol(self) -> str:
        return self.getOrDefault(self.errorCol)

    def _reader_cols(self, dataset, path_input: bool) -> "ReaderCols":
        """The reader columns of ``dataset``, each None when unset and absent; the duration column
        only for a path input column (``path_input``), the only input it slices, though a column
        named in ``durationCol`` is checked either way."""
        from pyspark.sql.types import NumericType, StringType

        duration = _optional_col(dataset, self.getDurationCol(), "duration_s", (NumericType,), "durationCol")
        return ReaderCols(_optional_col(dataset, self.getPathCol(), "path", (StringType,), "pathCol"),
                          _optional_col(dataset, self.getOffsetCol(), "offset_s", (NumericType,), "offsetCol"),
                          _optional_col(dataset, self.getErrorCol(), "error", (StringType,), "errorCol"),
                          duration if path_input else None)


class ReaderCols(NamedTuple):
    """Which columns of a DataFrame hold read_audio's path, offset, error and duration (None: none)."""

    path: Optional[str]
    offset: Optional[str]
    error: Optional[str]
    duration: Optional[str]


def _optional_col(dataset, value: str, default: str, accepted: tuple, what: str) -> Optional[str]:
    """The column a ``...Col`` param names, checked; when unset, ``default`` if ``dataset`` has it
    with an ``accepted`` type, else None."""
    if value:
        if value not in dataset.columns:
            raise ValueError(f"{what} column '{value}' not found; columns are {dataset.columns}")
        if not isinstance(dataset.schema[value].dataType, accepted):
            raise TypeError(f"{what} column '{value}' has type {dataset.schema[value].dataType.simpleString()}")
        return value
    if default in dataset.columns and isinstance(dataset.schema[default].dataType, accepted):
        return default
    return None
