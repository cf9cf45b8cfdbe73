"""Spark GPU scheduling: a task's engine opens the GPU Spark assigned to that task.

With ``spark.executor.resource.gpu.amount`` > 1 and ``spark.task.resource.gpu.amount`` 1, the
concurrent tasks of one executor get different GPU addresses (``TaskContext.resources()``); an
engine that always opened CUDA device 0 would put every task on one GPU. This machine has no GPU,
so Spark's resource scheduling runs on a ``local-cluster`` whose discovery script advertises two
fake GPUs; ``device="auto"`` then resolves to the CPU on the executors and must still work there
(CTranslate2 refuses a CPU device index other than 0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from sparkasr.spark.context import EngineSpec, gpu_index, task_spec
from sparkasr.spark.shipping import ModelRef
from sparkasr.whisper import RuntimeOptions

REPO = Path(__file__).resolve().parents[1]


def _res(*addresses):
    return {"gpu": SimpleNamespace(name="gpu", addresses=list(addresses))}


def test_gpu_index_from_task_resources():
    assert gpu_index(_res("1")) == 1
    assert gpu_index(_res(" 3", "4")) == 3  # first address, as xgboost.spark
    assert gpu_index({}) is None
    assert gpu_index({"fpga": SimpleNamespace(addresses=["0"])}) is None
    assert gpu_index(_res()) is None
    with pytest.raises(ValueError, match="'GPU-8f3c', which is not a CUDA device index"):
        gpu_index(_res("GPU-8f3c"))


def _spec(device, index=0):
    return EngineSpec(
        ModelRef("embedded", name="tiny.en"), "options", RuntimeOptions(device=device, device_index=index)
    )


def test_task_spec_only_for_gpu_devices():
    cpu = _spec("cpu")
    assert task_spec(cpu, index=1) is cpu
    assert task_spec(_spec("cuda"), index=1) == _spec("cuda", 1)
    assert task_spec(_spec("auto"), index=0) == _spec("auto", 0)
    # outside a Spark task (driver, LightPipeline, tests): unchanged
    assert task_spec(_spec("cuda")) == _spec("cuda")


def test_auto_device_with_a_gpu_index_runs_on_cpu(clips):
    """``device=auto`` on a machine without CUDA: the assigned index must not reach the CPU."""
    from sparkasr.audio import decode_audio
    from sparkasr.records import AudioItem
    from sparkasr.spark.whisper import WhisperForCTC

    stage = WhisperForCTC.pretrained().setDevice("auto").setBeamSize(1)
    spec = task_spec(stage._engine_spec(ModelRef("embedded", name="tiny.en")), index=1)
    engine = WhisperForCTC._build_engine(spec)
    assert engine.runtime.device_index == 1 and engine.model.model.device == "cpu"
    path, ref = clips[0]
    (t,) = engine.transcribe_batch([AudioItem(decode_audio(str(path)), source=str(path))])
    assert t.error is None and t.text.strip()
    with pytest.raises(ValueError, match="device_index"):
        RuntimeOptions(device_index=-1)


SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pyspark.sql import SparkSession
    from sparkasr import WhisperForCTC, read_audio
    from sparkasr.spark.context import EngineSpec, task_spec
    from sparkasr.spark.shipping import ModelRef
    from sparkasr.whisper import RuntimeOptions

    disc, clips_dir, out = sys.argv[1:4]
    spark = (SparkSession.builder.master("local-cluster[1,2,1536]").appName("sparkasr-gpu-scheduling")
             .config("spark.ui.enabled", "false")
             .config("spark.worker.resource.gpu.amount", "2").config("spark.worker.resource.gpu.discoveryScript", disc)
             .config("spark.executor.resource.gpu.amount", "2").config("spark.task.resource.gpu.amount", "1")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", "2")
             .getOrCreate())
    sc = spark.sparkContext

    def probe(it):
        from pyspark import TaskContext
        tc = TaskContext.get()
        spec = task_spec(EngineSpec(ModelRef("embedded", name="tiny.en"), "options", RuntimeOptions(device="cuda")))
        yield {"partition": tc.partitionId(), "addresses": tc.resources()["gpu"].addresses, "device_index": spec.runtime.device_index}

    tasks = sc.parallelize(range(4), 4).mapPartitions(probe).collect()
    df = read_audio(spark, clips_dir).repartition(4, "path")
    asr = (WhisperForCTC.pretrained().setInputCols(["audio"]).setOutputCol("transcription")
           .setDevice("auto").setBeamSize(1).setBatchSize(2).setTimestamps("none"))
    rows = asr.transform(df).select("path", "transcription").collect()
    docs = [{"path": r["path"], "text": r["transcription"][0]["result"], "error": r["transcription"][0]["metadata"].get("error")} for r in rows]
    json.dump({"tasks": tasks, "docs": docs}, open(out, "w"))
    spark.stop()
    """
)


@pytest.mark.cluster
def test_tasks_open_their_assigned_gpu_on_a_local_cluster(tmp_path, clips):
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    disc = tmp_path / "gpus.sh"
    disc.write_text('#!/bin/sh\necho \'{"name": "gpu", "addresses": ["0", "1"]}\'\n')
    disc.chmod(0o755)
    clips_dir = tmp_path / "clips"
    clips_dir.mkdir()
    refs = {}
    # four clips of both sets (52 words), enough for the four partitions of the stage: what is tested
    # is that each task's engine runs where Spark put it, not the model's accuracy
    clips = [c for c in clips if c[0].name.endswith(("0870.wav", "0920.wav", "0930.wav", "001.wav"))]
    assert len(clips) == 4
    for path, ref in clips:
        os.symlink(path, clips_dir / path.name)
        refs[path.name] = ref
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out.json"
    env = dict(
        os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1"
    )
    env.pop("SPARK_HOME", None)
    proc = subprocess.run(
        [sys.executable, str(script), str(disc), str(clips_dir), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(out.read_text())

    # each task's engine spec names the GPU Spark gave that task; two concurrent tasks, two GPUs
    for t in res["tasks"]:
        assert t["device_index"] == int(t["addresses"][0]), t
    assert {t["device_index"] for t in res["tasks"]} == {0, 1}, res["tasks"]

    # the stage with device=auto on those tasks: every clip transcribed on the executors' CPU
    docs = res["docs"]
    assert len(docs) == len(clips) and all(d["error"] is None for d in docs), docs
    norm = EnglishTextNormalizer()
    names = [Path(d["path"].replace("file:", "")).name for d in docs]
    wer = jiwer.wer([norm(refs[n]) for n in names], [norm(d["text"]) for d in docs])
    print(f"\n[gpu scheduling] {len(docs)} clips, device=auto on 2 fake GPUs: WER {wer:.4f}")
    assert wer <= 0.15, docs


def test_partition_function_builds_the_engine_for_the_task_gpu(monkeypatch):
    """The mapInArrow function hands the builder the task's GPU (one cached engine per GPU)."""
    import numpy as np
    import pyarrow as pa
    from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

    from sparkasr import annotation as A
    from sparkasr.cells import INPUT_FLOATS
    from sparkasr.records import Transcript
    from sparkasr.spark import context, stage

    built = []

    class Engine:
        def __init__(self, spec):
            self.spec = spec

        def transcribe_batch(self, items):
            r = self.spec.runtime
            return [
                Transcript(text=f"gpu {r.device_index if r.device != 'cpu' else None}", source=it.source)
                for it in items
            ]

    def builder(spec):
        built.append(spec)
        return Engine(spec)

    schema = StructType([StructField("audio", ArrayType(FloatType())), StructField("text", A.annotation_array_type())])
    batch = pa.RecordBatch.from_pydict(
        {
            "audio": pa.array(
                [(np.random.default_rng(0).standard_normal(1600) * 0.1).astype(np.float32).tolist()] * 2,
                pa.list_(pa.float32()),
            )
        }
    )

    def texts(device, gpu):
        monkeypatch.setattr(context, "task_gpu_index", lambda: gpu)
        fn = stage.make_partition_fn(
            EngineSpec(ModelRef("path", path=str(len(built))), "test", RuntimeOptions(device=device)),
            builder,
            "audio",
            INPUT_FLOATS,
            "text",
            None,
            None,
            8,
            "m",
            schema,
        )
        (out,) = list(fn(iter([batch])))
        return [d[0]["result"] for d in out.column("text").to_pylist()]

    assert texts("cuda", 1) == ["gpu 1", "gpu 1"] and built[-1].runtime.device_index == 1
    assert texts("auto", 0) == ["gpu 0", "gpu 0"]
    assert texts("cpu", 1) == ["gpu None", "gpu None"] and built[-1].runtime.device_index == 0  # the index is not set
    assert texts("cuda", None) == ["gpu 0", "gpu 0"]  # no GPU resource: CUDA's default device
