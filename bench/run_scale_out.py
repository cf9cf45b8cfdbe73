"""Scale-out: the batch job on many short files with 1 and 2 cores, in local mode and on a standalone cluster.

    python bench/run_scale_out.py            # 120 English prompts, tiny.en -> results/scale_out.{json,md}
    python bench/run_scale_out.py --quick    # 24 prompts, 300 listed files -> results/scale_out_quick.{json,md}
    python bench/run_scale_out.py --masters none --name scale_out_listing   # the listing check alone

The same workload (``--files`` English Asterisk prompts spread in name order, as
``run_many_files.spread`` picks them; needs ``scripts/fetch_eval_corpus.sh``) is run end to end by
``sparkasr transcribe MANIFEST --master M`` in a fresh process, with the job's default options, for M in
``local[1]``, ``local[2]``, a standalone cluster of 1 worker × 1 core and one of 2 workers × 1 core
(``bench/standalone.py``: master and workers on loopback, started before the run and killed after it;
their start is not in the run's wall time). Per run:

* wall time end to end (process start to exit) and the job's own phases (its profile, logged at INFO
  on ``sparkasr.job``: :class:`sparkasr.job.progress.Phases`); *decode* is its ``transcribe and
  write`` span (the Spark job that reads, transcribes and writes the records), *fixed cost* the rest;
* audio-s per core-s = audio s / (cores × decode s), and audio s per wall s;
* WER against the references (``run_accuracy``'s scoring) and whether every file got the same text
  as with ``local[1]`` (the differing files are listed);
* from Spark's event log (``spark.eventLog.enabled`` in a ``spark-defaults.conf`` the job's driver
  reads; the job's options are untouched): Spark jobs and tasks in the whole application, and for the
  transcription stage (the stage with the most task time) its tasks, the files each task wrote and
  the executors that ran them;
* the load average before and after.

Then the listing claim: ``--list-files`` (default 3000) hard links of a few real prompts in one
directory, listed and made into the job's input rows by the job's own code
(:func:`sparkasr.job.listing.list_local`, :func:`sparkasr.job.run.build_inputs`) in a ``local[2]``
session, timed, with the Spark jobs they started counted by the status tracker (a job group around
them; one control job in the same group proves the count sees jobs).

On a shared machine the times are indicative only: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import eval_corpus  # noqa: E402
import run_accuracy  # noqa: E402
import run_many_files  # noqa: E402
from standalone import Cluster  # noqa: E402

SET = "asterisk-en"
MODEL = "tiny.en"
FILES = 120
QUICK_FILES = 24
LIST_FILES = 3000
QUICK_LIST_FILES = 300
JOB_TIMEOUT_S = 3600
DECODE = "transcribe and write"  # the job's span of the Spark job that transcribes and writes


@dataclass(frozen=True)
class Master:
    label: str
    workers: int  # 0: local mode, local[cores]
    cores: int  # per worker (local: the master's thread count)

    @property
    def total_cores(self) -> int:
        return self.cores if self.workers == 0 else self.workers * self.cores


MASTERS = [
    Master("local[1]", 0, 1),
    Master("local[2]", 0, 2),
    Master("standalone 1 worker × 1 core", 1, 1),
    Master("standalone 2 workers × 1 core", 2, 1),
]


# -- one run -----------------------------------------------------------------------------------


def _conf_dir(root: Path) -> Path:
    """A ``spark-defaults.conf`` that turns the event log on (uncompressed) into ``root/events``."""
    conf, events = root / "driver-conf", root / "events"
    conf.mkdir()
    events.mkdir()
    (conf / "spark-defaults.conf").write_text(
        f"spark.eventLog.enabled true\nspark.eventLog.dir file://{events}\nspark.eventLog.compress false\n"
    )
    return conf


def events_summary(events_dir: Path) -> dict:
    """Jobs, stages and tasks from the application's event log, and the transcription stage (of
    the stages that wrote records, the one with the most task run time): its tasks, records
    written per task, executors."""
    # Spark 4 rolls event logs by default: eventlog_v2_<app>/events_<n>_<app>, read in order
    logs = sorted(
        (p for p in events_dir.rglob("*") if p.is_file() and p.name.startswith(("events_", "local-", "app-"))),
        key=lambda p: (int(p.name.split("_")[1]) if p.name.startswith("events_") else 0, p.name),
    )
    if not logs:
        return {"error": f"no event log in {events_dir}"}
    jobs, executors = 0, set()
    stages: Dict[int, dict] = {}
    lines = [line for p in logs for line in p.read_text(errors="replace").splitlines() if line.strip()]
    for line in lines:
        ev = json.loads(line)
        kind = ev.get("Event")
        if kind == "SparkListenerJobStart":
            jobs += 1
        elif kind == "SparkListenerExecutorAdded":
            executors.add(ev.get("Executor ID"))
        elif kind == "SparkListenerTaskEnd":
            st = stages.setdefault(ev["Stage ID"], {"tasks": 0, "run_ms": 0, "records": [], "executors": set()})
            info, metrics = ev.get("Task Info", {}), ev.get("Task Metrics") or {}
            st["tasks"] += 1
            st["run_ms"] += int(metrics.get("Executor Run Time", 0))
            st["records"].append(int((metrics.get("Output Metrics") or {}).get("Records Written", 0)))
            st["executors"].add(info.get("Executor ID"))
        elif kind == "SparkListenerStageCompleted":
            si = ev.get("Stage Info", {})
            stages.setdefault(si["Stage ID"], {"tasks": 0, "run_ms": 0, "records": [], "executors": set()})
            stages[si["Stage ID"]]["name"] = si.get("Stage Name", "")
    if not stages:
        return {"jobs": jobs, "error": "no task in the event log"}
    # the stage that transcribes (and writes the records): the most task time of those that wrote records
    sid, top = max(stages.items(), key=lambda kv: (sum(kv[1]["records"]) > 0, kv[1]["run_ms"]))
    per_task = top["records"]
    return {
        "jobs": jobs,
        "stages": len(stages),
        "tasks": sum(s["tasks"] for s in stages.values()),
        "executors": sorted(e for e in executors if e and e != "driver"),
        "transcription_stage": {
            "stage_id": sid,
            "name": top.get("name", ""),
            "tasks": top["tasks"],
            "files_per_task": sorted(per_task),
            "files_per_task_median": statistics.median(per_task) if per_task else 0,
            "task_run_s": round(top["run_ms"] / 1000, 2),
            "executors": sorted(e for e in top["executors"] if e),
        },
    }


def run_job(master: Master, entries, workdir: Path) -> dict:
    """``sparkasr transcribe MANIFEST --master M`` in a fresh process (a cluster started around it
    for a standalone master): texts, wall time, phases, event-log summary."""
    manifest = workdir / "job.csv"
    run_many_files.write_manifest(entries, manifest)
    out = workdir / "out"
    language, _ = eval_corpus.set_info(SET)
    args = run_many_files.job_args(manifest, out, MODEL, language, master.cores)
    env = run_many_files._env()
    cluster = None
    res: dict = {"master": master.label, "cores": master.total_cores, "workers": master.workers}
    try:
        if master.workers:
            cluster = Cluster(workdir / "cluster", env=env)
            t0 = time.perf_counter()
            cluster.start(master.workers, master.cores)
            res["cluster_start_s"] = round(time.perf_counter() - t0, 2)
            env = cluster.env
            args[args.index("--master") + 1] = cluster.url
        env = dict(env, SPARK_CONF_DIR=str(_conf_dir(workdir)), SPARK_LOCAL_IP="127.0.0.1")
        cmd = [sys.executable, str(Path(run_many_files.__file__).resolve()), "--child", "cli", "--", *args]
        res["load_before"] = run_many_files.loadavg()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
        res["wall_s"] = round(time.perf_counter() - t0, 2)
        res["load_after"] = run_many_files.loadavg()
        if proc.returncode != 0:
            raise RuntimeError(
                f"sparkasr transcribe --master {master.label} failed ({proc.returncode}): {proc.stderr[-3000:]}"
            )
    finally:
        if cluster is not None:
            cluster.stop()
            left = cluster.alive()
            if left:
                raise RuntimeError(f"cluster processes still alive: {left}")
    res["texts"] = run_many_files.job_texts(out, entries)
    res["phases"] = run_many_files.parse_phases(proc.stderr)
    res["spark"] = events_summary(workdir / "events")
    return res


def derive(run: dict, audio_s: float) -> None:
    """The run's fixed cost, decode time and throughputs, in place; ``task_parallelism``: the
    workers' task seconds (summed) per decode second, the cores the decode actually got."""
    decode = run["phases"].get("driver_s", {}).get(DECODE)
    task_s = run["phases"].get("workers", {}).get("task", {}).get("total_s")
    run["task_parallelism"] = round(task_s / decode, 2) if task_s and decode else None
    run["audio_s"] = round(audio_s, 2)
    run["decode_s"] = decode
    run["fixed_s"] = round(run["wall_s"] - decode, 2) if decode else None
    run["audio_s_per_core_s"] = round(audio_s / (run["cores"] * decode), 3) if decode else None
    run["audio_s_per_wall_s"] = round(audio_s / run["wall_s"], 3)


# -- the listing -------------------------------------------------------------------------------


def run_listing(entries, n: int, workdir: Path) -> dict:
    """``n`` hard links (symbolic links where the filesystem refuses) of the first prompts in one
    directory, listed by the job's code in a child process; its JSON answer."""
    d = workdir / "many"
    d.mkdir()
    src = [Path(e.path) for e in entries[:20]]
    links = "hard"
    for i in range(n):
        s = src[i % len(src)]
        dst = d / f"{i:05d}_{s.name}"
        try:
            os.link(s, dst)
        except OSError:
            links = "symbolic"
            dst.symlink_to(s)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "listing", "--", str(d)]
    proc = subprocess.run(cmd, env=run_many_files._env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"listing child failed ({proc.returncode}): {proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["links"] = links
    res["distinct_sources"] = len(src)
    return res


def child_listing(argv: Sequence[str]) -> int:
    (directory,) = argv
    from sparkasr.cli import _spark_session
    from sparkasr.job.listing import list_local
    from sparkasr.job.run import build_inputs

    spark = _spark_session("local[2]")
    sc = spark.sparkContext
    # the session's first DataFrame and job warm the JVM up (class loading, codegen), outside the count
    spark.createDataFrame([("x", 0)], "path string, n long").count()
    group = "sparkasr-listing"
    tracker = sc.statusTracker()
    sc.setJobGroup(group, "the job's listing and input rows")
    t0 = time.perf_counter()
    listing = list_local([directory])
    t1 = time.perf_counter()
    inputs = build_inputs(spark, [directory], [], listing)
    t2 = time.perf_counter()
    jobs = len(tracker.getJobIdsForGroup(group))
    spark.range(0, 1, 1, 1).count()  # control: one job in the same group
    control = len(tracker.getJobIdsForGroup(group)) - jobs
    sc.cancelJobGroup(group)
    spark.stop()
    print(
        json.dumps(
            {
                "files_listed": len(listing.files),
                "input_rows": inputs.count,
                "listing_s": round(t1 - t0, 3),
                "input_rows_s": round(t2 - t1, 3),
                "spark_jobs": jobs,
                "control_jobs_counted": control,
            }
        )
    )
    return 0


# -- report ------------------------------------------------------------------------------------


def _f(v, fmt="{:.2f}") -> str:
    return "–" if v is None else fmt.format(v)


def render(res: dict) -> str:
    m = res["machine"]
    flags = (" --quick" if res["quick"] else "") + (f" --files {res['files']}" if res["runs"] else "")
    flags += f" --list-files {res['listing']['files_listed']}" if res.get("listing") else ""
    lines = ["# Scale-out: the batch job on many short files, 1 and 2 cores, local and standalone", ""]
    if not res["runs"]:
        lines.append(
            f"Generated by `bench/run_scale_out.py{flags} --masters none` ({res['finished_utc'][:10]}, code "
            f"`{m.get('git')}`) on {m.get('nproc')} cores: the listing check only."
        )
        lines.append("")
    else:
        lines += table(res, flags)
    lines += listing_lines(res.get("listing"))
    return "\n".join(lines) + "\n"


def table(res: dict, flags: str) -> List[str]:
    m = res["machine"]
    lines = [
        f"Generated by `bench/run_scale_out.py{flags}` ({res['finished_utc'][:10]}, code `{m.get('git')}`) on "
        f"{m.get('nproc')} cores: {res['files']} English Asterisk prompts ({res['audio_s']:.1f} s of audio), "
        f"{MODEL}, the job's default options, `sparkasr transcribe MANIFEST --master M` in a fresh process. "
        "Wall: process start to exit (a standalone cluster is started before and not counted); decode: the "
        f"job's `{DECODE}` span; fixed: wall − decode. Audio-s per core-s = audio s / (cores × decode s). "
        "Spark jobs/tasks: the whole application, from its event log; tasks and files per task: the "
        "transcription stage. Task-s / decode-s: the workers' task time summed per decode second (the cores "
        "the decode got). WER in % with a 95 % bootstrap interval over files. On a shared machine the "
        "times are indicative: compare ratios of one run.",
        "",
        "| master | cores | wall s | fixed s | decode s | task-s / decode-s | audio-s / core-s | audio-s / wall-s "
        "| WER % [95 % CI] | text = local[1] | Spark jobs / tasks | transcription tasks × files | executors "
        "| load before → after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        sp = r.get("spark", {})
        ts = sp.get("transcription_stage", {})
        fpt = ts.get("files_per_task", [])
        span = f"{min(fpt)}" if fpt and min(fpt) == max(fpt) else f"{min(fpt, default=0)}–{max(fpt, default=0)}"
        files = f"{ts.get('tasks', '–')} × {span}" if fpt else "–"
        same = "yes" if not r.get("differs_from_first") else f"{len(r['differs_from_first'])} differ"
        lines.append(
            f"| {r['master']} | {r['cores']} | {r['wall_s']:.1f} | {_f(r['fixed_s'], '{:.1f}')} | "
            f"{_f(r['decode_s'], '{:.1f}')} | {_f(r.get('task_parallelism'))} | {_f(r['audio_s_per_core_s'])} | {_f(r['audio_s_per_wall_s'])} | "
            f"{run_accuracy._rate(r['wer'])} | {same} | {sp.get('jobs', '–')} / {sp.get('tasks', '–')} | {files} | "
            f"{len(ts.get('executors', [])) or '–'} | {r['load_before'][0]} → {r['load_after'][0]} |"
        )
    lines.append("")
    for k, v in res.get("ratios", {}).items():
        lines.append(f"- {k}: **{v}**")
    starts = [f"{r['master']} {r['cluster_start_s']} s" for r in res["runs"] if "cluster_start_s" in r]
    if starts:
        lines.append(f"- standalone cluster start (not in the wall times): {', '.join(starts)}")
    diffs = [(r["master"], r["differs_from_first"]) for r in res["runs"] if r.get("differs_from_first")]
    for master, d in diffs:
        lines.append(f"- {master}: texts differing from local[1]: " + "; ".join(f"`{x['name']}`" for x in d[:10]))
    lines.append("")
    lines += ["Job phases (s; driver spans, then the workers' summed over tasks, with their count):", ""]
    lines.append("| phase | " + " | ".join(r["master"] for r in res["runs"]) + " |")
    lines.append("|---|" + "---|" * len(res["runs"]))
    names = list(dict.fromkeys(n for r in res["runs"] for n in r["phases"].get("driver_s", {})))
    for n in names:
        lines.append(f"| {n} | " + " | ".join(str(r["phases"]["driver_s"].get(n, "–")) for r in res["runs"]) + " |")
    wn = list(dict.fromkeys(n for r in res["runs"] for n in r["phases"].get("workers", {})))
    for n in wn:
        cells = []
        for r in res["runs"]:
            v = r["phases"]["workers"].get(n)
            cells.append(f"{v['total_s']} ({v['count']}×)" if v else "–")
        lines.append(f"| workers: {n} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def listing_lines(li: Optional[dict]) -> List[str]:
    lines: List[str] = []
    if li:
        lines += [
            "## Listing many files",
            "",
            f"{li['files_listed']} files ({li['links']} links of {li['distinct_sources']} prompts in one directory) "
            f"listed by the job's code (`list_local`) in {li['listing_s']} s and made into {li['input_rows']} "
            f"input rows (`build_inputs`: `stat`, ids) in {li['input_rows_s']} s, starting **{li['spark_jobs']} "
            f"Spark jobs** (status tracker, job group around them; a control job in the same group counted "
            f"{li['control_jobs_counted']}). Load before → after: {li['load_before'][0]} → {li['load_after'][0]}."
            + (f" Note: {li['note']}." if li.get("note") else ""),
            "",
        ]
    return lines


def ratios(runs: List[dict]) -> Dict[str, float]:
    by = {r["master"]: r for r in runs}
    out = {}
    for one, two, what in (
        ("local[1]", "local[2]", "local"),
        ("standalone 1 worker × 1 core", "standalone 2 workers × 1 core", "standalone"),
    ):
        a, b = by.get(one), by.get(two)
        if a and b and a.get("decode_s") and b.get("decode_s"):
            out[f"{what}: decode speed-up, 2 cores vs 1"] = round(a["decode_s"] / b["decode_s"], 2)
            out[f"{what}: end-to-end speed-up, 2 cores vs 1"] = round(a["wall_s"] / b["wall_s"], 2)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return child_listing(argv[3:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_FILES} prompts, {QUICK_LIST_FILES} listed files")
    ap.add_argument("--files", type=int, default=0, help=f"prompts transcribed (default {FILES})")
    ap.add_argument("--list-files", type=int, default=0, help=f"files in the listing check (default {LIST_FILES})")
    ap.add_argument(
        "--masters",
        default="",
        help="subset (comma-separated) of: " + ", ".join(m.label for m in MASTERS) + " ('none': the listing only)",
    )
    ap.add_argument("--name", default="")
    args = ap.parse_args(argv)
    reason = eval_corpus.missing_reason()
    if reason:
        print(f"run_scale_out: {reason}", file=sys.stderr)
        return 2
    n = args.files or (QUICK_FILES if args.quick else FILES)
    n_list = args.list_files or (QUICK_LIST_FILES if args.quick else LIST_FILES)
    masters = MASTERS
    if args.masters:
        want = {s.strip() for s in args.masters.split(",")}
        masters = [m for m in MASTERS if m.label in want]
    name = args.name or ("scale_out_quick" if args.quick else "scale_out")
    all_entries = eval_corpus.load_set(SET)
    entries = run_many_files.spread(all_entries, n)
    audio_s = sum(len(x) for x in run_accuracy.decode(entries)) / 16000
    common.log(f"{SET} {MODEL}: {len(entries)} files, {audio_s:.1f} s of audio")
    t_start = time.perf_counter()
    runs: List[dict] = []
    for master in masters:
        common.log(f"  {master.label} (load {run_many_files.loadavg()})")
        with tempfile.TemporaryDirectory(prefix="scale_out_") as tmp:
            run = run_job(master, entries, Path(tmp))
        derive(run, audio_s)
        runs.append(run)
        ts = run["spark"].get("transcription_stage", {})
        common.log(
            f"    wall {run['wall_s']} s, decode {run['decode_s']} s, fixed {run['fixed_s']} s, "
            f"{run['audio_s_per_core_s']} audio-s/core-s; {run['spark'].get('jobs')} jobs, "
            f"{ts.get('tasks')} transcription tasks, files/task {ts.get('files_per_task')} "
            f"(load after {run['load_after']})"
        )
    outputs = {r["master"]: (r["texts"], r["wall_s"]) for r in runs}
    rows = (
        {row["system"]: row for row in run_accuracy.short_rows(SET, MODEL, entries, outputs, audio_s)} if runs else {}
    )
    first = runs[0]["texts"] if runs else []
    for r in runs:
        r["wer"] = rows[r["master"]]["wer"]
        r["differs_from_first"] = [
            {"name": e.name, "text": t, runs[0]["master"]: f} for e, t, f in zip(entries, r["texts"], first) if t != f
        ]
        common.log(
            f"    {r['master']}: WER {run_accuracy._rate(r['wer'])}, {len(r['differs_from_first'])} texts differ"
        )
    common.log(f"  listing {n_list} files")
    with tempfile.TemporaryDirectory(prefix="scale_out_list_") as tmp:
        before = run_many_files.loadavg()
        listing = run_listing(all_entries, n_list, Path(tmp))
        listing.update(load_before=before, load_after=run_many_files.loadavg())
    common.log(f"    {listing}")
    res = {
        "quick": args.quick,
        "set": SET,
        "model": MODEL,
        "files": len(entries),
        "audio_s": round(audio_s, 2),
        "runs": [{k: v for k, v in r.items() if k != "texts"} for r in runs],
        "texts": {r["master"]: dict(zip((e.name for e in entries), r["texts"])) for r in runs},
        "ratios": ratios(runs),
        "listing": listing,
        "total_wall_s": round(time.perf_counter() - t_start, 1),
    }
    common.write_result_md(name, res, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
