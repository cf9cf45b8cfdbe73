"""`sparkasr transcribe`: the batch job end to end on real clips, and setup errors before Spark."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparkasr.cli import main

pytestmark = pytest.mark.spark


def _records(out: Path):
    rows = []
    for f in sorted((out / "transcripts").rglob("part-*.json")):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return rows


def test_transcribe_dir_and_manifest(spark, tmp_path, clips, data_dir, capsys):
    audio = tmp_path / "in"
    (audio / "sub").mkdir(parents=True)
    for p, _ in clips[:2]:
        shutil.copy(p, audio / "sub" / p.name)
    (audio / "zero.wav").write_bytes(b"")
    (audio / "notes.txt").write_text("not audio, filtered by extension")
    manifest = tmp_path / "m.csv"
    lines = ["path,reference,speaker"]
    for p, ref in clips[5:8]:
        lines.append(f"{p},{ref},cards")
    lines.append("does/not/exist.wav,nothing,ghost")
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    rc = main(
        [
            "transcribe",
            str(audio),
            str(manifest),
            "--output",
            str(out),
            "--timestamps",
            "word",
            "--beam-size",
            "2",
            "--print",
            "20",
        ]
    )
    assert rc == 0
    rows = _records(out)
    names = sorted(r["path"].rsplit("/", 1)[-1] for r in rows)
    assert len(rows) == 2 + 1 + 4  # rows in = rows out
    assert "notes.txt" not in names and "zero.wav" in names and "exist.wav" in names
    by = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert "empty" in by["zero.wav"]["error"] and "zero.wav" in by["zero.wav"]["error"]
    assert "not found" in by["exist.wav"]["error"] and by["exist.wav"]["speaker"] == "ghost"
    for r in rows:
        assert set(r) >= {"path", "text", "language", "duration_s", "chunks", "error"}
    ok = [r for r in rows if not r["error"]]
    assert len(ok) == 5
    for r in ok:
        assert r["text"] and r["language"] == "en" and r["duration_s"] > 0
        words = r["chunks"]
        assert words and all(len(w["timestamp"]) == 2 and w["timestamp"][0] <= w["timestamp"][1] for w in words)
        assert words[-1]["timestamp"][1] <= r["duration_s"] + 1e-6
    carried = [r for r in ok if r.get("reference")]
    assert len(carried) == 3 and all(r["speaker"] == "cards" for r in carried)
    printed = capsys.readouterr().out
    assert "7 files" in printed and "2 errors" in printed
    # References in the manifest: the evaluation report is written.
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert metrics["overall"]["n_scored"] >= 3 and metrics["overall"]["wer"] <= 0.3, metrics["overall"]
    assert (out / "report" / "report.md").is_file()
    assert "WER" in printed


@pytest.mark.parametrize(
    "args, message",
    [
        (["/no/such/dir"], "does not exist"),
        (["tests/data/cards", "--beam-size", "0"], "beam_size"),
        (["tests/data/cards", "--model", "/no/such/model"], "does not exist"),
        (["tests/data/cards", "--output", "/proc/sparkasr-out"], "not writable"),
        (["tests/data/cards/*.flac"], "matches nothing"),
    ],
)
def test_setup_errors_stop_before_spark(tmp_path, args, message):
    if "--output" not in args:
        args = args + ["--output", str(tmp_path / "o")]
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "sparkasr.cli", "transcribe", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "SparkContext" not in proc.stderr and time.time() - t0 < 60


def test_manifest_without_path_column(tmp_path):
    m = tmp_path / "bad.csv"
    m.write_text("file,reference\na.wav,x\n")
    proc = subprocess.run(
        [sys.executable, "-m", "sparkasr.cli", "transcribe", str(m), "--output", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "no 'path' column" in proc.stderr


def test_hub_id_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sparkasr import WhisperForCTC
    from sparkasr.whisper.models import ModelNotFoundError

    t0 = time.time()
    with pytest.raises(ModelNotFoundError, match="cannot be reached"):
        WhisperForCTC.pretrained("openai/whisper-large-v3")
    assert time.time() - t0 < 10


def test_resume_skips_done_inputs_and_never_duplicates(spark, tmp_path, clips):
    src = tmp_path / "in"
    src.mkdir()
    for p, _ in clips[5:8]:
        shutil.copy(p, src / p.name)
    out = tmp_path / "out"
    args = ["transcribe", str(src), "--output", str(out), "--timestamps", "segment", "--quiet"]
    assert main(args) == 0
    first = _records(out)
    assert len(first) == 3
    # A crashed earlier run: only uncommitted files, which must never be read as results.
    crashed = out / "transcripts" / "run=crashed" / "_temporary" / "0"
    crashed.mkdir(parents=True)
    (crashed / "part-00000.json").write_text(json.dumps({"path": "bogus", "text": "x"}) + "\n")
    # Re-run over the same inputs: nothing new is transcribed, nothing duplicated.
    assert main(args) == 0
    assert sorted(r["path"] for r in _records(out)) == sorted(r["path"] for r in first)
    assert not (out / "transcripts" / "run=crashed").exists()
    # One new file: only it is transcribed.
    shutil.copy(clips[8][0], src / clips[8][0].name)
    assert main(args) == 0
    rows = _records(out)
    assert len(rows) == 4 and len({r["path"] for r in rows}) == 4
    # Other options = another configuration: transcribed again, kept apart by config_id.
    assert main(args[:-3] + ["--timestamps", "none", "--quiet"]) == 0
    rows = _records(out)
    assert len(rows) == 8 and len({r["config_id"] for r in rows}) == 2


def test_config_file_and_subtitles(spark, tmp_path, clips):
    cfg = tmp_path / "job.yaml"
    out = tmp_path / "out"
    cfg.write_text(
        f"inputs: [{clips[0][0]}]\noutput: {out}\ntimestamps: word\nbeam_size: 2\nsubtitles: [srt, vtt]\nquiet: true\n"
    )
    assert main(["transcribe", "--config", str(cfg), "--beam-size", "1"]) == 0
    (row,) = _records(out)
    assert not row["error"]
    srt = list((out / "subtitles").glob("*.srt"))
    vtt = list((out / "subtitles").glob("*.vtt"))
    assert len(srt) == 1 and len(vtt) == 1
    assert srt[0].name.startswith("sense_and_sensibility_01_austen_64kb-0870-")
    body = srt[0].read_text()
    assert body.startswith("1\n00:00:0") and "-->" in body
    assert vtt[0].read_text().startswith("WEBVTT")


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("beam_sise: 3\n", "unknown key 'beam_sise'"),
        ("beam_size: -1\n", "'beam_size'"),
        ("timestamps: sentence\n", "'timestamps'"),
        ("spark_conf: {executor.memory: 2g}\n", "'spark_conf'"),
    ],
)
def test_config_errors_name_the_key_before_spark(tmp_path, yaml_text, message):
    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"inputs: [tests/data/cards]\noutput: {tmp_path / 'o'}\n" + yaml_text)
    proc = subprocess.run(
        [sys.executable, "-m", "sparkasr.cli", "transcribe", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "SparkContext" not in proc.stderr


def test_safe_subtitle_names():
    from sparkasr.job.subtitles import safe_name

    a = safe_name("file:/data/../../etc/passwd")
    b = safe_name("file:/x/a b?.wav")
    c = safe_name("file:/y/a b?.wav")
    assert "/" not in a and ".." not in a
    assert b != c and b.startswith("a_b-")


@pytest.mark.parametrize(
    "args, option, choices",
    [
        (["--language", "de"], "language", "en"),
        (["--task", "translate"], "task", "transcribe"),
        (["--model", "base", "--language", "klingon"], "language", "en, "),
        (["--compute-type", "int3"], "compute", "int8, int8_float32"),
    ],
    ids=["de-on-tiny.en", "translate-on-tiny.en", "klingon-on-base", "int3"],
)
def test_impossible_model_options_stop_with_one_line_before_spark(tmp_path, args, option, choices):
    """Exit 2 with one line naming the option and what it allows, before Spark starts: Java is
    taken away, so a run that tried to start Spark would fail otherwise, not with this line."""
    env = dict(os.environ, JAVA_HOME=str(tmp_path / "no-java"), PATH=os.path.dirname(sys.executable))
    t0 = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sparkasr.cli",
            "transcribe",
            "tests/data/cards",
            "--output",
            str(tmp_path / "o"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    wall = time.time() - t0
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert option in lines[0] and choices in lines[0], lines[0]
    assert not (tmp_path / "o" / "transcripts").exists()
    assert wall < 30, wall  # measured 0.5-5 s here; Spark's cold start alone is 10-15 s
    print(f"\n[cli] {' '.join(args)}: exit 2 after {wall:.1f} s: {lines[0]}")


def test_every_flag_has_a_description_and_output_says_it_is_required():
    from sparkasr.cli import _add_transcribe
    from sparkasr.flags import Parser

    parser = Parser(prog="sparkasr")
    _add_transcribe(parser.add_subparsers(dest="command"))
    transcribe = parser._subparsers._group_actions[0].choices["transcribe"]
    for action in transcribe._actions:
        assert action.help and len(action.help) > 10, action.option_strings
    (out,) = [a for a in transcribe._actions if "--output" in a.option_strings]
    assert "required" in out.help
    usage = transcribe.format_usage()
    assert "INPUT... --output DIR [options]" in usage and "[--output" not in usage, usage


def test_print_wraps_long_transcripts(capsys):
    from sparkasr.cli import PRINT_LINES, PRINT_WIDTH, print_records

    long_text = " ".join(f"word{i % 97}" for i in range(20000))  # about two hours of speech
    rows = [
        {"path": "/d/long.wav", "text": long_text, "duration_s": 7200.0, "error": None},
        {"path": "/d/short.wav", "text": "ten of clubs", "duration_s": 1.1, "error": None},
        {"path": "/d/bad.wav", "text": "", "duration_s": None, "error": "/d/bad.wav: not audio"},
    ]
    print_records(rows, "out/current")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("long.wav\t7200.0s\tword0 word1")
    assert len(lines) == PRINT_LINES + 1 + 2
    assert all(len(line.split("\t")[-1]) <= PRINT_WIDTH for line in lines)
    shown = sum(len(line.split("\t")[-1].split()) for line in lines[:PRINT_LINES])
    assert lines[PRINT_LINES] == f"\t\t[... {20000 - shown} more words: the whole text is in out/current]"
    assert lines[-2:] == ["short.wav\t1.1s\tten of clubs", "bad.wav\tERROR\t/d/bad.wav: not audio"]


def test_names_spark_cannot_list_are_inputs_and_paths_are_plain(spark, tmp_path, clips, capsys):
    """A glob matching '10:30 meeting.wav' (Hadoop: URISyntaxException), '_x.wav' (hidden by
    Spark's file index), a directory holding '.x.wav' (skipped, and the summary says so), the same
    file named explicitly (transcribed), a manifest: every path in one plain form."""
    d = tmp_path / "a dir [1]"
    d.mkdir()
    for name, (src, _) in zip(["10:30 meeting.wav", "_x.wav", ".x.wav", "n%20.wav"], clips[5:9]):
        shutil.copy(src, d / name)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path\n" + "a dir [1]/n%20.wav\n")
    out = tmp_path / "out"
    assert (
        main(["transcribe", glob.escape(str(d)) + "/*.wav", str(d), str(manifest), "--output", str(out), "--quiet"])
        == 0
    )
    printed = capsys.readouterr().out
    rows = _records(out)
    paths = sorted(r["path"] for r in rows)
    assert paths == sorted([str(d / "10:30 meeting.wav"), str(d / "_x.wav"), str(d / "n%20.wav"), str(d / "n%20.wav")])
    assert all(not r["error"] and r["text"] for r in rows)
    assert "skipped 1 audio file with hidden names" in printed and ".x.wav" in printed, printed
    assert main(["transcribe", str(d / ".x.wav"), "--output", str(tmp_path / "o2"), "--quiet"]) == 0
    (row,) = _records(tmp_path / "o2")
    assert row["path"] == str(d / ".x.wav") and row["text"] and not row["error"]


def test_light_pipeline_annotate_raises_for_a_bad_file(spark, tmp_path):
    from sparkasr import LightPipeline, WhisperForCTC

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    light = LightPipeline(WhisperForCTC.pretrained().setInputCols(["path"]))
    with pytest.raises(ValueError, match=r"bad\.wav"):
        light.annotate(str(bad))
    with pytest.raises(ValueError, match=r"bad\.wav"):
        light.annotate(["tests/data/cards/001.wav", str(bad)])
    (full,) = light.fullAnnotate(str(bad))
    assert "bad.wav" in full["transcription"][0]["metadata"]["error"]
    assert light.annotate("tests/data/cards/001.wav")["transcription"][0]


def test_manifest_csv_quoting_as_python_writes_it(spark, tmp_path):
    """References with commas, doubled quotes and line breaks (Python's csv/pandas quoting): each row
    stays one row with its own path, reference and name (a doubled quote once split a row and its
    file's record was lost)."""
    import csv

    from sparkasr.job.run import _read_manifest, read_csv_manifest

    rows = [
        ("a.wav", 'Dial 4 to send this caller to a polite "don\'t call" menu, now and forevermore.', "a"),
        ("b.wav", "two lines,\nof reference", "b"),
        ("c.wav", "plain", "c"),
        ("d.wav", None, "d"),  # an empty field: null
    ]
    m = tmp_path / "m.csv"
    with open(m, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "reference", "name"])
        w.writerows(rows)
    got = sorted(tuple(r) for r in _read_manifest(spark, str(m)).select("path", "reference", "name").collect())
    assert got == sorted(rows, key=str)
    # the driver reads a small local manifest itself (no Spark job), and the same way
    names, here = read_csv_manifest(str(m))
    assert names == ["path", "reference", "name"] and sorted(tuple(r) for r in here) == got
