"""A model call that fails costs only the inputs that make it fail.

The Spark glue calls the engine once per batch of rows; when that call raises (an input the model
cannot take, a GPU out of memory), the batch is retried in halves down to single inputs, so every
other row of the batch keeps its transcript and the failing one gets an error naming its file.
Checked here on the real tiny.en engine and the real clips, through the ``mapInArrow`` function
the stages run (no Spark session needed to call it).
"""

from __future__ import annotations

import jiwer
import numpy as np
import pyarrow as pa
import pytest
from whisper_normalizer.english import EnglishTextNormalizer

from conftest import ALL_CLIPS
from sparkasr import annotation as A
from sparkasr.audio import decode_audio
from sparkasr.cells import INPUT_FLOATS
from sparkasr.engines import transcribe_isolating
from sparkasr.records import AudioItem
from sparkasr.spark.context import EngineSpec
from sparkasr.spark.shipping import ModelRef
from sparkasr.spark.stage import make_partition_fn
from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions
from sparkasr.whisper.models import resolve_whisper_model

NORM = EnglishTextNormalizer()


class Flaky:
    """The real engine, except that a call containing ``bad`` raises (as a model error would)."""

    def __init__(self, engine, bad: str):
        self.engine, self.bad, self.calls = engine, bad, []

    def transcribe_batch(self, items):
        self.calls.append(len(items))
        if any(it.source == self.bad for it in items):
            raise ValueError("boom: the model rejected this input")
        return self.engine.transcribe_batch(items)


@pytest.fixture(scope="module")
def engine():
    return WhisperEngine(
        resolve_whisper_model(None).path, WhisperOptions(beam_size=1, timestamps="none"), RuntimeOptions(cpu_threads=2)
    )


def test_only_the_failing_input_gets_an_error(engine):
    clips = ALL_CLIPS[:8]
    items = [AudioItem(decode_audio(p), source=str(p)) for p, _ in clips]
    bad = str(clips[2][0])
    flaky = Flaky(engine, bad)
    out = transcribe_isolating(flaky, items)
    # 8 fail -> [0..3] fails -> [0,1] ok, [2,3] fails -> [2] fails, [3] ok -> [4..7] ok
    assert flaky.calls == [8, 4, 2, 2, 1, 1, 4]
    assert [t.source for t in out] == [it.source for it in items]
    assert out[2].text == "" and out[2].error.startswith(bad + ": model failed: ValueError: boom")
    assert all(t.error is None and t.text for t in out if t.source != bad)
    good = [(ref, t.text) for (p, ref), t in zip(clips, out) if str(p) != bad]
    wer = jiwer.wer([NORM(r) for r, _ in good], [NORM(h) for _, h in good])
    assert wer <= 0.15, good

    # a call that returns fewer results than inputs is a failure too, not a silent shift of rows
    class DropsOne:
        def transcribe_batch(self, its):
            return engine.transcribe_batch(its)[: max(1, len(its) - 1)]

    out = transcribe_isolating(DropsOne(), items[:2])
    assert [t.error for t in out] == [None, None] and [t.source for t in out] == [it.source for it in items[:2]]


def test_partition_function_keeps_the_batch(engine):
    """The stages' mapInArrow function: one failing row of a batch of 6; 6 rows out, 5 transcripts."""
    from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

    clips = ALL_CLIPS[:6]
    bad = str(clips[4][0])
    flaky = Flaky(engine, bad)
    schema = StructType(
        [
            StructField("path", StringType()),
            StructField("audio", ArrayType(FloatType())),
            StructField("text", A.annotation_array_type()),
        ]
    )
    batch = pa.RecordBatch.from_pydict(
        {
            "path": [str(p) for p, _ in clips],
            "audio": pa.array([decode_audio(p).astype(np.float32).tolist() for p, _ in clips], pa.list_(pa.float32())),
        }
    )
    fn = make_partition_fn(
        EngineSpec(ModelRef("path", path="flaky"), "flaky"),
        lambda spec: flaky,
        "audio",
        INPUT_FLOATS,
        "text",
        None,
        "path",
        8,
        "tiny.en",
        schema,
    )
    (out,) = list(fn(iter([batch])))
    docs = [d[0] for d in out.column("text").to_pylist()]
    assert out.num_rows == 6 and out.column("path").to_pylist() == [str(p) for p, _ in clips]
    meta = [dict(d["metadata"]) for d in docs]
    assert "model failed: ValueError: boom" in meta[4]["error"] and bad in meta[4]["error"] and docs[4]["result"] == ""
    assert all("error" not in m for i, m in enumerate(meta) if i != 4)
    assert all(d["result"] for i, d in enumerate(docs) if i != 4)


def test_engine_cache_keeps_the_most_recently_used(monkeypatch):
    """One engine per key, built once; past MAX_ENGINES the least recently used is dropped (a
    server makes one small engine per distinct request options)."""
    from sparkasr import engines

    monkeypatch.setattr(engines, "_ENGINES", type(engines._ENGINES)())
    monkeypatch.setattr(engines, "MAX_ENGINES", 3)
    built = []

    def build(k):
        built.append(k)
        return object()

    first = engines.cached_engine("a", lambda: build("a"))
    assert engines.cached_engine("a", lambda: build("a")) is first
    for k in "bcd":
        engines.cached_engine(k, lambda k=k: build(k))
    assert list(engines._ENGINES) == ["b", "c", "d"]  # "a" was the least recently used
    engines.cached_engine("b", lambda: build("b"))  # a hit moves "b" to the end
    engines.cached_engine("e", lambda: build("e"))
    assert list(engines._ENGINES) == ["d", "b", "e"] and built == ["a", "b", "c", "d", "e"]
