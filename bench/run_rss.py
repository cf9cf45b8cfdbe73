"""Peak memory on a 1-hour file (target: Python worker peak RSS < 1.5 GB).

    python bench/run_rss.py              # each path for up to --limit-s seconds (default 120)
    python bench/run_rss.py --full       # transcribe the whole hour (slow: ~4+ min per path on 2 idle cores)

Paths (each in a fresh process; RSS sampled every 0.1 s with psutil, children included, by
``common.RssSampler``):

* ``engine_whole``    ``WhisperEngine.transcribe_batch([the whole hour])``: decode + default options
                      (long item -> cut at quiet points into <=30-s pieces, decoded batched, 8 at a time)
* ``engine_packed``   ``WhisperEngine.transcribe_packed`` on the same item (cut into <=29-s pieces)
* ``spark_binary``    Spark local[2]: ``read_binary`` -> ``WhisperForCTC(inputCols=["content"])``: one
                      row holds the whole encoded file, decoded in the worker
* ``spark_segments``  Spark local[2]: ``read_audio(segment_s=600)`` -> ``WhisperForCTC(inputCols=["audio"])``
* ``spark_pipeline``  Spark local[2]: the README's pipeline, ``read_audio(segment_s=600)`` ->
                      ``AudioAssembler`` -> ``WhisperForCTC`` (two float columns pass through the stage)

Memory peaks where whole-file arrays are built (decode, log-mel features), i.e. in the first
seconds; with ``--limit-s`` a run is stopped after that long and reports the peak so far (the
decode loop afterwards holds one window at a time). ``--full`` removes the limit.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import corpus  # noqa: E402

PATHS = ["engine_whole", "engine_packed", "spark_binary", "spark_segments", "spark_pipeline"]


def child(path_name: str, wav: str) -> None:
    """Runs in the measured process; prints progress markers with their own RSS."""
    t0 = time.perf_counter()
    mark = lambda what: print(f"MARK {time.perf_counter() - t0:.1f} {common.self_peak_rss_mb()} {what}", flush=True)  # noqa: E731
    if path_name.startswith("engine"):
        from sparkasr.audio import decode_audio
        from sparkasr.records import AudioItem
        from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions
        from sparkasr.whisper.models import resolve_whisper_model

        engine = WhisperEngine(resolve_whisper_model(None).path, WhisperOptions(), RuntimeOptions(cpu_threads=2))
        mark("model loaded")
        item = AudioItem(decode_audio(wav), source=wav)
        mark("audio decoded")
        if path_name == "engine_packed":
            t = engine.transcribe_packed([item])[0]
        else:
            t = engine.transcribe_batch([item])[0]
        mark(f"done words={len(t.text.split())}")
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run_spark import make_session
    from sparkasr.spark.assembler import AudioAssembler
    from sparkasr.spark.reader import read_audio, read_binary
    from sparkasr.spark.whisper import WhisperForCTC

    spark = make_session(2)
    spark.sparkContext.setLogLevel("ERROR")
    mark("session")
    if path_name == "spark_binary":
        df = read_binary(spark, wav)
        col = "content"
    else:
        df = read_audio(spark, wav, segment_s=600.0).repartition(4)
        col = "audio"
        if path_name == "spark_pipeline":
            df = AudioAssembler(inputCol="audio", outputCol="audio_assembler").transform(df)
            col = "audio_assembler"
    out = WhisperForCTC(inputCols=[col], outputCol="asr", pathCol="path").transform(df)
    n = sum(len(r["asr"][0]["result"].split()) for r in out.select("asr").collect() if r["asr"])
    mark(f"done words={n}")
    spark.stop()


def _classify(path_name: str, child_pid: int):
    def role(q):
        if q.pid == child_pid:
            return "engine_process" if path_name.startswith("engine") else "driver_python"
        if "java" in q.name():
            return "driver_jvm"
        if "pyspark" in " ".join(q.cmdline()) or "python" in q.name():
            return "python_worker"
        return None

    return role


def measure(path_name: str, wav: str, limit_s: float) -> dict:
    import psutil

    cmd = [sys.executable, __file__, "--child", path_name, wav]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    proc = psutil.Process(p.pid)
    t0 = time.perf_counter()
    timed_out = False
    # the same process-tree walk as run_spark's (peak RSS per role and per role summed), every 0.1 s
    with common.RssSampler([p.pid], _classify(path_name, p.pid), period=0.1) as sampler:
        while p.poll() is None:
            if limit_s and time.perf_counter() - t0 > limit_s:
                timed_out = True
                break
            time.sleep(0.1)
    peaks = sampler.peaks
    wall = time.perf_counter() - t0
    if timed_out:  # stop the measured process and everything it started
        for q in proc.children(recursive=True):
            try:
                q.kill()
            except psutil.Error:
                pass
        p.kill()
    out, _ = p.communicate()
    marks = [ln[5:] for ln in out.splitlines() if ln.startswith("MARK ")]
    if path_name.startswith("engine") and marks:
        # the measured process reports its own high-water mark (ru_maxrss) with each mark: exact,
        # where sampling every 0.1 s can miss a peak that lasts less (the whole-file decode)
        own = max(float(m.split()[1]) for m in marks)
        peaks["engine_process"] = max(peaks.get("engine_process", 0.0), own)
    worker_peak = peaks.get("engine_process") if path_name.startswith("engine") else peaks.get("python_worker")
    return {
        "path": path_name,
        "wall_s": round(wall, 1),
        "stopped_at_limit": timed_out,
        "marks": marks,
        "peak_rss_mb": {k: round(v, 1) for k, v in sorted(peaks.items())},
        "python_worker_peak_mb": round(worker_peak or 0.0, 1),
        "target_met": bool(worker_peak) and worker_peak < 1536,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit-s", type=float, default=120.0)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(*a.child)
        return 0
    man = corpus.load()
    wav = man["hour"][0]["path"]
    results = []
    for name in [p for p in a.paths.split(",") if p]:
        common.log(f"{name} ...")
        r = measure(name, wav, 0 if a.full else a.limit_s)
        common.log(f"  python-worker peak {r['python_worker_peak_mb']} MB {r['peak_rss_mb']} {r['marks']}")
        results.append(r)
    common.write_result(
        "rss",
        {
            "file": wav,
            "audio_s": man["hour"][0]["duration_s"],
            "limit_s": 0 if a.full else a.limit_s,
            "target_mb": 1536,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
