"""What a task's engine is built from: an :class:`EngineSpec` (frozen, hashable: the key of the
process's engine cache, :func:`sparkasr.engines.cached_engine`), made specific to the running task
(the CPU cores and the GPU Spark gave it)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Hashable, Optional

from ..engines import cached_engine
from .shipping import ModelRef


@dataclass(frozen=True)
class EngineSpec:
    """Everything a worker needs to build an engine: where the model is, the engine's frozen
    options dataclass, and (Whisper) its runtime. ``extra``: engine-specific hashable values (the
    name of a KenLM file inside the model directory)."""

    model: ModelRef
    options: Hashable
    runtime: Optional[Any] = None
    extra: tuple = ()


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
            'the gpu discoveryScript must print indices such as ["0", "1"] (conf/getGpusResources.sh)'
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


def task_spec(spec: EngineSpec, index: Optional[int] = None) -> EngineSpec:
    """``spec`` for the running task: an engine on a GPU (runtime device cuda/auto) opens the device
    Spark assigned to the task (``device_index``), so the tasks of an executor with several GPUs
    do not all open device 0; the engine cache keeps one engine per device."""
    runtime = spec.runtime
    if runtime is None or runtime.device not in GPU_DEVICES:
        return spec
    index = task_gpu_index() if index is None else index
    return spec if index is None else replace(spec, runtime=replace(runtime, device_index=index))


def task_engine(spec: EngineSpec, build: Callable[[EngineSpec], Any]):
    """The running task's engine for ``spec``: built once per Python worker (and GPU); a build is
    reported to the job's profile as ``model load``."""
    from ..job.progress import report_span

    spec = task_spec(spec)

    def make():
        t0 = time.perf_counter()
        engine = build(spec)
        report_span("model load", time.perf_counter() - t0)
        return engine

    return cached_engine(spec, make)
