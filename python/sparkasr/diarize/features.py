"""The voice encoder's front end in numpy: Resemblyzer's mel spectrogram (40 power-mel channels,
25-ms Hann windows every 10 ms, Slaney mel scale and area normalisation, as ``librosa``'s
``melspectrogram`` computes it, not logarithmic) and its loudness normalisation (-30 dBFS).

The spectrogram of a whole item is computed once; a window's features are a slice of it, scaled
for the window's loudness (a gain ``g`` on the samples is ``g**2`` on a power spectrogram), so
overlapping windows cost no second FFT."""

from __future__ import annotations

import functools

import numpy as np

from ..audio import SAMPLE_RATE

N_FFT = 400  # 25 ms
HOP = 160  # 10 ms: one frame per hundredth of a second
N_MELS = 40
FRAMES_PER_S = SAMPLE_RATE // HOP
TARGET_DBFS = -30.0  # Resemblyzer's audio_norm_target_dBFS
_INT16_MAX = 2**15 - 1


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, log above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = hz / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    log_t = hz >= min_log_hz
    mels = np.where(log_t, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, mels)
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


@functools.lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """``[N_MELS, N_FFT // 2 + 1]`` triangular filters, Slaney-normalised (librosa.filters.mel)."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_pts = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_pts[2 : N_MELS + 2] - mel_pts[:N_MELS]))[:, None]
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=1)
def _window() -> np.ndarray:
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)  # periodic Hann


def mel_spectrogram(samples: np.ndarray, block_frames: int = 6000) -> np.ndarray:
    """``[frames, N_MELS]`` power mel spectrogram of 16-kHz mono ``samples`` (frame ``k`` centred on
    sample ``k * HOP``, zero padding at both ends: ``1 + len // HOP`` frames). Computed in blocks
    of ``block_frames`` frames, so an hour of audio never holds its whole STFT in memory."""
    x = np.asarray(samples, dtype=np.float32)
    padded = np.pad(x, (N_FFT // 2, N_FFT // 2))
    n_frames = 1 + len(x) // HOP
    out = np.empty((n_frames, N_MELS), dtype=np.float32)
    fb = mel_filters().T
    win = _window()
    frames_all = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    for a in range(0, n_frames, block_frames):
        frames = frames_all[a : min(a + block_frames, n_frames)] * win
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        out[a : a + len(frames)] = power.astype(np.float32) @ fb
    return out


def loudness_gain(samples: np.ndarray, target_dbfs: float = TARGET_DBFS) -> float:
    """The gain that brings ``samples`` to ``target_dbfs`` RMS (1.0 for silence)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    if rms <= 1e-9:
        return 1.0
    return float(10 ** ((target_dbfs - 20 * np.log10(rms)) / 20))
