"""Subtitles that follow subtitle conventions whatever the strategy (issue 24, item 7): at most two
lines of 42 characters and 7 s per cue, cut at sentence ends, punctuation and pauses by word
timestamps. Before, the default strategy's 30-s pieces became 30-s cues of up to 77 words."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import ALL_CLIPS
from sparkasr.audio import SAMPLE_RATE, decode_audio
from sparkasr.job.subtitles import MAX_CUE_S, MAX_LINE, MAX_LINES, cues_from_chunks, to_srt, to_vtt, wrap
from sparkasr.records import AudioItem
from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions
from sparkasr.whisper.models import resolve_whisper_model


def _long(target_s: float = 60.0) -> np.ndarray:
    """The clips, repeated to ``target_s``: two 30-s pieces and more, so the default strategy's
    pieces (the 30-s cues of before) are cut into cues; each cue comes from a few seconds of words."""
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    one = np.concatenate([x for p, _ in ALL_CLIPS for x in (decode_audio(p), pause)])
    return np.tile(one, int(target_s * SAMPLE_RATE / len(one)) + 1)[: int(target_s * SAMPLE_RATE)]


LONG = _long()


def check_conventions(cues, words):
    """Every cue within the limits, in time order, and the cues' words are the words, in order."""
    assert cues
    for (start, end, text), nxt in zip(cues, cues[1:] + [None]):
        lines = text.split("\n")
        assert len(lines) <= MAX_LINES and all(0 < len(line) <= MAX_LINE for line in lines), text
        assert 0 <= end - start <= MAX_CUE_S + 1e-6, (start, end, text)
        if nxt is not None:
            assert end <= nxt[0] + 1e-6, (text, nxt)
    assert " ".join(t for _, _, t in cues).split() == words


def _srt_cues(body: str):
    cues = []
    for block in body.strip().split("\n\n"):
        _, times, *lines = block.split("\n")
        a, b = (
            sum(float(x) * m for x, m in zip(re.split("[:,]", t.strip())[:3], (3600, 60, 1)))
            + int(t.strip()[-3:]) / 1000
            for t in times.split("-->")
        )
        cues.append((a, b, "\n".join(lines)))
    return cues


@pytest.mark.parametrize("strategy", ["batch", "sequential", "pack"])
def test_cues_from_word_timestamps_follow_the_conventions_on_every_strategy(strategy):
    """Greedy (beam 1): the cues follow the words' timestamps whatever search found the words
    (the job test below runs the default beam)."""
    engine = WhisperEngine(
        resolve_whisper_model(None).path,
        WhisperOptions(strategy=strategy, timestamps="word", beam_size=1),
        RuntimeOptions(cpu_threads=2),
    )
    (t,) = engine.transcribe_batch([AudioItem(LONG, source="long.wav")])
    chunks = [c.as_dict() for c in t.chunks]
    cues = cues_from_chunks(chunks)
    check_conventions(cues, [c["text"] for c in chunks if c["text"].strip()])
    durations = [b - a for a, b, _ in cues]
    print(
        f"\n[subtitles] {strategy}: {len(cues)} cues over {len(LONG) / SAMPLE_RATE:.0f} s, mean {np.mean(durations):.1f} s,"
        f" max {max(durations):.1f} s, max {max(len(x) for _, _, c in cues for x in c.split(chr(10)))} chars/line"
    )


def test_a_long_segment_is_cut_into_cues_by_its_words():
    """Segment chunks (timestamps=segment, or older records): their time is shared out by length."""
    text = (
        "And Mr. John Dashwood had then leisure to consider how much there might prudently be in his power to do "
        "for them. He was not an ill-disposed young man, unless to be rather cold-hearted and rather selfish is to "
        "be ill-disposed: but he was, in general, well respected."
    )
    cues = cues_from_chunks([{"text": text, "timestamp": [10.0, 40.0]}])
    check_conventions(cues, text.split())
    assert cues[0][0] == 10.0 and cues[-1][1] == pytest.approx(40.0)
    assert not any(t.endswith("Mr.") for _, _, t in cues)  # an abbreviation is no sentence end
    assert cues[0][2].replace("\n", " ").startswith("And Mr. John")


def test_wrap_balances_two_lines_and_prefers_punctuation():
    assert wrap("ten of clubs") == ["ten of clubs"]
    lines = wrap("Unless to be rather cold-hearted, and rather selfish is to be ill-disposed")
    assert len(lines) == 2 and all(len(x) <= 42 for x in lines) and lines[0].endswith(",")


@pytest.mark.spark
def test_the_job_writes_conventional_subtitles_with_the_default_strategy(spark, tmp_path):
    import soundfile as sf

    from sparkasr.cli import main

    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "long.wav", LONG, SAMPLE_RATE, subtype="PCM_16")
    out = tmp_path / "out"
    assert main(["transcribe", str(src), "--output", str(out), "--subtitles", "srt,vtt", "--quiet"]) == 0
    (srt,) = (out / "subtitles").glob("*.srt")
    cues = _srt_cues(srt.read_text())

    (row,) = [json.loads(x) for f in (out / "current").glob("part-*.json") for x in f.read_text().splitlines()]
    assert all(" " not in c["text"].strip() for c in row["chunks"])  # --subtitles: word timestamps
    check_conventions(cues, [c["text"] for c in row["chunks"] if c["text"].strip()])
    assert Path(str(srt)[:-4] + ".vtt").read_text().startswith("WEBVTT")
    assert to_srt(cues_from_chunks(row["chunks"])) == srt.read_text()
    print(f"\n[subtitles] job, default strategy: {len(cues)} cues for {len(LONG) / SAMPLE_RATE:.0f} s")


def test_subtitles_without_timestamps_are_refused_before_spark(tmp_path):
    from sparkasr.cli import main

    args = ["transcribe", "tests/data/cards", "--output", str(tmp_path / "o"), "--subtitles", "srt"]
    assert main(args + ["--timestamps", "none"]) == 2


def test_speakers_are_marked_as_each_format_does():
    chunks = [
        {"text": " Hello there.", "timestamp": [0.0, 1.0], "speaker": "S1"},
        {"text": " How are you?", "timestamp": [1.1, 2.0], "speaker": "S1"},
        {"text": " Fine, thanks.", "timestamp": [2.2, 3.0], "speaker": "S2"},
        {"text": " Good <news>.", "timestamp": [5.0, 6.0], "speaker": "S2"},
    ]
    cues = cues_from_chunks(chunks)
    srt = to_srt(cues)
    # one speaker per cue; SRT names the speaker where it changes
    assert "\n[S1] Hello there.\n" in srt and "\nHow are you?\n" in srt and "\n[S2] Fine, thanks.\n" in srt
    assert "\nGood <news>.\n" in srt
    vtt = to_vtt(cues)
    assert "<v S1>Hello there." in vtt and "<v S1>How are you?" in vtt and "<v S2>Good <news>." in vtt
    assert to_srt(cues_from_chunks([{k: v for k, v in c.items() if k != "speaker"} for c in chunks])).count("[") == 0
