"""The user jar (``scripts/sbt assembly``) in pyspark's own spark-shell and spark-submit.

The README's Scala example (the block after ``<!-- scala-shell-example -->``) runs in ``spark-shell
--jars`` and the compiled job ``sparkasr.examples.Transcribe`` in ``spark-submit``, both on this
venv's Spark (pyspark 4.3, while the jar is compiled against Spark 4.2), on the vendored clips with
the tiny random-weight wav2vec2 model. ``scripts/test.sh`` builds the jar before the Python tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from ctc_support import tiny_models

ROOT = Path(__file__).resolve().parents[1]
JAR = ROOT / "target" / "scala-2.13" / "sparkasr-assembly-0.1.0.jar"


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _env(model_dir) -> dict:
    env = dict(os.environ, SPARK_HOME=str(_spark_home()), MODEL_DIR=str(model_dir))
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    return env


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- scala-shell-example -->\s*```scala\n(.*?)```", text, re.S)
    assert m, "README.md has no Scala example marked <!-- scala-shell-example -->"
    return m.group(1)


@pytest.fixture(scope="module")
def jar():
    if not JAR.is_file():
        pytest.skip(f"{JAR.relative_to(ROOT)} is not built (scripts/sbt assembly; scripts/test.sh builds it)")
    return JAR


def test_readme_example_runs_in_spark_shell(jar, tmp_path):
    model = tiny_models()["wav2vec2"]["onnx"]
    script = tmp_path / "example.scala"
    script.write_text(_readme_example() + '\nprintln("EXAMPLE-ROWS " + model.transform(audio).count())\n')
    cmd = [
        str(_spark_home() / "bin" / "spark-shell"),
        "--master",
        "local[2]",
        "--conf",
        "spark.ui.enabled=false",
        "--jars",
        str(jar),
        "-i",
        str(script),
    ]
    res = subprocess.run(cmd, input=":quit\n", capture_output=True, text=True, cwd=ROOT, env=_env(model), timeout=900)
    out = res.stdout + res.stderr
    assert "EXAMPLE-ROWS 5" in out, out[-4000:]
    assert "sense_and_sensibility_01_austen_64kb-0870.wav" in out  # the example's show() printed its rows


def test_compiled_job_runs_in_spark_submit(jar, tmp_path):
    model = tiny_models()["hubert"]["onnx"]
    out_dir = tmp_path / "out"
    cmd = [
        str(_spark_home() / "bin" / "spark-submit"),
        "--master",
        "local[2]",
        "--conf",
        "spark.ui.enabled=false",
        "--class",
        "sparkasr.examples.Transcribe",
        str(jar),
        str(model),
        str(ROOT / "tests" / "data" / "cards"),
        str(out_dir),
        "hubert",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=_env(model), timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    rows = [json.loads(line) for f in sorted(out_dir.glob("part-*.json")) for line in f.read_text().splitlines()]
    wavs = sorted(p.name for p in (ROOT / "tests" / "data" / "cards").glob("*.wav"))
    assert sorted(Path(r["path"]).name for r in rows if r["path"].endswith(".wav")) == wavs
    for r in rows:
        if r["path"].endswith(".wav"):
            assert r.get("error") is None and r["text"] and r["words"], r
            assert all(w["end"] >= w["start"] >= 0 for w in r["words"])
        else:  # cards.transcription is not audio: an error row naming it, not a failed job
            assert "cards.transcription" in r["error"], r
