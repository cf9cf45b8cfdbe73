"""Spark benchmark (local[2]): our WhisperForCTC pipeline vs the naive per-row pandas UDF.

    python bench/run_spark.py            # short corpus (50 clips) + 5- and 10-min files
    python bench/run_spark.py --quick    # 20 clips + the 5-min file

One SparkSession (``local[2]``, Python workers = this interpreter, worker reuse on). For each corpus
every pipeline runs once cold (Python workers start, model loads: with the session start-up, the
end-to-end time), then ``--rounds`` steady-state passes interleaved across pipelines (median
reported). CPU seconds: this process and all its descendants (JVM, Python workers, the anchor's
pool), taken per process by the RSS sampler's walk every 0.2 s so that workers which exit still
count (``common.RssSampler.cpu_since``); the sampler records the peak RSS of the driver JVM, the
driver Python process, the Python workers and the anchor's pool.

Pipelines (Whisper tiny.en int8, beam 5, one CTranslate2 thread per task as Spark gives one core per task):

* ``ours``        ``read_binary`` -> ``WhisperForCTC(inputCols=["content"])`` (default options)
* ``ours_packed`` the same stage with ``strategy="pack"`` (``sparkasr.whisper.packing``: short rows packed
                  into shared 30-s windows; the stage hands the engine 8 x ``batchSize`` rows per call)
* ``ours_refs``   ``read_audio(samples=False)`` -> ``WhisperForCTC(inputCols=["path"])``: the same
                  segments as references, each decoded (by seeking) in the task that transcribes it,
                  so no decoded audio goes through the JVM or the shuffle (short clips: one row each)
* ``engine_raw``  an anchor in the same run: ``WhisperEngine`` in the driver process, all cores, no Spark
* ``engine_procs`` the anchor for Spark's overhead: ``WhisperEngine`` in ``--cores`` processes x 1 thread
                  (a process pool started once), the same partitions and engine calls per 8 rows as the
                  stage, ``OMP_NUM_THREADS=1`` as PySpark sets for its workers: the same int8
                  numerics as Spark's tasks, so the same text
* ``engine_procs_refs`` (with ``ours_refs``) the same anchor with the partitions of ``ours_refs``'s
                  rows: Spark sorts rows by their bytes before a round-robin repartition, so
                  references land in other partitions than the same segments with their samples
* ``naive_udf``   ``binaryFile`` -> ``pandas_udf`` that calls ``faster_whisper.WhisperModel.transcribe``
                  once per row (model cached per worker), the recipe users write today

Short clips are read with ``read_binary`` (one row per file); for long files our pipeline reads
``read_audio(segment_s=--segment-s)`` (one row per <=30-s segment, cut at quiet points: enough rows
to keep both cores busy; the raw engine anchor decodes the same rows) while the naive UDF gets whole
files. Rows are repartitioned to ``--partitions`` (default: 2 x cores). Spark's readers get each
corpus as its directory (``reader_paths``: Spark lists more than 32 explicit paths with a job of
its own, 0.35-0.5 s per DataFrame here).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd  # module level: pandas_udf type hints are resolved against these globals

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import corpus  # noqa: E402


def _classify(driver_pid):
    def f(p):
        name = p.name()
        if p.pid == driver_pid:
            return "driver_python"
        if "java" in name:
            return "driver_jvm"
        cmd = " ".join(p.cmdline())
        if "multiprocessing" in cmd:
            return "engine_procs"
        if "pyspark.daemon" in cmd or "pyspark.worker" in cmd or "python" in name:
            return "python_worker"
        return None

    return f


def make_session(cores: int):
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    return (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("sparkasr-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "8")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.shuffle.partitions", str(2 * cores))
        .getOrCreate()
    )


def naive_udf_transcribe(df, model_path: str):
    """The recipe users write: a pandas UDF calling the model once per row."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("string")
    def transcribe(content: pd.Series) -> pd.Series:
        import io

        global _NAIVE_MODEL
        try:
            model = _NAIVE_MODEL  # noqa: F821
        except NameError:
            from faster_whisper import WhisperModel

            model = _NAIVE_MODEL = WhisperModel(model_path, device="cpu", compute_type="int8", cpu_threads=1)
        out = []
        for b in content:
            segments, _ = model.transcribe(io.BytesIO(bytes(b)), beam_size=5, language="en")
            out.append("".join(s.text for s in segments).strip())
        return pd.Series(out)

    return df.select("path", transcribe("content").alias("text"))


def ours_transcribe(df, strategy=None):
    """``content`` (binary rows), ``audio`` (read_audio segments) or ``path`` (read_audio(samples=False)
    references) -> text per file."""
    from pyspark.sql import functions as F

    from sparkasr.spark.whisper import WhisperForCTC

    col = next(c for c in ("content", "audio", "path") if c in df.columns)
    stage = WhisperForCTC(inputCols=[col], outputCol="asr", pathCol="path")
    if strategy:
        stage.setStrategy(strategy)
    out = stage.transform(df).select(
        "path",
        *(["segment"] if "segment" in df.columns else []),
        F.expr("concat_ws(' ', transform(asr, a -> a.result))").alias("text"),
    )
    if "segment" in df.columns:  # long files read as segments: join them back in order
        out = out.groupBy("path").agg(
            F.expr("concat_ws(' ', transform(array_sort(collect_list(struct(segment, text))), x -> x.text))").alias(
                "text"
            )
        )
    return out


def reader_paths(entries) -> list:
    """The corpus as Spark's file reader should get it: a directory whose files are exactly the
    corpus's, else the files themselves. Spark lists more than 32 paths
    (``spark.sql.sources.parallelPartitionDiscovery.threshold``; a glob counts as the files it
    matches) with a distributed job, one task per path: 50 file paths, or 5 globs matching them,
    cost 0.35-0.5 s per DataFrame here, their directory 0.03 s. Users with many files pass a
    directory; so does the benchmark, for every Spark pipeline alike (``--quick``'s 20 files are
    under the threshold)."""
    dirs = {}
    for e in entries:
        path = os.path.abspath(e["path"])
        dirs.setdefault(os.path.dirname(path), set()).add(path)
    out = []
    for d, files in sorted(dirs.items()):
        present = {os.path.join(d, f) for f in os.listdir(d) if os.path.isfile(os.path.join(d, f))}
        out.extend([d] if present == files else sorted(files))
    return out


def spark_input(spark, paths, segment_s, parts: int, refs_s=None):
    """What a Spark pipeline reads from ``paths`` (``reader_paths``): ``read_audio`` rows of
    <=``segment_s`` (our stage on long files), else one row of file bytes per file (short clips,
    and the naive UDF always); with ``refs_s``, ``read_audio(samples=False)`` references to
    segments of <=``refs_s`` instead; repartitioned to ``parts``."""
    from sparkasr.spark.reader import read_audio, read_binary

    if refs_s:
        df = read_audio(spark, paths, segment_s=refs_s, samples=False)
    else:
        df = read_audio(spark, paths, segment_s=segment_s) if segment_s else read_binary(spark, paths)
    return df.repartition(parts)


def file_rows(path: str, segment_s=None):
    """``[(offset_s, samples), ...]``: the rows the stage gets for ``path``: the whole file, or the
    <=``segment_s`` rows read_audio makes (the same cut of the same block stream)."""
    from sparkasr.audio import decode_audio, iter_audio_blocks, iter_segments

    if segment_s:
        return list(iter_segments(iter_audio_blocks(path), segment_s))
    return [(0.0, decode_audio(path))]


def join_per_file(rows):
    """``{abspath: text}`` from ``(source, offset_s, text)`` rows, each file's rows in time order."""
    texts = {}
    for source, _, text in sorted(rows, key=lambda r: (os.path.abspath(r[0]), r[1])):
        key = os.path.abspath(source)
        texts[key] = f"{texts.get(key, '')} {text}".strip()
    return texts


def engine_raw(entries, threads: int, segment_s=None):
    """The anchor measured in the same run: WhisperEngine in this process, all cores, no Spark, on
    the same rows as the Spark pipeline (long files: cut like ``read_audio(segment_s=...)``)."""
    from sparkasr.records import AudioItem
    from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions
    from sparkasr.whisper.models import resolve_whisper_model

    engine = WhisperEngine(resolve_whisper_model(None).path, WhisperOptions(), RuntimeOptions(cpu_threads=threads))
    items = [
        AudioItem(samples, source=e["path"], offset_s=off)
        for e in entries
        for off, samples in file_rows(e["path"], segment_s)
    ]
    return join_per_file([(it.source, it.offset_s, t.text) for it, t in zip(items, engine.transcribe_batch(items))])


# The second anchor: one engine per process, 1 thread each, as many processes as cores (Spark's
# layout, without Spark). Started once (the cold run pays the start-up), reused after.
_POOL = None
_POOL_ENGINE = None


def _pool_engine_init():
    global _POOL_ENGINE
    sys.path.insert(0, str(common.ROOT / "python"))
    from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions
    from sparkasr.whisper.models import resolve_whisper_model

    _POOL_ENGINE = WhisperEngine(resolve_whisper_model(None).path, WhisperOptions(), RuntimeOptions(cpu_threads=1))


def _pool_task(rows, segment_s, per_call):
    """One partition: its rows (``(path, segment)``, in Spark's order) decoded as the stage gets
    them (whole files, or the file's ``segment``-th <=``segment_s`` row as read_audio cuts it), and
    the engine called once per ``per_call`` rows, as the Spark stage does."""
    from sparkasr.records import AudioItem

    cut = {}
    items = []
    for path, seg in rows:
        if path not in cut:
            cut[path] = file_rows(path, segment_s if seg is not None else None)
        off, samples = cut[path][seg or 0]
        items.append(AudioItem(samples, source=path, offset_s=off))
    out = []
    for k in range(0, len(items), per_call):
        batch = items[k : k + per_call]
        out += [(it.source, it.offset_s, t.text) for it, t in zip(batch, _POOL_ENGINE.transcribe_batch(batch))]
    return out


def spark_partitions(df):
    """The rows of ``df`` per Spark partition, in order: ``[[(path, segment or None), ...], ...]``."""
    from pyspark.sql import functions as F

    seg = F.col("segment") if "segment" in df.columns else F.lit(None).cast("int")
    # Every column stays referenced: Spark sorts rows before a round-robin repartition
    # (spark.sql.execution.sortBeforeRepartition), so pruning the audio column away would change
    # which partition each row lands in.
    keep = F.xxhash64(*[F.col(c) for c in df.columns]).alias("_all")
    parts = {}
    for r in df.select("path", seg.alias("segment"), F.spark_partition_id().alias("pid"), keep).collect():
        parts.setdefault(r["pid"], []).append((r["path"].replace("file:", ""), r["segment"]))
    return [parts[k] for k in sorted(parts)]


def engine_procs(partitions, cores: int, per_call: int, segment_s=None):
    """The anchor with Spark's layout: ``cores`` processes x 1 thread, the rows in Spark's own
    partitions (``spark_partitions``), the engine called per ``per_call`` rows (the stage's), and
    ``OMP_NUM_THREADS=1`` as in Spark's workers: the same work and the same int8 numerics as the
    stage, so the same text. Spark's overhead is ``ours`` against this."""
    global _POOL
    import concurrent.futures as cf
    import multiprocessing as mp

    if _POOL is None:
        # PySpark starts its Python workers with OMP_NUM_THREADS=<task cpus>, and CTranslate2's
        # int8 kernels give other text under it than without it (short corpus: WER 0.066 vs
        # 0.099, both cpu_threads=1). It must be in the environment before the OpenMP runtime
        # loads (set in the pool's initializer, after this module's imports, it changed nothing):
        # set it while the pool starts all its processes, then restore the driver's environment.
        old = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"
        try:
            _POOL = cf.ProcessPoolExecutor(cores, mp_context=mp.get_context("spawn"), initializer=_pool_engine_init)
            list(_POOL.map(time.sleep, [1.0] * cores))  # every worker process started now
        finally:
            if old is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = old
    n = len(partitions)
    return join_per_file([r for res in _POOL.map(_pool_task, partitions, [segment_s] * n, [per_call] * n) for r in res])


def run(args) -> dict:
    from sparkasr.spark.whisper import WhisperForCTC
    from sparkasr.whisper.models import resolve_whisper_model

    man = corpus.load(quick=args.quick)
    cores = args.cores
    parts = args.partitions or 2 * cores
    model_path = resolve_whisper_model(None).path
    sampler = common.RssSampler([os.getpid()], _classify(os.getpid()))
    sampler.__enter__()
    t0 = time.perf_counter()
    spark = make_session(cores)
    spark.sparkContext.setLogLevel("ERROR")
    session_s = time.perf_counter() - t0
    common.log(f"session started in {session_s:.1f} s")
    pipelines = {"ours": lambda df: ours_transcribe(df), "naive_udf": lambda df: naive_udf_transcribe(df, model_path)}
    pipelines["ours_packed"] = lambda df: ours_transcribe(df, "pack")
    pipelines["ours_refs"] = ours_transcribe
    wanted = [p for p in args.pipelines.split(",") if p] or ["engine_raw", "engine_procs"] + list(pipelines)
    # ours_refs gets an anchor with its own layout (engine_procs_refs, run right after engine_procs):
    # Spark sorts rows by their bytes before a round-robin repartition, so references (a few bytes
    # each) land in other partitions than the same segments with samples.
    refs_anchor = "engine_procs" in wanted and "ours_refs" in wanted
    order = [m for n in wanted for m in ([n, "engine_procs_refs"] if n == "engine_procs" and refs_anchor else [n])]
    runs = []
    for corp in ["short", "long"] if args.corpus == "both" else [args.corpus]:
        entries = man[corp]
        refs = {os.path.abspath(e["path"]): e["reference"] for e in entries}
        audio_s = sum(e["duration_s"] for e in entries)
        schedule = [(n, "cold") for n in order] + [(n, "steady") for _ in range(args.rounds) for n in order]
        seg_s = args.segment_s if corp == "long" else None
        refs_s = seg_s or args.segment_s  # references: read_audio(samples=False) segments, short clips one each
        paths = reader_paths(entries)  # listed once per corpus, outside the timed jobs
        layouts = {}  # anchor -> the partitions of the pipeline it stands for
        if "engine_procs" in wanted:
            layouts["engine_procs"] = spark_partitions(spark_input(spark, paths, seg_s, parts))
        if refs_anchor:
            layouts["engine_procs_refs"] = spark_partitions(spark_input(spark, paths, seg_s, parts, refs_s=refs_s))
        per_call = WhisperForCTC()._items_per_call()  # rows per engine call in the stage (default options)
        for name, phase in schedule:
            c0 = sampler.cpu_mark()
            t = time.perf_counter()
            if name == "engine_raw":
                hyp = engine_raw(entries, cores, seg_s)
                rows = list(hyp)
            elif name in layouts:
                hyp = engine_procs(layouts[name], cores, per_call, refs_s if name == "engine_procs_refs" else seg_s)
                rows = list(hyp)
            else:
                df = spark_input(
                    spark, paths, None if name == "naive_udf" else seg_s, parts, refs_s if name == "ours_refs" else None
                )  # naive: whole files
                rows = pipelines[name](df).collect()
                hyp = {r["path"].replace("file:", ""): r["text"] or "" for r in rows}
            wall = time.perf_counter() - t
            cpu = sampler.cpu_since(c0)
            keys = sorted(refs)
            w = common.wer_counts([refs[k] for k in keys], [hyp.get(k, "") for k in keys])
            res = {
                "corpus": corp,
                "pipeline": name,
                "phase": phase,
                "files": len(entries),
                "rows": len(rows),
                "audio_s": round(audio_s, 2),
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "rtfx": common.rtfx(audio_s, wall),
                "rtfx_per_core": round(audio_s / wall / cores, 2),
                "audio_per_cpu_s": round(audio_s / cpu, 2) if cpu > 0 else None,
                "load_avg_1m": round(os.getloadavg()[0], 2),
                **w,
            }
            runs.append(res)
            common.log(
                f"{corp:5s} {name:11s} {phase:6s} wall {wall:6.1f}s RTFx {res['rtfx']:6.2f} audio/CPU-s {res['audio_per_cpu_s']} WER {w['wer']}"
            )
    spark.stop()
    if _POOL is not None:
        _POOL.shutdown()
    sampler.__exit__(None, None, None)
    return {
        "session_start_s": round(session_s, 2),
        "cores": cores,
        "partitions": parts,
        "runs": runs,
        "peak_rss_mb": sampler.result(),
        "summary": summarize(runs, session_s),
    }


def summarize(runs, session_s):
    import statistics

    by = {}
    passes = {}  # (corpus, pipeline, phase) -> RTFx of each pass, in run order
    for key in {(r["corpus"], r["pipeline"], r["phase"]) for r in runs}:
        rs = [r for r in runs if (r["corpus"], r["pipeline"], r["phase"]) == key]
        passes[key] = [r["rtfx"] for r in rs]
        med = dict(rs[0])
        for f in ("wall_s", "cpu_s", "rtfx", "rtfx_per_core", "audio_per_cpu_s"):
            vals = [r[f] for r in rs if r.get(f) is not None]
            med[f] = round(statistics.median(vals), 3) if vals else None
        med["n"] = len(rs)
        by[key] = med
    rows = []
    for (corp, pipe, phase), r in sorted(by.items()):
        if phase != "steady":
            continue
        cold = by.get((corp, pipe, "cold"))
        rows.append(
            {
                "corpus": corp,
                "pipeline": pipe,
                "audio_s": r["audio_s"],
                "steady_wall_s": r["wall_s"],
                "steady_rtfx": r["rtfx"],
                "steady_rtfx_per_core": r["rtfx_per_core"],
                "steady_audio_per_cpu_s": r["audio_per_cpu_s"],
                "steady_runs": r["n"],
                "cold_wall_s": cold and cold["wall_s"],
                "end_to_end_wall_s": cold and round(cold["wall_s"] + session_s, 2),
                "end_to_end_rtfx": cold and common.rtfx(r["audio_s"], cold["wall_s"] + session_s),
                "wer": r["wer"],
            }
        )
    ratios = {}
    pairs = [(a, b) for a in ("ours", "ours_packed", "ours_refs") for b in ("naive_udf", "engine_raw", "engine_procs")]
    pairs.append(("ours_refs", "engine_procs_refs"))  # the anchor with the references' own layout
    for corp in ("short", "long"):
        for a, b in pairs:
            x, y = by.get((corp, a, "steady")), by.get((corp, b, "steady"))
            if x and y:
                ratios[f"{corp}: {a} / {b} (steady)"] = round(x["rtfx"] / y["rtfx"], 3)
                if x.get("audio_per_cpu_s") and y.get("audio_per_cpu_s"):
                    ratios[f"{corp}: {a} / {b} (steady, per CPU-s)"] = round(
                        x["audio_per_cpu_s"] / y["audio_per_cpu_s"], 3
                    )
                # The k-th steady passes of a and b ran next to each other (interleaved rounds):
                # the median of their ratios is less sensitive to the machine drifting during the run.
                xs, ys = passes[(corp, a, "steady")], passes[(corp, b, "steady")]
                if len(xs) == len(ys):
                    ratios[f"{corp}: {a} / {b} (steady, median of paired passes)"] = round(
                        statistics.median(u / v for u, v in zip(xs, ys)), 3
                    )
    return {"rows": rows, "ratios": ratios}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=0)
    ap.add_argument("--corpus", choices=["short", "long", "both"], default="both")
    ap.add_argument(
        "--pipelines",
        default="",
        help="comma-separated subset: engine_raw,engine_procs,ours,ours_packed,ours_refs,naive_udf",
    )
    ap.add_argument(
        "--rounds", type=int, default=3, help="steady-state passes per pipeline (interleaved; median reported)"
    )
    ap.add_argument(
        "--segment-s",
        type=float,
        default=30.0,
        help="long files: read_audio segment length (rows; the raw engine anchor gets the same rows)",
    )
    ap.add_argument("--name", default="")
    a = ap.parse_args(argv)
    corpus.load(quick=a.quick)
    res = run(a)
    common.write_result(a.name or ("spark_quick" if a.quick else "spark"), {"quick": a.quick, **res})
    print(json.dumps(res["summary"], indent=1))
    print(json.dumps(res["peak_rss_mb"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
