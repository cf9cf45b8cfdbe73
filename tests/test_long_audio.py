"""A 2.5-minute file through the engine's long-form paths, against faster-whisper's own sequential run:
``strategy="sequential"`` (faster-whisper's algorithm: the same text) and the default
``strategy="batch"`` (<=30-s pieces cut at quiet points, decoded batched: the whole file, in order).
How accurate the default is against faster-whisper on long files is tested on real prompts in
``tests/test_accuracy.py`` (the comparison that used to be here, on 4 arrangements of these 10
repeated clips, turned on a single phrase and flipped between two machines' CPU kernels).

The file is the 10 vendored real clips joined with 0.5 s pauses, repeated to pass 150 s; the reference
is their references joined the same way. Run with ``pytest -m slow tests/test_long_audio.py -s`` to
see the measured WERs and wall times.
"""

from __future__ import annotations

import time

import jiwer
import numpy as np
import pytest
from whisper_normalizer.english import EnglishTextNormalizer

from conftest import ALL_CLIPS
from sparkasr.audio import SAMPLE_RATE, decode_audio
from sparkasr.records import AudioItem
from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions
from sparkasr.whisper.models import resolve_whisper_model

pytestmark = pytest.mark.slow

TARGET_S = 150.0  # five 30-s windows and more: every long-form path (seek across windows, several pieces)
PAUSE_S = 0.5
CPU_THREADS = 2
_norm = EnglishTextNormalizer()


@pytest.fixture(scope="module")
def long_audio():
    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE), np.float32)
    one = [(decode_audio(p), ref) for p, ref in ALL_CLIPS]
    pieces, refs, total = [], [], 0
    while total < TARGET_S * SAMPLE_RATE:
        for samples, ref in one:
            pieces += [samples, pause]
            refs.append(ref)
            total += len(samples) + len(pause)
    return np.concatenate(pieces), " ".join(refs)


def _wer(ref: str, hyp: str) -> float:
    return jiwer.wer(_norm(ref), _norm(hyp))


def test_long_file_matches_faster_whisper_sequential(long_audio):
    from faster_whisper import WhisperModel

    samples, reference = long_audio
    duration = len(samples) / SAMPLE_RATE
    assert duration >= TARGET_S
    path = resolve_whisper_model(None).path

    # the engine's sequential strategy (beam_size=5, segment timestamps: the defaults)
    engine = WhisperEngine(
        path, WhisperOptions(beam_size=5, strategy="sequential"), RuntimeOptions(cpu_threads=CPU_THREADS)
    )
    t0 = time.perf_counter()
    (result,) = engine.transcribe_batch([AudioItem(samples=samples, source="long.wav")])
    engine_s = time.perf_counter() - t0
    assert result.error is None, result.error
    assert result.extra["path"] == "sequential"

    # faster-whisper itself, same model files, same options, its own model instance
    fw = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=CPU_THREADS)
    t0 = time.perf_counter()
    segments, info = fw.transcribe(samples, language="en", beam_size=5)
    fw_text = "".join(s.text for s in segments).strip()
    fw_s = time.perf_counter() - t0

    engine_wer = _wer(reference, result.text)
    fw_wer = _wer(reference, fw_text)
    ref_words = len(_norm(reference).split())
    hyp_words = len(_norm(result.text).split())
    print(
        f"\n[long audio {duration:.1f} s, tiny.en int8, beam 5, {CPU_THREADS} threads]"
        f"\n  engine:         WER {engine_wer:.4f}  wall {engine_s:.1f} s  ({duration / engine_s:.1f}x real time)"
        f"\n  faster-whisper: WER {fw_wer:.4f}  wall {fw_s:.1f} s  ({duration / fw_s:.1f}x real time)"
        f"\n  words: reference {ref_words}, engine {hyp_words}; last chunk ends at {result.chunks[-1].end:.2f} s"
        f"\n  identical text: {result.text == fw_text}"
    )

    # the whole file is covered: nothing truncated at 30 s (or anywhere else)
    assert abs(hyp_words - ref_words) <= 0.10 * ref_words
    assert result.chunks and result.chunks[-1].end > duration - 10.0
    assert result.chunks[-1].end <= duration + 1e-6
    starts = [c.start for c in result.chunks]
    assert starts == sorted(starts)
    assert result.duration_s == pytest.approx(duration)
    # same algorithm as faster-whisper's sequential transcribe: same quality (within 0.5 WER points)
    assert abs(engine_wer - fw_wer) <= 0.005


def test_long_file_default_pieces_segments(long_audio):
    samples, reference = long_audio
    duration = len(samples) / SAMPLE_RATE
    path = resolve_whisper_model(None).path
    engine = WhisperEngine(path, WhisperOptions(), RuntimeOptions(cpu_threads=CPU_THREADS))
    (result,) = engine.transcribe_batch([AudioItem(samples=samples, source="long.wav", offset_s=5.0)])
    print(
        f"\n[long audio {duration:.1f} s] default pieces: WER {_wer(reference, result.text):.4f} "
        f"({result.extra['pieces']} pieces, {result.extra['fallbacks']} fallbacks)"
    )
    assert result.error is None and result.extra["path"] == "pieces"
    # the whole file is covered and read: word count near the reference's
    ref_words, hyp_words = len(_norm(reference).split()), len(_norm(result.text).split())
    assert abs(hyp_words - ref_words) <= 0.10 * ref_words
    assert _wer(reference, result.text) < 0.15
    # one segment per piece: none over 30 s, in order, covering the file (times include offset_s)
    assert result.extra["pieces"] == len(result.chunks) >= duration / 30.0
    assert all(0 < c.end - c.start <= 30.0 for c in result.chunks)
    assert all(a.end <= b.start for a, b in zip(result.chunks, result.chunks[1:]))
    assert result.chunks[0].start < 5.0 + 1.0 and result.chunks[-1].end > 5.0 + duration - 2.0
    assert result.chunks[-1].end <= 5.0 + duration + 1e-6
