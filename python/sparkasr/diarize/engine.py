"""Who spoke when in one item, as passes over typed records: speech regions (Silero VAD) → encoder
windows → voice embeddings (ONNX Runtime) → speaker changes inside regions → segments → clustering
(numSpeakers, or a threshold within minSpeakers..maxSpeakers) → each segment moved to its nearest
speaker centroid → turns and speaker profiles. :class:`DiarizationEngine` runs it on
:class:`~sparkasr.records.AudioItem` s and never raises for a bad item (its result carries the
error)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

from ..audio import SAMPLE_RATE
from ..records import AudioItem, with_source
from .clustering import centroids, cluster, first_appearance, nearest
from .encoder import VoiceEncoder, frames_of
from .features import FRAMES_PER_S, loudness_gain, mel_spectrogram
from .options import DiarizationOptions
from .records import Diarization, SpeakerProfile, SpeakerTurn, merge_turns
from .segmentation import Window, change_points, region_windows, speech_regions

log = logging.getLogger(__name__)

REFINE_ROUNDS = 2  # segments moved to their nearest centroid, centroids recomputed


@dataclass
class Segment:
    """A stretch of one speech region with one voice: its time, its windows' mean embedding."""

    start: float
    end: float
    embedding: np.ndarray

    @property
    def duration(self) -> float:
        return self.end - self.start


class DiarizationEngine:
    """The voice encoder in ``model_dir`` and ``options``; ``threads`` for ONNX Runtime."""

    def __init__(self, model_dir: str, options: DiarizationOptions = DiarizationOptions(), threads: int = 0):
        import scipy.cluster.hierarchy  # noqa: F401  (a second's import: part of loading, not of the first item)

        self.options = options
        self.encoder = VoiceEncoder(model_dir, threads)

    # -- one item -----------------------------------------------------------------------------
    def embed_windows(self, samples: np.ndarray, windows: Sequence[Window]) -> np.ndarray:
        """``[len(windows), 256]`` embeddings of ``windows`` of ``samples`` (each window brought to
        -30 dBFS, as the encoder was trained)."""
        if not windows:
            return np.zeros((0, 256), np.float32)
        mel = mel_spectrogram(samples)
        spans, gains = [], []
        for w in windows:
            a, b = int(round(w.start * FRAMES_PER_S)), int(round(w.end * FRAMES_PER_S))
            spans.append((a, min(max(b, a + 1), len(mel))))
            gains.append(loudness_gain(samples[int(w.start * SAMPLE_RATE) : int(w.end * SAMPLE_RATE)]))
        return self.encoder.embed_spans(mel, spans, gains, frames_of(self.options.window_s))

    def voice(self, samples: np.ndarray) -> np.ndarray:
        """One L2-normalised embedding of all the speech in ``samples`` (a gallery's reference clip)."""
        o = self.options
        windows = region_windows(speech_regions(samples, o), o)
        if not windows:
            raise ValueError("no speech found")
        emb = self.embed_windows(samples, windows).mean(axis=0)
        return (emb / max(float(np.linalg.norm(emb)), 1e-12)).astype(np.float32)

    def diarize(self, samples: np.ndarray, source: str = "", offset_s: float = 0.0) -> Diarization:
        o = self.options
        duration = len(samples) / SAMPLE_RATE
        regions = speech_regions(samples, o)
        windows = region_windows(regions, o)
        result = Diarization(source=source, offset_s=offset_s, duration_s=duration)
        if not windows:
            return result
        return self.label(result, regions, windows, self.embed_windows(samples, windows))

    def label(self, result: Diarization, regions, windows: Sequence[Window], emb: np.ndarray) -> Diarization:
        """The passes after the encoder: ``result`` with the turns and speakers that the speech
        ``regions``, their ``windows`` and the windows' embeddings ``emb`` give."""
        o = self.options
        offset_s = result.offset_s
        segments = self._segments(regions, windows, emb)
        seg_emb = np.stack([s.embedding for s in segments])
        labels = cluster(seg_emb, o.threshold, o.num_speakers, o.min_speakers, o.max_speakers)
        weights = np.array([s.duration for s in segments])
        for _ in range(REFINE_ROUNDS):
            moved = first_appearance(nearest(seg_emb, centroids(seg_emb, labels, weights)))
            if np.array_equal(moved, labels):
                break
            labels = moved
        if o.num_speakers == 0:
            labels = self._absorb_small(seg_emb, labels, weights)
        names = [f"{o.label_prefix}{k + 1}" for k in range(int(labels.max()) + 1)]
        turns = [SpeakerTurn(s.start, s.end, names[k]) for s, k in zip(segments, labels)]
        turns += self._short_regions(regions, windows, turns)
        result.turns = [
            SpeakerTurn(round(offset_s + t.start, 3), round(offset_s + t.end, 3), t.speaker) for t in merge_turns(turns)
        ]
        win_labels = np.array([labels[self._segment_of(segments, w)] for w in windows])
        cents = centroids(emb, win_labels)
        for k, name in enumerate(names):
            speech = sum(t.duration for t in result.turns if t.speaker == name)
            if speech > 0:
                result.speakers.append(SpeakerProfile(name, round(speech, 3), cents[k]))
        return result

    def _absorb_small(self, seg_emb: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Speakers with less than ``min_speaker_s`` of speech (and a smaller share of it than
        ``min_speaker_share``) moved into their nearest other speaker, while more than
        ``min_speakers`` remain: a stray segment is rarely a voice of its own."""
        o = self.options
        while True:
            k = int(labels.max()) + 1
            speech = np.bincount(labels, weights=weights, minlength=k)
            small = [
                j for j in np.argsort(speech) if speech[j] < max(o.min_speaker_s, o.min_speaker_share * speech.sum())
            ]
            if not small or k <= o.min_speakers:
                return labels
            j = small[0]
            cents = centroids(seg_emb, labels, weights)
            others = [i for i in range(k) if i != j]
            for s in np.nonzero(labels == j)[0]:
                labels[s] = others[int(np.argmax(cents[others] @ seg_emb[s]))]
            labels = first_appearance(labels)

    def _segments(self, regions, windows: Sequence[Window], emb: np.ndarray) -> List[Segment]:
        """Each embedded region cut at its speaker changes; a segment's embedding is the mean of the
        windows centred in it (the nearest window when none is)."""
        o = self.options
        by_region: dict = {}
        for i, w in enumerate(windows):
            by_region.setdefault(w.region, []).append(i)
        out: List[Segment] = []
        for k, idx in sorted(by_region.items()):
            a, b = regions[k]
            cuts = [a] + change_points([windows[i] for i in idx], emb[idx], o) + [b]
            for s, e in zip(cuts, cuts[1:]):
                inside = [i for i in idx if s <= windows[i].centre < e]
                if not inside:
                    inside = [min(idx, key=lambda i: abs(windows[i].centre - (s + e) / 2))]
                m = emb[inside].mean(axis=0)
                out.append(Segment(s, e, m / max(float(np.linalg.norm(m)), 1e-12)))
        return out

    @staticmethod
    def _segment_of(segments: Sequence[Segment], w: Window) -> int:
        c = w.centre
        for i, s in enumerate(segments):
            if s.start <= c < s.end:
                return i
        return int(np.argmin([min(abs(c - s.start), abs(c - s.end)) for s in segments]))

    @staticmethod
    def _short_regions(regions, windows: Sequence[Window], turns: Sequence[SpeakerTurn]) -> List[SpeakerTurn]:
        """Regions too short to embed, each given the speaker of the nearest turn in time."""
        embedded = {w.region for w in windows}
        out = []
        for k, (a, b) in enumerate(regions):
            if k in embedded or not turns:
                continue
            near = min(turns, key=lambda t: max(t.start - b, a - t.end, 0.0))
            out.append(SpeakerTurn(a, b, near.speaker))
        return out

    # -- the engine contract ------------------------------------------------------------------
    def diarize_batch(self, items: Sequence[AudioItem]) -> List[Diarization]:
        """One :class:`Diarization` per item, in order; an item that cannot be diarized gets its error."""
        out = []
        for it in items:
            if it.error is not None or it.samples is None:
                out.append(Diarization(source=it.source, offset_s=it.offset_s, error=it.error or "no audio"))
                continue
            try:
                out.append(self.diarize(it.samples, it.source, it.offset_s))
            except Exception as exc:  # one item's failure is its own error row
                log.warning("diarization failed on %s", it.source or "<audio>", exc_info=True)
                out.append(
                    Diarization(
                        source=it.source,
                        offset_s=it.offset_s,
                        duration_s=it.duration_s,
                        error=with_source(it.source, f"diarization failed: {type(exc).__name__}: {exc}"),
                    )
                )
        return out
