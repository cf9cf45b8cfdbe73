"""Spark Connect vs classic on one local[2] Spark: what a Connect client adds (issue 32).

    python bench/run_connect.py            # the 10 vendored clips, 3 rounds

A classic ``local[2]`` session in this process, and a Spark Connect server started from pyspark's
``sbin/start-connect-server.sh`` (``local[2]``, 127.0.0.1; ``tests/connect_support.py``, as the tests
start it): the same executors' setup, so the difference is the client's path (plans over gRPC,
results back as Arrow, model directories shipped as session artifacts). Measured, each on a warm
session (Python workers started, models loaded, median of ``--rounds``):

* ``classic_embedded`` / ``connect_embedded``: ``read_audio`` -> ``AudioAssembler`` -> ``WhisperForCTC``
  (the embedded tiny.en, default options) over the clips, collected;
* ``connect_directory``: the same with the model given as a directory (the same weights), shipped to
  the executors as a session artifact; ``ship_s``: the first use's zip + upload (78 MB), ``first_s``:
  the first transform's wall time (ship, unpack, model load, decode);
* ``fetch_s``: the same directory brought back to the client through the session (``fetch_dir``,
  what a Connect client does for weights it cannot open).

Writes ``bench/results/connect.json`` with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(REPO / "tests"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "connect.json"))
    args = ap.parse_args()
    load_before = os.getloadavg()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ["SPARKASR_CACHE"] = tempfile.mkdtemp(prefix="sparkasr-bench-connect-")
    from pyspark.ml import Pipeline
    from pyspark.sql import SparkSession

    from connect_support import ConnectServer

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "8")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    server = ConnectServer()
    url = server.__enter__()
    from sparkasr import AudioAssembler, WhisperForCTC, read_audio
    from sparkasr.spark.shipping import fetch_dir, ship_model_dir
    from sparkasr.whisper.models import resolve_whisper_model

    clips = [str(p) for p in sorted((REPO / "tests" / "data").glob("*/*.wav"))]
    tiny_dir = resolve_whisper_model(None).path

    def run(session, asr) -> float:
        df = read_audio(session, clips)
        model = Pipeline(stages=[AudioAssembler(inputCol="audio", outputCol="audio_assembler"), asr]).fit(df)
        t0 = time.perf_counter()
        rows = model.transform(df).select("path", "t").collect()
        wall = time.perf_counter() - t0
        assert len(rows) == len(clips) and all(r["t"][0]["result"] for r in rows)
        return wall

    def stage(**kw):
        return WhisperForCTC(inputCols=["audio_assembler"], outputCol="t", **kw)

    results = {}
    results["classic_embedded"] = [run(spark, stage()) for _ in range(args.rounds + 1)][1:]

    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"  # this process is now a Connect client
    from pyspark.sql.connect.session import SparkSession as RemoteSession

    cs = RemoteSession.builder.remote(url).create()
    results["connect_embedded"] = [run(cs, stage()) for _ in range(args.rounds + 1)][1:]

    t0 = time.perf_counter()
    ship_model_dir(cs, tiny_dir)
    ship_s = time.perf_counter() - t0
    cs.stop()
    cs = RemoteSession.builder.remote(url).create()  # a new session: ships again
    walls = [run(cs, stage(modelSource=tiny_dir)) for _ in range(args.rounds + 1)]
    t0 = time.perf_counter()
    fetched = fetch_dir(cs, "file:" + tiny_dir)
    fetch_s = time.perf_counter() - t0
    shutil.rmtree(fetched, ignore_errors=True)
    cs.stop()
    server.__exit__(None, None, None)
    del os.environ["SPARK_CONNECT_MODE_ENABLED"]
    spark.stop()

    size_mb = sum(f.stat().st_size for f in Path(tiny_dir).rglob("*") if f.is_file()) / 1e6
    audio_s = 0.0
    import soundfile as sf

    audio_s = sum(sf.info(c).duration for c in clips)
    out = {
        "clips": len(clips),
        "audio_s": round(audio_s, 2),
        "model_dir_mb": round(size_mb, 1),
        "rounds": args.rounds,
        "median_s": {k: round(statistics.median(v), 3) for k, v in results.items()},
        "connect_directory": {
            "first_s": round(walls[0], 3),
            "median_s": round(statistics.median(walls[1:]), 3),
            "ship_s": round(ship_s, 3),
        },
        "fetch_s": round(fetch_s, 3),
        "server_listening_s": round(server.started_s, 1),
        "all_s": {k: [round(x, 3) for x in v] for k, v in results.items()},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "machine": f"{os.cpu_count()} cores",
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
