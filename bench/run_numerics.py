"""What moves transcripts between machines: the same inputs decoded under the process settings in
which two machines differ (the CPU kernels CTranslate2 picks by vendor and ISA, the compute type,
thread counts, OpenMP's pool), each in a fresh process; which texts change, and whether each
accuracy verdict changes with them.

    python bench/run_numerics.py                        # both input sets, every config
    python bench/run_numerics.py --inputs clips-long --configs default,intel-like

Inputs:

* ``clips-long``: the 4 seeded ~300-s arrangements of the 10 vendored clips (0.3-1.5 s pauses)
  that ``test_long_files_default_pieces_at_least_as_accurate_as_sequential`` decoded: the test
  that gave 221 vs 207 word errors on a Xeon. Each clip is a part of its arrangement.
* ``asterisk-ci``: what ``tests/test_accuracy.py`` decodes with tiny.en: the CI subset of
  asterisk-en and its 3-minute long-form file.

Systems: our default engine and raw faster-whisper sequential (beam 5), Whisper tiny.en.
Verdicts: the old rule (pooled WER of ours <= faster-whisper's + 0.005, point estimates) and the
rule the tests now use (lower end of the paired bootstrap interval <= +0.005). Configs marked
``intel-like`` ask for what CTranslate2 picks on an Intel AVX-512 CPU (MKL, its AVX-512 code); on
another CPU MKL's own dispatch may still differ from a real Intel machine's.
Results: ``results/numerics.json`` and a section of ``results/accuracy.md`` (run_accuracy.py);
the texts in ``bench/.accuracy/numerics/`` (``--reuse`` scores them again without decoding).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402
import common  # noqa: E402
import eval_corpus  # noqa: E402
import run_accuracy  # noqa: E402
from sparkasr.evaluation import ErrorCounts, bootstrap_difference  # noqa: E402
from sparkasr.whisper.model import PORTABLE_LEVELS  # noqa: E402

PINNED = dict(PORTABLE_LEVELS[0][1])  # the AVX-512 VNNI level both of our machines have
INTEL = {"CT2_USE_MKL": "1", "CT2_FORCE_CPU_ISA": "AVX512"}
KNOBS = ("CT2_USE_MKL", "CT2_FORCE_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS")
CONFIGS: Dict[str, tuple] = {  # name: (environment, compute type, threads)
    "default": ({}, "int8", 2),
    "default-again": ({}, "int8", 2),
    "intel-like": (INTEL, "int8", 2),
    "default-omp16": ({"OMP_NUM_THREADS": "16"}, "int8", 2),
    "default-1-thread-omp1": ({"OMP_NUM_THREADS": "1"}, "int8", 1),
    "float32": ({}, "float32", 2),
    "float32-intel-like": (INTEL, "float32", 2),
    "pinned": (PINNED, "int8", 2),
    "pinned-omp16": ({**PINNED, "OMP_NUM_THREADS": "16"}, "int8", 2),
}
INPUTS = ("clips-long", "asterisk-ci")
TARGET = run_accuracy.TARGET
TEXTS = common.BENCH / ".accuracy" / "numerics"  # each config's texts, for --reuse


def clip_arrangements() -> List[tuple]:
    """(samples, parts) of the old long-file test's 4 arrangements, exactly as it built them."""
    import numpy as np

    from sparkasr.audio import SAMPLE_RATE, decode_audio

    clips = eval_corpus.pocketsphinx_entries()
    one = [(decode_audio(e.path), e) for e in clips]
    out = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        pieces, parts, total = [], [], 0
        while total < 300.0 * SAMPLE_RATE:
            for j in rng.permutation(len(one)):
                samples, e = one[j]
                pause = np.zeros(int(rng.uniform(0.3, 1.5) * SAMPLE_RATE), np.float32)
                pieces += [samples, pause]
                parts.append({"name": e.name, "reference": e.reference, "speech": True})
                total += len(samples) + len(pause)
        out.append((np.concatenate(pieces), parts))
    return out


def worker(config: str, inputs: str) -> dict:
    _, compute, threads = CONFIGS[config]
    t0 = time.perf_counter()
    if inputs == "clips-long":
        long_ = clip_arrangements()
        short_samples, short_names = [], []
    else:
        entries = eval_corpus.ci_subset(eval_corpus.load_set("asterisk-en"))
        (ci,) = [e for e in eval_corpus.load_set("asterisk-en-long") if e.name.endswith("-longci")]
        short_samples, short_names = run_accuracy.decode(entries), [e.name for e in entries]
        long_ = [(run_accuracy.decode([ci])[0], eval_corpus.read_parts(ci))]
    out = {}
    for system in ("ours", "anchor"):
        texts = []
        for samples, _ in long_:
            if system == "ours":
                t, _ = run_accuracy.run_engine("tiny.en", [samples], ["long"], "en", "batch", threads, compute)
            else:
                t, _ = run_accuracy.run_anchor("tiny.en", [samples], "en", threads, compute)
            texts += t
        if short_samples:
            if system == "ours":
                t, _ = run_accuracy.run_engine("tiny.en", short_samples, short_names, "en", "batch", threads, compute)
            else:
                t, _ = run_accuracy.run_anchor("tiny.en", short_samples, "en", threads, compute)
            texts += t
        out[system] = texts
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def score(inputs: str, texts: Dict[str, List[str]]) -> dict:
    if inputs == "clips-long":
        parts = [p for _, p in clip_arrangements()]
        short = []
    else:
        entries = eval_corpus.ci_subset(eval_corpus.load_set("asterisk-en"))
        (ci,) = [e for e in eval_corpus.load_set("asterisk-en-long") if e.name.endswith("-longci")]
        parts, short = [eval_corpus.read_parts(ci)], entries
    units: Dict[str, List[ErrorCounts]] = {}
    complete = {}
    for system, t in texts.items():
        long_scores = [accuracy.score_long(p, x, "whisper_en") for p, x in zip(parts, t)]
        units[system] = [c for s in long_scores for c in s.prompts]
        complete[system] = all(s.complete for s in long_scores)
        if short:
            units[system] += accuracy.score_files(short, t[len(parts) :], "whisper_en").counts
    ours, anchor = ErrorCounts.sum(units["ours"]), ErrorCounts.sum(units["anchor"])
    diff = bootstrap_difference(units["ours"], units["anchor"])
    return {
        "ours_errors": ours.errors,
        "anchor_errors": anchor.errors,
        "words": ours.ref_len,
        "ours_wer": round(ours.wer, 5),
        "anchor_wer": round(anchor.wer, 5),
        "diff_wer": diff.to_dict(),
        "old_rule_passes": ours.wer <= anchor.wer + TARGET,
        "new_rule_passes": diff.low <= TARGET,
        "complete": complete,
    }


def _digest(texts: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(texts)).encode()).hexdigest()[:12]


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", default=",".join(INPUTS))
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--worker", default="")
    ap.add_argument("--reuse", action="store_true", help="score the texts of earlier runs (bench/.accuracy/numerics/)")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.inputs)))
        return 0
    reason = eval_corpus.missing_reason()
    inputs = [i for i in args.inputs.split(",") if i in INPUTS and (i == "clips-long" or not reason)]
    results: Dict[str, object] = {"configs": {}, "inputs": {}}
    for name in args.configs.split(","):
        env_add, compute, threads = CONFIGS[name]
        results["configs"][name] = {"env": env_add, "compute_type": compute, "threads": threads}
    t_start = time.perf_counter()
    for inp in inputs:
        rows = {}
        for name in args.configs.split(","):
            env_add, compute, threads = CONFIGS[name]
            env = {k: v for k, v in os.environ.items() if k not in KNOBS}
            env.update(env_add)
            cached = TEXTS / f"{inp}-{name}.json"
            if args.reuse and cached.exists():
                texts = json.loads(cached.read_text())
            else:
                common.log(f"{inp} {name}")
                proc = subprocess.run(
                    [sys.executable, __file__, "--worker", name, "--inputs", inp],
                    env=env,
                    capture_output=True,
                    text=True,
                )
                if proc.returncode != 0:
                    raise RuntimeError(f"{name} on {inp} failed: {proc.stderr[-2000:]}")
                texts = json.loads(proc.stdout.strip().splitlines()[-1])
                TEXTS.mkdir(parents=True, exist_ok=True)
                cached.write_text(json.dumps(texts, ensure_ascii=False))
            wall = texts.pop("wall_s")
            row = score(inp, texts)
            row.update(wall_s=wall, ours_digest=_digest(texts["ours"]), anchor_digest=_digest(texts["anchor"]))
            first = next(iter(rows.values()), None)
            if first is not None:
                for system in ("ours", "anchor"):
                    row[f"{system}_texts_changed"] = sum(a != b for a, b in zip(first["_texts"][system], texts[system]))
            row["_texts"] = texts
            rows[name] = row
            common.log(
                f"  ours {row['ours_errors']}/{row['words']} ({row['ours_wer']}), faster-whisper {row['anchor_errors']} "
                f"({row['anchor_wer']}), paired {row['diff_wer']['estimate']:+.4f} [{row['diff_wer']['low']:+.4f}, "
                f"{row['diff_wer']['high']:+.4f}]; old rule {row['old_rule_passes']}, new rule {row['new_rule_passes']}; "
                f"changed vs first: {row.get('ours_texts_changed', 0)}/{row.get('anchor_texts_changed', 0)}"
            )
        for row in rows.values():
            row["texts"] = len(row.pop("_texts")["ours"])
        results["inputs"][inp] = rows
    results["total_wall_s"] = round(time.perf_counter() - t_start, 1)
    common.write_result("numerics", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
