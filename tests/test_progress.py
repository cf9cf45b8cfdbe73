"""Live progress from inside long files (issue 24, item 10): engines report how far into each file
they are as pieces, windows and segments finish, to a callback the Spark stage passes in; the stage
sends the reports from the Python workers to the driver's listener; the progress line counts audio
done before any file is done."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ALL_CLIPS
from sparkasr.audio import SAMPLE_RATE, decode_audio
from sparkasr.job import progress
from sparkasr.records import AudioItem
from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions
from sparkasr.whisper.models import resolve_whisper_model


def _long(target_s: float = 95.0) -> np.ndarray:
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    one = np.concatenate([x for p, _ in ALL_CLIPS for x in (decode_audio(p), pause)])
    return np.tile(one, int(target_s * SAMPLE_RATE / len(one)) + 1)[: int(target_s * SAMPLE_RATE)]


LONG = _long()


@pytest.mark.parametrize("strategy", ["batch", "sequential"])
def test_the_engine_reports_positions_inside_a_long_file_as_it_goes(strategy):
    reports = []
    engine = WhisperEngine(
        resolve_whisper_model(None).path,
        WhisperOptions(strategy=strategy, batch_size=1),
        RuntimeOptions(cpu_threads=2),
        progress=lambda source, done, total: reports.append((source, done)),
    )
    (t,) = engine.transcribe_batch([AudioItem(LONG, source="long.wav")])
    done = [d for source, d in reports if source == "long.wav"]
    duration = len(LONG) / SAMPLE_RATE
    assert t.error is None and t.text
    inside = [d for d in done if 0 < d < duration - 1]
    assert len(inside) >= 3, done  # several points inside the file before its end
    assert inside == sorted(inside) and max(done) == pytest.approx(duration, abs=0.01)
    print(f"\n[progress] {strategy}: {len(done)} reports over {duration:.0f} s: {[round(d) for d in done]}")


def test_outside_a_job_reports_go_nowhere():
    progress.advance("x.wav", 10.0)  # no listener configured: nothing happens, nothing raises


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_committed_records_are_read_once_per_file_as_tasks_commit(tmp_path, fmt):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    def commit(run: str, name: str, rows):
        d = tmp_path / "transcripts" / f"run={run}"
        d.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            cols = {k: [r[k] for r in rows] for k in ("path", "duration_s", "error")}
            pq.write_table(pa.table(cols), d / f"{name}.parquet")
        else:
            (d / f"{name}.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return d

    run = commit("a", "part-00000", [{"path": "x.wav", "duration_s": 2.5, "error": None}])
    one_run = progress.CommittedRecords.of_run(str(run), fmt)
    every_run = progress.CommittedRecords.of_output(str(tmp_path), fmt)
    assert one_run.totals() == (1, 2.5, 0) and every_run.seconds() == {"x.wav": 2.5}
    commit("a", "part-00001", [{"path": "y.wav", "duration_s": None, "error": "y.wav: not audio"}])
    commit("b", "part-00000", [{"path": "z.wav", "duration_s": 4.0, "error": None}])
    assert one_run.totals() == (2, 2.5, 1)
    assert every_run.seconds() == {"x.wav": 2.5, "y.wav": 0.0, "z.wav": 4.0}
    assert progress.CommittedRecords.of_run("", fmt).totals() == (0, 0.0, 0)


@pytest.mark.spark
def test_reports_reach_the_driver_from_spark_workers(spark, tmp_path):
    import soundfile as sf

    from sparkasr import WhisperForCTC
    from sparkasr.job.progress import PROPERTY, Phases, Progress

    path = tmp_path / "long.wav"
    sf.write(path, LONG, SAMPLE_RATE, subtype="PCM_16")
    df = spark.createDataFrame([(str(path),)], "path string")
    asr = WhisperForCTC.pretrained().setInputCols(["path"]).setOutputCol("t").setBatchSize(1)
    phases = Phases()
    p = Progress(spark, 1, quiet=True, phases=phases)
    sc = spark.sparkContext
    sc.setLocalProperty(PROPERTY, p.address)
    try:
        with p:
            (row,) = asr.transform(df).select("t").collect()
            # the listener thread drains what arrived before the context ends
    finally:
        sc.setLocalProperty(PROPERTY, None)
    duration = len(LONG) / SAMPLE_RATE
    assert row["t"][0]["result"]
    assert p.done[str(path)] == pytest.approx(duration, abs=0.01)
    assert p.lengths[str(path)] == pytest.approx(duration, abs=0.01)
    assert p.reports >= 5  # stage start, each of the 4 pieces, stage end
    # the task's side of the job's profile came with the same datagrams (not counted as reports)
    spent = phases.as_dict()["workers"]
    assert spent["read and decode"]["count"] == 1 and spent["inference"]["count"] >= 1
    assert spent["task"]["total_s"] >= spent["inference"]["total_s"] > 0
    print(f"\n[progress] {p.reports} reports from the Spark worker for one {duration:.0f}-s file")


def test_the_line_counts_audio_inside_unfinished_files(spark):
    from sparkasr.job.progress import Progress

    p = Progress(spark, 2, quiet=True)
    p.done, p.lengths = {"a.wav": 1800.0}, {"a.wav": 7200.0}
    line = p.line()
    assert line.startswith("sparkasr: 0/2 files, 0.500 of ~4.000 h audio, 0 errors"), line
    assert "ETA ?" not in line
    p._sock.close()
