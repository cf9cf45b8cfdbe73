"""The evaluation corpus: recorded prompts with transcripts (Debian's Asterisk core sounds, en + es,
8-kHz telephone speech, CC-BY-SA-3.0) as manifests, plus the vendored pocketsphinx clips; and the
voices of the diarization benchmark (those two, Italian, Russian and Colombian Spanish prompts).

The sets are data: ``bench/eval_sources.tsv`` names each set's Debian packages and paths;
``scripts/fetch_eval_corpus.sh`` downloads and extracts them into the cache (outside the
repository) and runs ``python3 bench/eval_corpus.py build``, which writes, per set:

* ``manifests/<set>.csv``: ``name, path, reference, language, speech, duration_s, set`` (one row per
  file with a transcript; ``speech`` is ``false`` for entries that are not speech, such as
  ``[ascending tones]`` or ``(10 seconds of silence)``, whose expected text is empty). Without its
  ``language`` column (the job's records have one of their own) it is a ``sparkasr transcribe``
  input: ``path`` plus a carried ``reference``.
* ``long/<set>-long<k>.wav`` (k = 1..long_files): 10-minute concatenations of the set's speech
  prompts in a seeded order, disjoint between files, with 0.2-2 s gaps of low noise and a few of
  the non-speech prompts between them; ``long/<set>-long<k>.json`` lists the parts in order
  (name, start_s, end_s, reference, speech). ``<set>-longci.wav``: the same, 3 minutes, for CI.
  Their manifest ``manifests/<set>-long.csv`` carries the joined reference.
* ``manifests/pocketsphinx.csv``: the vendored LibriVox/cards clips of this checkout (en).

A set's ``uses`` say what it is for: ``asr`` sets are scored for speech recognition
(:func:`asr_sets`), ``speakers`` sets lend their voice (``speaker``) to the conversations of
``bench/run_diarization.py`` (:func:`speaker_sets`); a speakers-only set gets no long-form files. A
set without transcripts (``transcript_package`` ``-``: ``asterisk-prompt-es-co``, raw GSM files)
lists every audio file as speech with an empty reference.

Transcript rules (stated, applied to every set): a line ``name: text``; an entry whose whole text
is in brackets or parentheses is not speech (reference empty); an empty entry has no reference
(the file is left out); inline ``(notes)`` are removed and inline ``[words]`` unwrapped
(``at [@]`` -> ``at @``, since Whisper's normalisers would delete bracketed words); a name listed
twice with different texts is left out; a transcript name that matches no file exactly but one
file case-insensitively (``digits/1f`` -> ``digits/1F.wav``) is matched to it.

The CI subset (:func:`ci_subset`): every 8th speech file of a set in name order, and all its
non-speech files; the long-form CI file ``<set>-longci``.

Standard library only, so the fetch script can run it with any Python 3.
"""

from __future__ import annotations

import argparse
import array
import csv
import gzip
import hashlib
import json
import os
import random
import re
import sys
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SOURCES = BENCH / "eval_sources.tsv"
TESTS_DATA = ROOT / "tests" / "data"
BUILD_VERSION = 1  # bump when the manifests or the long-form sets are built differently

LONG_S = 600.0  # long-form files: at least this much audio each
LONG_CI_S = 180.0  # the CI long-form file
GAP_S = (0.2, 2.0)  # pause between parts, uniform
EDGE_S = 0.5  # noise before the first and after the last part
NOISE_STD = 8.0  # gaps: white noise, standard deviation in 16-bit steps (about -72 dBFS)
NONSPEECH_PER_FILE = 3  # non-speech prompts placed between the speech of a long file (CI file: 2)
CI_EVERY = 8  # CI subset: every 8th speech file in name order


def cache_dir() -> Path:
    """Where the fetched corpus lives: ``$SPARKASR_EVAL_CORPUS``, else the user cache."""
    env = os.environ.get("SPARKASR_EVAL_CORPUS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sparkasr" / "eval-corpus"


@dataclass(frozen=True)
class Source:
    set: str
    language: str
    audio_package: str
    transcript_package: str
    version: str
    audio_dir: str
    transcript_file: str
    long_files: int
    normalizer: str
    licence: str
    uses: str = "asr"
    speaker: str = ""

    @property
    def has_transcripts(self) -> bool:
        return self.transcript_package != "-"

    def used_for(self, use: str) -> bool:
        return use in self.uses.split(",")


def read_sources(path: Path = SOURCES) -> List[Source]:
    rows = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]
    header = rows[0].split("\t")
    out = []
    for line in rows[1:]:
        d = dict(zip(header, line.split("\t"), strict=True))
        d["long_files"] = int(d["long_files"])
        out.append(Source(**d))
    return out


def asr_sets() -> List[str]:
    """The sets scored for speech recognition."""
    return [s.set for s in read_sources() if s.used_for("asr")]


def speaker_sets() -> List[Source]:
    """The sets whose voice the diarization benchmark uses."""
    return [s for s in read_sources() if s.used_for("speakers")]


@dataclass(frozen=True)
class Entry:
    """One manifest row."""

    name: str
    path: str
    reference: str
    language: str
    speech: bool
    duration_s: float
    set: str
    parts: str = ""  # long-form files: the JSON file listing their parts


@dataclass
class Parsed:
    """A transcript file read with the rules of the module docstring."""

    texts: Dict[str, str] = field(default_factory=dict)
    empty: List[str] = field(default_factory=list)
    conflicting: List[str] = field(default_factory=list)


_WHOLE_NONSPEECH = re.compile(r"^\s*(\[[^\]]*\]|\([^)]*\))\s*$")
_PAREN = re.compile(r"\([^)]*\)")
_LINE = re.compile(r"^([^:\s][^:]*?):\s*(.*)$")


def parse_transcripts(text: str) -> Parsed:
    out = Parsed()
    seen: Dict[str, str] = {}
    conflicting = set()
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        name, body = m.group(1).strip(), m.group(2).strip()
        if name in seen and seen[name] != body:
            conflicting.add(name)
        seen.setdefault(name, body)
    for name, body in seen.items():
        if name in conflicting:
            continue
        if not body:
            out.empty.append(name)
        else:
            out.texts[name] = body
    out.conflicting = sorted(conflicting)
    out.empty.sort()
    return out


def is_speech(text: str) -> bool:
    return not _WHOLE_NONSPEECH.match(text)


def clean_reference(text: str) -> str:
    """The reference of a speech entry: inline (notes) removed, [words] unwrapped."""
    text = _PAREN.sub(" ", text).replace("[", " ").replace("]", " ")
    return " ".join(text.split())


GSM_FRAME_BYTES, GSM_FRAME_S = 33, 0.02  # Asterisk's raw GSM 06.10: 160 samples at 8 kHz per 33-byte frame
AUDIO_SUFFIXES = (".wav", ".gsm")


def _wav_duration(path: Path) -> float:
    if path.suffix == ".gsm":
        return path.stat().st_size // GSM_FRAME_BYTES * GSM_FRAME_S
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def set_entries(src: Source, tree: Path) -> Tuple[List[Entry], Dict[str, object]]:
    """The manifest rows of one set from its extracted packages, and what was left out."""
    audio_root = tree / src.audio_dir
    wavs = {
        p.relative_to(audio_root).with_suffix("").as_posix(): p
        for p in sorted(audio_root.rglob("*"))
        if p.suffix in AUDIO_SUFFIXES and p.is_file()
    }
    if not src.has_transcripts:
        entries = [
            Entry(name, str(p), "", src.language, True, round(_wav_duration(p), 6), src.set) for name, p in wavs.items()
        ]
        report = {
            "files": len(entries),
            "speech": len(entries),
            "non_speech": [],
            "minutes": round(sum(e.duration_s for e in entries) / 60, 2),
            "audio_without_transcript": 0,
            "transcript_without_audio": [],
            "empty_transcript": [],
            "conflicting_transcript": [],
        }
        return entries, report
    with gzip.open(tree / src.transcript_file, "rt", encoding="utf-8-sig") as f:
        parsed = parse_transcripts(f.read())
    lower: Dict[str, List[str]] = {}
    for name in wavs:
        lower.setdefault(name.lower(), []).append(name)
    entries, unmatched, matched = [], [], set()
    for name, text in sorted(parsed.texts.items()):
        wav_name = name if name in wavs else None
        if wav_name is None and len(lower.get(name.lower(), [])) == 1:
            wav_name = lower[name.lower()][0]
        if wav_name is None or wav_name in matched:
            unmatched.append(name)
            continue
        matched.add(wav_name)
        speech = is_speech(text)
        path = wavs[wav_name]
        entries.append(
            Entry(
                name=wav_name,
                path=str(path),
                reference=clean_reference(text) if speech else "",
                language=src.language,
                speech=speech,
                duration_s=round(_wav_duration(path), 6),
                set=src.set,
            )
        )
    entries.sort(key=lambda e: e.name)
    report = {
        "files": len(entries),
        "speech": sum(e.speech for e in entries),
        "non_speech": [e.name for e in entries if not e.speech],
        "minutes": round(sum(e.duration_s for e in entries) / 60, 2),
        "audio_without_transcript": len(set(wavs) - matched),
        "transcript_without_audio": unmatched,
        "empty_transcript": parsed.empty,
        "conflicting_transcript": parsed.conflicting,
    }
    return entries, report


def pocketsphinx_entries(data: Path = TESTS_DATA) -> List[Entry]:
    """The vendored LibriVox and cards clips (tests/data/README.md) as manifest rows."""
    out = []
    for wav in sorted((data / "librivox").glob("*.wav")):
        ref = wav.with_suffix(".txt").read_text(encoding="utf-8").strip()
        out.append(Entry(wav.stem, str(wav), ref, "en", True, round(_wav_duration(wav), 6), "pocketsphinx"))
    for line in (data / "cards" / "cards.transcription").read_text(encoding="utf-8").splitlines():
        m = re.match(r"<s>\s*(.*?)\s*</s>\s*\((\w+)\)", line.strip())
        if m:
            wav = data / "cards" / f"{m.group(2)}.wav"
            out.append(
                Entry(
                    f"cards/{m.group(2)}",
                    str(wav),
                    m.group(1),
                    "en",
                    True,
                    round(_wav_duration(wav), 6),
                    "pocketsphinx",
                )
            )
    return out


# -- long-form sets --------------------------------------------------------------------------


def _read_pcm(path: str) -> Tuple[array.array, int]:
    with wave.open(path, "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: long-form sets need 16-bit mono WAV")
        pcm = array.array("h")
        pcm.frombytes(w.readframes(w.getnframes()))
        if sys.byteorder == "big":
            pcm.byteswap()
        return pcm, w.getframerate()


def _noise(rng: random.Random, n: int) -> array.array:
    return array.array("h", (max(-32768, min(32767, int(round(rng.gauss(0.0, NOISE_STD))))) for _ in range(n)))


def build_long(
    name: str,
    speech: List[Entry],
    nonspeech: List[Entry],
    rng: random.Random,
    target_s: float,
    n_nonspeech: int,
    out: Path,
) -> Tuple[Entry, List[Entry]]:
    """One long-form file from ``speech`` (taken in order until ``target_s``) with ``n_nonspeech``
    non-speech prompts at seeded places between them; returns its manifest row and the speech
    entries it did not use."""
    chosen, total = [], 0.0
    rest = list(speech)
    while rest and total < target_s:
        e = rest.pop(0)
        chosen.append(e)
        total += e.duration_s + sum(GAP_S) / 2
    parts = list(chosen)
    if nonspeech and len(chosen) > 2:
        for k in range(n_nonspeech):
            parts.insert(rng.randrange(1, len(parts)), nonspeech[(rng.randrange(len(nonspeech)) + k) % len(nonspeech)])
    rate = None
    pcm = array.array("h")
    listing = []
    for i, e in enumerate(parts):
        samples, sr = _read_pcm(e.path)
        if rate is None:
            rate = sr
            pcm.extend(_noise(rng, int(EDGE_S * rate)))
        elif sr != rate:
            raise ValueError(f"{e.path}: {sr} Hz, the other parts are {rate} Hz")
        if i:
            pcm.extend(_noise(rng, int(rng.uniform(*GAP_S) * rate)))
        start = len(pcm) / rate
        pcm.extend(samples)
        listing.append(
            {
                "name": e.name,
                "start_s": round(start, 6),
                "end_s": round(len(pcm) / rate, 6),
                "reference": e.reference,
                "speech": e.speech,
            }
        )
    pcm.extend(_noise(rng, int(EDGE_S * rate)))
    out.parent.mkdir(parents=True, exist_ok=True)
    wav_path, json_path = out.with_suffix(".wav"), out.with_suffix(".json")
    if sys.byteorder == "big":
        pcm.byteswap()
    with wave.open(str(wav_path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    json_path.write_text(json.dumps(listing, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    row = Entry(
        name=name,
        path=str(wav_path),
        reference=" ".join(p["reference"] for p in listing if p["speech"]),
        language=chosen[0].language,
        speech=True,
        duration_s=round(_wav_duration(wav_path), 6),
        set=chosen[0].set,
        parts=str(json_path),
    )
    return row, rest


def long_entries(src: Source, entries: List[Entry], cache: Path) -> List[Entry]:
    rng = random.Random(f"{src.set}-long-v{BUILD_VERSION}")
    speech = [e for e in entries if e.speech]
    nonspeech = [e for e in entries if not e.speech]
    rng.shuffle(speech)
    rows = []
    for k in range(1, src.long_files + 1):
        row, speech = build_long(
            f"{src.set}-long{k}",
            speech,
            nonspeech,
            rng,
            LONG_S,
            NONSPEECH_PER_FILE,
            cache / "long" / f"{src.set}-long{k}",
        )
        rows.append(row)
    pool = speech if sum(e.duration_s for e in speech) >= LONG_CI_S else [e for e in entries if e.speech]
    row, _ = build_long(f"{src.set}-longci", pool, nonspeech, rng, LONG_CI_S, 2, cache / "long" / f"{src.set}-longci")
    rows.append(row)
    return rows


# -- manifests -------------------------------------------------------------------------------

COLUMNS = ("name", "path", "reference", "language", "speech", "duration_s", "set", "parts")


def write_manifest(path: Path, entries: List[Entry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for e in entries:
            w.writerow(
                [e.name, e.path, e.reference, e.language, "true" if e.speech else "false", e.duration_s, e.set, e.parts]
            )
    tmp.replace(path)


def read_manifest(path: Path) -> List[Entry]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        p = Path(r["path"])
        if not p.is_absolute():  # relative to the manifest, as the CLI reads it
            p = path.parent / p
        out.append(
            Entry(
                name=r["name"],
                path=str(p),
                reference=r.get("reference") or "",
                language=r.get("language") or "",
                speech=(r.get("speech") or "true").strip().lower() in ("true", "1", "yes"),
                duration_s=float(r.get("duration_s") or 0.0),
                set=r.get("set") or path.stem,
                parts=r.get("parts") or "",
            )
        )
    return out


def read_parts(entry: Entry) -> List[dict]:
    """The parts of a long-form file, in order (name, start_s, end_s, reference, speech)."""
    return json.loads(Path(entry.parts).read_text(encoding="utf-8"))


def _stamp() -> str:
    h = hashlib.sha256(SOURCES.read_bytes())
    h.update(repr((BUILD_VERSION, LONG_S, LONG_CI_S, GAP_S, EDGE_S, NOISE_STD, NONSPEECH_PER_FILE)).encode())
    return h.hexdigest()[:16]


def missing_reason(cache: Optional[Path] = None) -> Optional[str]:
    """Why the fetched corpus cannot be used (None when it can)."""
    cache = cache or cache_dir()
    summary = cache / "manifests" / "summary.json"
    if not summary.exists():
        return f"the evaluation corpus is not in {cache}: run scripts/fetch_eval_corpus.sh"
    if json.loads(summary.read_text()).get("stamp") != _stamp():
        return f"the evaluation corpus in {cache} was built from other sources: run scripts/fetch_eval_corpus.sh"
    return None


def load_set(name: str, cache: Optional[Path] = None) -> List[Entry]:
    """A set's manifest rows (``asterisk-en``, ``asterisk-es-long``, ..., ``pocketsphinx``)."""
    if name == "pocketsphinx":
        return pocketsphinx_entries()
    cache = cache or cache_dir()
    reason = missing_reason(cache)
    if reason:
        raise FileNotFoundError(reason)
    return read_manifest(cache / "manifests" / f"{name}.csv")


def set_info(name: str) -> Tuple[str, str]:
    """(language, normaliser) of a set (``asterisk-en``, ``asterisk-en-long``, ``pocketsphinx``)."""
    if name == "pocketsphinx":
        return "en", "whisper_en"
    for src in read_sources():
        if name in (src.set, f"{src.set}-long"):
            return src.language, src.normalizer
    raise KeyError(f"unknown evaluation set {name!r}")


def ci_subset(entries: List[Entry], every: int = CI_EVERY) -> List[Entry]:
    """Every `every`-th speech file in name order and every non-speech file."""
    speech = sorted((e for e in entries if e.speech), key=lambda e: e.name)
    return sorted(speech[::every] + [e for e in entries if not e.speech], key=lambda e: e.name)


def build(cache: Path) -> Dict[str, object]:
    """All manifests and long-form sets from the extracted packages under ``cache/tree``."""
    summary_path = cache / "manifests" / "summary.json"
    stamp = _stamp()
    sets: Dict[str, object] = {}
    up_to_date = summary_path.exists() and json.loads(summary_path.read_text()).get("stamp") == stamp
    for src in read_sources():
        entries, report = set_entries(src, cache / "tree")
        write_manifest(cache / "manifests" / f"{src.set}.csv", entries)
        long_path = cache / "manifests" / f"{src.set}-long.csv"
        if src.used_for("asr") and not (up_to_date and long_path.exists()):
            write_manifest(long_path, long_entries(src, entries, cache))
        report["long_files"] = (
            [
                {"name": e.name, "minutes": round(e.duration_s / 60, 2), "parts": len(read_parts(e))}
                for e in read_manifest(long_path)
            ]
            if src.used_for("asr")
            else []
        )
        packages = [p for p in (src.audio_package, src.transcript_package) if p != "-"]
        report.update(language=src.language, licence=src.licence, packages=packages, uses=src.uses, speaker=src.speaker)
        sets[src.set] = report
    write_manifest(cache / "manifests" / "pocketsphinx.csv", pocketsphinx_entries())
    summary = {"stamp": stamp, "sets": sets}
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("packages", help="print the Debian packages to fetch, one PKG=VERSION a line")
    b = sub.add_parser("build", help="write the manifests and long-form sets from CACHE/tree")
    b.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.cmd == "packages":
        pkgs = []
        for s in read_sources():
            for p in (s.audio_package, s.transcript_package):
                if p != "-" and f"{p}={s.version}" not in pkgs:
                    pkgs.append(f"{p}={s.version}")
        print("\n".join(pkgs))
        return 0
    cache = args.cache or cache_dir()
    summary = build(cache)
    for name, rep in summary["sets"].items():
        print(
            f"{name}: {rep['files']} files ({rep['speech']} speech, {len(rep['non_speech'])} not speech), "
            f"{rep['minutes']} min; left out: {rep['audio_without_transcript']} without transcript, "
            f"{len(rep['empty_transcript'])} empty, {len(rep['conflicting_transcript'])} conflicting, "
            f"{len(rep['transcript_without_audio'])} transcripts without audio; long-form: "
            + (", ".join(f"{x['name']} {x['minutes']} min / {x['parts']} parts" for x in rep["long_files"]) or "none")
        )
    print(f"manifests in {cache / 'manifests'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
