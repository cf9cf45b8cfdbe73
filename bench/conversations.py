"""Conversations built from real recordings of different speakers, with their reference turns: the
diarization benchmark's data (``bench/run_diarization.py``) and the tests' (``tests/test_diarize*.py``).

Voices (:func:`voices`): every ``speakers`` set of ``bench/eval_sources.tsv`` (Asterisk prompts:
Allison in English and in Spanish — one voice actress, so one speaker —, Carlo in Italian, the
Russian voice, July in Colombian Spanish) and the vendored LibriVox reader (``tests/data/librivox``).

A conversation (:func:`build`) has 2–4 speakers taking turns of 1–10 s (a turn is one or more
consecutive prompts of its speaker, 0.1–0.3 s apart), no speaker twice in a row; between turns a
pause of 0.2–1.5 s, or, for ``overlap`` of the changes, the next speaker starting 0.2–0.8 s before
the last one ends. Each voice gets a random gain of ±3 dB, the whole a low noise floor. Reference
turns are each prompt's sound (its frames within 35 dB of its peak), a speaker's turns joined across
pauses under 0.3 s. Everything is seeded: the same arguments give the same audio and turns.
"""

from __future__ import annotations

import json
import random
import sys
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import eval_corpus  # noqa: E402

RATE = 16000
TURN_S = (1.0, 10.0)
PAUSE_S = (0.2, 1.5)
OVERLAP_S = (0.2, 0.8)
INNER_GAP_S = (0.1, 0.3)
JOIN_S = 0.3  # a speaker's reference turns closer than this are one turn
NOISE_DBFS = -66.0
LIBRIVOX = "librivox"

Turn = Tuple[float, float, str]


@dataclass
class Voice:
    """One speaker and its recordings (paths), possibly in several languages."""

    name: str
    clips: List[str] = field(default_factory=list)


def voices(cache: Optional[Path] = None, with_librivox: bool = True) -> Dict[str, Voice]:
    """The benchmark's voices by name: each ``speakers`` set's prompts under its ``speaker`` (sets
    naming one speaker are pooled), and the LibriVox reader."""
    out: Dict[str, Voice] = {}
    for src in eval_corpus.speaker_sets():
        entries = [e for e in eval_corpus.load_set(src.set, cache) if e.speech and e.duration_s >= 0.5]
        out.setdefault(src.speaker, Voice(src.speaker)).clips.extend(e.path for e in entries)
    if with_librivox:
        out[LIBRIVOX] = Voice(LIBRIVOX, sorted(str(p) for p in (eval_corpus.TESTS_DATA / "librivox").glob("*.wav")))
    return out


_AUDIO: Dict[str, Optional[np.ndarray]] = {}


def load(path: str) -> Optional[np.ndarray]:
    """16-kHz mono float32 samples of ``path`` (cached); None for a file that does not decode (one
    of the Colombian prompts is a few bytes of nothing)."""
    if path not in _AUDIO:
        from sparkasr.audio import AudioError, decode_audio

        try:
            _AUDIO[path] = _decode_gsm(path) if path.endswith(".gsm") else decode_audio(path)
        except (AudioError, ValueError, OSError):
            _AUDIO[path] = None
    return _AUDIO[path]


def _decode_gsm(path: str) -> np.ndarray:
    """Asterisk's raw GSM 06.10 prompts (the Colombian voice): no header to recognise, so the
    product's decoder refuses them; this corpus, fetched by our own script, names its demuxer."""
    import av

    from sparkasr.audio import to_mono_16k

    with av.open(path, format="gsm") as container:
        stream = container.streams.audio[0]
        rate = stream.rate or 8000
        frames = [f.to_ndarray().astype(np.float32).reshape(-1) for f in container.decode(stream)]
    samples = np.concatenate(frames) if frames else np.zeros(0, np.float32)
    if samples.size and np.abs(samples).max() > 1.5:  # integer PCM from the decoder: to [-1, 1]
        samples = samples / 32768.0
    return to_mono_16k(samples, rate)


def sound_extent(x: np.ndarray, floor_db: float = 35.0) -> Tuple[float, float]:
    """Start and end (s) of the frames of ``x`` within ``floor_db`` of its loudest 10-ms frame."""
    n = len(x) // 160
    if n == 0:
        return 0.0, len(x) / RATE
    db = 10 * np.log10(np.mean(x[: n * 160].reshape(n, 160) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(db > db.max() - floor_db)[0]
    return loud[0] * 0.01, min((loud[-1] + 1) * 0.01, len(x) / RATE)


@dataclass
class Conversation:
    name: str
    samples: np.ndarray
    turns: List[Turn]  # the reference, in time order
    speakers: List[str]
    clips: List[str] = field(default_factory=list)  # the recordings it is made of

    @property
    def duration_s(self) -> float:
        return len(self.samples) / RATE

    def save(self, directory: Path) -> Path:
        """``<name>.wav`` (16-bit), ``<name>.rttm`` and ``<name>.json`` in ``directory``; returns the WAV."""
        from sparkasr.evaluation.diarization import to_rttm

        directory.mkdir(parents=True, exist_ok=True)
        wav = directory / f"{self.name}.wav"
        pcm = np.clip(np.round(self.samples * 32767), -32768, 32767).astype("<i2")
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(pcm.tobytes())
        (directory / f"{self.name}.rttm").write_text(to_rttm(self.name, self.turns))
        meta = {"name": self.name, "speakers": self.speakers, "duration_s": self.duration_s, "turns": self.turns}
        (directory / f"{self.name}.json").write_text(json.dumps(meta, indent=1) + "\n")
        return wav


def build(
    name: str,
    pool: Dict[str, Voice],
    n_speakers: int,
    target_s: float,
    seed: int,
    overlap: float = 0.15,
    speakers: Optional[Sequence[str]] = None,
) -> Conversation:
    """One conversation of ``n_speakers`` voices of ``pool`` (or ``speakers``), about ``target_s`` long."""
    rng = random.Random(f"{name}-{seed}")
    chosen = list(speakers) if speakers else rng.sample(sorted(pool), n_speakers)
    order = {s: rng.sample(pool[s].clips, len(pool[s].clips)) for s in chosen}
    next_clip = {s: 0 for s in chosen}
    gain = {s: 10 ** (rng.uniform(-3, 3) / 20) for s in chosen}
    parts: List[Tuple[float, np.ndarray, str]] = []  # start s, samples, speaker
    ref: List[Turn] = []
    t, prev = 0.5, None
    while t < target_s:
        spk = rng.choice([s for s in chosen if s != prev] if len(chosen) > 1 else chosen)
        want = rng.uniform(*TURN_S)
        start, turn_len = t, 0.0
        while True:
            clips = order[spk]
            path = clips[next_clip[spk] % len(clips)]
            next_clip[spk] += 1
            x = load(path)
            if x is None:
                if not any(load(p) is not None for p in clips):
                    raise ValueError(f"no clip of {spk} decodes (first: {clips[0]})")
                continue
            a, b = sound_extent(x)
            x = x[int(a * RATE) : int(b * RATE)]
            if turn_len > 0 and turn_len + len(x) / RATE > TURN_S[1]:
                break
            x = x / max(float(np.sqrt(np.mean(x**2))), 1e-6) * 0.05 * gain[spk]  # about -26 dBFS
            parts.append((t, x, spk))
            ref.append((t, t + len(x) / RATE, spk))
            t += len(x) / RATE
            turn_len = t - start
            if turn_len >= want:
                break
            t += rng.uniform(*INNER_GAP_S)
        prev = spk
        if rng.random() < overlap and ref:
            t = max(start + 0.3, t - rng.uniform(*OVERLAP_S))
        else:
            t += rng.uniform(*PAUSE_S)
    total = int((t + 0.5) * RATE)
    out = np.random.default_rng(seed).normal(0.0, 10 ** (NOISE_DBFS / 20), total).astype(np.float32)
    for start, x, _ in parts:
        i = int(round(start * RATE))
        out[i : i + len(x)] += x[: max(0, total - i)]
    used = sorted({order[s][i % len(order[s])] for s in chosen for i in range(next_clip[s])})
    return Conversation(name, np.clip(out, -1.0, 1.0), join_turns(ref), chosen, used)


def join_turns(turns: Sequence[Turn], gap_s: float = JOIN_S) -> List[Turn]:
    """Each speaker's turns joined across pauses under ``gap_s``; time order."""
    out: List[Turn] = []
    for spk in sorted({s for _, _, s in turns}):
        mine = sorted((a, b) for a, b, s in turns if s == spk)
        cur = list(mine[0])
        for a, b in mine[1:]:
            if a - cur[1] < gap_s:
                cur[1] = max(cur[1], b)
            else:
                out.append((round(cur[0], 3), round(cur[1], 3), spk))
                cur = [a, b]
        out.append((round(cur[0], 3), round(cur[1], 3), spk))
    return sorted(out)


def benchmark_set(
    pool: Dict[str, Voice], per_count: int = 8, target_s: float = 90.0, counts=(2, 3, 4), seed: int = 0
) -> List[Conversation]:
    """``per_count`` conversations of each speaker count, named ``conv<k>spk-<i>``."""
    out = []
    for k in counts:
        for i in range(per_count):
            out.append(build(f"conv{k}spk-{i:02d}", pool, k, target_s, seed + 1000 * k + i))
    return out
