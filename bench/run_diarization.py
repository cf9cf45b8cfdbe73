"""Diarization benchmark: conversations built from real recordings of different people
(bench/conversations.py: Asterisk prompts of five voices, Allison in English and Spanish being one,
and the LibriVox reader; 2-4 speakers, turns of 1-10 s, pauses and some overlap), diarized by the
engine (sparkasr.diarize), scored with DER (0.25-s collar) and timed against a tiny.en
transcription of the same files.

Reported (bench/results/diarization.{json,md}):

* DER per file (the file's own speaker mapping) with a 95 % bootstrap interval over its 10-s blocks;
* DER per speaker count and over all files (per-file mappings) with intervals over files;
* global DER: the files' speakers given corpus-wide labels by the identity step
  (sparkasr.diarize.identity, identityThreshold) and scored with ONE mapping for all files;
* the speaker-count error (estimated minus true speakers, per file);
* the time diarization adds to transcribing the same files with tiny.en (WhisperEngine defaults,
  2 threads), and the load average before and after.

    PYTHONPATH=python python bench/run_diarization.py            # 24 conversations, ~36 min of audio
    PYTHONPATH=python python bench/run_diarization.py --quick    # 3 conversations (CI-sized)

Needs the evaluation corpus (scripts/fetch_eval_corpus.sh). Timings taken on a busy machine are
indicative only: the load average is recorded with them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import common  # noqa: E402
import conversations  # noqa: E402
import eval_corpus  # noqa: E402

BLOCK_S = 10.0
PER_COUNT = 8
TARGET_S = 90.0
QUICK = ((2, 45.0, 11), (3, 50.0, 12), (4, 60.0, 13))  # tests/test_diarize.py's CI set
TIMED_PER_COUNT = 2  # conversations of each size also transcribed, for the time diarization adds


def block_interval(ref, hyp, duration: float, mapping: Dict[str, str]):
    """The file's DER and its bootstrap interval over ``BLOCK_S`` blocks (mapping fixed)."""
    from sparkasr.evaluation import bootstrap_ratio, diarization_stats

    nums, dens = [], []
    t = 0.0
    while t < duration:
        c = diarization_stats(ref, hyp, uem=(t, min(t + BLOCK_S, duration))).counts(mapping)
        if c.total > 0 or c.false_alarm > 0:
            nums.append(c.errors)
            dens.append(c.total)
        t += BLOCK_S
    return bootstrap_ratio(nums, dens, resamples=2000)


def transcribe_times(convs, threads: int) -> List[float]:
    from sparkasr.records import AudioItem
    from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions
    from sparkasr.whisper.models import resolve_whisper_model

    engine = WhisperEngine(resolve_whisper_model("tiny.en").path, WhisperOptions(), RuntimeOptions(cpu_threads=threads))
    engine.transcribe_batch([AudioItem(convs[0].samples[: 16000 * 5])])  # warm up
    out = []
    for c in convs:
        t0 = time.perf_counter()
        engine.transcribe_batch([AudioItem(c.samples, source=c.name)])
        out.append(time.perf_counter() - t0)
    return out


def english_timing(engine, threads: int) -> Dict[str, object]:
    """Diarization and tiny.en transcription times on English speech (the corpus' 3-min English
    long-form file): tiny.en decodes the benchmark's Italian, Russian and Spanish turns far more
    slowly than English (it falls back through its temperatures), which flatters the ratio."""
    from sparkasr.audio import decode_audio

    (entry,) = [e for e in eval_corpus.load_set("asterisk-en-long") if e.name.endswith("-longci")]
    x = decode_audio(entry.path)
    t0 = time.perf_counter()
    engine.diarize(x, entry.name)
    d = time.perf_counter() - t0
    (a,) = transcribe_times([conversations.Conversation(entry.name, x, [], [])], threads)
    return {
        "file": entry.name,
        "audio_s": round(len(x) / 16000, 1),
        "diarize_s": round(d, 2),
        "transcribe_s": round(a, 2),
        "added": round(d / a, 4),
    }


def run(convs: Sequence[conversations.Conversation], threads: int, transcribe: bool) -> Dict[str, object]:
    from sparkasr.diarize import DiarizationEngine, DiarizationOptions, label_of, merge_voices, resolve_voice_encoder
    from sparkasr.diarize.identity import Voice
    from sparkasr.diarize.options import IdentityOptions
    from sparkasr.evaluation import DerCounts, bootstrap_ratio, corpus_der, diarization_stats, optimal_mapping

    load_before = os.getloadavg()
    engine = DiarizationEngine(resolve_voice_encoder(), DiarizationOptions(), threads=threads)
    engine.diarize(convs[0].samples[: 16000 * 5])  # warm up (VAD and encoder sessions)
    results, diar_s = [], []
    for c in convs:
        t0 = time.perf_counter()
        results.append(engine.diarize(c.samples, c.name))
        diar_s.append(time.perf_counter() - t0)
        common.log(f"{c.name}: {len(results[-1].speakers)} speakers (true {len(c.speakers)}), {diar_s[-1]:.2f} s")
    timed = [
        i
        for i, c in enumerate(convs)
        if transcribe and sum(len(o.speakers) == len(c.speakers) for o in convs[:i]) < TIMED_PER_COUNT
    ]
    asr_s = transcribe_times([convs[i] for i in timed], threads) if timed else []
    english = english_timing(engine, threads) if transcribe else {}
    load_after = os.getloadavg()

    rows, per_file = [], []
    for c, d, t in zip(convs, results, diar_s):
        hyp = [(x.start, x.end, x.speaker) for x in d.turns]
        st = diarization_stats(c.turns, hyp, uem=(0.0, c.duration_s))
        mapping = optimal_mapping(st.cooccurrence)
        counts = st.counts(mapping)
        per_file.append(counts)
        iv = block_interval(c.turns, hyp, c.duration_s, mapping)
        rows.append(
            {
                "file": c.name,
                "speakers": c.speakers,
                "true_speakers": len(c.speakers),
                "found_speakers": len(d.speakers),
                "duration_s": round(c.duration_s, 2),
                **{k: round(v, 4) for k, v in counts.to_dict().items()},
                "der_low": round(iv.low, 4),
                "der_high": round(iv.high, 4),
                "diarize_s": round(t, 3),
            }
        )

    def group(files: List[int]) -> Dict[str, float]:
        c = sum((per_file[i] for i in files), DerCounts())
        iv = bootstrap_ratio([per_file[i].errors for i in files], [per_file[i].total for i in files], resamples=5000)
        return {
            "files": len(files),
            "der": round(c.der, 4),
            "low": round(iv.low, 4),
            "high": round(iv.high, 4),
            "missed": round(c.missed / c.total, 4),
            "false_alarm": round(c.false_alarm / c.total, 4),
            "confusion": round(c.confusion / c.total, 4),
            "mean_file_der": round(sum(per_file[i].der for i in files) / len(files), 4),
        }

    groups = {str(k): group([i for i, c in enumerate(convs) if len(c.speakers) == k]) for k in (2, 3, 4)}
    groups = {k: v for k, v in groups.items() if v["files"]}
    overall = group(list(range(len(convs))))

    identity = IdentityOptions()
    voices = [Voice(f"{c.name}/{s.label}", s.centroid, s.speech_s) for c, d in zip(convs, results) for s in d.speakers]
    globals_ = merge_voices(voices, identity.threshold)
    stats = []
    for c, d in zip(convs, results):
        m = {s.label: label_of(s.centroid, globals_) for s in d.speakers}
        stats.append(
            diarization_stats(c.turns, [(x.start, x.end, m[x.speaker]) for x in d.turns], uem=(0, c.duration_s))
        )
    global_counts, global_map = corpus_der(stats)
    true_people = sorted({s for c in convs for s in c.speakers})

    count_err = [r["found_speakers"] - r["true_speakers"] for r in rows]
    audio = sum(c.duration_s for c in convs)
    timing = {
        "audio_s": round(audio, 1),
        "diarize_s": round(sum(diar_s), 2),
        "diarize_rtfx": common.rtfx(audio, sum(diar_s)),
        "threads": threads,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
    }
    if asr_s:
        timed_audio = sum(convs[i].duration_s for i in timed)
        timed_diar = sum(diar_s[i] for i in timed)
        timing.update(
            timed_files=[convs[i].name for i in timed],
            timed_audio_s=round(timed_audio, 1),
            timed_diarize_s=round(timed_diar, 2),
            transcribe_s=round(sum(asr_s), 2),
            transcribe_rtfx=common.rtfx(timed_audio, sum(asr_s)),
            added=round(timed_diar / sum(asr_s), 4),
        )
    timing["english"] = english
    return {
        "files": rows,
        "by_speakers": groups,
        "overall": overall,
        "global": {
            **{k: round(v, 4) for k, v in global_counts.to_dict().items()},
            "identity_threshold": identity.threshold,
            "global_voices": len(globals_),
            "true_people": true_people,
            "mapping": global_map,
        },
        "speaker_count": {
            "mean_abs_error": round(sum(abs(e) for e in count_err) / len(count_err), 3),
            "exact": sum(e == 0 for e in count_err),
            "over": sum(e > 0 for e in count_err),
            "under": sum(e < 0 for e in count_err),
            "files": len(count_err),
        },
        "timing": timing,
    }


def render(res: Dict[str, object], command: str) -> str:
    t = res["timing"]
    lines = [
        "# Diarization benchmark",
        "",
        f"`{command}`: {len(res['files'])} conversations, {t['audio_s'] / 60:.1f} min of audio built from real "
        "recordings (bench/conversations.py); DER with a 0.25-s collar, overlapping speech scored; 95 % bootstrap "
        f"intervals. Load average before {t['load_before']}, after {t['load_after']} (2 cores, shared: timings are "
        "indicative).",
        "",
        "| speakers | files | DER [95 % interval] | mean file DER | missed | false alarm | confusion |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k, g in list(res["by_speakers"].items()) + [("all", res["overall"])]:
        lines.append(
            f"| {k} | {g['files']} | {g['der']:.3f} [{g['low']:.3f}, {g['high']:.3f}] | {g['mean_file_der']:.3f} | "
            f"{g['missed']:.3f} | {g['false_alarm']:.3f} | {g['confusion']:.3f} |"
        )
    gl, sc = res["global"], res["speaker_count"]
    lines += [
        "",
        f"**Global DER** (one label per person across files, identityThreshold {gl['identity_threshold']}, one "
        f"mapping for all files): {gl['der']:.3f} ({gl['global_voices']} global voices for {len(gl['true_people'])} "
        f"people: {', '.join(gl['true_people'])}; mapping {gl['mapping']}).",
        "",
        f"**Speaker count**: exact in {sc['exact']} of {sc['files']} files, {sc['over']} over, {sc['under']} under; "
        f"mean absolute error {sc['mean_abs_error']}.",
        "",
        f"**Time**: diarization {t['diarize_s']} s for {t['audio_s']} s of audio (RTFx {t['diarize_rtfx']}, "
        f"{t['threads']} threads)"
        + (
            f"; on {len(t['timed_files'])} of the files ({t['timed_audio_s']} s), tiny.en transcription "
            f"{t['transcribe_s']} s (RTFx {t['transcribe_rtfx']}), diarization {t['timed_diarize_s']} s: it adds "
            f"{100 * t['added']:.1f} % (tiny.en is slow on the non-English turns)"
            if "added" in t
            else ""
        )
        + (
            f"; on English speech ({t['english']['file']}, {t['english']['audio_s']} s) transcription "
            f"{t['english']['transcribe_s']} s, diarization {t['english']['diarize_s']} s: it adds "
            f"{100 * t['english']['added']:.1f} %."
            if t.get("english")
            else "."
        ),
        "",
        "| file | speakers | found | min | DER [95 % interval] | missed | false alarm | confusion |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in res["files"]:
        tot = r["total_s"] or 1.0
        lines.append(
            f"| {r['file']} | {', '.join(r['speakers'])} | {r['found_speakers']} | {r['duration_s'] / 60:.1f} | "
            f"{r['der']:.3f} [{r['der_low']:.3f}, {r['der_high']:.3f}] | {r['missed_s'] / tot:.3f} | "
            f"{r['false_alarm_s'] / tot:.3f} | {r['confusion_s'] / tot:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the CI set: 3 short conversations")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-transcribe", action="store_true", help="skip the tiny.en timing")
    ap.add_argument("--save", type=Path, default=None, help="also write the conversations (WAV, RTTM) here")
    ap.add_argument("--name", default=None, help="results file name (default diarization or diarization-quick)")
    ap.add_argument("--results", type=Path, default=None, help="where to write the results (default bench/results)")
    args = ap.parse_args(argv)
    reason = eval_corpus.missing_reason()
    if reason:
        print(f"run_diarization: {reason}", file=sys.stderr)
        return 2
    pool = conversations.voices()
    if args.quick:
        convs = [conversations.build(f"ci{k}spk", pool, k, s, seed) for k, s, seed in QUICK]
    else:
        convs = conversations.benchmark_set(pool, PER_COUNT, TARGET_S)
    if args.save:
        for c in convs:
            c.save(args.save)
    common.log(f"{len(convs)} conversations, {sum(c.duration_s for c in convs) / 60:.1f} min")
    res = run(convs, args.threads, not args.no_transcribe)
    name = args.name or ("diarization-quick" if args.quick else "diarization")
    command = "python bench/run_diarization.py" + (" --quick" if args.quick else "")
    if args.results:
        common.RESULTS = args.results
    common.write_result(name, {"command": command, **res})
    md = common.RESULTS / f"{name}.md"
    md.write_text(render(res, command))
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
