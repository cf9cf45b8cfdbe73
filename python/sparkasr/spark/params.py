"""Param mixins shared by our stages (pyspark.ml conventions, Spark NLP names)."""

from __future__ import annotations

from typing import List, Union

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
