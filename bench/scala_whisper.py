"""JVM Whisper engine (ONNX Runtime Java, tiny.en export) vs the Python engine (CTranslate2) on the same
audio, the same threads and the default options (beam 5, temperature fallback): RTFx and their ratio.

    python bench/scala_whisper.py [--threads 2] [--fixtures target/jvm-whisper-fixtures] [--out bench/results/scala_whisper.json]
    python bench/scala_whisper.py --quick      # the clips only, Python float32 only: checks that it runs

Audio: the vendored clips (one batch) and the >= 10-minute concatenation that the Scala tests use
(tests/fixtures/make_jvm_whisper_fixtures.py writes it, with the float32 export). The JVM side runs
``sparkasr.WhisperBench`` through ``scripts/sbt Test/runMain``; each side is timed after a warm-up
call, inside its own process. Engine level: the Spark glue on top is shared and thin in both.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tests"))


def python_side(fixtures: Path, threads: int, compute_type: str, quick: bool = False) -> dict:
    import soundfile as sf

    from conftest import ALL_CLIPS
    from sparkasr.records import AudioItem
    from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions
    from sparkasr.whisper.models import resolve_whisper_model

    engine = WhisperEngine(
        resolve_whisper_model(None).path,
        WhisperOptions(),
        RuntimeOptions(compute_type=compute_type, cpu_threads=threads),
    )
    clips = [AudioItem(sf.read(str(p), dtype="float32")[0], source=str(p)) for p, _ in ALL_CLIPS]
    engine.transcribe_batch(clips[:1])
    out = {}
    long = AudioItem(np.fromfile(fixtures / "long.f32", dtype="<f4"), source="long")
    for name, items in (("clips", clips),) + (() if quick else (("long", [long]),)):
        t0 = time.perf_counter()
        engine.transcribe_batch(items)
        out[name] = {"audio_s": sum(it.duration_s for it in items), "wall_s": time.perf_counter() - t0}
    return out


def jvm_side(fixtures: Path, threads: int, quick: bool = False) -> dict:
    from conftest import ALL_CLIPS

    args = [str(fixtures / "tiny.en-onnx"), str(threads), "-" if quick else str(fixtures / "long.f32")] + [
        str(p) for p, _ in ALL_CLIPS
    ]
    res = subprocess.run(
        [str(ROOT / "scripts" / "sbt"), "Test/runMain sparkasr.WhisperBench " + " ".join(args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(ln for ln in res.stdout.splitlines() if "WHISPER-BENCH " in ln)
    return json.loads(line.split("WHISPER-BENCH ", 1)[1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fixtures", type=Path, default=ROOT / "target" / "jvm-whisper-fixtures")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="the clips only, Python float32 only (a check that it runs)")
    args = ap.parse_args(argv)
    out = args.out or ROOT / "bench" / "results" / ("scala_whisper_quick.json" if args.quick else "scala_whisper.json")
    jvm = jvm_side(args.fixtures, args.threads, args.quick)
    result = {
        "threads": args.threads,
        "model": "tiny.en (JVM: the float32 ONNX export)",
        "options": "defaults (beam 5, temperature fallback)",
        "quick": args.quick,
        "runs": {},
    }
    for ct in ("float32",) if args.quick else ("float32", "int8"):
        py = python_side(args.fixtures, args.threads, ct, args.quick)
        for corpus in ("clips",) if args.quick else ("clips", "long"):
            j, p = jvm[corpus], py[corpus]
            rj, rp = j["audio_s"] / j["wall_s"], p["audio_s"] / p["wall_s"]
            result["runs"][f"{corpus}/python_{ct}"] = {
                "audio_s": round(p["audio_s"], 1),
                "jvm_rtfx": round(rj, 2),
                "python_rtfx": round(rp, 2),
                "ratio_jvm_over_python": round(rj / rp, 3),
            }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
