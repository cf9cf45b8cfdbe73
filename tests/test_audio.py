"""sparkasr.audio: decoding any audio to 16 kHz mono float32 in blocks, validation, segmenting.

Everything is generated from the vendored real clips (tests/data) with soundfile / PyAV / soxr, all of
which are core dependencies: no external tools (sox, ffmpeg CLI) are needed.
"""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import soxr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CARDS, GOFORWARD, LIBRIVOX
from sparkasr import audio as audio_mod
from sparkasr.audio import (
    SAMPLE_RATE,
    AudioError,
    RawFormat,
    decode_audio,
    decode_audio_slice,
    iter_audio_blocks,
    iter_segments,
    to_mono_16k,
)

CLIP = LIBRIVOX[0][0]  # 7.1 s, 16 kHz mono PCM_16 speech


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    x, sr = sf.read(CLIP, dtype="float32")
    assert sr == SAMPLE_RATE and x.ndim == 1
    return x


def _write(arr, sr, fmt="WAV", subtype=None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, arr, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def _av_encode(x: np.ndarray, sr: int, container: str, codec: str, layout: str = "mono") -> bytes:
    """Encode float samples, (n,) or (n, channels), with PyAV (FFmpeg's encoders in the av wheel)."""
    import av

    planes = np.ascontiguousarray(np.atleast_2d(x.T) if x.ndim == 2 else x[None, :], dtype=np.float32)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as c:
        stream = c.add_stream(codec, rate=sr)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
        frame.sample_rate = sr
        for pkt in stream.encode(frame):
            c.mux(pkt)
        for pkt in stream.encode(None):
            c.mux(pkt)
    return buf.getvalue()


def _aligned_corr(decoded: np.ndarray, ref: np.ndarray, max_lag: int = 4000):
    """(lag, correlation) of ``decoded`` against ``ref`` at the best lag in [0, max_lag]."""
    n = len(ref) - max_lag
    c = np.correlate(decoded[: n + max_lag], ref[:n], "valid")
    lag = int(np.argmax(c))
    a = decoded[lag : lag + len(ref)]
    m = min(len(a), len(ref))
    return lag, float(np.corrcoef(a[:m], ref[:m])[0, 1])


def _snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    n = min(len(ref), len(test))
    err = ref[:n] - test[:n]
    return float(10 * np.log10(np.sum(ref[:n] ** 2) / max(np.sum(err**2), 1e-30)))


# ---------------------------------------------------------------------------------------------
# Containers and codecs
# ---------------------------------------------------------------------------------------------

# Lossless: decoded audio must equal the 16-bit WAV decode *exactly* (16-bit values are exactly
# representable in every one of these subtypes).
LOSSLESS = [
    ("WAV", "PCM_16"),
    ("WAV", "PCM_24"),
    ("WAV", "PCM_32"),
    ("WAV", "FLOAT"),
    ("WAV", "DOUBLE"),
    ("FLAC", "PCM_16"),
    ("FLAC", "PCM_24"),
    ("AIFF", "PCM_16"),
    ("RF64", "PCM_16"),
    ("W64", "FLOAT"),
]


@pytest.mark.parametrize("fmt,subtype", LOSSLESS, ids=[f"{f}-{s}" for f, s in LOSSLESS])
def test_lossless_formats_decode_exactly(speech, fmt, subtype):
    ref = decode_audio(CLIP)
    np.testing.assert_array_equal(ref, speech)
    got = decode_audio(_write(speech, SAMPLE_RATE, fmt, subtype))
    assert got.dtype == np.float32 and got.ndim == 1
    np.testing.assert_array_equal(got, ref)  # tolerance: exact


def test_8bit_pcm_within_quantisation(speech):
    got = decode_audio(_write(speech, SAMPLE_RATE, "WAV", "PCM_U8"))
    assert len(got) == len(speech)
    # 8-bit has a step of 1/128; allow one full step
    assert np.max(np.abs(got - speech)) <= 1 / 128 + 1e-6


@pytest.mark.parametrize("fmt,subtype", [("MP3", "MPEG_LAYER_III"), ("OGG", "VORBIS"), ("OGG", "OPUS")])
def test_lossy_libsndfile_formats(speech, fmt, subtype):
    if fmt not in sf.available_formats() or subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write {fmt}/{subtype}")
    got = decode_audio(_write(speech, SAMPLE_RATE, fmt, subtype))
    assert abs(len(got) - len(speech)) <= 2 * 1152  # at most codec padding
    lag, corr = _aligned_corr(got, speech)
    assert lag <= 2 * 1152
    assert corr > 0.98, f"{fmt}/{subtype}: correlation with the source {corr:.4f}"


@pytest.mark.parametrize(
    "container,codec,rate,suffix",
    [("ipod", "aac", 16000, ".m4a"), ("ipod", "aac", 44100, ".m4a"), ("webm", "libopus", 48000, ".webm")],
)
def test_pyav_fallback_for_non_libsndfile_containers(speech, tmp_path, monkeypatch, container, codec, rate, suffix):
    src = speech if rate == SAMPLE_RATE else soxr.resample(speech, SAMPLE_RATE, rate)
    data = _av_encode(src, rate, container, codec)
    with pytest.raises(sf.LibsndfileError):  # really not something libsndfile reads
        sf.info(io.BytesIO(data))

    calls = []
    real = audio_mod._iter_pyav

    def spy(fh, label):
        calls.append(label)
        yield from real(fh, label)

    monkeypatch.setattr(audio_mod, "_iter_pyav", spy)
    path = tmp_path / f"clip{suffix}"
    path.write_bytes(data)
    for source in (data, path):
        got = decode_audio(source)
        assert abs(len(got) - len(speech)) <= 0.2 * SAMPLE_RATE
        lag, corr = _aligned_corr(got, speech)
        assert lag <= 2048  # AAC priming samples
        assert corr > 0.97, f"{container}/{codec}@{rate}: correlation {corr:.4f}"
    assert len(calls) == 2 and calls[1] == str(path)


@pytest.mark.parametrize("layout,channels,rate", [("stereo", 2, 16000), ("5.1", 6, 16000), ("stereo", 2, 44100)])
def test_pyav_path_downmix_is_channel_mean(speech, layout, channels, rate):
    # 16-bit PCM in Matroska: lossless, and only FFmpeg reads it. FFmpeg's own down-mix would give
    # (L+R)/sqrt(2) for stereo and a weighted sum (> mean) for 5.1; the decoder averages instead,
    # exactly like the libsndfile path.
    cols = [np.roll(speech, 37 * k) * (0.4 + 0.1 * k) for k in range(channels)]
    multi = np.stack(cols, axis=1)
    if rate != SAMPLE_RATE:
        multi = soxr.resample(multi, SAMPLE_RATE, rate)
    multi = (np.round(np.clip(multi, -1, 1) * 32767) / 32768).astype(np.float32)  # what 16-bit PCM holds
    data = _av_encode(multi, rate, "matroska", "pcm_s16le", layout)
    with pytest.raises(sf.LibsndfileError):
        sf.info(io.BytesIO(data))
    got = decode_audio(data)
    expect = multi.mean(axis=1)
    if rate != SAMPLE_RATE:
        expect = soxr.resample(expect, rate, SAMPLE_RATE, quality="HQ")
    assert abs(len(got) - len(expect)) <= 1
    n = min(len(got), len(expect))
    np.testing.assert_allclose(got[:n], expect[:n], atol=1e-4)


def test_file_object_source(speech):
    got = decode_audio(io.BytesIO(_write(speech, SAMPLE_RATE, "FLAC", "PCM_16")))
    np.testing.assert_array_equal(got, speech)


# ---------------------------------------------------------------------------------------------
# Sample rates, channels, resampling quality
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_sample_rates_resampled_to_16k(speech, rate):
    native = soxr.resample(speech, SAMPLE_RATE, rate).astype(np.float32)
    got = decode_audio(_write(native, rate, "WAV", "FLOAT"))
    assert got.dtype == np.float32
    assert abs(len(got) - len(speech)) <= 1
    # The block-streaming resampler gives the same result as soxr's one-shot HQ resampling.
    one_shot = soxr.resample(native, rate, SAMPLE_RATE, quality="HQ")
    np.testing.assert_allclose(got, one_shot[: len(got)], atol=1e-5)
    if rate > SAMPLE_RATE:
        # 16k -> rate -> 16k round trip is transparent (soxr HQ): > 60 dB SNR
        assert _snr_db(speech, got) > 60
    else:
        # 8 kHz keeps the band below 4 kHz: compare with the band-limited original
        assert _snr_db(speech, got) > 10


def test_block_streaming_resampler_matches_one_shot_across_blocks(speech):
    native = soxr.resample(np.tile(speech, 3), SAMPLE_RATE, 44100).astype(np.float32)
    data = _write(native, 44100, "WAV", "FLOAT")
    blocks = list(iter_audio_blocks(data, block_frames=10007))  # odd size: many block boundaries
    assert len(blocks) > 10
    got = np.concatenate(blocks)
    one_shot = soxr.resample(native, 44100, SAMPLE_RATE, quality="HQ")
    assert abs(len(got) - len(one_shot)) <= 1
    n = min(len(got), len(one_shot))
    np.testing.assert_allclose(got[:n], one_shot[:n], atol=1e-5)


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_downmix_is_channel_mean(speech, channels):
    cols = [np.roll(speech, 37 * k) * (0.4 + 0.1 * k) for k in range(channels)]
    multi = np.stack(cols, axis=1).astype(np.float32)
    got = decode_audio(_write(multi, SAMPLE_RATE, "WAV", "FLOAT"))
    np.testing.assert_allclose(got, multi.mean(axis=1), atol=1e-6)


def test_stereo_44k_flac_downmix_and_resample(speech):
    stereo = np.stack([speech, 0.5 * np.roll(speech, 100)], axis=1)
    native = soxr.resample(stereo, SAMPLE_RATE, 44100).astype(np.float32)
    got = decode_audio(_write(native, 44100, "FLAC", "PCM_24"))
    expect = soxr.resample(native.mean(axis=1), 44100, SAMPLE_RATE)
    assert abs(len(got) - len(expect)) <= 1
    assert _snr_db(expect, got) > 60  # 24-bit quantisation only


def test_to_mono_16k_interleaved():
    x = np.arange(12, dtype=np.float32)
    np.testing.assert_allclose(to_mono_16k(x, SAMPLE_RATE, channels=2), [0.5, 2.5, 4.5, 6.5, 8.5, 10.5])
    with pytest.raises(AudioError, match="multiple of 5 channels"):
        to_mono_16k(x, SAMPLE_RATE, channels=5)
    with pytest.raises(AudioError, match="NaN"):
        to_mono_16k(np.array([0.1, np.nan], np.float32), SAMPLE_RATE)


def _tone(freq, rate, seconds=2.0, amp=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_resampling_keeps_frequency_and_amplitude():
    got = decode_audio(_write(_tone(1000, 44100), 44100, "WAV", "FLOAT"))
    assert abs(len(got) - 2 * SAMPLE_RATE) <= 1
    mid = got[SAMPLE_RATE // 2 : SAMPLE_RATE // 2 + SAMPLE_RATE]  # 1 s away from the edges
    spec = np.abs(np.fft.rfft(mid * np.hanning(len(mid))))
    freqs = np.fft.rfftfreq(len(mid), 1 / SAMPLE_RATE)
    peak = freqs[np.argmax(spec)]
    assert abs(peak - 1000) <= 1.0  # 1 Hz bins
    rms = float(np.sqrt(np.mean(mid**2)))
    assert abs(rms - 0.5 / np.sqrt(2)) / (0.5 / np.sqrt(2)) < 0.005  # amplitude within 0.5 %
    # spectral purity: everything outside 1 kHz +- 20 Hz is below -60 dB
    out_band = spec[np.abs(freqs - 1000) > 20]
    assert 20 * np.log10(out_band.max() / spec.max()) < -60


def test_resampling_does_not_alias_a_12k_tone():
    # 12 kHz is above the 8 kHz Nyquist of 16 kHz audio; without a proper anti-alias filter it
    # would fold back to 4 kHz.
    got = decode_audio(_write(_tone(12000, 44100) + _tone(1000, 44100, amp=0.1), 44100, "WAV", "FLOAT"))
    mid = got[SAMPLE_RATE // 2 : SAMPLE_RATE // 2 + SAMPLE_RATE]
    spec = np.abs(np.fft.rfft(mid * np.hanning(len(mid))))
    freqs = np.fft.rfftfreq(len(mid), 1 / SAMPLE_RATE)
    ref_1k = spec[np.argmin(np.abs(freqs - 1000))]
    alias_4k = spec[np.abs(freqs - 4000) <= 20].max()
    # the 12 kHz tone (5x louder than the 1 kHz one) leaves nothing above -80 dB of the 1 kHz tone
    assert 20 * np.log10(alias_4k / ref_1k) < -80


# ---------------------------------------------------------------------------------------------
# Raw PCM
# ---------------------------------------------------------------------------------------------


def test_raw_pcm_goforward():
    path = GOFORWARD[0]
    expect = np.frombuffer(path.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0
    np.testing.assert_array_equal(decode_audio(path), expect)  # .raw name -> RawFormat()
    data = path.read_bytes()
    np.testing.assert_array_equal(decode_audio(data, raw_format=RawFormat()), expect)
    np.testing.assert_array_equal(decode_audio(data, name="x.pcm"), expect)
    # without a raw format or a .raw name, headerless bytes are not guessed at
    with pytest.raises(AudioError, match=r"not an audio format we read \(detected: unrecognised data"):
        decode_audio(data)


def test_raw_pcm_other_layout(speech):
    stereo = np.stack([speech, speech], axis=1)
    native = soxr.resample(stereo, SAMPLE_RATE, 8000)
    data = (np.clip(native, -1, 1) * 32767).astype(">i2").tobytes()
    got = decode_audio(data, raw_format=RawFormat(sample_rate=8000, channels=2, subtype="PCM_16", endian="BIG"))
    assert abs(len(got) - len(speech)) <= 1
    expect = soxr.resample(native.mean(axis=1), 8000, SAMPLE_RATE)
    assert _snr_db(expect, got) > 40


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def _float_wav(arr, sr=SAMPLE_RATE):
    return _write(np.asarray(arr, np.float32), sr, "WAV", "FLOAT")


def _bad_inputs(tmp_path):
    wav = CLIP.read_bytes()
    nan = np.full(16000, 0.1, np.float32)
    nan[8000] = np.nan
    inf = np.full(16000, 0.1, np.float32)
    inf[100] = np.inf
    late_nan = np.full(16000 * 60, 0.1, np.float32)  # past the first decode block
    late_nan[-5] = np.nan
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "adir.wav").mkdir()
    return {
        "empty bytes": (b"", "empty"),
        "empty file": (tmp_path / "empty.wav", "empty"),
        "truncated header": (wav[:20], "not a decodable audio file"),
        "random bytes": (np.random.default_rng(7).bytes(65536), "not an audio format we read (detected: unrec"),
        "text": (b"this is not audio\n" * 200, "not an audio format we read (detected: text)"),
        "NaN samples": (_float_wav(nan), "NaN or infinite"),
        "inf samples": (_float_wav(inf), "NaN or infinite"),
        "NaN after first block": (_float_wav(late_nan), "NaN or infinite"),
        "NaN at 44.1k": (_float_wav(nan, 44100), "NaN or infinite"),
        "zero-length WAV": (_write(np.zeros(0, np.float32), SAMPLE_RATE, "WAV", "PCM_16"), "zero length"),
        "zero-length 44.1k WAV": (_write(np.zeros((0, 2), np.float32), 44100, "WAV", "PCM_16"), "zero length"),
        "header only (44 bytes)": (wav[:44], "truncated"),
        "WAV cut mid-data": (wav[: len(wav) // 2], "file is truncated"),
        "all-silent WAV": (_write(np.zeros(16000, np.float32), SAMPLE_RATE, "WAV", "PCM_16"), "silent"),
        "all-silent 48k FLAC": (_write(np.zeros(48000, np.float32), 48000, "FLAC", "PCM_16"), "silent"),
        "directory": (tmp_path / "adir.wav", "directory"),
        "missing path": (tmp_path / "missing.wav", "not found"),
        "missing path (str)": (str(tmp_path / "missing.flac"), "not found"),
    }


BAD = [
    "empty bytes",
    "empty file",
    "truncated header",
    "random bytes",
    "text",
    "NaN samples",
    "inf samples",
    "NaN after first block",
    "NaN at 44.1k",
    "zero-length WAV",
    "zero-length 44.1k WAV",
    "header only (44 bytes)",
    "WAV cut mid-data",
    "all-silent WAV",
    "all-silent 48k FLAC",
    "directory",
    "missing path",
    "missing path (str)",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_raises_audio_error_with_reason(tmp_path, case):
    source, reason = _bad_inputs(tmp_path)[case]
    with pytest.raises(AudioError) as exc:
        decode_audio(source)
    assert reason in str(exc.value), f"{case}: {exc.value}"


def test_audio_error_is_a_value_error():
    assert issubclass(AudioError, ValueError)


def test_validate_false_returns_silence():
    got = decode_audio(_write(np.zeros(1600, np.float32), SAMPLE_RATE, "WAV", "PCM_16"), validate=False)
    assert got.shape == (1600,) and not got.any()


def test_quiet_but_not_silent_audio_is_accepted(speech):
    quiet = speech * (1e-3 / np.abs(speech).max())  # -60 dBFS peak: quiet speech, not digital silence
    got = decode_audio(_write(quiet, SAMPLE_RATE, "WAV", "FLOAT"))
    assert np.abs(got).max() == pytest.approx(1e-3, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# iter_segments
# ---------------------------------------------------------------------------------------------


def _blocks(x, size):
    for i in range(0, len(x), size):
        yield x[i : i + size]


def _check_segments(segs, x, seg_len):
    assert segs, "no segments"
    pos = 0
    for off, s in segs:
        assert s.dtype == np.float32
        assert len(s) <= seg_len
        assert off == pytest.approx(pos / SAMPLE_RATE, abs=1e-9)
        pos += len(s)
    np.testing.assert_array_equal(np.concatenate([s for _, s in segs]), x)


def test_iter_segments_cuts_in_silence():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(40 * SAMPLE_RATE)).astype(np.float32)
    gap = slice(int(25.2 * SAMPLE_RATE), int(25.8 * SAMPLE_RATE))
    x[gap] = 0.0
    segs = list(iter_segments(_blocks(x, 16000), segment_s=30.0, search_s=5.0))
    _check_segments(segs, x, 30 * SAMPLE_RATE)
    assert len(segs) == 2
    cut = len(segs[0][1])
    assert gap.start <= cut < gap.stop, f"cut at {cut / SAMPLE_RATE:.2f} s, not in the 25.2-25.8 s gap"


def test_iter_segments_on_real_speech_cuts_in_pauses():
    clips = [sf.read(p, dtype="float32")[0] for p, _ in LIBRIVOX + CARDS]
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    x = np.concatenate([np.concatenate([c, pause]) for c in clips] * 2)
    segs = list(iter_segments(_blocks(x, 4000), segment_s=10.0, search_s=3.0))
    _check_segments(segs, x, 10 * SAMPLE_RATE)
    assert len(segs) >= 7
    global_rms = float(np.sqrt(np.mean(x**2)))
    pos = 0
    for _, s in segs[:-1]:
        pos += len(s)
        local = x[pos - 800 : pos + 800]  # +- 50 ms around the cut
        assert np.sqrt(np.mean(local**2)) < 0.1 * global_rms, f"cut at {pos / SAMPLE_RATE:.2f} s is not quiet"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 12 * SAMPLE_RATE),
    block=st.integers(1, 3 * SAMPLE_RATE),
    segment_s=st.floats(0.05, 4.0),
    search_s=st.floats(0.0, 2.0),
)
def test_iter_segments_properties(n, block, segment_s, search_s):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    segs = list(iter_segments(_blocks(x, block), segment_s=segment_s, search_s=search_s))
    seg_len = int(segment_s * SAMPLE_RATE)
    if n == 0:
        assert len(segs) == 1 and segs[0][0] == 0.0 and len(segs[0][1]) == 0
        return
    _check_segments(segs, x, seg_len)
    assert all(len(s) > 0 for _, s in segs)
    assert len(segs) >= int(np.ceil(n / seg_len))


def test_iter_segments_rejects_non_positive_length():
    with pytest.raises(ValueError):
        list(iter_segments(iter([np.zeros(10, np.float32)]), segment_s=0))


# ---------------------------------------------------------------------------------------------
# Slices: read_audio(samples=False)'s references, decoded where they are transcribed
# ---------------------------------------------------------------------------------------------


def _speech_file(speech, tmp_path, fmt, rate, channels, copies=3):
    """``copies`` of the clip back to back (~21 s) at ``rate`` x ``channels`` in ``fmt``."""
    x = np.concatenate([speech] * copies)
    y = x if rate == SAMPLE_RATE else soxr.resample(x, SAMPLE_RATE, rate)
    if channels == 2:
        y = np.stack([y, 0.5 * y], axis=1)
    path = tmp_path / f"speech_{rate}_{channels}.{fmt.lower()}"
    sf.write(path, y, rate, format=fmt, subtype="PCM_16")
    return path


@pytest.mark.parametrize(
    "fmt,rate,channels",
    [("WAV", 16000, 1), ("FLAC", 16000, 1), ("WAV", 44100, 2), ("FLAC", 22050, 1), ("FLAC", 48000, 2)],
)
def test_slices_equal_the_whole_file_segments(speech, tmp_path, fmt, rate, channels):
    """Every segment iter_segments cuts from the whole-file decode, decoded again as a slice by
    seeking: the same samples, exactly at 16 kHz, within float rounding when resampled."""
    path = _speech_file(speech, tmp_path, fmt, rate, channels)
    segs = list(iter_segments(iter_audio_blocks(path), segment_s=6.0))
    assert len(segs) >= 3
    start = 0
    for offset, seg in segs:
        assert round(offset * SAMPLE_RATE) == start
        got = decode_audio_slice(path, start, len(seg))
        assert got.dtype == np.float32 and len(got) == len(seg)
        if rate == SAMPLE_RATE:
            np.testing.assert_array_equal(got, seg)
        else:
            np.testing.assert_allclose(got, seg, atol=1e-5)
        start += len(seg)


def test_slice_seeks_instead_of_decoding_from_the_start(speech, tmp_path, monkeypatch):
    """The last second of the file: only the frames of the slice (plus the 0.1-s resampling
    margins) are read, from a position near the slice, not the whole file up to it."""
    path = _speech_file(speech, tmp_path, "FLAC", 44100, 2)
    n = len(decode_audio(path))
    reads = []
    real = audio_mod._soundfile_blocks

    def spy(f, block_frames, frames=None):
        reads.append((f.tell(), frames))
        yield from real(f, block_frames, frames)

    monkeypatch.setattr(audio_mod, "_soundfile_blocks", spy)
    got = decode_audio_slice(path, n - SAMPLE_RATE, SAMPLE_RATE)
    assert len(got) == SAMPLE_RATE
    ((pos, frames),) = reads
    assert pos >= (n - SAMPLE_RATE) * 44100 // SAMPLE_RATE - 44100 // 10 - 441
    assert frames <= 44100 + 2 * 44100 // 10 + 441 + 1


def test_slice_of_a_pyav_only_format(speech):
    """M4A (FFmpeg only): decoded from the start and cut, the same samples as the whole file's."""
    data = _av_encode(np.concatenate([speech] * 2), SAMPLE_RATE, "ipod", "aac")
    whole = decode_audio(data)
    a, b = 3 * SAMPLE_RATE, 5 * SAMPLE_RATE
    np.testing.assert_array_equal(decode_audio_slice(data, a, b), whole[a : a + b])


def test_slice_errors_name_the_reason(speech, tmp_path):
    path = _speech_file(speech, tmp_path, "WAV", 16000, 1, copies=1)
    n = len(speech)
    with pytest.raises(AudioError, match=r"ends before the slice \[5\.000, 9\.000\) s"):
        decode_audio_slice(path, 5 * SAMPLE_RATE, 4 * SAMPLE_RATE)  # the clip is 7.1 s
    with pytest.raises(AudioError, match="ends before the slice"):
        decode_audio_slice(path, n + SAMPLE_RATE, SAMPLE_RATE)
    with pytest.raises(AudioError, match="invalid slice"):
        decode_audio_slice(path, 0, 0)
    with pytest.raises(AudioError, match="file not found"):
        decode_audio_slice(tmp_path / "gone.wav", 0, SAMPLE_RATE)
    np.testing.assert_array_equal(decode_audio_slice(path, n - 100, 100), speech[-100:])  # up to the very end


# ---------------------------------------------------------------------------------------------
# Bounded memory on long files
# ---------------------------------------------------------------------------------------------

LONG_S = 20 * 60
LONG_RATE = 48000


@pytest.fixture(scope="module")
def long_flac(tmp_path_factory):
    """20 minutes of 48 kHz stereo (a 440/660 Hz chord + noise), written block by block."""
    path = tmp_path_factory.mktemp("long") / "long.flac"
    rng = np.random.default_rng(1)
    step = 10 * LONG_RATE
    with sf.SoundFile(path, "w", samplerate=LONG_RATE, channels=2, format="FLAC", subtype="PCM_16") as f:
        for start in range(0, LONG_S * LONG_RATE, step):
            t = (start + np.arange(step)) / LONG_RATE
            left = 0.3 * np.sin(2 * np.pi * 440 * t)
            right = 0.3 * np.sin(2 * np.pi * 660 * t)
            noise = 0.001 * rng.standard_normal((step, 2))
            f.write(np.stack([left, right], axis=1) + noise)
    return path


def test_long_file_is_decoded_in_bounded_blocks_and_segments(long_flac):
    """20 min of 48 kHz stereo FLAC: blocks stay small, traced memory never nears the file size,
    and segmenting the stream gives bounded segments that add up to the whole file."""
    block_frames = audio_mod._BLOCK_FRAMES
    max_out = int(np.ceil(block_frames * SAMPLE_RATE / LONG_RATE)) + 64
    native_bytes = LONG_S * LONG_RATE * 2 * 4  # the whole file as float32 at its native rate: 460 MB
    sizes = []

    def recording(blocks):
        for block in blocks:
            assert block.dtype == np.float32 and block.ndim == 1
            sizes.append(len(block))
            yield block

    tracemalloc.start()
    try:
        total = 0
        count = 0
        for off, seg in iter_segments(recording(iter_audio_blocks(long_flac)), segment_s=60.0):
            assert off == pytest.approx(total / SAMPLE_RATE)
            assert 0 < len(seg) <= 60 * SAMPLE_RATE
            total += len(seg)
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(total - LONG_S * SAMPLE_RATE) <= 2
    assert sum(sizes) == total
    assert count >= LONG_S // 60
    assert len(sizes) >= LONG_S * LONG_RATE // block_frames
    assert max(sizes) <= max_out, f"a block of {max(sizes)} samples (limit {max_out})"
    # Python/numpy allocations at any moment (tracemalloc sees numpy buffers): one segment plus a
    # few blocks, never the file
    assert peak < 64 * 2**20, f"peak traced memory {peak / 2**20:.1f} MiB"
    assert peak < native_bytes / 7


@pytest.mark.parametrize(
    "fmt,subtype,sr,channels",
    [
        ("WAV", "PCM_16", 16000, 1),
        ("WAV", "PCM_24", 44100, 2),
        ("AIFF", "PCM_16", 22050, 1),
        ("AU", "PCM_16", 8000, 2),
    ],
)
def test_truncated_file_is_an_error_not_a_shorter_transcript(speech, fmt, subtype, sr, channels):
    """A file cut off mid-data (an interrupted copy or download) is reported, with what its header
    declared and what is there: libsndfile alone would read the part that exists and say nothing."""
    native = soxr.resample(speech, SAMPLE_RATE, sr)
    data = _write(np.stack([native] * channels, axis=1) if channels > 1 else native, sr, fmt, subtype)
    assert len(decode_audio(data)) == pytest.approx(len(speech), abs=2)  # whole file: fine
    with pytest.raises(AudioError, match="file is truncated: its header declares"):
        decode_audio(data[: len(data) * 2 // 3 + 1])  # cut mid-frame as well


def test_wav_of_unknown_length_or_with_trailing_chunks_is_not_truncated(speech):
    """A WAV written to a pipe declares its data chunk as 0xFFFFFFFF bytes (length unknown), and
    metadata chunks may follow the audio: neither is a truncated file."""
    import struct

    wav = bytearray(_write(speech, SAMPLE_RATE, "WAV", "PCM_16"))
    assert wav[36:40] == b"data"
    piped = (
        bytes(wav[:4])
        + struct.pack("<I", 0xFFFFFFFF)
        + bytes(wav[8:40])
        + struct.pack("<I", 0xFFFFFFFF)
        + bytes(wav[44:])
    )
    assert len(decode_audio(piped)) == len(speech)
    trailing = bytes(wav) + b"LIST" + struct.pack("<I", 4) + b"INFO"
    assert len(decode_audio(trailing)) == len(speech)
