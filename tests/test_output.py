"""The output directory over time: one run at a time, work kept across interruptions, errors
retried on request, and ``DIR/current`` holding one record per input (issue 24, items 4-6).

Runs that must be caught mid-way read a named pipe (FIFO) listed in a manifest: its task blocks
until the test writes into the pipe, so "the run is still going" is a state the test holds, not a
guess about speed. Every wait is on something observable (a lock file, committed part files).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
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


def _feed_fifo(fifo: Path, clip: Path) -> threading.Thread:
    """Write ``clip`` into the pipe once its reader opens it (in a thread: open() blocks until then)."""

    def feed():
        with open(fifo, "wb") as f:
            f.write(clip.read_bytes())

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    return t


def _manifest(path: Path, files) -> Path:
    path.write_text("path\n" + "".join(f"{f}\n" for f in files))
    return path


def _kill_group(proc: subprocess.Popen):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def test_a_second_run_on_the_same_output_is_refused_while_the_first_runs(spark, tmp_path, clips):
    """Two real concurrent runs: the second is refused at once (exit 2, one line naming the first
    run's pid), writes nothing, and the first commits exactly one record per input."""
    fifo = tmp_path / "held.wav"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    first = _start(
        ["--quiet", str(_manifest(tmp_path / "a.csv", [clips[5][0], fifo])), "--output", str(out)], tmp_path / "first"
    )
    try:
        lock = out / ".sparkasr.lock"
        _wait_for(
            lambda: lock.is_file() and f'"pid": {first.pid}' in lock.read_text(), first, "the lock", tmp_path / "first"
        )
        # The first run cannot finish: its task waits on the pipe until the test writes into it.
        t0 = time.time()
        second = subprocess.run(
            [sys.executable, "-m", "sparkasr.cli", "transcribe", str(clips[6][0]), "--output", str(out)],
            cwd=REPO,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        refused_s = time.time() - t0
        assert first.poll() is None, "the first run ended while it was waiting on the pipe"
        assert second.returncode == 2, second.stdout + second.stderr
        err = second.stderr.strip().splitlines()
        assert len(err) == 1, err
        assert "in use by another sparkasr run" in err[0] and f"pid {first.pid}" in err[0] and str(out) in err[0]
        assert "SparkContext" not in second.stderr
        feeder = _feed_fifo(fifo, clips[7][0])
        assert first.wait(timeout=WAIT_S) == 0, _tail(tmp_path / "first")
        feeder.join(timeout=10)
    finally:
        _kill_group(first)
    rows = _history(out)
    assert sorted(Path(r["path"]).name for r in rows) == sorted([clips[5][0].name, "held.wav"])
    assert len(_current(out)) == 2
    print(f"\n[output] second run refused in {refused_s:.1f} s (exit 2): {err[0]}")
    # Once the first has finished, the same second run goes through.
    assert main(["transcribe", str(clips[6][0]), "--output", str(out), "--quiet"]) == 0
    assert len(_history(out)) == 3 and [Path(r["path"]).name for r in _current(out)] == [clips[6][0].name]


@pytest.mark.parametrize("how", ["SIGINT to the process group (Ctrl-C)", "SIGTERM to the process"])
def test_an_interrupted_run_keeps_finished_work_and_says_so(tmp_path, clips, how):
    """SIGINT/SIGTERM with 3 of 4 files done: one line saying what was kept, no traceback, exit
    128+signal; the files that finished are committed, and the re-run transcribes only the one
    that was in flight."""
    fifo = tmp_path / "held.wav"
    os.mkfifo(fifo)
    done = [p for p, _ in clips[:3]]
    manifest = _manifest(tmp_path / "m.csv", done + [fifo])
    out = tmp_path / "out"
    args = [str(manifest), "--output", str(out), "--partitions", "4"]  # one task per file
    log = tmp_path / "run"
    proc = _start(args, log)
    try:
        committed = lambda: len(_history(out)) == 3  # noqa: E731 (the three real files, task by task)
        _wait_for(committed, proc, "three committed records", log)
        assert proc.poll() is None  # the fourth task still waits on the pipe
        if how.startswith("SIGINT"):
            os.killpg(proc.pid, signal.SIGINT)
            sig = signal.SIGINT
        else:
            proc.send_signal(signal.SIGTERM)
            sig = signal.SIGTERM
        rc = proc.wait(timeout=WAIT_S)
    finally:
        _kill_group(proc)
    err = log.with_suffix(".err").read_text()
    assert rc == 128 + sig, _tail(log)
    assert "Traceback" not in err and "Exception" not in err and "\tat " not in err, err[-4000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"sparkasr: interrupted by {sig.name}: kept 3 of the 4 files"), last
    assert "run the same command again to transcribe the other 1" in last
    assert sorted(Path(r["path"]).name for r in _history(out)) == sorted(p.name for p in done)
    assert not (out / "current").exists()  # no finished run yet
    # The pipe becomes a real file: the re-run transcribes it alone.
    fifo.unlink()
    shutil.copy(clips[3][0], fifo)
    res = subprocess.run(
        [sys.executable, "-m", "sparkasr.cli", "transcribe", *args, "--quiet"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "4 files" in res.stdout and "(1 transcribed now, 3 already done)" in res.stdout, res.stdout
    assert len(_history(out)) == 4 and len(_current(out)) == 4
    print(f"\n[output] {how}: {last}")


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
