"""spark-submit as the README shows it (issue 24, item 1), and the Python workers' memory cap of every
Spark profile in conf/ (measured in conf/README.md).

The README's command runs verbatim, by the shell, from a directory that holds the repository's
``conf``, ``python`` and ``tests`` (so its ``out/o`` lands in the test's directory), with the
virtualenv's ``bin`` first on ``PATH`` as after ``source .venv/bin/activate``, and with
``CT2_USE_MKL=1``: CTranslate2 then uses Intel MKL as it does by default on Intel CPUs, the setting
in which ``spark.executor.pyspark.memory 2g`` made every worker fail with ``mkl_malloc: failed to
allocate memory`` (on AMD CPUs CTranslate2 defaults to oneDNN and maps less).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PER_CORE = 6 * 1024  # MiB: what a worker maps with MKL (2.6 GB) plus ~2 hours of a long file's samples


def readme_command(prefix: str) -> str:
    """The README's command line that starts with ``prefix``, as written there."""
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith(prefix):
            return line
    raise AssertionError(f"README.md has no command starting with {prefix!r}")


def user_env(**extra) -> dict:
    env = dict(os.environ, **extra)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    for k in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_HOME"):  # as a user's shell: python3 is the venv's
        env.pop(k, None)
    # the package under test (a fresh clone's editable install points here too)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "python"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def checkout_like(tmp_path: Path) -> Path:
    """A directory that looks like the repository to a command run in it."""
    for name in ("conf", "python", "tests"):
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


def records(out: Path):
    return [json.loads(x) for f in sorted((out / "current").glob("part-*.json")) for x in f.read_text().splitlines()]


@pytest.mark.spark
def test_the_readme_spark_submit_command_runs_verbatim(tmp_path):
    command = readme_command("spark-submit --properties-file conf/spark-defaults.conf python/sparkasr/job/submit.py")
    cwd = checkout_like(tmp_path)
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=user_env(CT2_USE_MKL="1"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert "mkl_malloc" not in proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("sparkasr: 5 files") and "0 errors" in summary and "-> out/o/current" in summary
    rows = records(cwd / "out" / "o")
    assert sorted(Path(r["path"]).name for r in rows) == [f"00{i}.wav" for i in range(1, 6)]
    assert all(r["error"] is None and r["text"] for r in rows)
    print(f"\n[submit] {command}\n[submit] {summary}")


def _properties(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out[key] = value.strip()
    return out


def _mib(value: str) -> int:
    m = re.fullmatch(r"(\d+)([kmgt]?)b?", value.lower())
    assert m, value
    return int(m.group(1)) * {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024, "": 1 / (1024 * 1024)}[m.group(2)]


CAPPED = sorted(
    p.name
    for p in (REPO / "conf").iterdir()
    if p.suffix in (".conf", ".properties") and "spark.executor.pyspark.memory" in _properties(p)
)


@pytest.mark.parametrize("profile", CAPPED)
def test_every_capped_profile_gives_each_python_worker_enough_address_space(profile):
    """Spark divides spark.executor.pyspark.memory among the executor's cores (one Python worker
    each: PythonRunner's getWorkerMemoryMb); profiles without it set no cap."""
    props = _properties(REPO / "conf" / profile)
    cap = props["spark.executor.pyspark.memory"]
    cores = int(props.get("spark.executor.cores", "1"))
    assert _mib(cap) / cores >= PER_CORE, (profile, cap, cores)
