"""Decode any audio into 16 kHz mono float32, in bounded memory.

* Containers: everything libsndfile reads (WAV/RF64, FLAC, OGG/Vorbis/Opus, MP3, AIFF, ...) through
  ``soundfile``; the other audio containers of :data:`sparkasr.formats.CONTAINERS` (M4A/AAC, WebM,
  WMA, AMR, ...) through PyAV, each opened with its own FFmpeg demuxer after :mod:`sparkasr.formats`
  has recognised it, never by FFmpeg's probing (which would follow concat scripts, playlists and
  SDP files). Headerless PCM (``.raw``/``.pcm``) with an explicit :class:`RawFormat`.
* Any sample rate, any channel count, 8/16/24/32-bit integer and float: down-mixed by averaging
  channels and resampled with soxr (HQ), streaming, so an hour-long file never sits in memory at its
  native rate.
* Validation: empty input, undecodable bytes, a truncated file (the header declares more audio
  than the file holds), NaN/inf samples, zero-length and all-silent audio raise
  :class:`AudioError` with a reason; callers turn it into an error row.
"""

from __future__ import annotations

import io
import os
import re
import stat
from dataclasses import dataclass
from typing import BinaryIO, Iterator, List, Optional, Tuple, Union

import numpy as np

from .formats import check_codec, ffmpeg_open_args, refusal, sniff_file

SAMPLE_RATE = 16000
AUDIO_EXTENSIONS = (
    ".wav",
    ".wave",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".aif",
    ".aiff",
    ".aifc",
    ".au",
    ".caf",
    ".w64",
    ".rf64",
    ".m4a",
    ".aac",
    ".mp4",
    ".webm",
    ".wma",
    ".mka",
    ".raw",
    ".pcm",
)
RAW_EXTENSIONS = (".raw", ".pcm")
# A peak below this (about -90 dBFS) is digital silence: Whisper hallucinates on it.
SILENCE_PEAK = 3e-5
_BLOCK_FRAMES = 16000 * 30  # native frames decoded per step

Source = Union[bytes, bytearray, memoryview, str, os.PathLike, BinaryIO]


class AudioError(ValueError):
    """Audio that cannot be turned into samples; the message says why."""


@dataclass(frozen=True)
class RawFormat:
    """How to read headerless PCM."""

    sample_rate: int = 16000
    channels: int = 1
    subtype: str = "PCM_16"  # soundfile subtype: PCM_S8, PCM_16, PCM_24, PCM_32, FLOAT, DOUBLE
    endian: str = "LITTLE"


def _is_raw_name(name: Optional[str]) -> bool:
    return bool(name) and str(name).lower().endswith(RAW_EXTENSIONS)


def _as_file(source: Source, name: Optional[str]) -> Tuple[BinaryIO, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) == 0:
            raise AudioError("empty file (0 bytes)")
        return io.BytesIO(data), name or "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise AudioError("file not found")
        if os.path.isdir(path):
            raise AudioError("is a directory, not an audio file")
        if stat.S_ISFIFO(os.stat(path).st_mode):  # a named pipe cannot seek: read it to its end
            with open(path, "rb") as f:
                data = f.read()
            if not data:
                raise AudioError("empty file (0 bytes)")
            return io.BytesIO(data), name or path
        if os.path.getsize(path) == 0:
            raise AudioError("empty file (0 bytes)")
        return open(path, "rb"), name or path
    return source, name or getattr(source, "name", "<stream>")


class _Resampler:
    """Streaming down-mix + soxr resampling to 16 kHz mono float32."""

    def __init__(self, in_rate: int):
        if in_rate <= 0:
            raise AudioError(f"invalid sample rate {in_rate}")
        self.in_rate = int(in_rate)
        self._stream = None
        if self.in_rate != SAMPLE_RATE:
            import soxr

            self._stream = soxr.ResampleStream(self.in_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    def push(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        block = np.asarray(block)
        if block.ndim == 2:
            block = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
        block = np.ascontiguousarray(block, dtype=np.float32)
        if self._stream is None:
            return block
        return self._stream.resample_chunk(block, last=last)


def _check_finite(block: np.ndarray) -> None:
    if block.size and not np.isfinite(block).all():
        raise AudioError("audio contains NaN or infinite samples")


def iter_audio_blocks(
    source: Source,
    name: Optional[str] = None,
    raw_format: Optional[RawFormat] = None,
    block_frames: int = _BLOCK_FRAMES,
) -> Iterator[np.ndarray]:
    """Yield 16 kHz mono float32 blocks of ``source`` (path, bytes or binary file object).

    Raises :class:`AudioError` (a truncated file before any block; possibly after some blocks were
    yielded for a decode error or NaN samples found mid-way).
    """
    fh, label = _as_file(source, name)
    close = isinstance(source, (str, os.PathLike))
    try:
        if raw_format is None and _is_raw_name(label):
            raw_format = RawFormat()
        yield from _iter_soundfile(fh, raw_format, block_frames, label)
    except _NotSoundfile:
        fh.seek(0)
        yield from _iter_pyav(fh, label)
    finally:
        if close:
            fh.close()


class _NotSoundfile(Exception):
    pass


def _open_soundfile(fh: BinaryIO, raw_format: Optional[RawFormat]):
    """``fh`` as an open ``soundfile.SoundFile`` (checked for channels and truncation); raises
    :class:`_NotSoundfile` for a format libsndfile does not read."""
    import soundfile as sf

    try:
        if raw_format is not None:
            f = sf.SoundFile(
                fh,
                mode="r",
                format="RAW",
                samplerate=raw_format.sample_rate,
                channels=raw_format.channels,
                subtype=raw_format.subtype,
                endian=raw_format.endian,
            )
        else:
            f = sf.SoundFile(fh, mode="r")
    except sf.LibsndfileError as exc:
        if raw_format is not None:
            raise AudioError(f"cannot read raw PCM: {exc}") from None
        raise _NotSoundfile(str(exc)) from None
    try:
        if f.channels < 1:
            raise AudioError("audio has no channels")
        truncated = _truncation(f.extra_info)
        if truncated:
            # libsndfile would read what is there and say nothing: a cut-off download or copy
            # would give a transcript of part of the file, passed off as the whole.
            raise AudioError(
                f"file is truncated: its header declares {truncated[0]} bytes of audio data, the file "
                f"holds {truncated[1]} ({f.frames / max(f.samplerate, 1):.2f} s of {f.format} audio)"
            )
    except AudioError:
        f.close()
        raise
    return f


def _soundfile_blocks(f, block_frames: int, frames: Optional[int] = None):
    """16 kHz mono blocks of an open SoundFile from its current position: to the end, or the next
    ``frames`` native frames (the resampler flushed after the last of them)."""
    import soundfile as sf

    resampler = _Resampler(f.samplerate)
    total = 0
    while True:
        want = block_frames if frames is None else min(block_frames, frames - total)
        try:
            block = f.read(want, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"decoding failed after {total / max(f.samplerate, 1):.2f} s: {exc}") from None
        total += len(block)
        last = len(block) < want or (frames is not None and total >= frames)
        _check_finite(block)
        out = resampler.push(block, last=last)
        if out.size:
            yield out
        if last:
            break


def _iter_soundfile(fh: BinaryIO, raw_format: Optional[RawFormat], block_frames: int, label: str):
    with _open_soundfile(fh, raw_format) as f:
        yield from _soundfile_blocks(f, block_frames)


# libsndfile's header log: ``data : 96000 (should be 47978)`` (WAV), ``SSND : ...`` (AIFF),
# ``Data Size   : ...`` (AU): the audio chunk claims more bytes than the file holds.
_SHORT_CHUNK = re.compile(r"^\s*(?:data|SSND|Data Size)\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)
# Chunk sizes that mean "length unknown" (WAV written to a pipe), not a promise of that much data.
_UNKNOWN_SIZE = 0xFFFF0000


def _truncation(log: str) -> Optional[Tuple[int, int]]:
    """``(declared, present)`` bytes of audio data when the header promises more than the file
    holds, else ``None``. A byte or two short is a missing pad byte, not lost audio."""
    for a, b in _SHORT_CHUNK.findall(log or ""):
        declared, present = int(a), int(b)
        if present + 2 < declared < _UNKNOWN_SIZE:
            return declared, present
    return None


def _iter_pyav(fh: BinaryIO, label: str):
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a core dependency
        raise AudioError(f"not a format libsndfile reads and PyAV is unavailable: {exc}") from None
    detected = sniff_file(fh)
    if not detected.audio:  # FFmpeg never probes: it would pick concat, SDP, HLS, image2, ...
        raise AudioError(refusal(detected))
    try:
        container = av.open(fh, mode="r", metadata_errors="ignore", **ffmpeg_open_args(detected))
    except Exception as exc:  # av raises many error types (InvalidDataError, ...)
        raise AudioError(f"not a decodable audio file ({detected.name}: {type(exc).__name__}: {exc})") from None
    with container:
        if not container.streams.audio:
            raise AudioError(f"file has no audio stream ({detected.name})")
        stream = container.streams.audio[0]
        try:
            check_codec(stream.codec_context.name, detected.name)
        except ValueError as exc:
            raise AudioError(str(exc)) from None
        # FFmpeg only converts the sample format here (planar float, native rate and layout): its
        # own down-mix is not the channel mean (stereo -> (L+R)/sqrt(2), 5.1 -> a weighted sum that
        # can exceed 1.0), so channels are averaged and resampled exactly as on the libsndfile path.
        to_float = av.AudioResampler(format="fltp")
        resampler: Optional[_Resampler] = None
        try:
            for frame in container.decode(stream):
                frame.pts = None
                if resampler is not None and frame.sample_rate != resampler.in_rate:
                    tail = resampler.push(np.zeros(0, np.float32), last=True)  # rate changed mid-stream
                    if tail.size:
                        yield tail
                    resampler = None
                if resampler is None:
                    resampler = _Resampler(frame.sample_rate)
                for out in to_float.resample(frame):
                    planes = out.to_ndarray()  # (channels, samples) float32
                    _check_finite(planes)
                    arr = resampler.push(planes.T)  # (samples, channels): averaged by push
                    if arr.size:
                        yield arr
            if resampler is not None:
                for out in to_float.resample(None):
                    planes = out.to_ndarray()
                    _check_finite(planes)
                    arr = resampler.push(planes.T)
                    if arr.size:
                        yield arr
                tail = resampler.push(np.zeros(0, np.float32), last=True)
                if tail.size:
                    yield tail
        except AudioError:
            raise
        except Exception as exc:
            raise AudioError(f"decoding failed ({type(exc).__name__}: {exc})") from None


def validate_samples(samples: np.ndarray) -> np.ndarray:
    """Check decoded samples: non-empty, finite, not silent. Returns them unchanged."""
    if samples is None or samples.size == 0:
        raise AudioError("audio has zero length (no samples)")
    if not np.isfinite(samples).all():
        raise AudioError("audio contains NaN or infinite samples")
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise AudioError("audio is silent (peak below -90 dBFS); nothing to transcribe")
    return samples


def decode_audio(
    source: Source,
    name: Optional[str] = None,
    raw_format: Optional[RawFormat] = None,
    validate: bool = True,
) -> np.ndarray:
    """Decode a whole file into one 16 kHz mono float32 array."""
    blocks = list(iter_audio_blocks(source, name=name, raw_format=raw_format))
    samples = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    return validate_samples(samples) if validate else samples


def to_mono_16k(samples, sample_rate: int, channels: int = 1) -> np.ndarray:
    """Convert an in-memory float array (interleaved if ``channels > 1``) to 16 kHz mono float32."""
    arr = np.asarray(samples, dtype=np.float32).reshape(-1)
    if channels > 1:
        if arr.size % channels:
            raise AudioError(f"{arr.size} samples is not a multiple of {channels} channels")
        arr = arr.reshape(-1, channels).mean(axis=1)
    _check_finite(arr)
    if sample_rate != SAMPLE_RATE and arr.size:
        import soxr

        arr = soxr.resample(arr, int(sample_rate), SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(arr, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Segmenting long audio into rows, cutting in quiet places
# ---------------------------------------------------------------------------------------------


def quiet_cut(samples: np.ndarray, target: int, search: int, frame: int = 1600, latest_within: float = 1.0) -> int:
    """Index near ``target`` (within ``search`` samples before it) at the quietest 100-ms frame.

    ``latest_within > 1``: the latest frame whose energy is at most ``latest_within`` times the
    quietest frame's (the same pause or a later, equally quiet one), so that pieces stay as long as
    the quiet points allow.
    """
    lo = max(frame, target - search)
    if target - lo < frame:
        return target
    window = samples[lo:target]
    n = len(window) // frame
    if n == 0:
        return target
    energy = (np.asarray(window[: n * frame], dtype=np.float32).reshape(n, frame) ** 2).mean(axis=1)
    best = int(np.argmin(energy))
    if latest_within > 1.0:
        best = int(np.flatnonzero(energy <= energy[best] * latest_within + 1e-12)[-1])
    return lo + best * frame + frame // 2


def cut_pieces(
    samples: np.ndarray, window_s: float, search_s: float, latest_within: float = 4.0
) -> List[Tuple[int, int]]:
    """``(start, end)`` sample ranges of at most ``window_s`` seconds covering ``samples``, each cut
    moved back (by up to ``search_s``) to a quiet 100-ms frame: the latest one with at most
    ``latest_within`` times the quietest frame's energy (twice its RMS), so pieces stay long."""
    n = len(samples)
    size = int(window_s * SAMPLE_RATE)
    search = int(search_s * SAMPLE_RATE)
    out: List[Tuple[int, int]] = []
    start = 0
    while n - start > size:
        cut = start + quiet_cut(
            samples[start : start + size], size, min(search, size // 2), latest_within=latest_within
        )
        out.append((start, cut))
        start = cut
    out.append((start, n))
    return out


def sound_frames(samples: np.ndarray, frame_s: float = 0.02) -> np.ndarray:
    """One flag per ``frame_s`` frame of ``samples``: louder than a tenth of the loud frames' level
    (95th percentile RMS). All false when nothing stands out (silence, or fewer than 3 frames)."""
    frame = max(1, int(frame_s * SAMPLE_RATE))
    k = len(samples) // frame
    if k < 3:
        return np.zeros(k, dtype=bool)
    rms = np.sqrt((np.asarray(samples[: k * frame], dtype=np.float32).reshape(k, frame) ** 2).mean(axis=1))
    level = float(np.percentile(rms, 95))
    if level <= 1e-5:
        return np.zeros(k, dtype=bool)
    return rms > 0.1 * level


def speech_bounds(samples: np.ndarray, frame_s: float = 0.02, pad_s: float = 0.1) -> Tuple[float, float]:
    """``(start_s, end_s)`` of the sound in ``samples`` (:func:`sound_frames`), padded by ``pad_s``;
    the whole span when nothing stands out."""
    dur = len(samples) / SAMPLE_RATE
    loud = np.flatnonzero(sound_frames(samples, frame_s))
    if loud.size == 0:
        return 0.0, dur
    return max(0.0, loud[0] * frame_s - pad_s), min(dur, (loud[-1] + 1) * frame_s + pad_s)


def iter_segments(
    blocks: Iterator[np.ndarray],
    segment_s: float,
    search_s: float = 5.0,
) -> Iterator[Tuple[float, np.ndarray]]:
    """Group a block stream into ``(offset_s, samples)`` segments of at most ``segment_s`` seconds.

    Boundaries are moved back (by up to ``search_s``) to the quietest 100-ms frame so that words are
    rarely cut. Memory is bounded by one segment plus one block.
    """
    seg_len = int(segment_s * SAMPLE_RATE)
    search = int(search_s * SAMPLE_RATE)
    if seg_len <= 0:
        raise ValueError("segment_s must be > 0")
    buf = np.zeros(0, dtype=np.float32)
    offset = 0
    for block in blocks:
        buf = np.concatenate([buf, block]) if buf.size else block
        while len(buf) > seg_len:
            cut = quiet_cut(buf, seg_len, min(search, seg_len // 2))
            yield offset / SAMPLE_RATE, buf[:cut].copy()
            offset += cut
            buf = buf[cut:]
    if buf.size or offset == 0:
        yield offset / SAMPLE_RATE, buf


def decode_audio_slice(
    source: Source,
    start: int,
    length: int,
    name: Optional[str] = None,
    raw_format: Optional[RawFormat] = None,
) -> np.ndarray:
    """Samples ``[start, start + length)`` of ``decode_audio(source)`` (16 kHz sample indices),
    decoding only that part of the file where the format allows it.

    * libsndfile formats (WAV, FLAC, OGG, MP3, AIFF, raw PCM, ...): the file is seeked to the
      slice. At 16 kHz lossless formats give exactly the whole-file decode's samples. At other
      rates the native frames of the slice, plus 0.1 s on each side, are resampled on their own,
      from a frame on the 16-kHz grid: the same samples as the whole-file decode up to float
      rounding (soxr's filter has settled well within 0.1 s). Lossy codecs decode a little
      differently after a seek (MP3's bit reservoir: 44.1-kHz MP3 slices measured 45 dB SNR or
      better against the whole-file decode; Vorbis within 3e-7).
    * Formats only FFmpeg reads (M4A/AAC, WebM, ...): decoded from the start and cut, so a file
      read in many slices is decoded up to each slice.

    Raises :class:`AudioError` naming the reason, including a file that now ends before the
    slice does (it changed since the slice was planned).
    """
    from math import gcd

    start, length = int(start), int(length)
    if start < 0 or length <= 0:
        raise AudioError(f"invalid slice: start {start}, length {length} samples")
    fh, label = _as_file(source, name)
    close = isinstance(source, (str, os.PathLike))
    try:
        if raw_format is None and _is_raw_name(label):
            raw_format = RawFormat()
        try:
            f = _open_soundfile(fh, raw_format)
        except _NotSoundfile:
            fh.seek(0)
            samples = _take(_iter_pyav(fh, label), start, length)
        else:
            with f:
                rate = f.samplerate
                if not f.seekable():
                    samples = _take(_soundfile_blocks(f, _BLOCK_FRAMES), start, length)
                else:
                    if rate == SAMPLE_RATE:
                        first, pad = start, 0
                    else:
                        step = rate // gcd(rate, SAMPLE_RATE)  # native frames per whole number of 16-kHz samples
                        pad = rate // 10
                        first = max(0, (start * rate // SAMPLE_RATE - pad) // step * step)
                    frames = -(-(start + length) * rate // SAMPLE_RATE) + pad - first
                    f.seek(min(first, f.frames))
                    samples = _take(
                        _soundfile_blocks(f, _BLOCK_FRAMES, frames), start - first * SAMPLE_RATE // rate, length
                    )
    finally:
        if close:
            fh.close()
    if len(samples) < length - _SLICE_SLACK:
        raise AudioError(
            f"the file ends before the slice [{start / SAMPLE_RATE:.3f}, {(start + length) / SAMPLE_RATE:.3f}) s does "
            f"({len(samples)} of its {length} samples decoded): did it change since the slice was planned?"
        )
    return samples


# Samples a slice may come up short at the end of a file (resampler rounding): 1 ms.
_SLICE_SLACK = SAMPLE_RATE // 1000


def _take(blocks: Iterator[np.ndarray], skip: int, length: int) -> np.ndarray:
    """``length`` samples of a block stream after its first ``skip`` (fewer where it ends first);
    stops reading once it has them."""
    out, have = [], 0
    for block in blocks:
        if skip >= len(block):
            skip -= len(block)
            continue
        out.append(block[skip : skip + length - have])
        skip = 0
        have += len(out[-1])
        if have >= length:
            break
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
