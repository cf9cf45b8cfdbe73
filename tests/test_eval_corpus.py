"""The evaluation corpus builder (bench/eval_corpus.py) and the accuracy scoring (bench/accuracy.py)
on small synthetic sets: no download needed."""

from __future__ import annotations

import gzip
import json
import random
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import accuracy  # noqa: E402
import eval_corpus as ec  # noqa: E402

TRANSCRIPT = """; Core Sounds in Testish

hello: Hello there.
beep: [this is a simple beep tone]
silence/1: (1 second of silence)
letters/at: at [@]
vm-intro: Please leave your message. (simple tone sound plays)
digits/0: zero
digits/0: ten
dir-welcome:
digits/1f: one
nowhere: No file for this one.
greet: Sus saludos [temporales] estan en uso
"""


def _wav(path: Path, seconds: float, rate: int = 8000, amp: int = 3000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((amp * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes())


@pytest.fixture
def tree(tmp_path):
    src = ec.Source("test-xx", "xx", "a", "b", "1", "sounds/xx", "doc/core-sounds-xx.txt.gz", 1, "basic", "CC0")
    root = tmp_path / "tree"
    for name, s in [
        ("hello", 1.0),
        ("beep", 0.5),
        ("silence/1", 1.0),
        ("letters/at", 0.6),
        ("vm-intro", 2.0),
        ("digits/0", 0.4),
        ("dir-welcome", 1.2),
        ("digits/1F", 0.4),
        ("greet", 2.5),
        ("untranscribed", 0.3),
    ]:
        _wav(root / "sounds/xx" / f"{name}.wav", s)
    (root / "doc").mkdir()
    with gzip.open(root / "doc/core-sounds-xx.txt.gz", "wt", encoding="utf-8") as f:
        f.write(TRANSCRIPT)
    return src, root


def test_transcript_rules(tree):
    src, root = tree
    entries, report = ec.set_entries(src, root)
    by = {e.name: e for e in entries}
    assert sorted(by) == ["beep", "digits/1F", "greet", "hello", "letters/at", "silence/1", "vm-intro"]
    assert by["hello"].reference == "Hello there." and by["hello"].speech and by["hello"].language == "xx"
    assert not by["beep"].speech and by["beep"].reference == ""  # whole text in brackets: not speech
    assert not by["silence/1"].speech  # ... or in parentheses
    assert by["letters/at"].reference == "at @"  # inline brackets unwrapped
    assert by["greet"].reference == "Sus saludos temporales estan en uso"
    assert by["vm-intro"].reference == "Please leave your message."  # inline (notes) removed
    assert by["digits/1F"].reference == "one"  # matched case-insensitively
    assert by["hello"].duration_s == pytest.approx(1.0)
    assert report["conflicting_transcript"] == ["digits/0"]  # two different texts: left out
    assert report["empty_transcript"] == ["dir-welcome"]  # no reference: left out
    assert report["transcript_without_audio"] == ["nowhere"]
    assert report["audio_without_transcript"] == 3  # untranscribed, digits/0, dir-welcome
    assert report["non_speech"] == ["beep", "silence/1"]


def test_manifest_round_trip_and_ci_subset(tree, tmp_path):
    src, root = tree
    entries, _ = ec.set_entries(src, root)
    path = tmp_path / "m" / "test-xx.csv"
    ec.write_manifest(path, entries)
    assert ec.read_manifest(path) == entries
    many = [ec.Entry(f"p{k:03d}", "x", "r", "xx", k % 10 != 0, 1.0, "s") for k in range(40)]
    sub = ec.ci_subset(many)
    speech = sorted(e.name for e in many if e.speech)
    assert [e.name for e in sub if e.speech] == speech[:: ec.CI_EVERY]
    assert {e.name for e in sub if not e.speech} == {e.name for e in many if not e.speech}


def test_long_form_file_lists_its_parts_where_they_are(tree, tmp_path):
    src, root = tree
    entries, _ = ec.set_entries(src, root)
    speech = [e for e in entries if e.speech]
    nonspeech = [e for e in entries if not e.speech]
    row, rest = ec.build_long("test-long1", speech * 3, nonspeech, random.Random(0), 20.0, 2, tmp_path / "long" / "l1")
    parts = ec.read_parts(row)
    assert [p["name"] for p in parts if p["speech"]] == [e.name for e in (speech * 3)[: len(parts) - 2]]
    assert sum(not p["speech"] for p in parts) == 2 and parts[0]["speech"] and parts[-1]["speech"]
    assert row.reference == " ".join(p["reference"] for p in parts if p["speech"])
    assert len(rest) == len(speech) * 3 - sum(p["speech"] for p in parts)
    # gaps of 0.2-2 s between the parts, in order; each part's audio where the listing says
    for a, b in zip(parts, parts[1:]):
        assert 0.2 - 1e-3 <= b["start_s"] - a["end_s"] <= 2.0 + 1e-3
    with wave.open(row.path, "rb") as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32)
    assert row.duration_s == pytest.approx(len(pcm) / rate) and row.duration_s >= 20.0
    for p in parts:
        inside = pcm[int(p["start_s"] * rate) : int(p["end_s"] * rate)]
        assert np.abs(inside).max() > 2000  # the tone
        gap = pcm[int(p["end_s"] * rate) + 8 : int(p["end_s"] * rate) + 800]
        if p is not parts[-1]:
            assert gap.size and np.abs(gap).max() < 100  # low noise between
    assert json.loads(Path(row.parts).read_text()) == parts


def test_score_long_finds_dropped_and_repeated_prompts():
    parts = [
        {"name": "a", "reference": "please enter your account number", "speech": True},
        {"name": "tone", "reference": "", "speech": False},
        {"name": "b", "reference": "followed by the pound key", "speech": True},
        {"name": "c", "reference": "goodbye", "speech": True},
        {"name": "d", "reference": "thank you for calling", "speech": True},
    ]
    full = "Please enter your account number. Followed by the pound key. Goodbye. Thank you for calling."
    ok = accuracy.score_long(parts, full, "basic")
    assert ok.complete and ok.total.errors == 0 and ok.names == ["a", "b", "c", "d"]
    dropped = accuracy.score_long(parts, "Please enter your account number. Goodbye. Thank you for calling.", "basic")
    assert dropped.dropped == ["b"] and not dropped.repeated
    repeated = accuracy.score_long(
        parts,
        "Please enter your account number. Followed by the pound key. Followed by the pound key. Goodbye. "
        "Thank you for calling.",
        "basic",
    )
    assert repeated.repeated == ["b"] and not repeated.dropped
    # one-word prompts are left to the WER: doubled or lost, they count as errors only
    once_more = accuracy.score_long(parts, full.replace("Goodbye.", "Goodbye. Goodbye."), "basic")
    assert once_more.complete and once_more.total.insertions == 1
    lost = accuracy.score_long(parts, full.replace("Goodbye.", ""), "basic")
    assert lost.complete and lost.total.deletions == 1
    # an abbreviation of single letters written as one word ("a.m." as "AM.") is not dropped
    abbrev = parts + [{"name": "e", "reference": "a.m.", "speech": True}]
    spelled = accuracy.score_long(abbrev, full + " AM.", "basic")
    assert spelled.complete and spelled.total.errors == 2
    # an ordinary error is neither
    wrong = accuracy.score_long(parts, full.replace("account", "count").replace("calling", "call in"), "basic")
    assert wrong.complete and wrong.total.errors == 3
    # counts over prompts add up to the whole text's
    from sparkasr.evaluation import pair_counts

    whole = pair_counts(" ".join(p["reference"] for p in parts if p["speech"]), wrong_text := full.replace("the", "a"))
    assert accuracy.score_long(parts, wrong_text, "basic").total.errors == whole.errors


def test_score_files_keeps_non_speech_apart():
    entries = [
        ec.Entry("a", "x", "hello world", "en", True, 1.0, "s"),
        ec.Entry("t", "x", "", "en", False, 1.0, "s"),
        ec.Entry("u", "x", "", "en", False, 1.0, "s"),
    ]
    sc = accuracy.score_files(entries, ["Hello, world!", "you", " . "], "basic")
    assert [c.errors for c in sc.counts] == [0] and sc.names == ["a"]
    assert sc.nonspeech_text == {"t": "you"} and sc.nonspeech_files == 2  # punctuation alone is no text


def test_redo_keeps_the_texts_and_times_of_the_systems_not_run_again(tmp_path):
    """run_accuracy --redo: a part measured again keeps, for the systems outside --systems, the
    texts and wall times of the run before (in the entries' order; a system that lacks a text for
    an entry is not kept), and the table's time line sums the parts and the LID and names the code
    each part was measured with."""
    import run_accuracy as ra

    entries = [ec.Entry(n, f"/x/{n}.wav", "", "en", True, 1.0, "x") for n in ("b", "a")]
    texts = tmp_path / "short-x-tiny.en.json"
    texts.write_text(json.dumps({"faster-whisper": {"a": "A", "b": "B"}, "engine pack": {"a": "A"}}))
    rows = [{"system": "faster-whisper", "wall_s": 12.5}, {"system": "engine pack", "wall_s": 3.0}]
    assert ra.previous_outputs(texts, rows, entries) == {"faster-whisper": (["B", "A"], 12.5)}
    assert ra.previous_outputs(tmp_path / "missing.json", rows, entries) == {}
    res = {
        "short": [
            {"set": "s", "model": "m", "part_wall_s": 600.0, "code": "c1"},
            {"set": "s", "model": "m", "part_wall_s": 600.0, "code": "c1"},
        ],
        "long": [{"set": "s", "model": "m", "part_wall_s": 300.0, "code": "c2"}],
        "lid": {"wall_s": 300.0},
    }
    line = ra.full_run(res)
    assert "about 20 min" in line and "`c1`, `c2`" in line
    del res["long"][0]["part_wall_s"]
    assert ra.full_run(res) == ""  # a part measured before the parts recorded their time
