"""One label per person across files: the speakers of many files (their voice centroids,
:class:`~sparkasr.diarize.records.SpeakerProfile`) clustered into global speakers, in two steps that
fit Spark (each partition's profiles clustered into partition centroids, then one clustering of the
small set of partition centroids on the driver), and an optional gallery of known voices (name →
reference clips) that names the global speakers it recognises.

A global speaker is a :class:`Voice`: its label, its centroid and how much speech it stands for.
A file's speaker is given the label of the nearest global voice (:func:`label_of`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..audio import AUDIO_EXTENSIONS
from .clustering import cluster


@dataclass
class Voice:
    """A speaker known across files (or a partition's group of file speakers)."""

    label: str
    centroid: np.ndarray
    speech_s: float


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def merge_voices(voices: Sequence[Voice], threshold: float, prefix: str = "SPK") -> List[Voice]:
    """``voices`` clustered (average linkage, cosine distance cut at ``threshold``) into groups, each
    one voice: the speech-weighted mean centroid; labelled ``<prefix>1..`` by speech, most first."""
    if not voices:
        return []
    x = np.stack([v.centroid for v in voices]).astype(np.float64)
    labels = cluster(x, threshold)
    out = []
    for k in range(int(labels.max()) + 1):
        members = [v for v, lab in zip(voices, labels) if lab == k]
        speech = sum(v.speech_s for v in members)
        c = sum(v.centroid.astype(np.float64) * max(v.speech_s, 1e-3) for v in members)
        out.append(Voice("", _unit(c), speech))
    out.sort(key=lambda v: -v.speech_s)
    for i, v in enumerate(out):
        v.label = f"{prefix}{i + 1}"
    return out


def name_voices(voices: Sequence[Voice], gallery: Dict[str, np.ndarray], threshold: float) -> List[Voice]:
    """``voices`` with the gallery's names: each known voice names the global voice nearest to it
    when within ``threshold`` (one voice per name, the closest pairs first); the others keep their
    labels."""
    pairs = sorted(
        (1.0 - float(v.centroid @ ref), i, name) for i, v in enumerate(voices) for name, ref in gallery.items()
    )
    named: Dict[int, str] = {}
    used = set()
    for d, i, name in pairs:
        if d <= threshold and i not in named and name not in used:
            named[i] = name
            used.add(name)
    return [Voice(named.get(i, v.label), v.centroid, v.speech_s) for i, v in enumerate(voices)]


def label_of(centroid: np.ndarray, voices: Sequence[Voice]) -> Optional[str]:
    """The label of the global voice nearest to ``centroid``."""
    if not voices:
        return None
    sims = np.stack([v.centroid for v in voices]) @ np.asarray(centroid, dtype=np.float32)
    return voices[int(np.argmax(sims))].label


def gallery_files(path: str) -> Dict[str, List[str]]:
    """The reference clips of a gallery directory: ``<dir>/<name>/*.<audio>`` (several clips of one
    voice) and ``<dir>/<name>.<audio>`` (one clip), by name."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"speaker gallery {path} is not a directory")
    out: Dict[str, List[str]] = {}
    for entry in sorted(os.listdir(path)):
        full = os.path.join(path, entry)
        if os.path.isdir(full):
            clips = sorted(os.path.join(full, f) for f in os.listdir(full) if f.lower().endswith(AUDIO_EXTENSIONS))
            if clips:
                out[entry] = clips
        elif entry.lower().endswith(AUDIO_EXTENSIONS):
            out.setdefault(os.path.splitext(entry)[0], []).append(full)
    if not out:
        raise FileNotFoundError(f"speaker gallery {path} holds no audio (<name>/<clip> or <name>.<ext>)")
    return out


def gallery_voices(engine, path: str) -> Dict[str, np.ndarray]:
    """Name → voice (the mean embedding of its clips' speech) of the gallery in ``path``."""
    from ..audio import decode_audio

    out = {}
    for name, clips in gallery_files(path).items():
        embs = []
        for clip in clips:
            try:
                embs.append(engine.voice(decode_audio(clip)))
            except Exception as exc:
                raise ValueError(f"speaker gallery: {clip}: {exc}") from None
        out[name] = _unit(np.mean(embs, axis=0))
    return out
