"""Build the benchmark corpus from the vendored real clips, deterministically, into ``bench/.corpus``.

    python bench/corpus.py            # full: short corpus (5 x 10 clips, ~172 s), 5- and 10-min files, 1-h file

Benchmarks call :func:`load` (``quick=True`` selects the first 2 repeats and the 5-min file only).

Layout (``--dir``, default ``bench/.corpus``)::

    short/r{k}_{name}.wav + manifest entry   the 10 real clips (LibriVox + cards), repeated, distinct names
    long/long_05min.wav, long/long_10min.wav  the clips concatenated in shuffled order with 0.5-1.0 s gaps
    hour/long_60min.wav                       the 10-min file repeated 6 times (RSS test)
    manifest.json                             {corpus: [{path, duration_s, reference}]}

Gaps hold low-level noise (about -70 dBFS, seeded) rather than digital zeros, as real recordings do.
The same arguments give byte-identical files; files already present with the right size are kept.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf

BENCH = Path(__file__).resolve().parent
DATA = BENCH.parent / "tests" / "data"
DEFAULT_DIR = BENCH / ".corpus"
SR = 16000


def real_clips() -> List[Tuple[str, np.ndarray, str]]:
    """[(name, samples float32, reference)] for the 10 vendored clips, in a fixed order."""
    out = []
    for wav in sorted((DATA / "librivox").glob("*.wav")):
        x, sr = sf.read(wav, dtype="float32")
        assert sr == SR and x.ndim == 1
        out.append((wav.stem[-4:], x, wav.with_suffix(".txt").read_text().strip()))
    refs: Dict[str, str] = {}
    for line in (DATA / "cards" / "cards.transcription").read_text().splitlines():
        m = re.match(r"<s>\s*(.*?)\s*</s>\s*\((\w+)\)", line.strip())
        if m:
            refs[m.group(2)] = m.group(1)
    for key in sorted(refs):
        x, sr = sf.read(DATA / "cards" / f"{key}.wav", dtype="float32")
        assert sr == SR and x.ndim == 1
        out.append((f"cards{key}", x, refs[key]))
    return out


def _write(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    expect = 44 + 2 * len(x)
    if path.exists() and abs(path.stat().st_size - expect) <= 64:
        return
    tmp = path.with_suffix(".tmp.wav")
    sf.write(tmp, x, SR, subtype="PCM_16")
    tmp.replace(path)


def _concat(clips, target_s: float, rng: np.random.Generator) -> Tuple[np.ndarray, str]:
    parts, refs, total = [], [], 0.0
    while total < target_s:
        for j in rng.permutation(len(clips)):
            name, x, ref = clips[j]
            gap = rng.uniform(0.5, 1.0)
            parts.append((rng.standard_normal(int(gap * SR)) * 3e-4).astype(np.float32))
            parts.append(x)
            refs.append(ref)
            total += gap + len(x) / SR
            if total >= target_s:
                break
    return np.concatenate(parts), " ".join(refs)


def build(root: Path = DEFAULT_DIR, repeats: int = 5, long_minutes=(5, 10), hour: bool = True) -> Dict[str, List[dict]]:
    clips = real_clips()
    manifest: Dict[str, List[dict]] = {"short": [], "long": [], "hour": []}
    for k in range(repeats):
        for name, x, ref in clips:
            p = root / "short" / f"r{k}_{name}.wav"
            _write(p, x)
            manifest["short"].append({"path": str(p), "duration_s": round(len(x) / SR, 4), "reference": ref})
    ten = None
    for minutes in long_minutes:
        rng = np.random.default_rng(1000 + minutes)
        x, ref = _concat(clips, minutes * 60.0, rng)
        p = root / "long" / f"long_{minutes:02d}min.wav"
        _write(p, x)
        manifest["long"].append({"path": str(p), "duration_s": round(len(x) / SR, 4), "reference": ref})
        if minutes == 10:
            ten = (x, ref)
    if hour:
        if ten is None:
            ten = _concat(clips, 600.0, np.random.default_rng(1010))
        x = np.concatenate([ten[0]] * 6)
        p = root / "hour" / "long_60min.wav"
        _write(p, x)
        manifest["hour"].append(
            {"path": str(p), "duration_s": round(len(x) / SR, 4), "reference": " ".join([ten[1]] * 6)}
        )
        del x
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def load(root: Path = DEFAULT_DIR, quick: bool = False) -> Dict[str, List[dict]]:
    """The manifest, building the corpus first when it is missing."""
    m = root / "manifest.json"
    man = json.loads(m.read_text()) if m.exists() else {}
    if len(man.get("short", [])) < 50 or len(man.get("long", [])) < 2 or not man.get("hour"):
        man = build(root)
    if quick:
        man = {
            "short": [e for e in man["short"] if Path(e["path"]).name.split("_")[0] in ("r0", "r1")],
            "long": [e for e in man["long"] if "05min" in e["path"]],
            "hour": man["hour"],
        }
    return man


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    a = ap.parse_args(argv)
    man = build(a.dir)
    for k, v in man.items():
        print(f"{k}: {len(v)} files, {sum(e['duration_s'] for e in v):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
