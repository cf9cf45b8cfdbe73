"""A user's own session (issue 32, item 5): the README's Python snippet runs as written from the
repository, as a new user runs it (``.venv/bin/python api.py``, nothing else set), and Python
workers that cannot import sparkasr stop a stage at once with one line saying what to set."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARK = "<!-- readme-snippet: runs as written"


def readme_snippets():
    """The README's Python blocks marked as running as written (the comment line before them)."""
    text = (REPO / "README.md").read_text()
    return re.findall(re.escape(MARK) + r"[^\n]*-->\n```python\n(.*?)\n```", text, flags=re.S)


def test_the_readme_python_snippet_runs_as_written(tmp_path):
    (code,) = readme_snippets()
    assert "SparkSession.builder.getOrCreate()" in code and "read_audio" in code
    script = tmp_path / "api.py"
    script.write_text(code + "\n")
    # A new user's shell: no Spark variables; the checkout's package first (what the editable
    # install of a fresh clone's .venv points at).
    drop = ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "SPARK_HOME")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "python"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    res = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    shown = [line for line in res.stdout.splitlines() if line.startswith("|") and ".wav" in line]
    assert len(shown) == 5 and all(line.split("|")[2].strip() for line in shown), res.stdout
    assert "{'transcription': [" in res.stdout, res.stdout


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """A Python without sparkasr's dependencies (a fresh virtualenv): what Spark starts by default."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    assert subprocess.run([str(python), "-c", "import numpy"], capture_output=True).returncode != 0
    return str(python)


@pytest.mark.spark
@pytest.mark.parametrize("worker", ["bare", "missing"])
def test_workers_without_sparkasr_stop_at_once_with_one_line(spark, bare_python, worker, tmp_path):
    from sparkasr import AudioAssembler, WhisperForCTC, read_audio
    from sparkasr.job.run import run_transcription
    from sparkasr.spark.session import WorkerSetupError

    sc = spark.sparkContext
    python = bare_python if worker == "bare" else str(tmp_path / "no-such-python")
    saved = sc.pythonExec
    sc.pythonExec = python  # what PYSPARK_PYTHON sets when the session starts
    try:
        df = spark.createDataFrame([(str(REPO / "tests" / "data" / "cards" / "001.wav"),)], "path string")
        for start in (
            lambda: read_audio(spark, str(REPO / "tests" / "data" / "cards")),
            lambda: AudioAssembler(inputCol="path").transform(df),
            lambda: WhisperForCTC.pretrained().setInputCols(["path"]).transform(df),
            # the job sends no probe ahead of its run: the run's failure is turned into the line
            lambda: run_transcription(
                spark, [str(REPO / "tests" / "data" / "cards")], str(tmp_path / "job"), quiet=True
            ),
        ):
            with pytest.raises(WorkerSetupError) as caught:
                start()
            message = str(caught.value)
            assert "\n" not in message and message.startswith("Spark's Python workers cannot run sparkasr: ")
            assert "PYSPARK_PYTHON" in message and sys.executable in message
            assert python in message
            if worker == "bare":
                assert "No module named 'numpy'" in message or "No module named 'pandas'" in message, message
    finally:
        sc.pythonExec = saved
    print(f"\n[workers] {message}")
