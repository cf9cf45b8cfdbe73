"""The driver JVM's class archive (:mod:`sparkasr.spark.classcache`): which archive a start maps or
writes, what its name depends on, the options it adds to the driver's own, and, with a real JVM,
that the first start writes it and the next one maps it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparkasr.spark import classcache

REPO = Path(__file__).resolve().parents[1]


def _jdk(root: Path, version: str) -> Path:
    home = root / f"jdk-{version}"
    (home / "bin").mkdir(parents=True)
    (home / "release").write_text(f'IMPLEMENTOR="Test"\nJAVA_VERSION="{version}"\n')
    return home


def _spark(root: Path, jars=("spark-core_2.13-4.0.0.jar", "hadoop-client-api-3.4.1.jar")) -> Path:
    home = root / "spark"
    (home / "jars").mkdir(parents=True)
    (home / "conf").mkdir()
    for j in jars:
        (home / "jars" / j).write_bytes(b"x" * 10)
    return home


@pytest.fixture
def machine(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKASR_CACHE", str(tmp_path / "cache"))
    env = {"JAVA_HOME": str(_jdk(tmp_path, "17.0.15")), "SPARK_HOME": str(_spark(tmp_path)), "PATH": ""}
    return tmp_path, env


@pytest.mark.parametrize("version,major", [("17.0.15", 17), ("21", 21), ("1.8.0_392", 8), ("11.0.2", 11)])
def test_java_major(version, major):
    assert classcache.java_major(version) == major


def test_first_start_writes_then_later_starts_map(machine):
    root, env = machine
    first = classcache.plan({}, environ=env)
    assert first is not None and first.writing is not None and not first.path.exists()
    assert first.writing.parent == first.path.parent == root / "cache" / "jvm"
    assert first.writing.name == f"{first.path.name}.{os.getpid()}.tmp"
    assert f"-XX:ArchiveClassesAtExit={first.writing}" in first.java_options()
    first.path.write_bytes(b"archive")
    later = classcache.plan({}, environ=env)
    assert later == classcache.ClassArchive(first.path)
    assert later.java_options().startswith(f"-XX:SharedArchiveFile={first.path} -Xshare:auto")
    assert classcache.plan({}, write=False, environ=env) == later
    first.path.unlink()
    assert classcache.plan({}, write=False, environ=env) is None


def test_no_archive_where_the_jvm_cannot_have_one(machine):
    root, env = machine
    old = dict(env, JAVA_HOME=str(_jdk(root, "11.0.2")))
    assert classcache.plan({}, environ=old) is None  # no dynamic archives before Java 13
    assert classcache.plan({}, environ=dict(env, JAVA_HOME=str(root / "nowhere"))) is None
    side = dict(env, PYSPARK_SUBMIT_ARGS="--driver-java-options -Dx=1 pyspark-shell")
    assert classcache.plan({}, environ=side) is None  # spark-submit would drop ours


def test_the_name_follows_java_spark_jars_and_driver_options(machine):
    root, env = machine
    name = classcache.plan({}, environ=env).path.name
    assert classcache.plan({"spark.executor.memory": "2g"}, environ=env).path.name == name
    assert classcache.plan({"spark.driver.extraClassPath": "/x.jar"}, environ=env).path.name != name
    assert classcache.plan({classcache.JAVA_OPTIONS: "-XX:+UseZGC"}, environ=env).path.name != name
    assert classcache.plan({}, environ=dict(env, JAVA_HOME=str(_jdk(root, "21.0.1")))).path.name != name
    (Path(env["SPARK_HOME"]) / "jars" / "spark-core_2.13-4.0.0.jar").write_bytes(b"y" * 11)
    assert classcache.plan({}, environ=env).path.name != name


def test_options_go_after_the_drivers_own(machine):
    root, env = machine
    archive = classcache.ClassArchive(root / "a.jsa")
    ours = archive.java_options()
    jit = classcache.QUICK_JIT

    def options(conf, archive=archive, quick_jit=False, environ=env):
        return classcache.start_options(conf, archive, quick_jit=quick_jit, environ=environ)

    assert options({})[classcache.JAVA_OPTIONS] == ours
    given = {classcache.JAVA_OPTIONS: "-Dfoo=1", "spark.app.name": "x"}
    assert options(given) == {"spark.app.name": "x", classcache.JAVA_OPTIONS: f"-Dfoo=1 {ours}"}
    # the quick JIT goes first, so that a tiering option of the driver's own wins
    assert options(given, quick_jit=True)[classcache.JAVA_OPTIONS] == f"{jit} -Dfoo=1 {ours}"
    assert options(given, None, quick_jit=True)[classcache.JAVA_OPTIONS] == f"{jit} -Dfoo=1"
    assert options(given, None) == given
    side = dict(env, PYSPARK_SUBMIT_ARGS="--driver-java-options -Dx=1 pyspark-shell")
    assert options(given, quick_jit=True, environ=side) == given  # spark-submit would drop ours
    name = classcache.plan({}, environ=env).path.name
    # a --conf value replaces spark-defaults.conf's: its options are carried into ours
    (Path(env["SPARK_HOME"]) / "conf" / "spark-defaults.conf").write_text(
        "# admin\nspark.driver.memory 4g\nspark.driver.extraJavaOptions   -Dbar=2 -Xss4m\n"
    )
    assert options({})[classcache.JAVA_OPTIONS] == f"-Dbar=2 -Xss4m {ours}"
    assert options({}, None, quick_jit=True)[classcache.JAVA_OPTIONS] == f"{jit} -Dbar=2 -Xss4m"
    assert classcache.plan({}, environ=env).path.name != name


def test_abandoned_archives_are_removed_and_few_are_kept(machine, monkeypatch):
    root, env = machine
    where = classcache.archive_dir()
    where.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (where / f"k.jsa.{dead.pid}.tmp").write_bytes(b"half")
    (where / f"k.jsa.{os.getpid()}.tmp").write_bytes(b"being written")
    classcache.plan({}, environ=env)
    assert sorted(p.name for p in where.iterdir()) == [f"k.jsa.{os.getpid()}.tmp"]
    for i in range(5):
        p = where / f"{i}.jsa"
        p.write_bytes(b"a")
        os.utime(p, (1000 + i, 1000 + i))
    classcache._keep_newest(where)
    assert sorted(p.name for p in where.glob("*.jsa")) == ["2.jsa", "3.jsa", "4.jsa"]


SCRIPT = """
import json, sys
from sparkasr.cli import _start_spark
from sparkasr.spark import classcache
spark, archive = _start_spark("local[1]")
spark.range(10).count()
used = classcache.in_use(archive)
jvm = spark.sparkContext._jvm
bean = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
    jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
)
tier = bean.getVMOption("TieredStopAtLevel").getValue()
spark.stop()
took = classcache.save(archive)
print(json.dumps(
    {"path": str(archive.path), "writing": archive.writing is not None, "used": used, "saved": took, "tier": tier}
))
"""


@pytest.mark.spark
def test_a_real_jvm_writes_the_archive_once_then_maps_it_with_the_quick_jit(tmp_path):
    env = dict(os.environ, SPARKASR_CACHE=str(tmp_path / "cache"), PYSPARK_PYTHON=sys.executable)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "python"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("SPARK_SUBMIT", None)
    runs = []
    for _ in range(2):
        res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        assert "cds" not in res.stdout.lower(), res.stdout  # the JVM says nothing of the archive
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["writing"] and first["used"] is False and first["saved"] is not None
    assert Path(first["path"]).is_file() and Path(first["path"]).stat().st_size > 10_000_000
    assert list((tmp_path / "cache" / "jvm").glob("*.tmp")) == []
    assert second == {"path": first["path"], "writing": False, "used": True, "saved": None, "tier": "1"}
