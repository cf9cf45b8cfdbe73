"""Many short files: the batch job next to our engine and faster-whisper, same files, one run.

    python bench/run_many_files.py --quick   # 120 English prompts, tiny.en -> results/many_files_quick.{json,md}
    python bench/run_many_files.py           # 568 English (tiny.en, base) + 484 Spanish (base) -> many_files.{json,md}
    python bench/run_many_files.py --quick --systems "spark job" --name many_files_profile_before

Systems, per set and model (CTranslate2 int8, beam 5, ``--threads`` cores; needs
``scripts/fetch_eval_corpus.sh``):

* ``spark job``: ``sparkasr transcribe MANIFEST --master local[THREADS]`` in a fresh process, end
  to end (interpreter and JVM start, Spark start, listing, the run, the current view, the
  evaluation report, Spark stop), default options; its phases come from the job's own profile
  (:class:`sparkasr.job.progress.Phases`, logged at INFO on ``sparkasr.job``);
* ``spark job steady``: in one more process, one SparkSession, the job run on the first
  ``WARMUP_FILES`` files (Python workers start, models load), then on all of them into another
  output directory: that second run is the steady state;
* ``engine <strategy>``: ``WhisperEngine.transcribe_batch`` on all files in one process, the job's
  default strategy, ``--threads`` threads (samples decoded before the clock starts);
* ``faster-whisper``: ``WhisperModel.transcribe`` one file at a time (the anchor of the WER
  differences); ``faster-whisper batched``: ``BatchedInferencePipeline.transcribe`` one file at
  a time (library defaults: batch 8, VAD).

Before the timed rows, the job runs once on ``WARMUP_FILES`` files, untimed: the first job on a
machine writes the driver JVM's class archive (:mod:`sparkasr.spark.classcache`), which every later
job maps; its time is reported apart. Model load is outside the clock for the engine and
faster-whisper, inside it for the job. WER:
``bench/run_accuracy.py``'s scoring (set normaliser, bootstrap intervals over files, paired
difference to faster-whisper). The load average is recorded before and after each system: on a
shared machine compare the ratios of one run, not absolute times.

The job's fixed cost is given twice: ``spark job`` − ``spark job steady`` on the whole set (one
run each; two walls of ~40 s taken a minute apart, so the machine's drift is in it), and on
``WARMUP_FILES`` files, the median of ``--fixed-repeats`` fresh processes − the median of as many
steady runs, alternating (:func:`run_fixed_small`).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import eval_corpus  # noqa: E402
import run_accuracy  # noqa: E402

JOB = "spark job"
STEADY = "spark job steady"
FW = run_accuracy.ANCHOR
FW_BATCHED = "faster-whisper batched"
QUICK_FILES = 120
WARMUP_FILES = 8


def default_strategy() -> str:
    from sparkasr.whisper import WhisperOptions

    return WhisperOptions().strategy


def systems_all() -> List[str]:
    return [JOB, STEADY, f"engine {default_strategy()}", FW, FW_BATCHED]


def spread(entries: list, n: int) -> list:
    """``n`` entries evenly spaced in name order (all of them when there are fewer)."""
    entries = sorted(entries, key=lambda e: e.name)
    if len(entries) <= n:
        return entries
    return [entries[i * len(entries) // n] for i in range(n)]


def loadavg() -> List[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- the job -----------------------------------------------------------------------------------


def _env() -> dict:
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env["PYTHONPATH"] = os.pathsep.join([str(common.ROOT / "python"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def write_manifest(entries, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "reference", "name"])
        for e in entries:
            w.writerow([e.path, e.reference, e.name])


def job_texts(out: Path, entries) -> List[str]:
    return run_accuracy.record_texts(glob.glob(str(out / "current" / "part-*.json")), entries)


def job_args(manifest: Path, out: Path, model: str, language: str, threads: int) -> List[str]:
    return [
        "transcribe",
        str(manifest),
        "--output",
        str(out),
        "--master",
        f"local[{threads}]",
        "--quiet",
        "--model",
        model,
        "--language",
        language,
    ]


def parse_phases(stderr: str) -> dict:
    """The job's profile from its INFO log: the summary line, plus the spans logged after it."""
    phases: dict = {}
    late: Dict[str, float] = {}
    for line in stderr.splitlines():
        if line.startswith("sparkasr.job phases "):
            phases = json.loads(line[len("sparkasr.job phases ") :])
            late = {}
        elif line.startswith("sparkasr.job phase ") and phases:
            name, _, secs = line[len("sparkasr.job phase ") :].rpartition(": ")
            late[name] = round(float(secs.split()[0]), 3)
    if phases:
        phases["driver_s"].update(late)
    return phases


def run_job(model: str, entries, language: str, threads: int, workdir: Path) -> Tuple[List[str], float, dict]:
    """``sparkasr transcribe`` in a fresh process: texts, wall time (process start to exit), phases."""
    manifest = workdir / "job.csv"
    write_manifest(entries, manifest)
    out = workdir / "out"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "cli", "--"]
    cmd += job_args(manifest, out, model, language, threads)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"sparkasr transcribe failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return job_texts(out, entries), wall, parse_phases(proc.stderr)


def run_job_steady(model: str, entries, language: str, threads: int, workdir: Path) -> Tuple[List[str], float, dict]:
    """The job twice in one process and session: the second run's texts, wall time and phases
    (and the first run's, under ``cold``)."""
    manifest = workdir / "job.csv"
    write_manifest(entries, manifest)
    warmup = workdir / "warmup.csv"
    write_manifest(entries[:WARMUP_FILES], warmup)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "steady", "--"]
    cmd += [str(warmup), str(manifest), str(workdir), model, language, str(threads)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"steady job failed ({proc.returncode}): {proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return job_texts(workdir / "out2", entries), res["runs"][1]["wall_s"], res


def child_cli(argv: Sequence[str]) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("sparkasr.job").setLevel(logging.INFO)
    from sparkasr.cli import main

    return main(list(argv))


def child_steady(argv: Sequence[str]) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s", stream=sys.stderr)
    warmup, manifest, workdir, model, language, threads = argv
    from sparkasr.cli import _spark_session
    from sparkasr.job.run import run_transcription

    t0 = time.perf_counter()
    spark = _spark_session(f"local[{threads}]")
    start_s = time.perf_counter() - t0
    runs = []
    for k, m in ((1, warmup), (2, manifest)):
        t = time.perf_counter()
        res = run_transcription(
            spark, [m], str(Path(workdir) / f"out{k}"), model=model, whisper_params={"language": language}
        )
        runs.append({"wall_s": round(time.perf_counter() - t, 3), "phases": res.phases, "audio_s": res.audio_s})
    spark.stop()
    print(json.dumps({"spark_start_s": round(start_s, 3), "runs": runs}))
    return 0


def run_fixed_small(model: str, entries, language: str, threads: int, repeats: int) -> dict:
    """The fixed cost where the work is small (a few files, a second or two of inference), so that
    the machine's drift over a long run does not blur it: ``repeats`` fresh ``sparkasr transcribe``
    processes and ``repeats`` steady runs (second run in one session), alternating; the medians'
    difference."""
    e2e, steady = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="many_files_") as tmp:
            e2e.append(round(run_job(model, entries, language, threads, Path(tmp))[1], 3))
        with tempfile.TemporaryDirectory(prefix="many_files_") as tmp:
            steady.append(round(run_job_steady(model, entries, language, threads, Path(tmp))[1], 3))
    fixed = statistics.median(e2e) - statistics.median(steady)
    return {"files": len(entries), "e2e_s": e2e, "steady_s": steady, "fixed_s": round(fixed, 1)}


# -- the others --------------------------------------------------------------------------------


def run_fw_batched(model: str, samples: list, language: str, threads: int) -> Tuple[List[str], float]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    fw = WhisperModel(
        run_accuracy.model_path(model), device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=True
    )
    pipe = BatchedInferencePipeline(fw)
    t0 = time.perf_counter()
    texts = ["".join(s.text for s in pipe.transcribe(x, language=language)[0]).strip() for x in samples]
    return texts, time.perf_counter() - t0


# -- report ------------------------------------------------------------------------------------


def render(res: dict) -> str:
    m = res["machine"]
    flags = (" --quick" if res["quick"] else "") + (
        f" --files {res['files_per_set']}" if res.get("files_per_set") else ""
    )
    lines = [
        "# Many short files: the job, the engine, faster-whisper",
        "",
        f"Generated by `bench/run_many_files.py{flags}` ({res['finished_utc'][:10]}, "
        f"code `{m.get('git')}`), {res['threads']} threads on {m.get('nproc')} cores, CTranslate2 int8, "
        f"beam 5. Load average (1 min) before/after each system in the last column: on a shared machine the ratios "
        "of one run mean more than the times. RTFx = audio s / wall s; the job's wall is end to end (process, JVM "
        "and Spark start, listing, the run, the current view, the evaluation report, Spark stop); `steady` is a "
        "second run in the same session; the engine and faster-whisper are timed after their model loads. "
        "WER in % with 95 % bootstrap intervals over files; Δ = paired difference to faster-whisper in points.",
        "",
    ]
    if res.get("first_job_s") is not None:
        archive = res.get("first_job_class_archive_s")
        lines += [
            f"Before the timed rows, a job on {WARMUP_FILES} files: {res['first_job_s']:.1f} s end to end"
            + (
                f", of which {archive:.1f} s writing the driver JVM's class archive (once per machine, Java and "
                "Spark; every later job maps it)."
                if archive
                else " (the driver JVM's class archive already existed; the first job on a machine writes it, once)."
            ),
            "",
        ]
    for part in res["parts"]:
        lines += [
            f"## {part['set']}, {part['model']}: {part['files']} files, {part['audio_s'] / 60:.1f} min of audio",
            "",
            "| system | wall s | RTFx | × faster-whisper | WER % [95 % CI] | Δ WER pts [95 % CI] | load before → after |",
            "|---|---|---|---|---|---|---|",
        ]
        fw_wall = next((r["wall_s"] for r in part["rows"] if r["system"] == FW), None)
        for r in part["rows"]:
            speed = f"{fw_wall / r['wall_s']:.2f}" if fw_wall and r["wall_s"] else "–"
            la = part["load"].get(r["system"], [[None], [None]])
            lines.append(
                f"| {r['system']} | {r['wall_s']:.1f} | {r['rtfx']:.2f} | {speed} | {run_accuracy._rate(r['wer'])} | "
                f"{run_accuracy._diff(r.get('diff_wer'))} | {la[0][0]} → {la[1][0]} |"
            )
        lines.append("")
        for k, v in part.get("ratios", {}).items():
            lines.append(f"- {k}: **{v}**")
        small = part.get("fixed_small")
        if small:
            lines.append(
                f"- job fixed cost on {small['files']} files (median of {len(small['e2e_s'])} fresh processes − "
                f"median of {len(small['steady_s'])} steady runs, alternating), s: **{small['fixed_s']}** "
                f"(end to end {', '.join(f'{x:.1f}' for x in small['e2e_s'])}; "
                f"steady {', '.join(f'{x:.1f}' for x in small['steady_s'])})"
            )
        lines.append("")
        prof = part.get("profile", {})
        if prof:
            lines += ["Job phases (s; workers: summed over tasks):", "", "| phase | end to end | steady (2nd run) |"]
            lines.append("|---|---|---|")
            e2e = prof.get("e2e", {})
            st = prof.get("steady", {})
            names = list(dict.fromkeys(list(e2e.get("driver_s", {})) + list(st.get("driver_s", {}))))
            for n in names:
                lines.append(f"| {n} | {e2e.get('driver_s', {}).get(n, '–')} | {st.get('driver_s', {}).get(n, '–')} |")
            wn = list(dict.fromkeys(list(e2e.get("workers", {})) + list(st.get("workers", {}))))
            for n in wn:

                def w(p):
                    v = p.get("workers", {}).get(n)
                    return f"{v['total_s']} ({v['count']}×)" if v else "–"

                lines.append(f"| workers: {n} | {w(e2e)} | {w(st)} |")
            lines.append("")
    return "\n".join(lines) + "\n"


def ratios(rows: Dict[str, dict], job_e2e_wall: Optional[float], engine: str) -> Dict[str, float]:
    out = {}
    w = {s: r["wall_s"] for s, r in rows.items()}
    if JOB in w and FW in w:
        out["job end to end vs faster-whisper sequential (speed-up)"] = round(w[FW] / w[JOB], 2)
    if JOB in w and FW_BATCHED in w:
        out["job end to end vs faster-whisper batched (speed-up)"] = round(w[FW_BATCHED] / w[JOB], 2)
    if STEADY in w and engine in w:
        out["job steady state / engine in one process (wall ratio)"] = round(w[STEADY] / w[engine], 3)
    if JOB in w and STEADY in w:
        out["job fixed cost (end to end − steady), s"] = round(w[JOB] - w[STEADY], 1)
    if engine in w and FW in w:
        out["engine vs faster-whisper sequential (speed-up)"] = round(w[FW] / w[engine], 2)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        mode, rest = argv[1], argv[3:]
        return child_cli(rest) if mode == "cli" else child_steady(rest)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_FILES} English prompts, tiny.en")
    ap.add_argument("--sets", default="", help="asterisk-en, asterisk-es (default: both; --quick: asterisk-en)")
    ap.add_argument(
        "--models", default="", help="tiny.en, base (default: tiny.en and base on English, base on Spanish)"
    )
    ap.add_argument("--systems", default="", help="subset (comma-separated) of: " + ", ".join(systems_all()))
    ap.add_argument(
        "--files", type=int, default=0, help=f"files per set, spread in name order (--quick: {QUICK_FILES})"
    )
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument(
        "--fixed-repeats",
        type=int,
        default=3,
        help=f"fresh and steady jobs on {WARMUP_FILES} files, for the fixed cost where the work is small (0: none)",
    )
    ap.add_argument("--name", default="")
    args = ap.parse_args(argv)
    reason = eval_corpus.missing_reason()
    if reason:
        print(f"run_many_files: {reason}", file=sys.stderr)
        return 2
    systems = systems_all()
    if args.systems:
        want = [s.strip() for s in args.systems.split(",")]
        systems = [s for s in systems if s in want]
    engine = f"engine {default_strategy()}"
    sets = args.sets.split(",") if args.sets else (["asterisk-en"] if args.quick else ["asterisk-en", "asterisk-es"])
    name = args.name or ("many_files_quick" if args.quick else "many_files")
    res: dict = {
        "quick": args.quick,
        "files_per_set": args.files or None,
        "threads": args.threads,
        "systems": systems,
        "parts": [],
    }
    (common.BENCH / ".accuracy").mkdir(exist_ok=True)
    t_start = time.perf_counter()
    for set_name in sets:
        entries = eval_corpus.load_set(set_name)
        if args.files or args.quick:
            entries = spread(entries, args.files or QUICK_FILES)
        language, _ = eval_corpus.set_info(set_name)
        samples = run_accuracy.decode(entries)
        audio_s = sum(len(x) for x in samples) / 16000
        models = ["tiny.en"] if args.quick else run_accuracy.models_for(language)
        if args.models:
            models = [m for m in models if m in args.models.split(",")]
        for model in models:
            common.log(f"{set_name} {model}: {len(entries)} files, {audio_s / 60:.1f} min")
            outputs: Dict[str, Tuple[List[str], float]] = {}
            load: Dict[str, list] = {}
            profile: dict = {}
            if JOB in systems and "first_job_s" not in res:
                # The first `sparkasr transcribe` on a machine writes the driver JVM's class archive
                # (sparkasr.spark.classcache); every later one maps it. That one-time cost is measured
                # here, on a few files, and kept out of the timed rows.
                with tempfile.TemporaryDirectory(prefix="many_files_") as tmp:
                    _, first_wall, first_phases = run_job(
                        model, entries[:WARMUP_FILES], language, args.threads, Path(tmp)
                    )
                res["first_job_s"] = round(first_wall, 3)
                res["first_job_class_archive_s"] = first_phases.get("driver_s", {}).get("class archive")
                common.log(
                    f"  first job on this machine ({WARMUP_FILES} files): {first_wall:.1f} s, class archive "
                    f"written in {res['first_job_class_archive_s'] or 0:.1f} s (none: one existed)"
                )
            for system in systems:
                before = loadavg()
                common.log(f"  {system} (load {before})")
                with tempfile.TemporaryDirectory(prefix="many_files_") as tmp:
                    if system == JOB:
                        texts, wall, phases = run_job(model, entries, language, args.threads, Path(tmp))
                        profile["e2e"] = phases
                        profile["e2e_wall_s"] = round(wall, 3)
                    elif system == STEADY:
                        texts, wall, steady = run_job_steady(model, entries, language, args.threads, Path(tmp))
                        profile["steady"] = steady["runs"][1]["phases"]
                        profile["steady_first_run"] = steady["runs"][0]
                        profile["steady_spark_start_s"] = steady["spark_start_s"]
                        profile["steady_wall_s"] = round(wall, 3)
                    elif system == FW:
                        texts, wall = run_accuracy.run_anchor(model, samples, language, args.threads)
                    elif system == FW_BATCHED:
                        texts, wall = run_fw_batched(model, samples, language, args.threads)
                    else:
                        names = [e.name for e in entries]
                        texts, wall = run_accuracy.run_engine(
                            model, samples, names, language, system.split()[-1], args.threads
                        )
                outputs[system] = (texts, wall)
                load[system] = [before, loadavg()]
                common.log(f"    {wall:.1f} s, RTFx {common.rtfx(audio_s, wall)} (load after {load[system][1]})")
                partial = {"set": set_name, "model": model, "walls": {s: w for s, (_, w) in outputs.items()}}
                (common.BENCH / ".accuracy" / f"{name}.partial.json").write_text(
                    json.dumps({**partial, "load": load, "profile": profile}, indent=1)
                )
            fixed_small = None
            if JOB in systems and STEADY in systems and args.fixed_repeats > 0:
                fixed_small = run_fixed_small(model, entries[:WARMUP_FILES], language, args.threads, args.fixed_repeats)
                common.log(f"    fixed cost on {WARMUP_FILES} files: {fixed_small['fixed_s']} s ({fixed_small})")
            rows = run_accuracy.short_rows(set_name, model, entries, outputs, audio_s)
            by = {r["system"]: r for r in rows}
            part = {
                "set": set_name,
                "model": model,
                "language": language,
                "files": len(entries),
                "audio_s": round(audio_s, 2),
                "rows": rows,
                "load": load,
                "ratios": ratios(by, None, engine),
                "profile": profile,
                "fixed_small": fixed_small,
            }
            res["parts"].append(part)
            for r in rows:
                common.log(
                    f"    {r['system']:24s} {r['wall_s']:7.1f} s  RTFx {r['rtfx']:6.2f}  WER {run_accuracy._rate(r['wer'])}"
                    f"  Δ {run_accuracy._diff(r.get('diff_wer'))}"
                )
            for k, v in part["ratios"].items():
                common.log(f"    {k}: {v}")
    res["total_wall_s"] = round(time.perf_counter() - t_start, 1)
    common.write_result_md(name, res, render)
    prof_name = name.replace("many_files", "many_files_profile", 1)
    common.write_result(
        prof_name,
        {
            "quick": args.quick,
            "threads": args.threads,
            "profiles": [
                {"set": p["set"], "model": p["model"], "files": p["files"], "audio_s": p["audio_s"], **p["profile"]}
                for p in res["parts"]
            ],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
