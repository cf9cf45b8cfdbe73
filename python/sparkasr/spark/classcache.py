"""How the driver JVM that a sparkasr command starts is started: from an archive of the classes
Spark loads while it starts (class data sharing), and with the JIT's quick tier only.

Class data sharing: the classes are archived once per machine, Java, Spark and class path, so that
later starts map them instead of loading and verifying them again. On 2 cores this takes ~3.5 s
off a local job's start (session, first job and stop: 10.2 s → 6.7 s in
``bench/run_many_files.py``'s profile). The first start without an archive has the JVM write
one when it exits (``-XX:ArchiveClassesAtExit``, Java 13 or later; ~160 MB, several seconds, once);
:func:`save` waits for that and moves the file into place, so a run that is killed, interrupted
or fails (and does not wait) leaves no half-written archive where the next one would look; a later
start removes what such a run's JVM wrote. A JVM that cannot use the archive (another
class path, a Java update) starts as it would without it: ``-Xshare:auto`` falls back silently.

The quick JIT (:data:`QUICK_JIT`, C1 only): a fresh JVM spends its first seconds compiling Spark's
start and first jobs with both compilers, on the cores the Python workers need; in a sparkasr job
the JVM only schedules and moves small records (the workers decode and transcribe), so the
optimising compiler's later gains never pay for it. A tiering option among the driver's own
Java options wins (it comes after ours).

Only the JVM that pyspark launches for a local or standalone session is concerned; under
``spark-submit`` or Spark Connect the JVM is not ours to start, and executors keep their options.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional

log = logging.getLogger("sparkasr.job")

JAVA_OPTIONS = "spark.driver.extraJavaOptions"
MIN_JAVA = 13  # the first with dynamic archives (-XX:ArchiveClassesAtExit)
KEEP = 3  # archives kept per machine (other Java or Spark versions, other class paths)
SAVE_TIMEOUT_S = 180.0
# A mismatched or unreadable archive is not an error (the JVM starts without it); say nothing of it.
QUIET = "-Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"
QUICK_JIT = "-XX:TieredStopAtLevel=1"


@dataclass(frozen=True)
class ClassArchive:
    """Where this JVM's class archive is, and where the JVM writes one when there is none yet."""

    path: Path
    writing: Optional[Path] = None

    def java_options(self) -> str:
        flag = f"-XX:ArchiveClassesAtExit={self.writing}" if self.writing else f"-XX:SharedArchiveFile={self.path}"
        return f"{flag} {QUIET}"


def java_home(environ: Mapping[str, str]) -> Optional[Path]:
    """The Java that ``spark-submit`` runs: ``JAVA_HOME``'s, else the ``java`` on the PATH."""
    if environ.get("JAVA_HOME"):
        return Path(environ["JAVA_HOME"])
    java = shutil.which("java", path=environ.get("PATH"))
    return Path(os.path.realpath(java)).parent.parent if java else None


def java_version(home: Path) -> Optional[str]:
    """``JAVA_VERSION`` from the JDK's ``release`` file (None where there is none)."""
    try:
        text = (home / "release").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    m = re.search(r'^JAVA_VERSION="([^"]+)"', text, re.M)
    return m.group(1) if m else None


def java_major(version: str) -> int:
    """17 for ``17.0.15``, 8 for ``1.8.0_392``."""
    parts = re.findall(r"\d+", version)
    if not parts:
        return 0
    return int(parts[1]) if parts[0] == "1" and len(parts) > 1 else int(parts[0])


def defaults_file_options(spark_home: Path, environ: Mapping[str, str]) -> str:
    """``spark.driver.extraJavaOptions`` from the ``spark-defaults.conf`` that ``spark-submit`` reads
    ("" where it sets none): a value given with ``--conf`` replaces it, so it is kept in ours."""
    conf_dir = Path(environ.get("SPARK_CONF_DIR") or spark_home / "conf")
    try:
        lines = (conf_dir / "spark-defaults.conf").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for line in lines:
        m = re.match(r"\s*([^\s=:#!]+)\s*[=:\s]\s*(.*)$", line)
        if m and m.group(1) == JAVA_OPTIONS:
            return m.group(2).strip()
    return ""


def own_java_options(conf: Mapping[str, str], environ: Mapping[str, str], spark_home: Optional[Path] = None) -> str:
    """The driver's own Java options: those of ``conf``, else those of ``spark-defaults.conf``."""
    own = conf.get(JAVA_OPTIONS)
    if own:
        return own
    spark_home = spark_home or _spark_home(environ)
    return defaults_file_options(spark_home, environ) if spark_home else ""


def _spark_home(environ: Mapping[str, str]) -> Optional[Path]:
    if environ.get("SPARK_HOME"):
        return Path(environ["SPARK_HOME"])
    try:
        from pyspark.find_spark_home import _find_spark_home

        return Path(_find_spark_home())
    except Exception:  # no Spark to start
        return None


def archive_key(java: Path, version: str, spark_home: Path, conf: Mapping[str, str]) -> str:
    """What the archive depends on: the Java, Spark's jars, and the driver's class path and options."""
    h = hashlib.sha256(f"{os.path.realpath(java)}|{version}|{os.path.realpath(spark_home)}".encode())
    jars = spark_home / "jars"
    try:
        for e in sorted(os.scandir(jars), key=lambda e: e.name):
            h.update(f"|{e.name}:{e.stat().st_size}".encode())
    except OSError:
        pass
    for k in ("spark.driver.extraClassPath", JAVA_OPTIONS):
        h.update(f"|{k}={conf.get(k, '')}".encode())
    return h.hexdigest()[:16]


def archive_dir() -> Path:
    from ..whisper.models import cache_dir

    return cache_dir() / "jvm"


def plan(
    conf: Mapping[str, str], *, write: bool = True, environ: Optional[Mapping[str, str]] = None
) -> Optional[ClassArchive]:
    """The archive a JVM started with ``conf`` uses, or writes when there is none and ``write``;
    None where it cannot have one (Java before 13 or not found, options given to ``spark-submit``
    on the side, no Spark)."""
    env = os.environ if environ is None else environ
    if "driver-java-options" in env.get("PYSPARK_SUBMIT_ARGS", ""):
        return None  # spark-submit puts these after ours and would drop them
    home, spark_home = java_home(env), _spark_home(env)
    version = java_version(home) if home else None
    if home is None or spark_home is None or version is None or java_major(version) < MIN_JAVA:
        return None
    options = own_java_options(conf, env, spark_home)
    key = archive_key(home, version, spark_home, {**conf, JAVA_OPTIONS: options})
    where = archive_dir()
    path = where / f"{key}.jsa"
    if path.is_file():
        return ClassArchive(path)
    if not write:
        return None
    try:
        where.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(where)
    except OSError:
        return None  # a read-only cache: start as before
    return ClassArchive(path, writing=where / f"{key}.jsa.{os.getpid()}.tmp")


def start_options(
    conf: Mapping[str, str],
    archive: Optional[ClassArchive],
    *,
    quick_jit: bool = True,
    environ: Optional[Mapping[str, str]] = None,
) -> Dict[str, str]:
    """``conf`` with the driver's start options: :data:`QUICK_JIT` (when ``quick_jit``) before the
    driver's own Java options, so that theirs win, and the archive's after them. The driver's own
    are those of ``conf``, else those of ``spark-defaults.conf``, which a ``--conf`` value would
    otherwise replace. Unchanged where options given to ``spark-submit`` would drop ours."""
    env = os.environ if environ is None else environ
    if (archive is None and not quick_jit) or "driver-java-options" in env.get("PYSPARK_SUBMIT_ARGS", ""):
        return dict(conf)
    parts = [QUICK_JIT if quick_jit else "", own_java_options(conf, env), archive.java_options() if archive else ""]
    return {**conf, JAVA_OPTIONS: " ".join(p for p in parts if p)}


def _remove_abandoned(where: Path) -> None:
    """Archives being written by processes that are gone (killed before :func:`save`)."""
    for tmp in where.glob("*.jsa.*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (another user's counts): leftovers in the cache named after
    their writer's pid are removed only once it is gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def jvm_pid() -> Optional[int]:
    """The pid of the JVM pyspark launched in this process (None where it did not launch one)."""
    from pyspark import SparkContext

    proc = getattr(SparkContext._gateway, "proc", None)
    return proc.pid if proc is not None else None


def in_use(archive: ClassArchive, pid: Optional[int] = None) -> Optional[bool]:
    """Whether the running JVM mapped ``archive`` (Linux: its memory maps; None elsewhere)."""
    pid = jvm_pid() if pid is None else pid
    if pid is None:
        return None
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None
    return str(archive.path) in maps


def save(archive: Optional[ClassArchive]) -> Optional[float]:
    """After the session's last use: when this JVM writes the archive, end it (its classes are
    dumped as it exits), move the file into place and keep the :data:`KEEP` newest archives.
    Returns the seconds it took, or None when there was nothing to write."""
    if archive is None or archive.writing is None:
        return None
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    if proc is None:
        return None
    t0 = time.perf_counter()
    try:
        gateway.shutdown()
    except Exception:  # the gateway is going away either way
        pass
    try:
        if proc.stdin is not None:
            proc.stdin.close()  # the gateway server exits at end of input
        proc.wait(timeout=SAVE_TIMEOUT_S)
    except Exception as exc:
        log.warning("sparkasr: the JVM did not exit to write its class archive: %s", exc)
        proc.kill()
        archive.writing.unlink(missing_ok=True)
        return None
    finally:
        SparkContext._gateway = None
        SparkContext._jvm = None
    if proc.returncode == 0 and archive.writing.is_file() and archive.writing.stat().st_size > 0:
        os.replace(archive.writing, archive.path)
        _keep_newest(archive.path.parent)
    else:
        archive.writing.unlink(missing_ok=True)
    return time.perf_counter() - t0


def _keep_newest(where: Path) -> None:
    archives = sorted(where.glob("*.jsa"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in archives[KEEP:]:
        old.unlink(missing_ok=True)
