"""Accuracy benchmark on the evaluation corpus (bench/eval_corpus.py): our pipeline next to raw
faster-whisper, same model, same audio, same machine and cores.

    scripts/fetch_eval_corpus.sh && python bench/run_accuracy.py   # all of it -> results/accuracy.{json,md}
    python bench/run_accuracy.py --quick     # the CI subset (every 8th file, the 3-min long files)
    python bench/run_accuracy.py --parts short,lid --sets asterisk-en
    python bench/run_accuracy.py --sets asterisk-es --models base --resume   # add to a run of the same name

Systems, per set and model (tiny.en on English sets, Whisper base on every set; CTranslate2 int8,
beam 5, ``--threads`` threads, the same 16-kHz samples decoded once with ``sparkasr.audio``):

* ``faster-whisper``: the anchor, ``WhisperModel.transcribe(samples, language=..., beam_size=5)``,
  one file at a time (faster-whisper's sequential long-form algorithm on long files);
* ``engine batch`` (our default), ``engine sequential``, ``engine pack``: ``WhisperEngine`` with
  ``strategy=`` each of them, all files of a set in one ``transcribe_batch`` call (batches of 8).
  On files of at most 30 s, batch and sequential run the same code (they differ on longer rows);
* ``spark job``: ``sparkasr transcribe MANIFEST --master local[THREADS]`` with default options
  (a fresh JVM and Spark session: its RTFx is end to end, start-up included).

Reported per set, model and system: WER and CER (set normaliser on both sides, see
eval_sources.tsv; Spanish with diacritics removed) with 95 % bootstrap intervals over files
(10 000 resamples), the paired difference to the anchor with its interval, S/D/I, RTFx (audio s
/ transcription wall s), and the non-speech files that got text. Long-form files: the same, with
intervals over the prompts, and whether every prompt came back once (``bench/accuracy.py``).
Language identification: Whisper base with ``language`` unset on the speech files of at least 2 s
(the language our engine detects: CTranslate2's ``detect_language`` on the first window).

WER/CER do not depend on machine load; RTFx does (a shared machine gives indicative figures only).
Transcripts go to ``bench/.accuracy/<name>/`` (ignored) for error analysis.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402
import common  # noqa: E402
import eval_corpus  # noqa: E402
from sparkasr.evaluation import ErrorCounts, bootstrap_difference, bootstrap_rate  # noqa: E402

ANCHOR = "faster-whisper"
STRATEGIES = ("batch", "sequential", "pack")
SPARK = "spark job"
SYSTEMS = [ANCHOR] + [f"engine {s}" for s in STRATEGIES] + [SPARK]  # in the table's order
DEFAULTS = ("engine batch", SPARK)  # our default pipeline, as a library call and as the job
TARGET = 0.005  # our default within +0.5 WER points of the anchor, by the paired interval
RESAMPLES = 10000
LID_MIN_S = 2.0


def models_for(language: str) -> List[str]:
    return ["tiny.en", "base"] if language == "en" else ["base"]


def model_path(name: str) -> str:
    from sparkasr.whisper.models import resolve_whisper_model

    return resolve_whisper_model(None if name == "tiny.en" else name).path


def decode(entries) -> list:
    from sparkasr.audio import decode_audio

    return [decode_audio(e.path) for e in entries]


# -- systems -----------------------------------------------------------------------------------


def run_anchor(model: str, samples: list, language: str, threads: int, compute_type: str = "int8"):
    """Raw faster-whisper, one call per file: the texts and the wall time."""
    from faster_whisper import WhisperModel

    fw = WhisperModel(
        model_path(model), device="cpu", compute_type=compute_type, cpu_threads=threads, local_files_only=True
    )
    t0 = time.perf_counter()
    texts = ["".join(s.text for s in fw.transcribe(x, language=language, beam_size=5)[0]).strip() for x in samples]
    return texts, time.perf_counter() - t0


def run_engine(model: str, samples: list, names: list, language: str, strategy: str, threads: int, compute_type="int8"):
    """Our engine, all files in one ``transcribe_batch`` call: the texts and the wall time."""
    from sparkasr.records import AudioItem
    from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions

    opts = WhisperOptions(language="" if model == "tiny.en" else language, strategy=strategy)
    eng = WhisperEngine(model_path(model), opts, RuntimeOptions(cpu_threads=threads, compute_type=compute_type))
    items = [AudioItem(x, source=n) for x, n in zip(samples, names)]
    t0 = time.perf_counter()
    out = eng.transcribe_batch(items)
    wall = time.perf_counter() - t0
    errors = [t.error for t in out if t.error]
    if errors:
        raise RuntimeError(f"engine errors: {errors[:3]}")
    return [t.text for t in out], wall


def run_spark_job(model: str, entries, language: str, threads: int, workdir: Path) -> Tuple[List[str], float]:
    """``sparkasr transcribe`` on a manifest of ``entries`` (path, reference, name): the texts in
    the entries' order and the job's wall time (JVM start to records committed)."""
    manifest = workdir / "job.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "reference", "name"])
        for e in entries:
            w.writerow([e.path, e.reference, e.name])
    out = workdir / "out"
    cmd = [sys.executable, "-m", "sparkasr.cli", "transcribe", str(manifest), "--output", str(out)]
    cmd += ["--master", f"local[{threads}]", "--quiet", "--no-report", "--model", model, "--language", language]
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env["PYTHONPATH"] = os.pathsep.join([str(common.ROOT / "python"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"sparkasr transcribe failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return record_texts(glob.glob(str(out / "transcripts" / "run=*" / "part-*.json")), entries), wall


def record_texts(parts: List[str], entries) -> List[str]:
    """The text of each entry (by name) in the job's JSON-lines record files ``parts``; an error row
    or a missing record raises."""
    by_name: Dict[str, str] = {}
    for part in parts:
        for line in Path(part).read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                if r.get("error"):
                    raise RuntimeError(f"job error row for {r.get('name')}: {r['error']}")
                by_name[r["name"]] = r.get("text") or ""
    missing = [e.name for e in entries if e.name not in by_name]
    if missing:
        raise RuntimeError(f"job returned no record for {missing[:5]}")
    return [by_name[e.name] for e in entries]


def previous_outputs(texts_file: Path, rows: List[dict], entries) -> Dict[str, Tuple[List[str], float]]:
    """The texts and wall times a run before measured for one part (its texts file and its rows),
    per system, in ``entries``' order; systems missing a text for an entry are left out."""
    if not texts_file.exists():
        return {}
    texts = json.loads(texts_file.read_text(encoding="utf-8"))
    wall = {r["system"]: r["wall_s"] for r in rows}
    out = {}
    for system, by_name in texts.items():
        if system in wall and all(e.name in by_name for e in entries):
            out[system] = ([by_name[e.name] for e in entries], wall[system])
    return out


def run_systems(model, entries, samples, language, threads, systems, workdir) -> Dict[str, Tuple[List[str], float]]:
    names = [e.name for e in entries]
    out = {}
    for system in systems:
        common.log(f"  {system} ({model}, {len(entries)} files)")
        if system == ANCHOR:
            out[system] = run_anchor(model, samples, language, threads)
        elif system == SPARK:
            with tempfile.TemporaryDirectory(dir=workdir) as tmp:
                out[system] = run_spark_job(model, entries, language, threads, Path(tmp))
        else:
            out[system] = run_engine(model, samples, names, language, system.split()[-1], threads)
    return out


# -- scoring -----------------------------------------------------------------------------------


def _iv(iv) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in iv.to_dict().items()}


def verdict(diff: dict) -> str:
    """The target by the paired interval: met when its upper end is at most +0.5 points."""
    if diff["high"] <= TARGET:
        return "met"
    if diff["low"] > TARGET:
        return "missed"
    return "undecided"


def short_rows(set_name, model, entries, outputs, audio_s) -> List[dict]:
    _, normalizer = eval_corpus.set_info(set_name)
    scored = {s: accuracy.score_files(entries, texts, normalizer) for s, (texts, _) in outputs.items()}
    anchor = scored.get(ANCHOR)
    rows = []
    for system, (texts, wall) in outputs.items():
        sc = scored[system]
        t = sc.total
        row = {
            "set": set_name,
            "model": model,
            "system": system,
            "normalizer": normalizer,
            "files": len(entries),
            "speech_files": len(sc.counts),
            "ref_words": t.ref_len,
            "substitutions": t.substitutions,
            "deletions": t.deletions,
            "insertions": t.insertions,
            "wer": _iv(bootstrap_rate(sc.counts, "wer", resamples=RESAMPLES)),
            "cer": _iv(bootstrap_rate(sc.counts, "cer", resamples=RESAMPLES)),
            "nonspeech_files": sc.nonspeech_files,
            "nonspeech_with_text": sc.nonspeech_text,
            "audio_s": round(audio_s, 2),
            "wall_s": round(wall, 2),
            "rtfx": common.rtfx(audio_s, wall),
        }
        if anchor is not None and system != ANCHOR:
            row["diff_wer"] = _iv(bootstrap_difference(sc.counts, anchor.counts, "wer", resamples=RESAMPLES))
            row["diff_cer"] = _iv(bootstrap_difference(sc.counts, anchor.counts, "cer", resamples=RESAMPLES))
            if system in DEFAULTS:
                row["target"] = verdict(row["diff_wer"])
        rows.append(row)
    return rows


def long_rows(set_name, model, entries, outputs, audio_s) -> List[dict]:
    _, normalizer = eval_corpus.set_info(set_name)
    parts = [eval_corpus.read_parts(e) for e in entries]
    scored = {}
    for system, (texts, _) in outputs.items():
        per_file = [accuracy.score_long(p, t, normalizer) for p, t in zip(parts, texts)]
        scored[system] = per_file
    anchor = scored.get(ANCHOR)
    rows = []
    for system, (texts, wall) in outputs.items():
        per_file = scored[system]
        prompts = [c for f in per_file for c in f.prompts]
        t = ErrorCounts.sum(prompts)
        row = {
            "set": set_name,
            "model": model,
            "system": system,
            "normalizer": normalizer,
            "files": [e.name for e in entries],
            "prompts": len(prompts),
            "ref_words": t.ref_len,
            "substitutions": t.substitutions,
            "deletions": t.deletions,
            "insertions": t.insertions,
            "wer": _iv(bootstrap_rate(prompts, "wer", resamples=RESAMPLES)),
            "dropped": [n for f in per_file for n in f.dropped],
            "repeated": [n for f in per_file for n in f.repeated],
            "complete": all(f.complete for f in per_file),
            "audio_s": round(audio_s, 2),
            "wall_s": round(wall, 2),
            "rtfx": common.rtfx(audio_s, wall),
        }
        if anchor is not None and system != ANCHOR:
            base = [c for f in anchor for c in f.prompts]
            row["diff_wer"] = _iv(bootstrap_difference(prompts, base, "wer", resamples=RESAMPLES))
        rows.append(row)
    return rows


def lid(entries_by_set: Dict[str, list], threads: int) -> dict:
    """Whisper base, language unset: the detected language of each speech file >= 2 s."""
    from sparkasr.records import AudioItem
    from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions

    # detection does not depend on the decoding options: decode one token, greedy, no fallback
    opts = WhisperOptions(language="", max_new_tokens=1, beam_size=1, temperature=(0.0,), timestamps="none")
    eng = WhisperEngine(model_path("base"), opts, RuntimeOptions(cpu_threads=threads))
    result = {"model": "base", "min_duration_s": LID_MIN_S, "sets": {}, "confusion": [], "misidentified": []}
    confusion: Counter = Counter()
    total = correct = 0
    for set_name, entries in entries_by_set.items():
        language, _ = eval_corpus.set_info(set_name)
        chosen = [e for e in entries if e.speech and e.duration_s >= LID_MIN_S]
        samples = decode(chosen)
        common.log(f"  LID {set_name}: {len(chosen)} files")
        t0 = time.perf_counter()
        out = eng.transcribe_batch([AudioItem(x, source=e.name) for x, e in zip(samples, chosen)])
        wall = time.perf_counter() - t0
        ok = 0
        for e, t in zip(chosen, out):
            confusion[(language, t.language)] += 1
            if t.language == language:
                ok += 1
            else:
                result["misidentified"].append(
                    {
                        "set": set_name,
                        "name": e.name,
                        "detected": t.language,
                        "probability": round(t.language_probability, 3),
                    }
                )
        total += len(chosen)
        correct += ok
        result["sets"][set_name] = {
            "language": language,
            "files": len(chosen),
            "correct": ok,
            "accuracy": round(ok / len(chosen), 4) if chosen else None,
            "wall_s": round(wall, 2),
        }
    result["files"] = total
    result["accuracy"] = round(correct / total, 4) if total else None
    result["confusion"] = [{"true": a, "detected": b, "files": n} for (a, b), n in sorted(confusion.items())]
    return result


# -- report ------------------------------------------------------------------------------------


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _rate(iv: dict) -> str:
    return f"{100 * iv['estimate']:.2f} [{100 * iv['low']:.2f}, {100 * iv['high']:.2f}]"


def _diff(iv: Optional[dict]) -> str:
    if not iv:
        return "–"
    return f"{_pts(iv['estimate'])} [{_pts(iv['low'])}, {_pts(iv['high'])}]"


def render(res: dict) -> str:
    m = res["machine"]
    lines = [
        "# Accuracy on real telephone speech",
        "",
        f"Generated by `bench/run_accuracy.py{' --quick' if res['quick'] else ''}` "
        f"({time.strftime('%Y-%m-%d', time.gmtime())}, code `{m.get('git')}`), "
        f"{res['threads']} threads on {m['nproc']} cores ({m['cpu_model']}), "
        f"faster-whisper {m['versions'].get('faster-whisper')}, CTranslate2 {m['versions'].get('ctranslate2')} "
        f"({res.get('ct2_backend', '?')}), int8, beam 5. "
        + (
            f"Wall time of the last invocation: {res['total_wall_s'] / 60:.0f} min; {len(res.get('resumed', []))} parts were "
            "measured by earlier invocations of the same name (`--resume`)"
            + (f", {len(res['kept'])} systems' texts kept from them (`--redo`)" if res.get("kept") else "")
            + f". {full_run(res)}"
            if res.get("resumed") or res.get("kept")
            else f"Full run: {res['total_wall_s'] / 60:.0f} min."
        ),
        "",
        "Corpus: Debian's Asterisk core prompts (CC-BY-SA-3.0), professional recordings of one voice per "
        "language, 8-kHz mono telephone band, resampled to 16 kHz (soxr) once for every system; built by "
        "`scripts/fetch_eval_corpus.sh` (`bench/eval_corpus.py`); plus the 10 vendored pocketsphinx clips. "
        + (
            "**Quick run: the CI subset only** (every 8th speech file, all non-speech files, the 3-min long files). "
            if res["quick"]
            else ""
        )
        + "WER/CER in % with 95 % bootstrap intervals over files (long-form: over prompts), 10 000 resamples; "
        "Δ = paired difference to raw faster-whisper (same model, same files), in points, with its paired "
        "interval: an interval that contains 0 means no measurable difference. English: Whisper's English "
        "normaliser on both sides; Spanish: Whisper's basic normaliser with **diacritics removed on both sides** "
        "(the Spanish transcripts are written without accents). Non-speech files (tones, beeps, silence) "
        "are not in WER; their expected text is empty.",
        "",
        "## Short prompts",
        "",
        "| set | model | system | files | words | WER % [95 % CI] | Δ WER pts [95 % CI] | CER % [95 % CI] | Δ CER pts | S/D/I | non-speech with text | RTFx |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res.get("short", []):
        lines.append(
            f"| {r['set']} | {r['model']} | {r['system']} | {r['speech_files']} | {r['ref_words']} | {_rate(r['wer'])} | "
            f"{_diff(r.get('diff_wer'))} | {_rate(r['cer'])} | {_diff(r.get('diff_cer'))} | "
            f"{r['substitutions']}/{r['deletions']}/{r['insertions']} | "
            f"{len(r['nonspeech_with_text'])} of {r['nonspeech_files']} | {r['rtfx']} |"
        )
    targets = [r for r in res.get("short", []) if "target" in r]
    if targets:
        lines += [
            "",
            "Target (our default within +0.5 WER points of the anchor, by the upper end of the paired interval):",
            "",
        ]
        for r in targets:
            lines.append(f"- {r['set']}, {r['model']}, {r['system']}: Δ {_diff(r['diff_wer'])} → **{r['target']}**")
    ns = [(r, n, t) for r in res.get("short", []) for n, t in sorted(r["nonspeech_with_text"].items())]
    if ns:
        lines += ["", "Non-speech files that got text:", ""]
        for r, n, t in ns:
            lines.append(f"- {r['set']} `{n}`, {r['model']}, {r['system']}: “{t}”")
    if res.get("long"):
        lines += [
            "",
            "## Long-form sets",
            "",
            "Concatenations of speech prompts in a seeded order with 0.2–2 s gaps of low noise and a few "
            "non-speech prompts between them; reference: the prompts joined. Complete = every prompt came back "
            "once (none dropped: more than half its words deleted; none repeated: a copy inserted next to it).",
            "",
            "| set | model | system | files | prompts | words | WER % [95 % CI, over prompts] | Δ WER pts [95 % CI] | S/D/I | dropped | repeated | complete | RTFx |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in res["long"]:
            lines.append(
                f"| {r['set']} | {r['model']} | {r['system']} | {len(r['files'])} | {r['prompts']} | {r['ref_words']} | "
                f"{_rate(r['wer'])} | {_diff(r.get('diff_wer'))} | {r['substitutions']}/{r['deletions']}/{r['insertions']} | "
                f"{', '.join(r['dropped']) or '–'} | {', '.join(r['repeated']) or '–'} | {'yes' if r['complete'] else '**no**'} | {r['rtfx']} |"
            )
    if res.get("lid"):
        li = res["lid"]
        lines += [
            "",
            "## Language identification",
            "",
            f"Whisper base, `language` unset, speech files of at least {li['min_duration_s']:.0f} s "
            f"({li['files']} files): accuracy **{100 * li['accuracy']:.1f} %**.",
            "",
            "| set | files | correct | accuracy |",
            "|---|---|---|---|",
        ]
        for s, v in li["sets"].items():
            lines.append(f"| {s} | {v['files']} | {v['correct']} | {100 * v['accuracy']:.1f} % |")
        lines += [
            "",
            "Confusion (true → detected: files): "
            + ", ".join(f"{c['true']} → {c['detected']}: {c['files']}" for c in li["confusion"]),
        ]
        if li["misidentified"]:
            lines += [
                "",
                "Misidentified: "
                + ", ".join(
                    f"`{x['name']}` ({x['set']}) → {x['detected']} ({x['probability']})" for x in li["misidentified"]
                ),
            ]
    lines += render_numerics()
    lines += [
        "",
        "RTFx = audio seconds / transcription wall seconds (model load excluded; the Spark job's includes "
        "JVM start-up, session and model load). RTFx depends on machine load "
        f"(load average at start {m['load_avg_at_start']}): indicative. WER/CER do not.",
        "",
    ]
    return "\n".join(lines)


def render_numerics() -> List[str]:
    """The section of bench/run_numerics.py's results (results/numerics.json), when there are any."""
    path = common.RESULTS / "numerics.json"
    if not path.exists():
        return []
    res = json.loads(path.read_text())
    lines = [
        "",
        "## What moves results between machines (`bench/run_numerics.py`)",
        "",
        f"The same inputs decoded with tiny.en by our default and by faster-whisper under process settings in which "
        f"machines differ, each in a fresh process, on this machine ({res['machine']['cpu_model']}). `intel-like` asks "
        "for what CTranslate2 picks on an Intel AVX-512 CPU (MKL, its AVX-512 code; MKL's own dispatch still sees this "
        "CPU); `pinned` is `portable_cpu_env()` (oneDNN, AVX-512 VNNI kernels), what the tests set. Old rule: the "
        "deleted long-file test's point estimates (ours <= faster-whisper + 0.5 points); new rule: the lower end of "
        "the paired interval <= +0.5 points (what the tests assert now). Changed: texts that differ from `default`'s "
        "(ours / faster-whisper).",
    ]
    for inp, rows in res["inputs"].items():
        lines += [
            "",
            f"**{inp}**",
            "",
            "| config | settings | errors ours / faster-whisper (words) | Δ WER pts [95 % CI] | old rule | new rule | changed |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in rows.items():
            cfg = res["configs"][name]
            env = " ".join(f"{k}={v}" for k, v in cfg["env"].items()) or "(none)"
            lines.append(
                f"| {name} | {env}, {cfg['compute_type']}, {cfg['threads']} threads | {r['ours_errors']} / "
                f"{r['anchor_errors']} ({r['words']}) | {_diff(r['diff_wer'])} | {'pass' if r['old_rule_passes'] else '**fail**'} | "
                f"{'pass' if r['new_rule_passes'] else '**fail**'} | {r.get('ours_texts_changed', 0)} / "
                f"{r.get('anchor_texts_changed', 0)} of {r['texts']} |"
            )
    return lines


def ct2_backend() -> str:
    """What CTranslate2 selected on this CPU (ISA, GEMM backend), from its own log."""
    code = (
        f"import sys; sys.path.insert(0, {str(common.ROOT / 'python')!r}); import ctranslate2; "
        "from sparkasr.whisper.models import resolve_whisper_model; ctranslate2.models.Whisper(resolve_whisper_model(None).path)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ, CT2_VERBOSE="1"), capture_output=True, text=True
    )
    picked = {}
    for line in proc.stderr.splitlines():
        for key in ("Selected ISA", "GEMM_S8 backend"):
            if key in line:
                picked[key] = line.split(key + ":", 1)[1].strip().split(" ")[0]
    return f"ISA {picked.get('Selected ISA', '?')}, int8 GEMM {picked.get('GEMM_S8 backend', '?')}"


def full_run(res: dict) -> str:
    """What measuring the table takes: the sum of its parts' wall times (each part: decoding the
    audio, loading the models, the systems it shows, scoring) and of the LID, and the code each part
    was measured with; empty when a part did not record its time."""
    parts: Dict[Tuple[str, str, str], dict] = {}
    for kind in ("short", "long"):
        for r in res.get(kind, []):
            parts.setdefault((kind, r["set"], r["model"]), r)
    if not parts or any("part_wall_s" not in r for r in parts.values()):
        return ""
    total = sum(r["part_wall_s"] for r in parts.values()) + res.get("lid", {}).get("wall_s", 0.0)
    lid_code = [res["lid"]["code"]] if res.get("lid", {}).get("code") else []
    codes = sorted({r.get("code") or "?" for r in parts.values()} | set(lid_code))
    return (
        f"Measuring everything in this table takes about {total / 60:.0f} min on this machine (the sum of "
        f"every part's wall time, with the systems the table shows for it, and the LID's); the parts were "
        f"measured with code {', '.join(f'`{c}`' for c in codes)}."
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the CI subset: every 8th file and the 3-min long files")
    ap.add_argument("--parts", default="short,long,lid", help="short, long, lid (comma-separated)")
    ap.add_argument(
        "--sets", default="", help="sets to run (default: every asr set of eval_sources.tsv + pocketsphinx)"
    )
    ap.add_argument("--systems", default="", help="subset of: faster-whisper, engine batch|sequential|pack, spark job")
    ap.add_argument(
        "--models", default="", help="subset of: tiny.en, base (default: tiny.en on English sets, base on every set)"
    )
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--name", default="")
    ap.add_argument("--resume", action="store_true", help="keep the parts an interrupted run of the same name finished")
    ap.add_argument(
        "--redo",
        default="",
        help="parts to measure again under --resume (kind/set/model or lid, comma-separated: long/asterisk-es/base); "
        "the systems outside --systems keep their texts and times from the run before (the anchor does not "
        "depend on our code)",
    )
    args = ap.parse_args(argv)
    reason = eval_corpus.missing_reason()
    if reason:
        print(f"run_accuracy: {reason}", file=sys.stderr)
        return 2
    parts = set(args.parts.split(","))
    redo = set(args.redo.split(","))
    sets = eval_corpus.asr_sets() + ["pocketsphinx"]
    if args.sets:
        sets = [s for s in sets if s in args.sets.split(",")]
    systems = list(SYSTEMS)
    if args.systems:
        systems = [s for s in systems if s in args.systems.split(",")]
    name = args.name or ("accuracy_quick" if args.quick else "accuracy")
    texts_dir = common.BENCH / ".accuracy" / name
    texts_dir.mkdir(parents=True, exist_ok=True)
    res = {"quick": args.quick, "threads": args.threads, "systems": systems, "ct2_backend": ct2_backend()}
    code = common.git_revision()
    res["corpus"] = json.loads((eval_corpus.cache_dir() / "manifests" / "summary.json").read_text())["sets"]
    t_start = time.perf_counter()

    partial = texts_dir / "partial.json"
    done = json.loads(partial.read_text()) if args.resume and partial.exists() else {}

    def keep(kind, set_name, model, entries, outputs):
        (texts_dir / f"{kind}-{set_name}-{model}.json").write_text(
            json.dumps(
                {s: dict(zip([e.name for e in entries], t)) for s, (t, _) in outputs.items()},
                indent=1,
                ensure_ascii=False,
            )
        )

    for kind in ("short", "long"):
        if kind not in parts:
            continue
        res[kind] = []
        for set_name in sets:
            if kind == "long" and set_name == "pocketsphinx":
                continue
            entries = eval_corpus.load_set(set_name if kind == "short" else f"{set_name}-long")
            if args.quick:
                entries = (
                    eval_corpus.ci_subset(entries)
                    if kind == "short" and set_name != "pocketsphinx"
                    else [e for e in entries if e.name.endswith("-longci")] or entries
                )
            elif kind == "long":
                entries = [e for e in entries if not e.name.endswith("-longci")]
            language, _ = eval_corpus.set_info(set_name)
            samples = decode(entries)
            audio_s = sum(len(x) for x in samples) / 16000
            for model in models_for(language):
                key = f"{kind}/{set_name}/{model}"
                again = key in redo
                if key in done and not again:  # --resume: measured before (whatever --models says now)
                    res[kind] += done[key]
                    res.setdefault("resumed", []).append(key)
                    continue
                if args.models and model not in args.models.split(",") and not again:
                    continue
                common.log(f"{kind} {set_name} {model}: {len(entries)} files, {audio_s / 60:.1f} min")
                kept = {}
                if again:  # the systems not measured again keep the texts and times of the run before
                    before = previous_outputs(texts_dir / f"{kind}-{set_name}-{model}.json", done.get(key, []), entries)
                    kept = {s: v for s, v in before.items() if s not in systems}
                for s in kept:
                    res.setdefault("kept", []).append(f"{key}: {s}")
                t_part = time.perf_counter()
                run = run_systems(model, entries, samples, language, args.threads, systems, texts_dir)
                outputs = {s: {**kept, **run}[s] for s in SYSTEMS if s in kept or s in run}
                keep(kind, set_name, model, entries, outputs)
                rows = (short_rows if kind == "short" else long_rows)(set_name, model, entries, outputs, audio_s)
                for r in rows:  # which code measured it, and what a full run spends on the part
                    r["code"] = code
                    r["part_wall_s"] = round(
                        time.perf_counter() - t_part + sum(w for s, (_, w) in outputs.items() if s in kept), 1
                    )
                res[kind] += rows
                done[key] = rows
                partial.write_text(json.dumps(done))
                for r in rows:
                    common.log(
                        f"    {r['system']:18s} WER {_rate(r['wer'])}  Δ {_diff(r.get('diff_wer'))}  RTFx {r['rtfx']}"
                        + (f"  complete={r['complete']}" if kind == "long" else "")
                    )
    if "lid" in parts and "lid" in done and "lid" not in redo:
        res["lid"] = done["lid"]  # --resume: measured before
        res.setdefault("resumed", []).append("lid")
    elif "lid" in parts:
        lid_sets = {}
        for set_name in sets:
            if set_name == "pocketsphinx":
                continue
            entries = eval_corpus.load_set(set_name)
            lid_sets[set_name] = eval_corpus.ci_subset(entries) if args.quick else entries
        t_lid = time.perf_counter()
        res["lid"] = lid(lid_sets, args.threads)
        res["lid"]["wall_s"] = round(time.perf_counter() - t_lid, 1)
        res["lid"]["code"] = code
        done["lid"] = res["lid"]
        partial.write_text(json.dumps(done))
    res["total_wall_s"] = round(time.perf_counter() - t_start, 1)
    common.write_result_md(name, res, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
