"""`sparkasr transcribe`: the batch job end to end on real clips, and setup errors before Spark."""

from __future__ import annotations

import json
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
    from sparkasr.models import ModelNotFoundError

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
    from sparkasr.subtitles import safe_name

    a = safe_name("file:/data/../../etc/passwd")
    b = safe_name("file:/x/a b?.wav")
    c = safe_name("file:/y/a b?.wav")
    assert "/" not in a and ".." not in a
    assert b != c and b.startswith("a_b-")
