"""The output directory over time: one run at a time, work kept across interruptions, errors
retried on request, and ``DIR/current`` holding one record per input (issue 24, items 4-6).

Runs that must be caught mid-way read a named pipe (FIFO) listed in a manifest: its task blocks
until something writes into the pipe, so "the run is still going" is a state the test holds, not a
guess about speed (the test stops such a run, then puts the real file where the pipe was). Every
wait is on something observable (a lock file, committed part files).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparkasr.cli import main

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[1]
WAIT_S = 600  # upper bound for a state to be reached on a loaded machine (never a pacing sleep)


def _part_records(root: Path):
    rows = []
    for f in sorted(root.rglob("part-*.json")):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return rows


def _history(out: Path):
    return _part_records(out / "transcripts")


def _current(out: Path):
    return _part_records(out / "current")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "python"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    return env


def _start(args, log: Path, **kw) -> subprocess.Popen:
    """``sparkasr transcribe ARGS`` in its own process group (as a terminal runs it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "sparkasr.cli", "transcribe", *args],
        cwd=REPO,
        env=_env(),
        stdout=open(log.with_suffix(".out"), "w"),
        stderr=open(log.with_suffix(".err"), "w"),
        start_new_session=True,
        **kw,
    )


def _wait_for(pred, proc: subprocess.Popen, what: str, log: Path):
    deadline = time.time() + WAIT_S
    while time.time() < deadline:
        if pred():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended ({proc.returncode}) before {what}: {_tail(log)}")
        time.sleep(0.2)
    raise AssertionError(f"not reached in {WAIT_S} s: {what}: {_tail(log)}")


def _tail(log: Path) -> str:
    return "".join(p.read_text()[-3000:] for p in (log.with_suffix(".out"), log.with_suffix(".err")) if p.exists())


def _manifest(path: Path, files) -> Path:
    path.write_text("path\n" + "".join(f"{f}\n" for f in files))
    return path


def _kill_group(proc: subprocess.Popen):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def _interrupt(args, log: Path, out: Path, committed: int, how: str, meanwhile=None) -> str:
    """Start ``sparkasr transcribe ARGS``; once ``committed`` records are in the history (and a task
    still waits on a pipe), call ``meanwhile(proc)`` if given, then send ``how`` (SIGINT to the
    process group, as Ctrl-C does, or SIGTERM to the process); check its exit status and stderr;
    return its last line."""
    sig = signal.SIGINT if how == "SIGINT" else signal.SIGTERM
    proc = _start(args, log)
    try:
        _wait_for(lambda: len(_history(out)) == committed, proc, f"{committed} committed records", log)
        if meanwhile is not None:
            meanwhile(proc)
        assert proc.poll() is None  # a task still waits on a pipe
        if sig == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=WAIT_S)
    finally:
        _kill_group(proc)
    err = log.with_suffix(".err").read_text()
    assert rc == 128 + sig, _tail(log)
    assert "Traceback" not in err and "Exception" not in err and "\tat " not in err, err[-4000:]
    return err.strip().splitlines()[-1]


def test_one_run_at_a_time_and_an_interrupted_run_keeps_finished_work_and_says_so(spark, tmp_path, clips, capsys):
    """Real runs of the same command, each held mid-way by a task reading a pipe.

    While the first runs, a second run on the same output is refused at once (exit 2, one line
    naming the first run's pid, before Spark starts) and writes nothing; once the runs before it
    have ended, the same second run goes through.

    Each signal stops a real run with files done and one in flight: one line saying what was kept,
    no traceback, exit 128+signal; the files that finished are committed, and the re-run
    transcribes only what was left. One chain of runs covers both signals (each run costs a Spark
    start): SIGINT to the process group (Ctrl-C) with 3 of 4 files done; the pipe made a real file
    and a new pipe added to the manifest, SIGTERM to the process of the re-run with 1 of its 2 files
    done; then a last re-run transcribes the one file left alone, with one record per input (that one
    through the command's entry point in this process, whose Spark session is already up)."""
    pipes = [tmp_path / "held1.wav", tmp_path / "held2.wav"]
    for fifo in pipes:
        os.mkfifo(fifo)
    done = [p for p, _ in clips[:3]]
    manifest = _manifest(tmp_path / "m.csv", done + pipes[:1])
    out = tmp_path / "out"
    args = [str(manifest), "--output", str(out), "--partitions", "4"]  # one task per file
    refused, notes = [], []  # notes: printed at the end (capsys reads what the runs print)

    def second_run(first: subprocess.Popen):
        lock = out / ".sparkasr.lock"
        assert lock.is_file() and f'"pid": {first.pid}' in lock.read_text()
        t0 = time.time()
        second = subprocess.run(
            [sys.executable, "-m", "sparkasr.cli", "transcribe", str(clips[6][0]), "--output", str(out)],
            cwd=REPO,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        refused.append(time.time() - t0)
        assert first.poll() is None, "the first run ended while it was waiting on the pipe"
        assert second.returncode == 2, second.stdout + second.stderr
        err = second.stderr.strip().splitlines()
        assert len(err) == 1, err
        assert "in use by another sparkasr run" in err[0] and f"pid {first.pid}" in err[0] and str(out) in err[0]
        assert "SparkContext" not in second.stderr
        assert len(_history(out)) == 3  # the refused run wrote nothing
        notes.append(f"\n[output] second run refused in {refused[0]:.1f} s (exit 2): {err[0]}")

    # SIGINT to the group: the three real files are committed, task by task; the pipe waits.
    last = _interrupt(args, tmp_path / "run1", out, 3, "SIGINT", meanwhile=second_run)
    assert refused, "the second run was not tried"
    assert last.startswith("sparkasr: interrupted by SIGINT: kept 3 of the 4 files"), last
    assert "run the same command again to transcribe the other 1" in last
    assert sorted(Path(r["path"]).name for r in _history(out)) == sorted(p.name for p in done)
    assert not (out / "current").exists()  # no finished run yet
    notes.append(f"\n[output] SIGINT to the process group (Ctrl-C): {last}")
    # The pipe becomes a real file and a second pipe joins the manifest: the re-run transcribes
    # those two only, and SIGTERM stops it with the real one committed and the pipe waiting.
    pipes[0].unlink()
    shutil.copy(clips[3][0], pipes[0])
    _manifest(manifest, done + pipes)
    last = _interrupt(args, tmp_path / "run2", out, 4, "SIGTERM")
    assert last.startswith("sparkasr: interrupted by SIGTERM: kept 1 of the 2 files"), last
    assert "run the same command again to transcribe the other 1" in last
    assert sorted(Path(r["path"]).name for r in _history(out)) == sorted([p.name for p in done] + ["held1.wav"])
    assert not (out / "current").exists()
    notes.append(f"\n[output] SIGTERM to the process: {last}")
    # The second pipe becomes a real file: the re-run transcribes it alone.
    pipes[1].unlink()
    shutil.copy(clips[4][0], pipes[1])
    capsys.readouterr()
    assert main(["transcribe", *args, "--quiet"]) == 0  # in this process: the module's Spark session
    printed = capsys.readouterr().out
    assert "5 files" in printed and "(1 transcribed now, 4 already done)" in printed, printed
    assert len(_history(out)) == 5 and len(_current(out)) == 5
    # Every run before it has ended: the refused second run goes through.
    assert main(["transcribe", str(clips[6][0]), "--output", str(out), "--quiet"]) == 0
    assert len(_history(out)) == 6 and [Path(r["path"]).name for r in _current(out)] == [clips[6][0].name]
    print("".join(notes))


def test_errors_are_retried_on_request_and_current_has_one_record_per_input(spark, tmp_path, clips, capsys):
    src = tmp_path / "in"
    src.mkdir()
    good, fixed = clips[5][0], src / "fixed.wav"
    shutil.copy(good, src / good.name)
    # A file that cannot be read, then repaired without changing its size or time (as a permission
    # fix leaves them): its id stays the same, so only --retry-errors transcribes it again.
    real = clips[6][0].read_bytes()
    fixed.write_bytes(b"\0" * len(real))
    stamp = (1_700_000_000, 1_700_000_000)
    os.utime(fixed, stamp)
    out = tmp_path / "out"
    args = ["transcribe", str(src), "--output", str(out), "--quiet"]
    assert main(args) == 0
    by = {Path(r["path"]).name: r for r in _current(out)}
    assert by["fixed.wav"]["error"] and not by[good.name]["error"]
    fixed.write_bytes(real)
    os.utime(fixed, stamp)
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "1 errors (0 transcribed now, 2 already done)" in printed, printed
    assert "1 of the errors are records kept from earlier runs; --retry-errors" in printed, printed
    assert main(args + ["--retry-errors"]) == 0
    printed = capsys.readouterr().out
    assert "0 errors (1 transcribed now, 1 already done)" in printed, printed
    current = _current(out)
    assert sorted(Path(r["path"]).name for r in current) == sorted([good.name, "fixed.wav"])
    assert all(r["error"] is None and r["text"] for r in current)
    assert len(_history(out)) == 3  # the error record stays in the history
    # Other options: a new result per input in current; the history keeps both.
    assert main(args + ["--beam-size", "1"]) == 0
    current = _current(out)
    assert len(current) == 2 and len({r["config_id"] for r in current}) == 1
    assert len(_history(out)) == 5
    # A manifest file that appears later: its "not found" record is superseded in current.
    late = tmp_path / "late.wav"
    manifest = _manifest(tmp_path / "m.csv", [late])
    assert main(["transcribe", str(manifest), "--output", str(tmp_path / "o2"), "--quiet"]) == 0
    assert "not found" in _current(tmp_path / "o2")[0]["error"]
    shutil.copy(good, late)
    assert main(["transcribe", str(manifest), "--output", str(tmp_path / "o2"), "--quiet"]) == 0
    (row,) = _current(tmp_path / "o2")
    assert row["error"] is None and row["text"] and row["path"] == str(late)
    assert len(_history(tmp_path / "o2")) == 2


def test_the_lock_for_remote_outputs_is_an_exclusive_marker_file(spark, tmp_path):
    """Outputs on s3a://, hdfs://, dbfs:/ are locked through Hadoop's FileSystem API (here on the
    local filesystem through the same API): a second holder is refused, naming the marker."""
    from sparkasr.job.output import LOCK_NAME, OutputInUse, _HadoopLock

    uri = "file:" + str(tmp_path / "remote-out")
    first = _HadoopLock(uri, spark)
    first.acquire()
    try:
        marker = tmp_path / "remote-out" / LOCK_NAME
        assert f'"pid": {os.getpid()}' in marker.read_text()
        with pytest.raises(OutputInUse, match=f"pid {os.getpid()}.*delete it"):
            _HadoopLock(uri, spark).acquire()
    finally:
        first.release()
    assert not marker.exists()
    again = _HadoopLock(uri, spark)
    again.acquire()
    again.release()
