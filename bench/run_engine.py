"""Engine benchmark (no Spark): faster-whisper anchors vs our WhisperEngine, same model, same machine.

    python bench/run_engine.py            # short corpus (50 clips, ~172 s) + 5- and 10-min files
    python bench/run_engine.py --quick    # 20 clips (~69 s) + the 5-min file (~2-4 min on 2 cores)

Each (config, corpus) runs in a fresh subprocess (so peak RSS is its own), configs interleaved
round by round (``--rounds``). Timed: transcription only (model load reported apart). Reported:
wall and CPU seconds, RTFx (audio s / wall s), per-core RTFx (RTFx / cores used), audio s per CPU s
(robust to other load on a shared machine), peak RSS, WER (Whisper English normaliser, jiwer), and each
file's hypothesis (to compare two versions of the engine text by text).

Configs (all Whisper tiny.en int8, beam 5, ``cpu_threads`` = all cores):

* ``fw_sequential``  faster-whisper ``WhisperModel.transcribe``, library defaults, one call per file/clip
* ``fw_batched``     faster-whisper ``BatchedInferencePipeline.transcribe`` (batch 8, library defaults); long files
* ``ours_default``   ``WhisperEngine.transcribe_batch`` with default options (short: batched; long: <=30-s pieces
  cut at quiet points, decoded batched as text)
* ``ours_packed``    ``WhisperEngine.transcribe_packed``; short clips
* ``ours_packed_long``  ``WhisperEngine.transcribe_packed`` on long files: cut at quiet points into <=30-s pieces, batched
* ``ours_packed_long_text``  the same with ``timestamps="none"`` (text only, as the batched anchor's default)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import corpus  # noqa: E402

CONFIGS = {
    "short": ["fw_sequential", "ours_default", "ours_packed"],
    "long": ["fw_sequential", "fw_batched", "ours_default", "ours_packed_long", "ours_packed_long_text"],
}


def _items(entries):
    import soundfile as sf

    from sparkasr.records import AudioItem

    return [AudioItem(sf.read(e["path"], dtype="float32")[0], source=e["path"]) for e in entries]


def run_one(config: str, corpus_name: str, quick: bool, threads: int) -> dict:
    """Runs in the child process."""
    from sparkasr.whisper.models import resolve_whisper_model

    man = corpus.load(quick=quick)
    entries = man[corpus_name]
    items = _items(entries)
    audio_s = sum(it.duration_s for it in items)
    path = resolve_whisper_model(None).path
    t0 = time.perf_counter()
    if config.startswith("fw_"):
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=True)
        if config == "fw_batched":
            pipe = BatchedInferencePipeline(model)

            def fn():
                return ["".join(s.text for s in pipe.transcribe(it.samples, language="en")[0]) for it in items]
        else:

            def fn():
                return ["".join(s.text for s in model.transcribe(it.samples, language="en")[0]) for it in items]

        warm = lambda: "".join(s.text for s in model.transcribe(items[0].samples[:16000], language="en")[0])  # noqa: E731
    else:
        from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions

        # ``_text``: timestamps off, like BatchedInferencePipeline's default (without_timestamps=True)
        opts = WhisperOptions(timestamps="none") if config.endswith("_text") else WhisperOptions()
        engine = WhisperEngine(path, opts, RuntimeOptions(cpu_threads=threads))
        if config == "ours_default":

            def fn():
                return [t.text for t in engine.transcribe_batch(items)]
        elif config == "ours_packed":

            def fn():
                return [t.text for t in engine.transcribe_packed(items)]
        elif config in ("ours_packed_long", "ours_packed_long_text"):

            def fn():
                return [t.text for t in engine.transcribe_packed(items)]
        else:
            raise ValueError(config)

        def warm():
            return engine.transcribe_batch(
                items[:1] if items[0].duration_s <= 30 else [type(items[0])(items[0].samples[:16000])]
            )

    load_s = time.perf_counter() - t0
    warm()
    c0, w0 = time.process_time(), time.perf_counter()
    hyps = fn()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    refs = [e["reference"] for e in entries]
    return {
        "config": config,
        "corpus": corpus_name,
        "files": len(items),
        "audio_s": round(audio_s, 2),
        "threads": threads,
        "load_s": round(load_s, 2),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "rtfx": common.rtfx(audio_s, wall),
        "rtfx_per_core": round(audio_s / wall / threads, 2),
        "audio_per_cpu_s": round(audio_s / cpu, 2),
        "peak_rss_mb": common.self_peak_rss_mb(),
        **common.wer_counts(refs, hyps),
        "sample_hypothesis": hyps[0][:200],
        "hypotheses": dict(zip((Path(e["path"]).name for e in entries), hyps)),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved repetitions; the median is reported")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--corpus", choices=["short", "long", "both"], default="both")
    ap.add_argument("--configs", default="", help="comma-separated subset of configs")
    ap.add_argument("--name", default="", help="results/<name>.json (default engine or engine_quick)")
    ap.add_argument("--one", nargs=2, metavar=("CONFIG", "CORPUS"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        print("RESULT " + json.dumps(run_one(a.one[0], a.one[1], a.quick, a.threads)))
        return 0
    corpus.load(quick=a.quick)  # build once, before timing anything
    wanted = [c for c in a.configs.split(",") if c]
    jobs = [
        (c, k)
        for k in (["short", "long"] if a.corpus == "both" else [a.corpus])
        for c in CONFIGS[k]
        if not wanted or c in wanted
    ]
    runs = []
    for r in range(a.rounds):
        for config, corp in jobs:
            cmd = [sys.executable, __file__, "--one", config, corp, "--threads", str(a.threads)] + (
                ["--quick"] if a.quick else []
            )
            common.log(f"round {r + 1}/{a.rounds}: {config} on {corp} ...")
            p = subprocess.run(cmd, capture_output=True, text=True)
            line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if p.returncode != 0 or line is None:
                common.log(f"  FAILED rc={p.returncode}: {p.stderr[-2000:]}")
                runs.append({"config": config, "corpus": corp, "round": r, "error": p.stderr[-2000:]})
                continue
            res = json.loads(line[len("RESULT ") :])
            res["round"] = r
            res["load_avg_1m"] = round(os.getloadavg()[0], 2)
            runs.append(res)
            common.log(
                f"  RTFx {res['rtfx']}  audio/CPU-s {res['audio_per_cpu_s']}  WER {res['wer']}  RSS {res['peak_rss_mb']} MB"
            )
    summary = summarize(runs)
    name = a.name or ("engine_quick" if a.quick else "engine")
    common.write_result(
        name, {"quick": a.quick, "rounds": a.rounds, "threads": a.threads, "summary": summary, "runs": runs}
    )
    for row in summary["rows"]:
        print(json.dumps(row))
    for k, v in summary["ratios"].items():
        print(f"{k}: {v}")
    return 0


def summarize(runs):
    rows = []
    keys = sorted({(r["corpus"], r["config"]) for r in runs if "error" not in r})
    for corp, config in keys:
        rs = [r for r in runs if r.get("corpus") == corp and r.get("config") == config and "error" not in r]
        med = lambda f: round(statistics.median(r[f] for r in rs), 3)  # noqa: E731
        rows.append(
            {
                "corpus": corp,
                "config": config,
                "audio_s": rs[0]["audio_s"],
                "wall_s": med("wall_s"),
                "cpu_s": med("cpu_s"),
                "rtfx": med("rtfx"),
                "rtfx_per_core": med("rtfx_per_core"),
                "audio_per_cpu_s": med("audio_per_cpu_s"),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                "wer": rs[0]["wer"],
                "ref_words": rs[0]["ref_words"],
                "n": len(rs),
            }
        )
    by = {(r["corpus"], r["config"]): r for r in rows}
    ratios = {}

    def ratio(label, a, b):
        if a in by and b in by:
            ratios[label] = {
                "rtfx": round(by[a]["rtfx"] / by[b]["rtfx"], 3),
                "audio_per_cpu_s": round(by[a]["audio_per_cpu_s"] / by[b]["audio_per_cpu_s"], 3),
                "wer_delta_points": round(100 * (by[a]["wer"] - by[b]["wer"]), 2),
            }

    ratio("short: ours_packed / fw_sequential", ("short", "ours_packed"), ("short", "fw_sequential"))
    ratio("short: ours_default / fw_sequential", ("short", "ours_default"), ("short", "fw_sequential"))
    ratio("long: fw_batched / fw_sequential", ("long", "fw_batched"), ("long", "fw_sequential"))
    ratio("long: ours_default / fw_sequential", ("long", "ours_default"), ("long", "fw_sequential"))
    ratio("long: ours_default / fw_batched", ("long", "ours_default"), ("long", "fw_batched"))
    ratio("long: ours_packed_long / fw_batched", ("long", "ours_packed_long"), ("long", "fw_batched"))
    ratio("long: ours_packed_long / fw_sequential", ("long", "ours_packed_long"), ("long", "fw_sequential"))
    ratio("long: ours_packed_long_text / fw_batched", ("long", "ours_packed_long_text"), ("long", "fw_batched"))
    ratio("long: ours_packed_long_text / fw_sequential", ("long", "ours_packed_long_text"), ("long", "fw_sequential"))
    return {"rows": rows, "ratios": ratios}


if __name__ == "__main__":
    sys.exit(main())
