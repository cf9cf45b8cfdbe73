"""Where the voices are in time: speech regions (the Silero VAD that faster-whisper bundles, with
pauses as short as a turn change), the encoder's windows over them, and speaker changes inside a
region (a peak of the cosine distance between the windows either side)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from ..audio import SAMPLE_RATE
from .options import DiarizationOptions

BLOCK_S = 600.0  # VAD input per call: an hour-long item never becomes one model input
Span = Tuple[float, float]


def speech_regions(samples: np.ndarray, opts: DiarizationOptions) -> List[Span]:
    """``(start_s, end_s)`` of the speech in ``samples`` (16 kHz mono): Silero VAD, a pause of
    ``min_silence_s`` ending a region, regions shorter than ``min_speech_s`` dropped."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    vad = VadOptions(
        threshold=opts.vad_threshold,
        min_speech_duration_ms=int(opts.min_speech_s * 1000),
        min_silence_duration_ms=int(opts.min_silence_s * 1000),
        speech_pad_ms=int(opts.speech_pad_s * 1000),
    )
    block = int(BLOCK_S * SAMPLE_RATE)
    spans: List[Span] = []
    for start in range(0, len(samples), block):
        part = np.ascontiguousarray(samples[start : start + block], dtype=np.float32)
        if part.size < 512:  # under one VAD frame
            continue
        for t in get_speech_timestamps(part, vad):
            a, b = (start + t["start"]) / SAMPLE_RATE, (start + t["end"]) / SAMPLE_RATE
            if spans and a - spans[-1][1] <= 1e-3:  # a region cut by a block boundary
                spans[-1] = (spans[-1][0], b)
            else:
                spans.append((a, b))
    return spans


@dataclass(frozen=True)
class Window:
    """One encoder input: ``[start, end)`` seconds inside region ``region``."""

    region: int
    start: float
    end: float

    @property
    def centre(self) -> float:
        return (self.start + self.end) / 2


def region_windows(regions: Sequence[Span], opts: DiarizationOptions) -> List[Window]:
    """Windows of ``window_s`` every ``step_s`` or so over each region at least ``min_window_s``
    long (evenly spread, the last ending with the region; a region shorter than a window is one
    window)."""
    out: List[Window] = []
    for k, (a, b) in enumerate(regions):
        length = b - a
        if length < opts.min_window_s:
            continue
        if length <= opts.window_s:
            out.append(Window(k, a, b))
            continue
        n = int(np.ceil((length - opts.window_s) / opts.step_s)) + 1
        for s in np.linspace(a, b - opts.window_s, n):
            out.append(Window(k, float(s), float(s) + opts.window_s))
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def change_points(windows: Sequence[Window], embeddings: np.ndarray, opts: DiarizationOptions) -> List[float]:
    """Speaker changes inside one region, in seconds: between consecutive windows where the distance
    between the mean of the two windows before and the two after is a peak above
    ``change_threshold``; peaks closer than ``min_turn_s`` to each other or to the region's ends
    give way to the higher one."""
    n = len(windows)
    if n < 2:
        return []
    dist = np.zeros(n - 1)
    for i in range(n - 1):
        left = _unit(embeddings[max(0, i - 1) : i + 1].mean(axis=0))
        right = _unit(embeddings[i + 1 : i + 3].mean(axis=0))
        dist[i] = 1.0 - float(left @ right)
    a, b = windows[0].start, windows[-1].end
    peaks = []
    for i in range(n - 1):
        if dist[i] < opts.change_threshold:
            continue
        if (i > 0 and dist[i - 1] > dist[i]) or (i + 1 < n - 1 and dist[i + 1] > dist[i]):
            continue
        t = (windows[i].centre + windows[i + 1].centre) / 2
        if t - a >= opts.min_turn_s and b - t >= opts.min_turn_s:
            peaks.append((dist[i], t))
    chosen: List[float] = []
    for _, t in sorted(peaks, reverse=True):
        if all(abs(t - c) >= opts.min_turn_s for c in chosen):
            chosen.append(t)
    return sorted(chosen)
