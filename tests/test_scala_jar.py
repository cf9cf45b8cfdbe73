"""The user jar (``scripts/sbt assembly``) in pyspark's own spark-shell and spark-submit.

The README's Scala examples (the blocks after ``<!-- scala-shell-example-whisper -->`` and
``<!-- scala-shell-example -->``) run in ``spark-shell --jars`` and the compiled job
``sparkasr.examples.Transcribe`` in ``spark-submit``, all on this venv's Spark (pyspark 4.3, while the
jar is compiled against Spark 4.2), on the vendored clips: Whisper with the embedded tiny.en exported
by ``sparkasr convert`` (float32; WER bounded), CTC with the tiny random-weight models.
``scripts/test.sh`` builds the jar before the Python tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import CARDS, LIBRIVOX
from ctc_support import tiny_models

ROOT = Path(__file__).resolve().parents[1]
JAR = ROOT / "target" / "scala-2.13" / "sparkasr-assembly-0.1.0.jar"
CARDS_DIR = ROOT / "tests" / "data" / "cards"


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _env(**extra) -> dict:
    env = dict(os.environ, SPARK_HOME=str(_spark_home()), **{k: str(v) for k, v in extra.items()})
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    return env


def _readme_example(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {marker} -->\s*```scala\n(.*?)```", text, re.S)
    assert m, f"README.md has no Scala example marked <!-- {marker} -->"
    return m.group(1)


def _spark_shell(jar: Path, script: Path, env: dict) -> str:
    cmd = [str(_spark_home() / "bin" / "spark-shell"), "--master", "local[2]", "--conf", "spark.ui.enabled=false"]
    cmd += ["--jars", str(jar), "-i", str(script)]
    res = subprocess.run(cmd, input=":quit\n", capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    return res.stdout + res.stderr


def _spark_submit(jar: Path, args, env: dict) -> subprocess.CompletedProcess:
    cmd = [str(_spark_home() / "bin" / "spark-submit"), "--master", "local[2]", "--conf", "spark.ui.enabled=false"]
    cmd += ["--class", "sparkasr.examples.Transcribe", str(jar), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)


def _whisper_export() -> Path:
    """The embedded tiny.en as an ONNX export (``sparkasr convert``, once per test process)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from whisper_support import onnx_export

    return onnx_export()


def _wer(pairs) -> float:
    from sparkasr.evaluation.counts import evaluate_pairs

    refs, hyps = zip(*pairs)
    return evaluate_pairs(list(refs), list(hyps), "whisper_en").overall.wer


@pytest.fixture(scope="module")
def jar():
    if not JAR.is_file():
        pytest.skip(f"{JAR.relative_to(ROOT)} is not built (scripts/sbt assembly; scripts/test.sh builds it)")
    return JAR


def test_readme_whisper_example_runs_in_spark_shell(jar, tmp_path):
    script = tmp_path / "example.scala"
    script.write_text(
        _readme_example("scala-shell-example-whisper")
        + '\nmodel.transform(audio).selectExpr("path", "transcription[0].result").collect()'
        + '.foreach(r => println("EXAMPLE-TEXT\\t" + r.getString(0) + "\\t" + r.getString(1)))\n'
    )
    out = _spark_shell(jar, script, _env(WHISPER_DIR=_whisper_export()))
    texts = dict(line.split("\t")[1:] for line in out.splitlines() if line.startswith("EXAMPLE-TEXT\t"))
    refs = {wav.name: ref for wav, ref in LIBRIVOX}
    assert sorted(Path(p).name for p in texts) == sorted(refs), out[-4000:]
    assert "sense_and_sensibility_01_austen_64kb-0870.wav" in out.split("EXAMPLE-TEXT")[0]  # show() printed its rows
    wer = _wer((refs[Path(p).name], t) for p, t in texts.items())
    assert wer <= 0.08, (wer, texts)  # measured 0.030 (the Python engine's figure on these clips)


def test_readme_ctc_example_runs_in_spark_shell(jar, tmp_path):
    script = tmp_path / "example.scala"
    script.write_text(
        _readme_example("scala-shell-example") + '\nprintln("EXAMPLE-ROWS " + model.transform(audio).count())\n'
    )
    out = _spark_shell(jar, script, _env(MODEL_DIR=tiny_models()["wav2vec2"]["onnx"]))
    assert "EXAMPLE-ROWS 5" in out, out[-4000:]
    assert "sense_and_sensibility_01_austen_64kb-0870.wav" in out  # the example's show() printed its rows


@pytest.mark.parametrize("kind", ["whisper", "hubert"])
def test_compiled_job_runs_in_spark_submit(jar, tmp_path, kind):
    model = _whisper_export() if kind == "whisper" else tiny_models()["hubert"]["onnx"]
    out_dir = tmp_path / "out"
    res = _spark_submit(jar, [model, CARDS_DIR, out_dir] + ([] if kind == "whisper" else [kind]), _env())
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    rows = [json.loads(line) for f in sorted(out_dir.glob("part-*.json")) for line in f.read_text().splitlines()]
    wavs = {r["path"].rsplit("/", 1)[-1]: r for r in rows if r["path"].endswith(".wav")}
    assert sorted(wavs) == sorted(p.name for p in CARDS_DIR.glob("*.wav"))
    for r in wavs.values():
        assert r.get("error") is None and r["text"] and r["chunks"], r
        assert all(c["end"] >= c["start"] >= 0 and c["text"] for c in r["chunks"])
    (other,) = [r for r in rows if not r["path"].endswith(".wav")]
    assert "cards.transcription" in other["error"], other  # not audio: an error row naming it, not a failed job
    if kind == "whisper":
        assert all(r["language"] == "en" and r["language_probability"] == 1.0 for r in wavs.values())
        refs = {wav.name: ref for wav, ref in CARDS}
        wer = _wer((refs[name], r["text"]) for name, r in wavs.items())
        assert wer <= 0.25, (wer, {n: r["text"] for n, r in wavs.items()})  # measured 0.091
    else:
        assert all("language" not in r for r in wavs.values())
